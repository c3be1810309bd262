"""Numbers the dashboard shows, checked in the library functions the pages call (each test is
named after the symptom a user saw; every one of them failed before its fix)."""

from __future__ import annotations

import math

import pytest
import torch

from interp import features as F
from interp.features.views import DENSE_FREQ, interval_counts
from test_features_fixtures import save_tiny_sae


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    from interp.models import load_model

    torch.set_num_threads(1)
    model = load_model("embedded")
    d = save_tiny_sae(model, tmp_path_factory.mktemp("saes") / "tiny", d_sae=24, k=4, dense_bias=8.0)
    F.build_for_sae_dir(d, F.StatsConfig(n_tokens=4096, top_k=5, reservoir=8, n_quantile=4), model=model)
    return d


@pytest.fixture(scope="module")
def stats(sae_dir):
    return F.load_stats(sae_dir)


def test_interval_counts_by_hand():
    edges = [0.0, 1.0, 2.0, 3.0, 4.0]
    # 100 firings, top 3 = 3.9, 3.5, 2.5 (v_K = 2.5): (3, 4] holds exactly 2 firings; the other 98
    # spread over (0,1], (1,2], (2,3]: (2,3] holds at least 1 (2.5); reservoir shares 0.5/0.5/0/0
    counts, exact = interval_counts(edges, 100, [3.9, 3.5, 2.5], 3, [0.5, 0.5, 0.0, 0.0])
    assert exact == [False, False, False, True]
    assert counts == pytest.approx([48.5, 48.5, 1.0, 2.0])
    # fewer firings than the top list holds: the top list is every firing, all exact
    counts, exact = interval_counts(edges, 2, [3.9, 0.5, 0.0], 3, [0.0, 0.0, 0.0, 1.0])
    assert counts == [1.0, 0.0, 0.0, 1.0] and all(exact)


def test_top_interval_share_agrees_with_the_top_activations(stats):
    """Symptom: the top interval said '~0.0% of firings' although all 20 top activations were in it."""
    checked = 0
    for i in range(stats.n_features):
        fv = stats.feature(i)
        count = float(stats.t["count"][i])
        if count <= 5 or not fv.intervals:
            continue
        checked += 1
        assert sum(iv.share for iv in fv.intervals) == pytest.approx(1.0, abs=1e-6)
        assert sum(iv.n_firings for iv in fv.intervals) == pytest.approx(count, rel=1e-6)
        tops = [min(c.value, fv.max_act) for c in fv.top]
        for iv in fv.intervals:
            in_top = sum(iv.lo < v <= iv.hi for v in tops)
            assert iv.n_firings >= in_top - 1e-9  # the stored top activations are a lower bound
            if iv.exact:
                assert iv.n_firings == in_top
        top_iv = fv.intervals[0]  # highest first
        assert top_iv.share >= sum(top_iv.lo < v for v in tops) / count - 1e-9
    assert checked >= 3


def test_token_search_leaves_dense_features_out(stats):
    """Symptom: 'most specific first' put a feature firing on 11% of tokens first for ' Mary'."""
    dense = {i for i in range(stats.n_features) if float(stats.t["freq"][i]) > DENSE_FREQ}
    assert dense, "the fixture has a dense feature (dense_bias)"
    seen_dense = False
    for tok in (" the", " Mary", ".", " of", " is"):
        try:
            every = F.features_for_token(stats, tok, limit=50, include_dense=True)
        except Exception:  # noqa: BLE001 - a token the tiny corpus never saw
            continue
        shown = F.features_for_token(stats, tok, limit=50)
        assert all(h.feature not in dense and not h.dense for h in shown)
        assert [h.feature for h in shown] == [h.feature for h in every if not h.dense]  # the library's order, dense dropped
        assert [h.score for h in shown] == sorted((h.score for h in shown), reverse=True)
        assert all(h.dense == (h.feature in dense) for h in every)
        seen_dense |= any(h.dense for h in every)
    assert seen_dense, "some token had a dense feature among its most specific ones"
    assert not math.isnan(DENSE_FREQ)


