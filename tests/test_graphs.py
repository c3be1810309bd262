"""Attribution graphs: edges equal direct effects in the frozen model, influence / pruning / scores
against hand computations, the file and viewer JSON round trips, interventions, bad input."""

import json
from pathlib import Path

import pytest
import torch

from graph_fixtures import random_transcoders

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def tcs(model):
    return random_transcoders(model)


@pytest.fixture(scope="module")
def graph(model, tcs):
    from interp.graphs import attribute

    return attribute(model, PROMPT, tcs)


def _direct_check(model, graph, tcs, sources):
    """Ablate each source in the fully frozen model: every feature pre-activation and logit node moves by -A[t, s]."""
    from interp.graphs import FeatureEdit, run_with_edits

    A = graph.adjacency
    toks = graph.input_tokens
    rec0 = {}
    l0 = run_with_edits(model, toks, tcs, [], "direct", rec0)[-1]
    for s in sources:
        L, p, f = graph.feature_key(s)
        rec1 = {}
        l1 = run_with_edits(model, toks, tcs, [FeatureEdit(L, p, f, 0.0)], "direct", rec1)[-1]
        d_pre = torch.tensor([(rec1[Lt][pt, ft] - rec0[Lt][pt, ft]).item() for Lt, pt, ft in
                              (graph.feature_key(t) for t in range(graph.n_features))])
        scale = A[:, s].abs().max().item()
        assert scale > 0
        assert torch.allclose(d_pre, -A[: graph.n_features, s], atol=1e-4 * scale + 1e-6)
        dl = (l1 - l1.mean()) - (l0 - l0.mean())
        want = -A[graph.logit_start:, s]
        got = torch.stack([dl[v] for v in graph.logit_ids])
        # two float32 forwards whose logits reach ~13: their difference carries a few ulps of that size
        # (6e-6 on the bridge's Hugging Face forward), so the floor scales with the logits
        assert torch.allclose(got, want, atol=1e-4 * scale + 1e-6 * float(l0.abs().max()))


