"""Concept unlearning: interventions, spec round trip, selection, evaluation maths and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data import corpus as C
from interp.errors import InterpError
from interp.hooks import capture
from interp.unlearn import (
    Concept, FeatureEdit, FeatureStats, SelectConfig, SweepRow, EvalResult, UnlearnConfig, UnlearnSpec, apply_spec,
    best_row, builtin_concept, evaluate_spec, feature_stats, load_concept_file, merge_concepts,
    merge_specs, pareto, resolve_concept, retain_corpus, run_unlearning, select_features, unlearning_score,
)
from interp.unlearn.baselines import FinetuneConfig, finetune_unlearn, mean_difference_direction, project_out

HOOK = "blocks.0.hook_resid_post"
TEXT = "The color of a ripe banana is"


def make_sae(model, d_sae: int = 16, hook: str = HOOK, seed: int = 0):
    """A hand-built ReLU SAE (SAELens StandardSAE) on `hook` with random unit decoder rows."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    g = torch.Generator().manual_seed(seed)
    d = model.cfg.d_model
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook, model_name="embedded")))
    w = torch.randn(d_sae, d, generator=g)
    w = w / w.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(w)
        sae.W_enc.copy_(w.T)
        sae.b_enc.fill_(0.1)
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def sae_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "tiny"
    make_sae(model).save_model(str(out))
    return str(out)


def tiny_concept() -> Concept:
    fg = tuple(C.fact_prompt("colors", i, t) for t in (0, 1) for i in range(4))
    rt = tuple(C.fact_prompt(c, i, 0) for c in ("animals", "foods") for i in range(4))
    return Concept("colors-tiny", fg, rt, tuple(C.fact_prompt("colors", i, 2) for i in range(4)))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(model, w0) -> bool:
    return all(torch.equal(w0[k], v) for k, v in model.state_dict().items())


def no_hooks_left(model) -> bool:
    return all(not hp.fwd_hooks for hp in model.hook_dict.values())


# ---- interventions -------------------------------------------------------------------------------

def test_identity_edit_leaves_logits_unchanged(model, sae_dir):
    toks = model.to_tokens(TEXT)
    with torch.no_grad():
        ref = model(toks)
        spec = UnlearnSpec([FeatureEdit(sae_dir, HOOK, list(range(16)), [1.0] * 16)], "scale", 1.0)
        with apply_spec(model, spec):
            out = model(toks)
    assert torch.allclose(ref, out, atol=1e-4)


def test_clamp_moves_the_activation_by_the_decoder_rows_only(model, sae_dir):
    """x' - x = (f' - f) @ W_dec: the SAE error term is kept, only the edited features move."""
    sae = make_sae(model)
    toks = model.to_tokens(TEXT)
    with torch.no_grad(), capture(model, [HOOK]) as acts:
        model(toks)
    x = acts[HOOK]
    f = sae.encode(x)
    feat = int((f[0] > 0).sum(0).argmax())  # a feature active somewhere
    spec = UnlearnSpec([FeatureEdit(sae_dir, HOOK, [feat], [2.0])], "clamp", 5.0)
    with torch.no_grad(), apply_spec(model, spec), capture(model, [HOOK]) as acts2:
        model(toks)
    f2 = f.clone()
    f2[..., feat] = torch.where(f[..., feat] > 0, torch.tensor(-10.0), f[..., feat])
    assert torch.allclose(acts2[HOOK] - x, (f2 - f) @ sae.W_dec, atol=1e-4)
    assert (f[..., feat] > 0).any()


def test_model_weights_and_hooks_unchanged_after_the_context(model, sae_dir):
    w0 = weights(model)
    spec = UnlearnSpec([FeatureEdit(sae_dir, HOOK, [0, 1, 2], [1.0, 1.0, 1.0])], "clamp", 50.0)
    with torch.no_grad():
        ref = model(model.to_tokens(TEXT))
        with apply_spec(model, spec):
            changed = model(model.to_tokens(TEXT))
        after = model(model.to_tokens(TEXT))
    assert not torch.allclose(ref, changed)
    assert torch.equal(ref, after) and same_weights(model, w0) and no_hooks_left(model)


def test_spec_json_round_trip_and_reapply(model, sae_dir, tmp_path):
    spec = UnlearnSpec([FeatureEdit(sae_dir, HOOK, [3, 5], [1.5, 0.25], ["a", "b"])], "clamp", 7.0, ["colors"], "embedded")
    path = spec.save(tmp_path / "s.json")
    again = UnlearnSpec.load(path)
    assert again == spec and json.loads(path.read_text())["edits"][0]["features"] == [3, 5]
    toks = model.to_tokens(TEXT)
    with torch.no_grad():
        with apply_spec(model, spec):
            a = model(toks)
        with apply_spec(model, str(path)):
            b = model(toks)
    assert torch.equal(a, b)