# ----------------------------------------------------------------------------- prompt lab
@pytest.fixture(scope="module")
def lab(sae_dir):
    from interp.features import SaeSource
    from interp.models import load_model
    from interp.prompt_lab import prepare, top_features
    from interp.sae.io import load_sae

    model = load_model("embedded")
    sae = load_sae(sae_dir)
    toks = prepare(model, "When Mary and John went to the store, John gave a drink to").tokens
    src = SaeSource(sae, model)
    return model, sae, toks, src, top_features(model, src, toks, 24)


def test_logit_change_column_is_its_sort_key(lab):
    """Symptom: 'Biggest logit changes' showed -6.792 below +4.498: ranked by one number, showing another."""
    from interp.prompt_lab import Ablation, compare

    model, sae, toks, _, _ = lab
    cmp = compare(model, toks, Ablation(heads=[(0, 0), (1, 2)]), k=10)
    shown = [abs(c.delta) for c in cmp.changes]
    assert shown == sorted(shown, reverse=True) and shown[0] > 0
    lg_c = model(toks)[0, -1]
    c = cmp.changes[0]
    assert c.raw_delta == pytest.approx(c.ablated_logit - c.clean_logit)
    assert c.delta == pytest.approx(c.raw_delta - c.shift)
    assert c.clean_logit == pytest.approx(float(lg_c[c.token_id]), abs=1e-4)


def test_edit_that_changes_nothing_says_why(lab):
    """Symptom: clamping a feature inactive at the last position showed KL 0.0000 and +0.000 with no word why."""
    from interp.edits import LatentEdit
    from interp.prompt_lab import Ablation, compare

    model, sae, toks, src, per_tok = lab
    acts = src.encode(_hook_acts(model, src, toks))[0]  # [T, F]
    never = [f for f in range(acts.shape[1]) if not (acts[:, f] > 0).any()]
    assert never, "the tiny SAE has a feature silent on this prompt"
    cmp = compare(model, toks, Ablation(clamps=[LatentEdit("zero", [never[0]])]), sae=sae)
    assert cmp.kl < 1e-9 and f"#{never[0]}" in cmp.note and "inactive at every position" in cmp.note
    one = compare(model, toks, Ablation(clamps=[LatentEdit("scale", [never[0]], 1.0)]), sae=sae)
    assert "scale by 1" in one.note
    live = int(acts[-1].argmax())
    moved = compare(model, toks, Ablation(clamps=[LatentEdit("zero", [live])]), sae=sae)
    assert moved.kl > 1e-9 and moved.note == ""


def _hook_acts(model, src, toks):
    from interp.hooks import capture

    with capture(model, [src.hook]) as store:
        model(toks)
    return store[str(src.hook)]


def test_colour_by_defaults_to_a_firing_feature(lab):
    """Symptom: 'Colour by' defaulted to feature 0, which does not fire on the prompt."""
    from interp.prompt_lab import colour_feature, feature_values

    model, _, toks, src, per_tok = lab
    f = colour_feature(per_tok)
    assert f is not None and max(feature_values(model, src, toks, f)) > 0
    assert f == max(per_tok[-1], key=lambda x: x[1])[0]
    assert colour_feature([[], []]) is None


# ----------------------------------------------------------------------------- circuits
def _result(n_seeds: int, whole: bool):
    from interp.circuits.run import SUMMARY_KEYS, CircuitResult, MethodRun
    import dataclasses

    fields = {f.name for f in dataclasses.fields(MethodRun)}
    runs = []
    for seed in range(n_seeds):
        circ = [[l, h] for l in range(2) for h in range(4)] if whole else [[1, 2]]
        kw = {k: 0.5 + 0.1 * seed for k in SUMMARY_KEYS if k in fields}
        kw.update(method="discrete-sae", seed=seed, circuit=circ, node_scores=[[0.0] * 4, [0.0] * 4], roc=[])
        runs.append(MethodRun(**{k: v for k, v in kw.items() if k in fields}))
    return CircuitResult("embedded", "ioi", 2, 4, 1.0, 0.0, True, None, runs).summarize()