def test_feature_edges_equal_direct_effects_in_the_frozen_model(model, tcs, graph):
    assert graph.n_features > 50 and graph.n_logits >= 1
    # position 0 (BOS) is never a feature node, and errors there are zero (circuit-tracer's zero_positions)
    assert (graph.active_features[:, 1] > 0).all()
    assert graph.adjacency[:, graph.error_start : graph.token_start : graph.n_pos].abs().sum() == 0
    sources = [0, graph.n_features // 3, 2 * graph.n_features // 3]
    _direct_check(model, graph, tcs, sources)


def test_skip_transcoder_edges_equal_direct_effects(model):
    from interp.graphs import attribute

    tcs = random_transcoders(model, skip=True, seed=1)
    g = attribute(model, "The capital of France is", tcs)
    _direct_check(model, g, tcs, [0, g.n_features // 2])


def test_token_edges_equal_the_effect_of_removing_a_token_embedding(model, tcs, graph):
    from interp.graphs.interventions import edit_hooks
    from interp.hooks import intervene

    toks = graph.input_tokens
    p = 3
    rec0, rec1 = {}, {}
    with torch.no_grad(), intervene(model, edit_hooks(model, toks, tcs, [], "direct", rec0)):
        model(toks[None])

    def drop(act, hook):
        act = act.clone()
        act[:, p] = 0
        return act

    with torch.no_grad(), intervene(model, edit_hooks(model, toks, tcs, [], "direct", rec1) + [("hook_embed", drop)]):
        model(toks[None])
    col = graph.token_start + p
    for t in range(graph.n_features):
        L, q, f = graph.feature_key(t)
        assert (rec1[L][q, f] - rec0[L][q, f]).item() == pytest.approx(-graph.adjacency[t, col].item(), abs=1e-4)


def _toy_graph(A, n_layers, n_pos, active, acts, probs=(1.0,)):
    from interp.graphs import Graph

    n_f = len(active)
    return Graph(prompt="toy", input_tokens=torch.arange(n_pos), token_strs=[f"t{i}" for i in range(n_pos)],
                 active_features=torch.tensor(active), activation_values=torch.tensor(acts, dtype=torch.float32),
                 selected_features=torch.arange(n_f), adjacency=torch.tensor(A, dtype=torch.float32),
                 logit_tokens=[f"y{i}" for i in range(len(probs))], logit_ids=list(range(len(probs))),
                 logit_probabilities=torch.tensor(probs), n_layers=n_layers, vocab_size=10)


def test_influence_pruning_and_scores_match_a_hand_computation():
    """Nodes [f0, e(0,0), e(0,1), t0, t1, logit]; tokens feed f0 (1, 3), the logit reads f0 (2), e(0,1) (1), t1 (1).

    Row-normalised: f0 <- (t0 .25, t1 .75), logit <- (f0 .5, e01 .25, t1 .25). Influence = w Â + w Â^2 =
    (.5, 0, .25, .125, .625, 0). Replacement = .75 / (.75 + .25); completeness = (.5 + .25 + .125 + .625
    + 1 * .75) / 2.5 = .9."""
    from interp.graphs import graph_scores, node_influence, prune_graph

    A = [[0, 0, 0, 1, 3, 0], [0] * 6, [0] * 6, [0] * 6, [0] * 6, [2, 0, 1, 0, 1, 0]]
    g = _toy_graph(A, n_layers=1, n_pos=2, active=[[0, 1, 7]], acts=[2.0])
    assert torch.allclose(node_influence(g), torch.tensor([0.5, 0, 0.25, 0.125, 0.625, 0]))
    sc = graph_scores(g)
    assert sc.replacement == pytest.approx(0.75) and sc.completeness == pytest.approx(0.9)
    pr = prune_graph(g)  # node threshold .8 keeps influence >= .25 (plus tokens and logits): e(0,0) goes
    assert pr.node_mask.tolist() == [True, False, True, True, True, True]
    assert pr.edge_mask[0, 3] and pr.edge_mask[5, 2]  # .98 keeps every edge of the pruned graph
    pr9 = prune_graph(g, edge_threshold=0.9)  # edge scores .5 .375 .25 .25 .125 -> t0 -> f0 (.125) goes
    assert not pr9.edge_mask[0, 3] and pr9.edge_mask[0, 4]
    assert pr.cumulative_scores[4] == pytest.approx(0.625 / 1.5)


def test_prediction_propagates_through_features_as_a_hand_computation():
    """f0 (layer 0, a=2) -> f1 (layer 1, a=4): A[f1, f0] = 1; logit <- f0 0.5, f1 3. Ablating f0 moves f1's
    pre-activation by 1/2 * -2 = -1 and the logit by 0.5/2 * -2 + 3/4 * -1 = -1.25."""
    from interp.graphs import FeatureEdit, predict

    n = 2 + 2 * 2 + 2 + 1
    A = torch.zeros(n, n)
    A[1, 0] = 1.0
    A[-1, 0], A[-1, 1] = 0.5, 3.0
    g = _toy_graph(A.tolist(), n_layers=2, n_pos=2, active=[[0, 1, 5], [1, 1, 9]], acts=[2.0, 4.0])
    assert predict(g, [FeatureEdit(0, 1, 5, 0.0)]).tolist() == pytest.approx([-1.25])
    assert predict(g, [FeatureEdit(1, 1, 9, 8.0)]).tolist() == pytest.approx([3.0])  # steer f1 to twice its value
    assert predict(g, [FeatureEdit(0, 1, 5, 0.0), FeatureEdit(1, 1, 9, 4.0)]).tolist() == pytest.approx([-0.5])


def test_logit_difference_row_is_the_difference_of_the_token_rows(model, tcs):
    from interp.graphs import attribute

    a = attribute(model, PROMPT, tcs, target=[" Mary", " John"])
    d = attribute(model, PROMPT, tcs, diff=(" Mary", " John"))
    assert d.logit_tokens == ["logit( Mary)-logit( John)"] and d.logit_ids == [model.cfg.d_vocab]
    assert torch.allclose(d.adjacency[-1, :-1], a.adjacency[-2, :-2] - a.adjacency[-1, :-2], atol=1e-5)


def test_graph_file_and_viewer_json_round_trip(tmp_path, model):
    from interp.graphs import attribute, load_graph, prune_graph, save_graph, write_viewer_json
    from interp.transcoders.io import load_transcoder_set

    graph = attribute(model, PROMPT, load_transcoder_set(ROOT / "transcoders" / "embedded"), diff=(" Mary", " John"))

    save_graph(graph, tmp_path / "g.graph.safetensors")
    back = load_graph(tmp_path / "g.graph.safetensors")
    assert torch.equal(back.adjacency, graph.adjacency) and back.token_strs == graph.token_strs
    assert back.logit_tokens == graph.logit_tokens and back.info == graph.info
    write_viewer_json(graph, tmp_path / "g.json", slug="ioi", labels={})
    j = json.loads((tmp_path / "g.json").read_text())
    assert set(j) == {"metadata", "qParams", "nodes", "links"}
    assert j["metadata"]["prompt_tokens"] == graph.token_strs and j["metadata"]["slug"] == "ioi"
    fields = {"node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
              "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation"}
    assert all(set(n) == fields for n in j["nodes"])
    kinds = {n["feature_type"] for n in j["nodes"]}
    assert {"embedding", "logit", "cross layer transcoder"} <= kinds
    assert sum(n["feature_type"] == "embedding" for n in j["nodes"]) == graph.n_pos
    pr = prune_graph(graph)
    assert len(j["links"]) == int(pr.edge_mask.sum())
    ids = {n["node_id"]: n for n in j["nodes"]}
    link = max(j["links"], key=lambda e: abs(e["weight"]))
    src, dst = ids[link["source"]], ids[link["target"]]
    if dst["feature_type"] == "logit" and src["feature_type"] == "cross layer transcoder":
        s = graph.feature_node(int(src["layer"]), src["ctx_idx"], int(src["node_id"].split("_")[1]))
        assert link["weight"] == pytest.approx(graph.adjacency[graph.logit_start, s].item())


def test_bad_input_is_one_line_before_work(model, tcs, monkeypatch):
    from interp.errors import InterpError
    from interp.graphs import attribute
    from interp.graphs import attribution as attr

    with pytest.raises(InterpError, match=r"target ' Mary John' is 2 tokens, not one: \[' Mary', ' John'\]"):
        attribute(model, PROMPT, tcs, target=[" Mary John"])
    with pytest.raises(InterpError, match="longer than the model's context of 128"):
        attribute(model, "the " * 200, tcs)
    with pytest.raises(InterpError, match=r"no transcoder for layer\(s\) 3"):
        attribute(model, PROMPT, {k: v for k, v in tcs.items() if k < 3})
    wrong = random_transcoders(model)
    wrong[2] = wrong[1]
    with pytest.raises(InterpError, match="reads blocks.1.ln2.hook_normalized"):
        attribute(model, PROMPT, wrong)
    narrow = random_transcoders(model)
    narrow[0].cfg.d_in = 128
    with pytest.raises(InterpError, match="has d_in=128, d_out=256 but the model's d_model is 256"):
        attribute(model, PROMPT, narrow)
    monkeypatch.setattr(attr, "available_memory", lambda device: 1000)
    with pytest.raises(InterpError, match=r"needs about .* GiB, more than the 0.0 GiB free"):
        attribute(model, PROMPT, tcs)


def test_capped_graph_keeps_the_most_influential_features(model, tcs, graph):
    from interp.graphs import AttributionConfig, attribute

    g = attribute(model, PROMPT, tcs, config=AttributionConfig(max_feature_nodes=20, batch_size=8))
    assert g.n_features == 20 and g.adjacency.shape[0] == 20 + (g.n_layers + 1) * g.n_pos + g.n_logits
    # the rows it kept are the full graph's rows, restricted to the kept columns
    keep = torch.cat([g.selected_features, torch.arange(graph.n_features, graph.n_nodes)])
    i = 5
    j = graph.feature_node(*g.feature_key(i))
    assert torch.allclose(g.adjacency[i], graph.adjacency[j, keep], atol=1e-5)
    assert torch.allclose(g.adjacency[-1], graph.adjacency[-1, keep], atol=1e-5)


def test_graph_cli_writes_viewer_json_and_graph_and_intervenes(tmp_path, capsys):
    from interp.cli import main

    out = tmp_path / "g.json"
    assert main(["graph", "--prompt", "The capital of France is", "--out", str(out), "--max-n-logits", "3"]) == 0
    text = capsys.readouterr().out
    assert "replacement score" in text and (tmp_path / "g.graph.safetensors").is_file()
    j = json.loads(out.read_text())
    feat = next(n for n in j["nodes"] if n["feature_type"] == "cross layer transcoder")
    layer, f, pos = (int(x) for x in feat["node_id"].split("_"))
    assert main(["graph-intervene", "--graph", str(tmp_path / "g.graph.safetensors"), "--ablate", f"{layer}:{pos}:{f}",
                 "--freeze", "direct"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "predicted" in rows[0] and len(rows) >= 2
    # refused in one line, nothing written: an existing output, a multi-token target, a feature not in the graph
    before = out.read_bytes()
    assert main(["graph", "--prompt", "The capital of France is", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["graph", "--prompt", "x", "--target", " Mary John", "--out", str(tmp_path / "h.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is 2 tokens, not one" in err[0] and not (tmp_path / "h.json").exists()
    assert main(["graph-intervene", "--graph", str(tmp_path / "g.graph.safetensors"), "--ablate", "0:0:0"]) == 2
    assert "is not an active node of this graph" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_replacement_model_ablation_of_a_last_layer_feature_moves_logits_as_predicted(model, tcs, graph):
    """In the local replacement model (attention and LayerNorm scales frozen, MLPs = transcoders + frozen
    errors) a last-layer feature reaches the logits only directly: measured change == predicted == -edge."""
    from interp.graphs import FeatureEdit, check_intervention

    last = [i for i in range(graph.n_features) if graph.feature_key(i)[0] == graph.n_layers - 1]
    s = max(last, key=lambda i: graph.adjacency[graph.logit_start, i].abs().item())
    res = check_intervention(graph, model, tcs, [FeatureEdit(*graph.feature_key(s), 0.0)], freeze="replacement")
    want = -graph.adjacency[graph.logit_start, s].item()
    assert abs(want) > 0
    assert res.predicted[0] == pytest.approx(want, rel=1e-5)
    assert res.measured[0] == pytest.approx(want, rel=1e-3, abs=1e-5)


@pytest.mark.slow
def test_edges_equal_direct_effects_on_a_transformer_bridge(tmp_path):
    """The same code on TransformerLens' TransformerBridge (a tiny random GPT-2 booted from a local
    directory): only shared hook names and `interp.hooks` are used, so the edges still equal the
    direct effects in the frozen model."""
    from tiny_models import make_tiny_hf_model
    from transformer_lens.model_bridge import TransformerBridge

    from interp.graphs import attribute

    bridge = TransformerBridge.boot_transformers(str(make_tiny_hf_model("gpt2", tmp_path / "gpt2")), device="cpu")
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    tcs = random_transcoders(bridge, d_sae=32, threshold=1.0)
    g = attribute(bridge, PROMPT, tcs)
    assert g.n_features > 20
    _direct_check(bridge, g, tcs, [0, g.n_features // 2])


def test_attribute_leaves_parameters_and_hooks_as_they_were(model, tcs):
    """The parameters are frozen for the backward passes only; no hook stays behind."""
    from interp.graphs import attribute

    before = [p.requires_grad for p in model.parameters()]
    attribute(model, "The capital of France is", tcs)
    assert [p.requires_grad for p in model.parameters()] == before
    assert all(p.grad is None for p in model.parameters())
    assert not any(h.fwd_hooks or h.bwd_hooks for h in model.hook_dict.values())


def test_hover_tokens_are_the_decoder_rows_top_unembedding_tokens(model):
    """A feature whose decoder row is the (final-norm-weighted) unembedding column of ' cow' promotes ' cow' first."""
    from interp.graphs.targets import unembed_directions
    from interp.graphs.view import promoted_tokens, top_tokens

    tcs = random_transcoders(model, d_sae=8)
    U = unembed_directions(model)
    cow = model.tokenizer.encode(" cow", add_special_tokens=False)[0]
    with torch.no_grad():
        tcs[2].W_dec[3] = 50 * (U[:, cow] - U.mean(-1)) / (U[:, cow] - U.mean(-1)).norm()
    assert top_tokens(model, tcs, 2, 3, k=3)[0] == " cow"
    assert promoted_tokens(model, tcs, [(2, 3)], k=3)[0].split(", ")[0] == repr(" cow")


def test_feature_page_contexts_are_the_top_activations(model):
    """top_contexts returns the k largest activations of the feature, sorted, and each one is the value the
    transcoder gives at that token."""
    from interp.graphs.view import top_contexts
    from interp.transcoders.io import load_transcoder_set

    tset = load_transcoder_set(ROOT / "transcoders" / "embedded")
    rows = top_contexts(model, tset, 1, 5, n_tokens=1024, k=4)
    assert 1 <= len(rows) <= 4
    assert [r["activation"] for r in rows] == sorted((r["activation"] for r in rows), reverse=True)
    assert all(r["activation"] > 0 and r["token"] for r in rows)


def test_too_large_graph_is_refused_before_any_model_run(model, monkeypatch):
    """With the shipped set (L0 recorded in metrics.json) the memory estimate comes before the clean run."""
    from interp.errors import InterpError
    from interp.graphs import attribute
    from interp.graphs import attribution as attr
    from interp.transcoders.io import load_transcoder_set

    tset = load_transcoder_set(ROOT / "transcoders" / "embedded")
    assert sorted(tset.l0) == [0, 1, 2, 3]

    def no_run(*a, **k):
        raise AssertionError("the model ran")

    monkeypatch.setattr(attr, "setup", no_run)
    monkeypatch.setattr(attr, "available_memory", lambda device: 10_000)
    with pytest.raises(InterpError, match="needs about"):
        attribute(model, PROMPT, tset)


def test_a_graph_job_saves_the_graph_that_attribute_builds_in_process(tmp_path, model, tcs):
    """The dashboard's "graph" job (interp.jobs): a real child process on a seeded random transcoder set;
    the graph it saves (save_graph, safetensors) has the adjacency `attribute` gives in this process."""
    import time

    from interp import jobs
    from interp.graphs import attribute, load_graph
    from interp.transcoders.io import load_transcoder_set, save_transcoder

    for L, tc in tcs.items():
        save_transcoder(tc, tmp_path / "tcs" / f"L{L}")
    params = {"model": "embedded", "device": "cpu", "transcoders": str(tmp_path / "tcs"), "prompt": PROMPT,
              "diff": [" Mary", " John"], "config": {"batch_size": 64}}
    j = jobs.start("graph", params, title="graph", root=tmp_path / "jobs")
    t0 = time.time()
    while jobs.get(j.id, tmp_path / "jobs").state == "running" and time.time() - t0 < 300:
        time.sleep(0.1)
    done = jobs.get(j.id, tmp_path / "jobs")
    assert done.state == "done", (done.state, done.reason)
    res = done.result()
    assert res["graph"].startswith("result") and res["logit_tokens"] == ["logit( Mary)-logit( John)"]
    assert done.progress.fraction == 1.0
    back = load_graph(Path(done.dir) / res["graph"])
    want = attribute(model, PROMPT, load_transcoder_set(tmp_path / "tcs"), diff=(" Mary", " John"))
    assert res["n_features"] == want.n_features > 50 and back.logit_tokens == want.logit_tokens
    assert torch.equal(back.active_features, want.active_features) and torch.equal(back.selected_features, want.selected_features)
    assert back.adjacency.shape == want.adjacency.shape
    assert torch.equal(back.adjacency != 0, want.adjacency != 0)
    assert torch.allclose(back.adjacency, want.adjacency, rtol=1e-5, atol=1e-6 * float(want.adjacency.abs().max()))
    assert back.info["replacement_score"] == pytest.approx(res["replacement_score"])
