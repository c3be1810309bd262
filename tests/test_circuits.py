"""Circuits: metrics against hand computations, code scores on hand-built codes, task validation,
hooks removed after every method, and an end-to-end run on a tiny random model."""

import json
import math
import time

import pytest
import torch

from interp.circuits import metrics as M
from interp.circuits.discrete_sae import DiscreteSAEConfig, discrete_sae_scores, edge_scores, node_scores
from interp.errors import InterpError


@pytest.fixture(scope="module")
def tiny():
    """A 2-layer, 2-head random model with the embedded model's tokenizer (so names are tokens)."""
    from transformers import AutoTokenizer

    from interp.models import EMBEDDED_DIR, build_from_config

    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer"))
    torch.manual_seed(0)
    m = build_from_config(dict(n_layers=2, d_model=32, n_ctx=128, d_head=16, n_heads=2, d_mlp=64, d_vocab=len(tok),
                               act_fn="gelu", normalization_type="LN", seed=0), tokenizer=tok)
    return m.eval()


def _answerable_jsonl(model, path, n=6):
    """A JSONL task whose answer is the model's own top token, so the full metric is > 0."""
    from interp.data import corpus as C

    rows = []
    for p in C.ioi_prompts(n, seed=3):
        s = p.meta["s"]
        neg = p.text.replace(f" {s} ", " Zoe ", 1) if s != "Zoe" else p.text.replace(f" {s} ", " Sam ", 1)
        with torch.no_grad():
            logits = model(p.text)[0, -1]
        top, low = logits.argmax().item(), logits.argmin().item()
        rows.append({"positive": p.text, "negative": neg, "answer": model.tokenizer.decode([top]),
                     "wrong_answer": model.tokenizer.decode([low])})
    rows = [r for r in rows if model.to_tokens(r["positive"]).shape[1] == model.to_tokens(r["negative"]).shape[1]]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


# ---- metrics against hand computations ----

def test_roc_auc_matches_hand_computation():
    scores = torch.tensor([0.9, 0.8, 0.3, 0.3, 0.1])
    labels = torch.tensor([1, 0, 1, 0, 0]).bool()
    # positives {0.9, 0.3} vs negatives {0.8, 0.3, 0.1}: 0.9 beats all 3; 0.3 beats 0.1 and ties 0.3 -> 4.5 / 6
    assert M.roc_auc(scores, labels) == pytest.approx(0.75)
    assert M.roc_auc(-scores, labels) == pytest.approx(0.25)
    assert math.isnan(M.roc_auc(scores, torch.zeros(5, dtype=torch.bool)))
    pts = M.roc_curve(scores, labels)
    assert pts[0] == (0.0, 0.0) and pts[-1] == (1.0, 1.0)


def test_precision_recall_f1_and_mean_std():
    chosen = torch.tensor([[1, 1, 0], [0, 0, 1]]).bool()
    ref = torch.tensor([[1, 0, 0], [0, 1, 1]]).bool()
    p, r, f = M.precision_recall_f1(chosen, ref)
    assert (p, r) == pytest.approx((2 / 3, 2 / 3)) and f == pytest.approx(2 / 3)
    assert M.mean_std([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2)))
    assert M.mean_std([float("nan"), 2.0]) == (2.0, 0.0)


def test_measure_reports_time_and_memory():
    with M.measure() as m:
        x = torch.ones(16_000_000)  # 64 MB, above glibc's mmap threshold: new resident pages
        # the RSS sampler looks every 5 ms; hold the block long enough that it gets scheduled even on a busy
        # machine (0.1 s was once missed in CI, right after the browser tests: peak 0.004 MB)
        time.sleep(0.5)
        del x
    assert m.seconds >= 0.5 and 48 <= m.peak_mb < 200


# ---- the discretized-code scores on hand-built codes ----

def test_head_score_counts_positive_only_codes():
    # codes [n=3 prompts, L=1, H=2, k=1]
    pos = torch.tensor([[[[5], [1]]], [[[6], [1]]], [[[5], [2]]]])
    neg = torch.tensor([[[[7], [1]]], [[[5], [2]]], [[[7], [-1]]]])
    s = node_scores(pos, neg)
    # head 0: pos {5, 6}, neg {7, 5} -> {6}: 1.  head 1: pos {1, 2}, neg {1, 2} -> 0
    assert s.tolist() == [[1.0, 0.0]]


def test_edge_score_counts_positive_only_code_pairs():
    # L=2, H=1: pairs on positive prompts (3, 4), (3, 5); on negative (3, 4) -> one positive-only pair
    pos = torch.tensor([[[[3]], [[4]]], [[[3]], [[5]]]])
    neg = torch.tensor([[[[3]], [[4]]], [[[9]], [[4]]]])
    e = edge_scores(pos, neg)
    assert e[0, 0, 1, 0] == 1 and e[1, 0, 0, 0] == 0  # only forward (earlier -> later layer) edges