def test_one_seed_shows_no_plus_minus():
    """Symptom: one seed showed '0.500 ± 0.000'."""
    from interp.circuits.views import comparison_frame

    one = comparison_frame(_result(1, False))
    assert "±" not in " ".join(map(str, one.iloc[0].tolist())) and one.iloc[0]["cpr"] == "0.500"
    two = comparison_frame(_result(2, False))
    mu, sd = _result(2, False).summary["discrete-sae"]["cpr"]
    assert two.iloc[0]["cpr"] == f"{mu:.3f} ± {sd:.3f}"


def test_whole_model_circuit_gets_a_warning():
    """Symptom: the default IOI run's discrete-sae 'circuit' was all 32 heads with no warning."""
    from interp.circuits.views import circuit_warnings

    assert circuit_warnings(_result(1, False)) == []
    w = circuit_warnings(_result(1, True))
    assert len(w) == 1 and "whole model (8 of 8 heads)" in w[0]


# ----------------------------------------------------------------------------- MoE-X
def test_f1_ranking_needs_a_cell_seen_often_enough():
    """Symptom: units ranked first with F1 = 1.000 on a cell that occurs at 1-2 of 958 positions."""
    import numpy as np

    from interp.moex.metrics import best_property_per_feature

    # feature 0 fires exactly on property 0 (seen once: F1 1.0) and on 4 of 5 positions of property 1
    acts = torch.tensor([[1.0], [1.0], [1.0], [1.0], [1.0], [0.0]])
    props = torch.tensor([[True, True], [False, True], [False, True], [False, True], [False, False], [False, True]])
    loose = best_property_per_feature(acts, props, thresholds=(0.0,), min_firings=1)
    assert loose.index[0] == 1 or loose.f1[0] > 0
    strict = best_property_per_feature(acts, props, thresholds=(0.0,), min_firings=1, min_cell=2)
    assert strict.index[0] == 1 and strict.cell_count[0] == 5
    assert strict.f1[0] == pytest.approx(2 * 4 / (5 + 5))
    solo = torch.tensor([[1.0], [0.0], [0.0]])
    once = best_property_per_feature(solo, torch.tensor([[True], [False], [False]]), thresholds=(0.0,), min_firings=1)
    assert once.f1[0] == pytest.approx(1.0) and once.cell_count[0] == 1
    assert np.asarray(best_property_per_feature(solo, torch.tensor([[True], [False], [False]]), thresholds=(0.0,),
                                                min_firings=1, min_cell=2).f1)[0] == 0.0


def test_comparison_chart_points_are_numbers():
    """Symptom: the MoE-X Comparison chart drew axes and a legend but no bars (its cells are text)."""
    from interp.moex.browse import comparison_points, mean_std, shipped_comparison

    assert mean_std("0.1976 ± 0.0066") == (0.1976, 0.0066) and mean_std(0.5) == (0.5, 0.0)
    assert all(math.isnan(x) for x in mean_std("-"))
    rows = shipped_comparison()["rows"]
    pts = comparison_points(rows)
    assert len(pts) == 2 * len(rows)
    first = next(p for p in pts if p["model"] == rows[0]["model"] and p["metric"] == "coverage")
    assert f"{first['mean']:.4g}" == rows[0]["coverage"].split("±")[0].strip()


