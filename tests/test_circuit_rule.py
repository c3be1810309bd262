"""The circuit each method reports (issue 25): a stated rule in every run, MIB's faithful cut on
held-out prompts, a warning for a whole-model circuit; and the layer-only AUC of a reference."""

import math

import pytest
import torch

from interp.circuits import metrics as M


def test_layer_only_auc_by_hand():
    ref = torch.zeros(4, 2, dtype=torch.bool)
    ref[0, :] = True  # every reference head in layer 0
    # earlier-first: both positives (layer 0) beat all 6 negatives -> 1.0
    assert M.layer_only_auc(ref) == pytest.approx(1.0)
    ref = torch.zeros(4, 2, dtype=torch.bool)
    ref[0, 0] = ref[3, 0] = True  # one head in the first, one in the last layer
    # earlier-first: the layer-0 head beats the 6 negatives of layers 1-3 and ties 1 (layer 0): 6.5/7;
    # the layer-3 head ties 1 (layer 3) and beats none: 0.5/7 -> (6.5 + 0.5) / 14 = 0.5; later-first: the same
    assert M.layer_only_auc(ref) == pytest.approx(0.5)
    assert M.reference_layers(ref) == [0, 3]
    ref = torch.zeros(3, 1, dtype=torch.bool)
    ref[2, 0] = True  # later-first ranks it top -> 1.0 (the max of both directions)
    assert M.layer_only_auc(ref) == pytest.approx(1.0)


def test_whole_model_circuit_warns_and_partial_does_not():
    from interp.circuits.run import whole_model_warning

    assert "whole model (4 of 4 heads)" in whole_model_warning(torch.ones(2, 2, dtype=torch.bool), "discrete-sae")
    partial = torch.ones(2, 2, dtype=torch.bool)
    partial[1, 1] = False
    assert whole_model_warning(partial, "discrete-sae") == ""


def test_rule_per_method_follows_the_authors_then_mib():
    from interp.circuits.run import CircuitConfig, circuit_rule, rule_of

    cfg = CircuitConfig()
    assert rule_of("acdc", cfg) == "acdc"  # ACDC's code has its own threshold (tau)
    # the discrete-SAE authors' code has none (ROC AUC and best-F1 over all cuts), so MIB's cut applies
    assert [rule_of(m, cfg) for m in ("discrete-sae", "patching", "eap", "eap-ig")] == ["faithful"] * 4
    assert "reaches 0.8 on 20 held-out prompt pairs (seed 40000)" in circuit_rule("eap", cfg, 20)
    assert "tau 0.01" in circuit_rule("acdc", cfg)
    assert rule_of("acdc", CircuitConfig(threshold="faithful")) == "faithful"
    assert circuit_rule("discrete-sae", CircuitConfig(threshold="positive")).startswith("score > 0")
    from interp.errors import InterpError

    with pytest.raises(InterpError, match=r"^cut_keep must be in \(0, 1\]$"):
        CircuitConfig(cut_keep=0)


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer

    from interp.models import EMBEDDED_DIR, build_from_config

    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer"))
    torch.manual_seed(0)
    m = build_from_config(dict(n_layers=2, d_model=32, n_ctx=128, d_head=16, n_heads=2, d_mlp=64, d_vocab=len(tok),
                               act_fn="gelu", normalization_type="LN", seed=0), tokenizer=tok)
    return m.eval()


def test_faithful_cut_is_the_smallest_prefix_on_the_held_out_prompts(tiny):
    """The chosen set is a top-k prefix of the scores, reaches cut_keep on the CUT_SEED prompts,
    and no shorter prefix does (recomputed here, on the same held-out pairs)."""
    from interp.circuits.patching import full_metric, metric_with_ablation
    from interp.circuits.run import CUT_KEY, CUT_SEED, CircuitConfig, cut_prompts, run_method
    from interp.circuits.tasks import DISCOVERY_SEED_BASE, make_task

    cfg = CircuitConfig(n_prompts=6, cut_keep=0.98)  # top-1 / 2 / 3 / 4 keep 0.969 / 0.978 / 0.989 / 1 here
    disc = make_task(tiny, "ioi", n=6, seed=DISCOVERY_SEED_BASE)
    cut_task, src = cut_prompts(tiny, disc, cfg)
    assert cut_task.positive == make_task(tiny, "ioi", n=6, seed=CUT_SEED).positive
    assert not set(cut_task.positive) & set(disc.positive)  # held out from discovery
    cache = {}
    scores, _, chosen = run_method(tiny, disc, "patching", cfg, cache=cache)
    assert cache[CUT_KEY][0].positive == cut_task.positive  # built once, kept for the next method / seed
    order = scores.flatten().argsort(descending=True, stable=True).tolist()
    k = int(chosen.sum())
    assert sorted(chosen.flatten().nonzero().flatten().tolist()) == sorted(order[:k])
    full = full_metric(tiny, cut_task)

    def faith(j):
        m = torch.zeros(4, dtype=torch.bool)
        m[order[:j]] = True
        return metric_with_ablation(tiny, cut_task, ~m.view(2, 2), src) / full

    assert k == 3 and faith(k) >= cfg.cut_keep
    assert all(faith(j) < cfg.cut_keep for j in range(1, k))


def test_run_records_the_rule_and_warns_on_a_whole_model_circuit(tiny, caplog, tmp_path, monkeypatch):
    import interp.circuits.run as run_mod
    from interp.circuits.run import CircuitConfig, CircuitResult, format_table, run_circuits

    # a model in which every head matters: ablating any head leaves none of the metric, so no top-k
    # prefix short of all 4 heads reaches the cut (a random model's own numbers decide nothing here)
    real = run_mod.metric_with_ablation
    monkeypatch.setattr(run_mod, "metric_with_ablation",
                        lambda model, task, ablate, src, *a, **k: 0.0 if bool(ablate.any()) else real(model, task, ablate, src, *a, **k))
    cfg = CircuitConfig(n_prompts=4, seeds=1, n_eval=0, cut_keep=1.0)
    with caplog.at_level("WARNING"):
        res = run_circuits("tiny", "ioi", methods=["patching"], cfg=cfg, model=tiny, reference=None)
    r = res.runs[0]
    assert r.rule.startswith("smallest top-k set by score whose faithfulness reaches 1.0 on 4 held-out")
    assert r.size == 4
    assert "whole model (4 of 4 heads)" in r.warning and "whole model" in caplog.text
    assert "WARNING: patching's chosen circuit is the whole model on seed(s) 0" in format_table(res)
    assert "patching circuit rule: smallest top-k" in format_table(res)
    assert not math.isnan(r.faithfulness)
    back = CircuitResult.load(res.save(tmp_path / "r.json"))
    assert back.runs[0].rule == r.rule and back.runs[0].warning == r.warning


def test_benchmark_table_layer_column():
    """The circuits benchmark's layer-only column: the AUC, its verdict against 0.75, the layers."""
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("bench_circuits_run", Path(__file__).parents[1] / "benchmarks/circuits/run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ref = torch.zeros(4, 2, dtype=torch.bool)
    ref[0, :] = True
    assert bench.layer_cell(SimpleNamespace(mask=ref)) == "1.000 (missed by 0.250); layers 0"
    ref = torch.zeros(4, 2, dtype=torch.bool)
    ref[0, 0] = ref[3, 0] = True
    assert bench.layer_cell(SimpleNamespace(mask=ref)) == "0.500 (met); layers 0, 3"
    assert bench.layer_cell(None) == "n/a (no reference)"