def test_discrete_sae_on_tiny_model(tiny, tmp_path):
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=4, seed=1)
    r = discrete_sae_scores(tiny, t, DiscreteSAEConfig(n_train=4, steps=5, d_sae=16))
    assert r.node_scores.shape == (2, 2) and r.codes_pos.shape == (4, 2, 2, 1)
    assert (r.node_scores >= 0).all() and (r.node_scores <= 4).all()  # at most one new code per prompt
    with pytest.raises(ValueError, match="position"):
        DiscreteSAEConfig(position="first")


def test_qkv_edges_use_the_receivers_input_codes(tiny):
    """Receiver codes replace the sender's own codes on the receiving side; head_inputs reduces
    hook_q/k/v exactly like a hand computation; the option yields 3 edge maps whose max is the edges."""
    from interp.circuits.discrete_sae import head_inputs
    from interp.circuits.patching import real_mask
    from interp.circuits.tasks import ioi_task
    from interp.hooks import capture

    pos = torch.tensor([[[[3]], [[4]]], [[[3]], [[5]]]])
    neg = torch.tensor([[[[3]], [[4]]], [[[9]], [[4]]]])
    recv_pos = torch.tensor([[[[0]], [[8]]], [[[0]], [[8]]]])  # receiver code 8 on both positive prompts
    recv_neg = torch.tensor([[[[0]], [[8]]], [[[0]], [[7]]]])  # (3, 8) also co-occurs on a negative prompt
    assert edge_scores(pos, neg, recv_pos, recv_neg)[0, 0, 1, 0] == 0
    recv_neg = torch.tensor([[[[0]], [[7]]], [[[0]], [[7]]]])
    assert edge_scores(pos, neg, recv_pos, recv_neg)[0, 0, 1, 0] == 1  # (3, 8) is positive-only

    t = ioi_task(tiny, n=3, seed=1)
    mask = real_mask(t)
    inp = head_inputs(tiny, t.pos_tokens, mask, "mean")
    assert inp.shape == (3, 3, 2, 2, 16)
    with torch.no_grad(), capture(tiny, ["blocks.1.attn.hook_k"]) as a:
        tiny(t.pos_tokens)
    k = a["blocks.1.attn.hook_k"][0, : int(t.lengths[0])].mean(0)  # prompt 0, real positions, [head, d_head]
    assert torch.allclose(inp[1, 0, 1], k, atol=1e-5)
    last = head_inputs(tiny, t.pos_tokens, mask, "last")
    assert torch.allclose(last[1, 0, 1], a["blocks.1.attn.hook_k"][0, int(t.lengths[0]) - 1], atol=1e-5)

    r = discrete_sae_scores(tiny, t, DiscreteSAEConfig(n_train=3, steps=5, d_sae=16, qkv_edges=True))
    assert r.qkv_edge_scores.shape == (3, 2, 2, 2, 2) and torch.equal(r.edge_scores, r.qkv_edge_scores.amax(0))
    assert r.qkv_edge_scores[:, 1].sum() == 0  # no edges out of the last layer


# ---- tasks and JSONL validation ----

def test_builtin_tasks_have_equal_lengths_and_metric(tiny):
    from interp.circuits.tasks import docstring_task, ioi_task

    for t in (ioi_task(tiny, n=5), docstring_task(tiny, n=3)):
        assert t.pos_tokens.shape == t.neg_tokens.shape
        assert all(tiny.to_tokens(p).shape[1] == L for p, L in zip(t.positive, t.lengths.tolist()))
        assert t.metric_from_logits(tiny(t.pos_tokens)).shape == (len(t),)
    ioi = ioi_task(tiny, n=3)
    assert all(p != n for p, n in zip(ioi.positive, ioi.negative))


def test_jsonl_errors_name_the_line(tiny, tmp_path):
    from interp.circuits.tasks import load_jsonl_task

    good = {"positive": "When Mary and John went to the store, John gave a drink to",
            "negative": "When Mary and Kate went to the store, John gave a drink to", "answer": " Mary", "wrong_answer": " John"}
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps({k: v for k, v in good.items() if k != "answer"}))
    with pytest.raises(InterpError, match=r"t.jsonl line 2: missing field answer"):
        load_jsonl_task(tiny, f)
    f.write_text(json.dumps({**good, "answer": " Maryxqzzy"}))
    with pytest.raises(InterpError, match=r"line 1: answer ' Maryxqzzy' is \d+ tokens"):
        load_jsonl_task(tiny, f)
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "negative": "Mary and Kate went home, and John gave a drink to"}))
    with pytest.raises(InterpError, match=r"line 2: positive 'When Mary.*has \d+ tokens but negative"):
        load_jsonl_task(tiny, f)
    f.write_text("{not json")
    with pytest.raises(InterpError, match="line 1: not valid JSON"):
        load_jsonl_task(tiny, f)
    f.write_text(json.dumps(good))
    assert len(load_jsonl_task(tiny, f)) == 1