def test_merge_specs_unites_features_and_keeps_the_larger_typical():
    a = UnlearnSpec([FeatureEdit("s", HOOK, [1, 2], [1.0, 3.0])], "clamp", 5.0, ["colors"])
    b = UnlearnSpec([FeatureEdit("s", HOOK, [2, 4], [4.0, 1.0])], "clamp", 5.0, ["animals"])
    m = merge_specs([a, b])
    assert len(m.edits) == 1 and dict(zip(m.edits[0].features, m.edits[0].typical)) == {1: 1.0, 2: 4.0, 4: 1.0}
    assert m.concepts == ["colors", "animals"]
    with pytest.raises(InterpError, match="same method"):
        merge_specs([a, UnlearnSpec([FeatureEdit("s", HOOK, [1], [1.0])], "zero", 0.0)])


# ---- bad input -----------------------------------------------------------------------------------

def test_spec_naming_missing_features_is_a_one_line_error(model, sae_dir):
    spec = UnlearnSpec([FeatureEdit(sae_dir, HOOK, [3, 99], [1.0, 1.0])])
    with pytest.raises(InterpError, match=r"feature 99 does not exist: SAE .* has 16 features") as e:
        with apply_spec(model, spec):
            pass
    assert "\n" not in str(e.value) and no_hooks_left(model)


def test_sae_from_another_hook_or_model_is_refused(model, sae_dir, tmp_path):
    with pytest.raises(InterpError, match="was trained on blocks.0.hook_resid_post but is applied at blocks.1.hook_resid_post"):
        with apply_spec(model, UnlearnSpec([FeatureEdit(sae_dir, "blocks.1.hook_resid_post", [0], [1.0])])):
            pass
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    wrong = tmp_path / "wide"
    StandardSAE(StandardSAEConfig(d_in=model.cfg.d_model + 8, d_sae=4, metadata=SAEMetadata(hook_name=HOOK))).save_model(str(wrong))
    with pytest.raises(InterpError, match="different model"):
        with apply_spec(model, UnlearnSpec([FeatureEdit(str(wrong), HOOK, [0], [1.0])])):
            pass


def test_concept_errors_are_one_line():
    p = C.fact_prompt("colors", 0, 0)
    with pytest.raises(InterpError, match="no forget examples"):
        Concept("empty", (), (p,))
    with pytest.raises(InterpError, match="both the forget and retain sets"):
        Concept("overlap", (p,), (p, C.fact_prompt("animals", 0, 0)))
    with pytest.raises(InterpError, match="unknown concept 'colours'"):
        resolve_concept("colours")
    with pytest.raises(InterpError, match="does not exist"):
        resolve_concept("missing.jsonl")
    with pytest.raises(InterpError):
        UnlearnSpec([])


def test_bad_spec_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InterpError, match="is not an unlearning spec"):
        UnlearnSpec.load(bad)
    with pytest.raises(InterpError, match="does not exist"):
        UnlearnSpec.load(tmp_path / "none.json")