# ----------------------------------------------------------------------------- feature tools
def test_steering_adds_the_decoder_direction_and_strength_zero_changes_nothing(lab):
    from interp.errors import InterpError
    from interp.features.steer import greedy, steer

    model, sae, toks, _, per_tok = lab
    prompt = "When Mary and John went to the store, John gave a drink to"
    f = per_tok[-1][0][0]
    none = steer(model, sae, prompt, f, "add", 0.0, n_tokens=8)
    assert none.steered == none.unsteered == model.tokenizer.decode(greedy(model, toks, 8))
    big = steer(model, sae, prompt, f, "add", 200.0, n_tokens=8)
    assert big.steered != big.unsteered and big.unsteered == none.unsteered
    with pytest.raises(InterpError, match="does not exist"):
        steer(model, sae, prompt, 10_000, "add", 1.0)
    with pytest.raises(InterpError, match="unknown steering mode"):
        steer(model, sae, prompt, f, "boost", 1.0)


@pytest.mark.parametrize("n_layers,n_heads", [(4, 8), (12, 12)])  # the embedded model's 32 heads and GPT-2 small's 144
def test_circuit_graph_one_row_per_layer_with_input_and_logits(n_layers, n_heads):
    """Symptom: the graph was a strip of tiny boxes at 32 heads, five unconnected boxes for patching."""
    import random

    from interp.circuits.run import CircuitResult, MethodRun
    from interp.circuits.views import graph_frames

    rng = random.Random(0)
    heads = [[l, h] for l in range(n_layers) for h in range(n_heads)]
    circ = rng.sample(heads, 12)
    scores = [[rng.random() for _ in range(n_heads)] for _ in range(n_layers)]
    edges = [[[[rng.random() - 0.3 for _ in range(n_heads)] for _ in range(n_layers)] for _ in range(n_heads)] for _ in range(n_layers)]
    runs = [MethodRun("eap", 0, scores, circ, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, len(circ), [], edge_scores=edges),
            MethodRun("patching", 0, scores, circ, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, len(circ), [])]
    res = CircuitResult("random", "ioi", n_layers, n_heads, 1.0, 0.0, True, {"heads": circ[:5]}, runs).summarize()
    nodes, e = graph_frames(res, "eap", max_edges=40)
    assert len(nodes) == n_layers * n_heads + 2 and nodes[["x", "y"]].drop_duplicates().shape[0] == len(nodes)
    heads_df = nodes[nodes.kind == "head"]
    assert sorted(heads_df.y.unique()) == list(range(n_layers))  # one row per layer
    assert (heads_df.groupby("y").size() == n_heads).all()
    assert set(nodes[nodes.kind != "head"].id) == {"input", "logits"}
    assert nodes.loc[nodes.id == "input", "y"].item() < 0 < n_layers == nodes.loc[nodes.id == "logits", "y"].item()
    assert heads_df.in_circuit.sum() == 12 and heads_df.in_reference.sum() == 5
    scored = e[e.scored]
    assert 0 < len(scored) <= 40 and (scored.y < scored.y2).all()  # edges run upwards, from earlier layers
    assert scored.width.max() == pytest.approx(5.0) and (scored.width > 0).all()  # width by score
    ws = scored.sort_values("score").width.tolist()
    assert ws == sorted(ws)
    # every circuit head is connected: scored edges, or its input / logits link
    linked = set(e.source) | set(e.target)
    assert {f"{l}.{h}" for l, h in circ} <= linked
    # patching scores no edges: its circuit still hangs between input and logits, not as loose boxes
    _, pe = graph_frames(res, "patching")
    assert not pe.scored.any() and len(pe) == 2 * len(circ)


def test_strings_from_files_are_text_not_markdown():
    """A label such as '$x$ *bold* [a](b)' shows as written: escaped for Markdown places and for HTML."""
    from app.style import md_text, text

    raw = r"$x^2$ *bold* _it_ [a](b) <b>#1</b> `c` a\b"
    esc = md_text(raw)
    assert all(("\\" + ch) in esc for ch in "$*_[]()<>#`")
    assert esc.replace("\\", "") == raw.replace("\\", "")  # nothing but escapes added
    assert text("<b>x</b> & 'y'") == "&lt;b&gt;x&lt;/b&gt; &amp; &#x27;y&#x27;"