def test_no_separation_warns(tiny, tmp_path, caplog):
    from interp.circuits.tasks import check_separates, load_jsonl_task

    row = {"positive": "When Mary and John went to the store, John gave a drink to",
           "negative": "When Mary and John went to the store, John gave a drink to", "answer": " Mary", "wrong_answer": " John"}
    f = tmp_path / "same.jsonl"
    f.write_text(json.dumps(row))
    with caplog.at_level("WARNING"):
        assert not check_separates(tiny, load_jsonl_task(tiny, f))
    assert "no circuit to find" in caplog.text


# ---- hooks and invariants of the baselines ----

def _no_hooks(model):
    return all(not hp.fwd_hooks and not hp.bwd_hooks for hp in model.hook_dict.values())


def test_methods_remove_hooks_and_restore_config(tiny):
    from interp.circuits.acdc import ACDCConfig, acdc
    from interp.circuits.eap import eap_scores
    from interp.circuits.patching import patching_scores
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=3)
    before = tiny(t.pos_tokens)
    patching_scores(tiny, t)
    eap_scores(tiny, t)
    acdc(tiny, t, ACDCConfig(tau=0.0))
    acdc(tiny, t, ACDCConfig(level="node", objective="metric"))
    assert _no_hooks(tiny)
    assert not tiny.cfg.use_attn_result and not tiny.cfg.use_split_qkv_input
    assert torch.allclose(tiny(t.pos_tokens), before)


def test_identical_pairs_give_zero_patching_and_eap(tiny):
    from interp.circuits.eap import eap_scores
    from interp.circuits.patching import patching_scores
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=3)
    t.neg_tokens = t.pos_tokens.clone()
    assert patching_scores(tiny, t).abs().max() < 1e-5
    r = eap_scores(tiny, t)
    assert r.node_scores.abs().max() < 1e-6 and r.edge_scores.abs().max() < 1e-6


def test_acdc_huge_tau_prunes_everything(tiny):
    from interp.circuits.acdc import ACDCConfig, acdc
    from interp.circuits.tasks import ioi_task

    r = acdc(tiny, ioi_task(tiny, n=3), ACDCConfig(tau=1e9))
    assert not r.kept_nodes.any() and not r.kept_edges.any()
    # only the 6 edges into the output (2 layers x (2 heads + MLP)) are tested: once they are gone,
    # no node has an outgoing edge left, so every other edge goes untested
    assert r.n_tested == 6


def test_acdc_starting_at_the_tested_layer_gives_the_full_forward_result(tiny):
    from interp.circuits.acdc import ACDCConfig, acdc
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=4, seed=2)
    full = acdc(tiny, t, ACDCConfig(tau=1e-4), reuse_upstream=False)
    fast = acdc(tiny, t, ACDCConfig(tau=1e-4), reuse_upstream=True)
    assert 0 < int(full.kept_edges.sum()) < full.kept_edges.numel()  # a tau that keeps some edges and drops others
    assert torch.equal(full.kept_edges, fast.kept_edges) and torch.equal(full.kept_nodes, fast.kept_nodes)
    assert torch.allclose(full.node_scores, fast.node_scores, atol=1e-6) and full.n_tested == fast.n_tested
    assert _no_hooks(tiny)


def test_removed_edges_patch_exactly_the_edge(tiny):
    """Removing the edges from layer 0's heads into layer 1's query input adds (negative - clean)
    head outputs to that input only; MLP 0's contribution and the k/v inputs stay clean."""
    from interp.circuits.acdc import EdgeMasks, removed_edges, source_outputs
    from interp.circuits.eap import split_heads
    from interp.circuits.tasks import ioi_task
    from interp.hooks import capture

    t = ioi_task(tiny, n=2)
    H = 2
    neg = source_outputs(tiny, t.neg_tokens)
    rem = EdgeMasks.empty(2, H)
    rem.qkv[0, :H, 1, :] = True  # sources 0..H-1 = heads of layer 0 -> q input of both heads in layer 1
    names = ["blocks.1.hook_q_input", "blocks.1.hook_k_input"]
    with removed_edges(tiny, neg, rem), capture(tiny, names) as a:
        tiny(t.pos_tokens)
    with split_heads(tiny), capture(tiny, names + ["blocks.0.attn.hook_result"]) as clean:
        tiny(t.pos_tokens)
    expect = clean[names[0]] + (neg[0][:, :, :H] - clean["blocks.0.attn.hook_result"]).sum(2, keepdim=True)
    assert torch.allclose(a[names[0]], expect, atol=1e-5)
    assert torch.allclose(a[names[1]], clean[names[1]], atol=1e-6)
    assert _no_hooks(tiny) and not tiny.cfg.use_hook_mlp_in