def test_cli_unknown_concept_exits_2(capsys):
    from interp.cli import main

    assert main(["unlearn", "--concept", "planets", "--sae", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown concept 'planets'") and "\n" not in err


# ---- concepts ------------------------------------------------------------------------------------

def test_builtin_concept_sets():
    c = builtin_concept("colors")
    n = len(C.FACTS["colors"])
    assert len(c.forget) == 2 * n and len(c.paraphrase) == n
    assert {p.meta["template"] for p in c.forget} == {0, 1} and {p.meta["template"] for p in c.paraphrase} == {2}
    assert all(p.meta["category"] != "colors" for p in c.retain) and len(c.retain) == sum(
        3 * len(C.FACTS[o]) for o in C.CATEGORIES if o != "colors")
    both = merge_concepts([c, builtin_concept("animals")])
    assert both.name == "colors+animals" and {p.meta["category"] for p in both.forget} == {"colors", "animals"}
    assert all(p.meta["category"] not in ("colors", "animals") for p in both.retain)
    docs = retain_corpus(c, 8)
    assert len(docs) == 8 and not any(p.text in d for d in docs for p in c.forget)
    assert c.adversarial and {p.meta["kind"] for p in c.adversarial} == {"template", "synonym", "context"}
    corpus_texts = {p.text for t in range(3) for p in C.fact_prompts("colors", (t,))}
    assert not corpus_texts & {p.text for p in c.adversarial}  # none is a corpus template prompt


def test_concept_files(tmp_path):
    j = tmp_path / "planets.jsonl"
    j.write_text('{"set": "forget", "text": "The red planet is", "answer": "Mars"}\n\n'
                 '{"set": "retain", "text": "The color of a lemon is", "answer": " yellow"}\n')
    c = load_concept_file(j)
    assert c.name == "planets" and c.forget[0].answer == " Mars" and c.retain[0].answer == " yellow"
    t = tmp_path / "pets.txt"
    t.write_text("# forget\nA dog says\twoof\nA cat is\n# retain\nThe sky is\tblue\n")
    c = load_concept_file(t)
    assert [p.text for p in c.forget] == ["A dog says", "A cat is"] and c.forget[1].answer == "" and c.retain[0].answer == " blue"
    t.write_text("A prompt before a header\n")
    with pytest.raises(InterpError, match="before any"):
        load_concept_file(t)
    j.write_text('{"set": "forget"}\n')
    with pytest.raises(InterpError, match="planets.jsonl:1"):
        load_concept_file(j)
    j.write_text('{"set": "retain", "text": "x", "answer": "y"}\n')
    with pytest.raises(InterpError, match="no forget examples"):
        load_concept_file(j)


# ---- selection and evaluation maths --------------------------------------------------------------

def _stats(ff, fr, mf, mr, cos=None):
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    cos = t(cos) if cos is not None else torch.ones(len(ff))
    return FeatureStats("nowhere", HOOK, t(ff), t(fr), t(mf), t(mr), torch.zeros(3, len(ff), dtype=torch.long), cos, 100, 100)


def test_selection_drops_retain_features_and_ranks_by_score():
    st = _stats([0.5, 0.3, 0.4, 0.0, 0.2], [0.0, 0.005, 0.2, 0.0, 0.001], [1.0, 4.0, 1.0, 0.0, 2.0], [0.0, 1.0, 1.0, 0.0, 1.0])
    sel = select_features(st, SelectConfig(n_features=3, retain_threshold=0.01, score="freq"))
    assert sel.features == [0, 1, 4] and sel.typical == [1.0, 4.0, 2.0]  # 2 fires on retain, 3 never fires
    assert sel.scores == pytest.approx([0.5, 0.295, 0.199])
    sel = select_features(st, SelectConfig(n_features=2, retain_threshold=0.01, score="act"))
    assert sel.features == [1, 0]  # 0.3*4 - 0.005*1 > 0.5*1
    st = _stats([0.5, 0.3, 0.4, 0.2], [0.0, 0.05, 0.0, 0.0], [1.0, 4.0, 1.0, 2.0], [0.0] * 4, cos=[0.5, 0.5, -0.9, 0.1])
    sel = select_features(st, SelectConfig(n_features=4, retain_threshold=0.1, score="dir"))
    assert sel.features == [1, 0, 3] and sel.scores == pytest.approx([0.6, 0.25, 0.04])  # 2 writes against the direction
    with pytest.raises(InterpError, match="no feature"):
        select_features(_stats([0.1], [0.5], [1.0], [1.0]), SelectConfig(score="dir"))


def test_contrast_score_drops_features_that_fire_at_every_concepts_answer_position():
    """Feature 0 fires at the answer position of forget and retain prompts alike ("an answer comes next"):
    "dir" ranks it first, "contrast" (forget vs the retain prompts' last tokens) not at all."""
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    st = _stats([0.9, 0.5, 0.4], [0.05, 0.01, 0.0], [2.0, 1.0, 1.0], [1.0, 1.0, 0.0], cos=[0.9, 0.5, 0.5])
    st.freq_retain_last, st.mean_retain_last, st.cos_last = t([0.9, 0.1, 0.0]), t([2.0, 1.0, 0.0]), t([0.1, 0.5, -0.2])
    assert select_features(st, SelectConfig(n_features=3, score="dir")).features == [0, 1, 2]
    sel = select_features(st, SelectConfig(n_features=3, score="contrast"))
    assert sel.features == [1] and sel.scores == pytest.approx([(0.5 - 0.1 - 0.01) * 0.5])  # 0: no excess; 2: writes against u_L
    assert UnlearnConfig().score == SelectConfig().score == "contrast"
    from interp.commands.unlearn import SCORES
    from interp.unlearn.select import SCORES as LIB_SCORES
    assert SCORES == LIB_SCORES


def _row(f, r, loss=0.0, n=5, v=1.0):
    return SweepRow("clamp", n, v, EvalResult(f, r, f, 3.0, loss, 0.0))


def test_pareto_best_and_score_by_hand():
    base = EvalResult(0.9, 0.8, 0.9, 3.0)
    rows = [_row(0.6, 0.80), _row(0.3, 0.79), _row(0.1, 0.70), _row(0.5, 0.78), _row(0.0, 0.79, loss=0.2)]
    assert [(r.result.forget_acc, r.result.retain_acc) for r in pareto(rows)] == [(0.0, 0.79), (0.6, 0.80)]
    best, ok = best_row(rows, base)
    assert ok and best is rows[1]  # rows[4] forgets more but its retain loss rose 20%
    # SAEBench: retain >= 0.99 * 0.8 = 0.792 -> only rows[0] counts -> 1 - 0.6 / 0.9
    assert unlearning_score(rows, base) == pytest.approx(1 - 0.6 / 0.9)
    worst, ok = best_row([_row(0.1, 0.1), _row(0.2, 0.3)], base)
    assert not ok and worst.result.retain_acc == 0.3
    assert unlearning_score([_row(0.0, 0.1)], base) == 0.0


# ---- end to end on the embedded model (small sets) -------------------------------------------------

def test_feature_stats_hand_check(model, sae_dir):
    """freq/mean of one feature equal a direct computation over the counted tokens."""
    c = tiny_concept()
    sae = make_sae(model)
    st = feature_stats(model, sae, sae_dir, c, [], positions="all")
    last = feature_stats(model, sae, sae_dir, c, [], positions="last")
    assert last.n_forget_tokens == len(c.forget) and last.n_retain_tokens == st.n_retain_tokens
    toks = [model.to_tokens(p.text)[0] for p in c.forget]
    acts = []
    for t in toks:
        with torch.no_grad(), capture(model, [HOOK]) as a:
            model(t[None])
        acts.append(sae.encode(a[HOOK][0, 1:]))
    a = torch.cat(acts)
    assert st.n_forget_tokens == len(a)
    assert torch.allclose(st.freq_forget, (a > 0).float().mean(0))
    assert torch.allclose(st.mean_forget, a.clamp(min=0).sum(0) / (a > 0).sum(0).clamp(min=1), atol=1e-5)
    ends = torch.tensor([len(t) - 1 for t in toks]).cumsum(0) - 1
    assert torch.allclose(last.freq_forget, (a[ends] > 0).float().mean(0))
    # cos_dir: decoder rows against the mean difference of the counted activations
    xs = []
    for t in toks:
        with torch.no_grad(), capture(model, [HOOK]) as h:
            model(t[None])
        xs.append(h[HOOK][0, 1:])
    u = torch.cat(xs).mean(0) - st_retain_mean(model, c)
    assert torch.allclose(st.cos_dir, torch.nn.functional.cosine_similarity(sae.W_dec, u[None], dim=1), atol=1e-4)
    # score "contrast": the retain prompts' last tokens alone, and the direction against their mean
    ra, rx = [], []
    for p in c.retain:
        with torch.no_grad(), capture(model, [HOOK]) as h:
            model(model.to_tokens(p.text))
        rx.append(h[HOOK][0, -1])
        ra.append(sae.encode(h[HOOK][0, -1]))
    ra, rx = torch.stack(ra), torch.stack(rx)
    assert torch.allclose(last.freq_retain_last, (ra > 0).float().mean(0))
    assert torch.allclose(last.mean_retain_last, ra.clamp(min=0).sum(0) / (ra > 0).sum(0).clamp(min=1), atol=1e-5)
    u_last = torch.cat(xs)[ends].mean(0) - rx.mean(0)
    assert torch.allclose(last.cos_last, torch.nn.functional.cosine_similarity(sae.W_dec, u_last[None], dim=1), atol=1e-4)


def st_retain_mean(model, c):
    xs = []
    for p in c.retain:
        with torch.no_grad(), capture(model, [HOOK]) as h:
            model(model.to_tokens(p.text))
        xs.append(h[HOOK][0, 1:])
    return torch.cat(xs).mean(0)


def test_run_unlearning_clamp_sweep_and_spec(model, sae_dir, tmp_path):
    w0 = weights(model)
    cfg = UnlearnConfig(method="clamp", sweep=True, n_features_grid=(2, 4), value_grid=(1.0, 10.0), n_corpus_docs=2,
                        retain_threshold=1.0)
    rep = run_unlearning(model, [tiny_concept()], [sae_dir], cfg)
    assert rep.search == "sweep" and [(r.n_features, r.value) for r in rep.rows] == [(2, 1.0), (2, 10.0), (4, 1.0), (4, 10.0)]
    assert all(r.test is not None for r in rep.rows) and rep.test is rep.best.test
    assert rep.split_sizes == {"selection": 4, "validation": 2, "test": 2, "paraphrase": 4, "adversarial": 0, "retain_test": 2}
    assert len(rep.spec.edits[0].features) == rep.best.n_features and rep.spec.value == rep.best.value
    test_forget = {s["prompt"] for s in rep.samples[:2]}
    assert all(f < 16 for f in rep.spec.edits[0].features) and 3 <= len(rep.samples) <= 4  # the 2 test forget prompts + retain
    assert test_forget <= {p.text for p in tiny_concept().forget}
    d = rep.to_dict()
    json.dumps(d)
    assert d["features"][0]["feature"] == rep.selections[0].features[0] and sum(r["pareto"] for r in d["rows"]) == len(rep.pareto)
    # the saved spec, measured again on the same test part, gives the same numbers
    again = evaluate_spec(model, [tiny_concept()], rep.spec, n_corpus_docs=2)
    assert again.test.forget_acc == rep.test.forget_acc and again.test.retain_acc == rep.test.retain_acc
    assert again.test.kl == pytest.approx(rep.test.kl, rel=1e-4, abs=1e-7)
    assert same_weights(model, w0) and no_hooks_left(model)


def test_direction_projects_the_component_to_the_retain_mean(model):
    c = tiny_concept()
    d = mean_difference_direction(model, HOOK, c, [])
    assert d.u.norm() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad(), project_out(model, d, 1.0), capture(model, [HOOK]) as acts:
        model(model.to_tokens(TEXT))
    assert torch.allclose(acts[HOOK] @ d.u, torch.full_like(acts[HOOK][..., 0], d.retain_mean), atol=1e-4)
    assert no_hooks_left(model)


def test_finetune_baseline_never_touches_the_original(model):
    w0 = weights(model)
    steps = []
    for step, ft in finetune_unlearn(model, tiny_concept(), [], FinetuneConfig(steps=2, checkpoints=(1, 2), batch_size=4, lr=1e-3)):
        steps.append(step)
        assert ft is not model
    assert steps == [1, 2] and same_weights(model, w0)
    assert not all(torch.equal(w0[k], v) for k, v in ft.state_dict().items())


def test_unlearn_config_checks():
    with pytest.raises(InterpError, match="unknown method"):
        UnlearnConfig(method="erase")
    with pytest.raises(InterpError, match="n_features"):
        UnlearnConfig(n_features=0)
    with pytest.raises(InterpError, match="unknown split"):
        UnlearnConfig(split_by="template")
    with pytest.raises(InterpError, match="condition applies to SAE methods"):
        UnlearnConfig(method="direction", condition=True)
    z = UnlearnConfig(method="zero", sweep=True, n_features_grid=(1, 2))
    assert (z.ns(), z.values(), z.search) == ((1, 2), (0.0,), "sweep")
    d = UnlearnConfig(method="direction", value=2.0)
    assert (d.ns(), d.values(), d.search) == ((0,), (2.0,), "fixed")
    a = UnlearnConfig()
    assert a.search == "auto" and a.ns() == (5, 10, 20, 40) and a.values()[0] == 1.0
    assert UnlearnConfig(n_features=7).ns() == (7,) and UnlearnConfig(n_features=7).search == "auto"


def test_starting_at_a_later_layer_gives_the_same_numbers(model, tmp_path):
    """evaluate(start_layer=L) reuses the unmodified residual stream before block L: same results."""
    from interp.unlearn import prepare, evaluate

    layer = model.cfg.n_layers - 1
    hook = f"blocks.{layer}.hook_resid_post"
    make_sae(model, hook=hook).save_model(str(tmp_path / "late"))
    es = prepare(model, tiny_concept(), retain_corpus(tiny_concept(), 2))
    spec = UnlearnSpec([FeatureEdit(str(tmp_path / "late"), hook, [0, 1, 2, 3], [1.0] * 4)], "clamp", 20.0)
    a = evaluate(model, es, lambda m: apply_spec(m, spec))
    b = evaluate(model, es, lambda m: apply_spec(m, spec), start_layer=layer)
    assert layer > 0 and es.resid[layer]
    assert a.kl > 0 and a.forget_acc == b.forget_acc and a.retain_acc == b.retain_acc
    assert a.retain_loss == pytest.approx(b.retain_loss, rel=1e-5) and a.kl == pytest.approx(b.kl, rel=1e-3, abs=1e-7)
    assert evaluate(model, es).kl == pytest.approx(0.0, abs=1e-6)