# ---- reference circuit and the end-to-end API / CLI ----

def test_reference_keeps_metric_and_round_trips(tiny, tmp_path):
    from interp.circuits.reference import build_reference, find_reference, save_reference
    from interp.circuits.tasks import load_jsonl_task

    t = load_jsonl_task(tiny, _answerable_jsonl(tiny, tmp_path / "own.jsonl"))
    ref = build_reference(tiny, t, "tiny", progress=False, stability_orders=1)
    assert ref.faithfulness >= 0.9 and ref.size == len(ref.heads) and ref.mask.sum() == ref.size
    assert ref.n_forward >= 1 + (4 - ref.size)
    # the layer-cached search agrees with a plain full forward under the same ablation
    from interp.circuits.patching import ablation_source, metric_with_ablation

    assert metric_with_ablation(tiny, t, ~ref.mask, ablation_source(tiny, t, "resample")) == pytest.approx(ref.circuit_metric, rel=1e-4, abs=1e-5)
    save_reference(ref, root=tmp_path)
    back = find_reference(ref.key, root=tmp_path)
    assert back == ref
    assert len(ref.stability["variants"]) == 2  # a JSONL task: one prompt set + one random order


def test_run_circuits_end_to_end_and_json(tiny, tmp_path):
    from interp.circuits.acdc import ACDCConfig
    from interp.circuits.reference import build_reference
    from interp.circuits.run import CircuitConfig, CircuitResult, run_circuits
    from interp.circuits.tasks import load_jsonl_task

    f = _answerable_jsonl(tiny, tmp_path / "own.jsonl")
    ref = build_reference(tiny, load_jsonl_task(tiny, f), "tiny", progress=False, stability_orders=1)
    cfg = CircuitConfig(n_prompts=4, seeds=2, n_eval=4, sae=DiscreteSAEConfig(n_train=4, n_read=4, steps=5, d_sae=16),
                        acdc=ACDCConfig(tau=0.01))
    ticks = []
    res = run_circuits("tiny", str(f), cfg=cfg, model=tiny, reference=ref, progress=lambda d, t, s: ticks.append((d, t)))
    assert {r.method for r in res.runs} == {"discrete-sae", "patching", "eap", "eap-ig", "acdc"} and len(res.runs) == 10
    assert ticks[-1] == (10, 10)
    for r in res.runs:
        assert 0 <= r.node_auc <= 1 or math.isnan(r.node_auc)
        assert r.seconds > 0 and len(r.node_scores) == 2
        assert r.curves["node"]["f"][-1] == pytest.approx(1.0) and not math.isnan(r.cpr)
    assert not math.isnan(res.summary["eap"]["edge_cpr"][0]) and math.isnan(res.summary["patching"]["edge_cpr"][0])
    assert set(res.summary["eap"]) >= {"node_auc", "f1", "faithfulness", "seconds", "peak_mb"}
    back = CircuitResult.load(res.save(tmp_path / "r.json"))
    assert back.summary.keys() == res.summary.keys() and back.runs[0].circuit == res.runs[0].circuit
    from interp.circuits.views import circuit_dot, comparison_frame, roc_frame, scores_frame

    assert len(scores_frame(back, "eap")) == 4 and not roc_frame(back).empty and len(comparison_frame(back)) == 5
    dot = circuit_dot(back.reference["heads"], 2)
    assert "->" not in dot  # no edge scores: no invented edges
    heads = [[0, 0], [0, 1], [1, 0], [1, 1]]
    e = [[[[0.0, 0.0], [0.0, 0.0]] for _ in range(2)] for _ in range(2)]
    e[0][1][1][0] = 2.0  # one scored edge 0.1 -> 1.0
    dot = circuit_dot(heads, 2, scores=[[1.0, 2.0], [0.5, 0.1]], edge_scores=e)
    assert dot.count("->") == 1 and "h0_1 -> h1_0" in dot and "width=" in dot


def test_cli_bad_task_file_is_one_line_error(tmp_path, capsys):
    from interp.cli import main

    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"positive": "a", "negative": "b"}))
    assert main(["circuits", "--task", str(f), "--method", "patching"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bad.jsonl line 1: missing field answer") and "\n" not in err
    assert main(["circuits", "--task", "nosuchtask", "--method", "patching"]) == 2
