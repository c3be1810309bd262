"""Selection / validation / test splits, the early-stopping search and the first-try checks."""

from __future__ import annotations

import pytest

from interp.data import corpus as C
from interp.errors import InterpError
from interp.unlearn import Concept, EvalResult, SweepRow, builtin_concept
from interp.unlearn.concepts import MIN_PER_SPLIT, split_concept
from interp.unlearn.evaluation import forget_key
from interp.unlearn.pipeline import search


def test_prompt_split_is_disjoint_deterministic_and_keeps_paraphrases_held_out():
    c = builtin_concept("colors")
    s = split_concept(c)
    parts = [s.selection, s.validation, s.test]
    texts = [{p.text for p in part.forget} for part in parts]
    assert [len(t) for t in texts] == [32, 16, 16] and not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert set().union(*texts) == {p.text for p in c.forget}
    rt = [{p.text for p in part.retain} for part in parts]
    assert not (rt[0] & rt[2]) and sum(map(len, rt)) == len(c.retain)
    assert s.test.paraphrase == c.paraphrase and s.test.adversarial == c.adversarial
    assert not s.selection.paraphrase and not s.validation.adversarial
    assert split_concept(c) == s and split_concept(c, seed=1) != s


def test_fact_split_keeps_every_fact_in_one_part():
    s = split_concept(builtin_concept("foods"), by="fact")
    facts = [{p.meta["fact"] for p in part.forget} for part in (s.selection, s.validation, s.test)]
    assert not (facts[0] & facts[1] or facts[0] & facts[2] or facts[1] & facts[2])
    assert all(len([p for p in s.test.forget if p.meta["fact"] == f]) == 2 for f in facts[2])  # both templates together


def test_too_few_prompts_for_the_splits_is_one_line_error():
    few = Concept("few", tuple(C.fact_prompt("colors", i, 0) for i in range(3)), ())
    with pytest.raises(InterpError, match=f"has 3 forget prompts with a completion; the selection / validation / test splits need at least {MIN_PER_SPLIT} each"):
        split_concept(few)
    with pytest.raises(InterpError, match="split fractions"):
        split_concept(builtin_concept("colors"), fractions=(0.5, 0.5, 0.0))


def _row(n, v, f, r=1.0, loss=0.0, prob=None):
    return SweepRow("clamp", n, v, EvalResult(f, r, f, 3.0, loss, 0.0, forget_prob=f if prob is None else prob))


def test_search_stops_early_by_hand():
    base = EvalResult(1.0, 1.0, 1.0, 3.0)
    # forget falls with the value; retain breaks at v=3 for n=5; n=10 is no better than n=5, so n=20 is never tried
    table = {(5, 1.0): (0.8, 1.0), (5, 2.0): (0.4, 0.99), (5, 3.0): (0.1, 0.90), (5, 4.0): (0.0, 0.8),
             (10, 1.0): (0.6, 1.0), (10, 2.0): (0.5, 0.9), (20, 1.0): (0.0, 1.0)}
    seen = []

    def run(n, v):
        seen.append((n, v))
        f, r = table[(n, v)]
        return _row(n, v, f, r)

    rows = search((5, 10, 20), (1.0, 2.0, 3.0, 4.0), run, base, 0.97, 0.04)
    assert seen == [(5, 1.0), (5, 2.0), (5, 3.0), (10, 1.0), (10, 2.0)]
    assert len(rows) == 5
    # exhaustive tries everything
    seen.clear()
    table.update({(10, 3.0): (0, 0), (10, 4.0): (0, 0), (20, 2.0): (0, 0), (20, 3.0): (0, 0), (20, 4.0): (0, 0)})
    assert len(search((5, 10, 20), (1.0, 2.0, 3.0, 4.0), run, base, 0.97, 0.04, exhaustive=True)) == 12


def test_search_stops_when_nothing_is_left_to_forget():
    base = EvalResult(1.0, 1.0, 1.0, 3.0)
    seen = []

    def run(n, v):
        seen.append((n, v))
        return _row(n, v, 0.0 if v >= 2 else 0.5, prob=0.001 if v >= 2 else 0.4)

    search((5, 10), (1.0, 2.0, 3.0), run, base, 0.97, 0.04)
    assert seen == [(5, 1.0), (5, 2.0)]


def test_forget_key_ranks_probability_after_accuracy():
    assert forget_key(_row(5, 1, 0.0, prob=0.2)) > forget_key(_row(5, 2, 0.0, prob=0.05))
    assert forget_key(_row(5, 1, 0.1, prob=0.0)) > forget_key(_row(5, 2, 0.0, prob=0.5))


def test_concept_the_model_does_not_know_is_refused_before_selection(model, sae_dir):
    from interp.unlearn import UnlearnConfig, run_unlearning

    wrong = Concept("nonsense", tuple(C.Prompt(C.fact_prompt("colors", i, t).text, " zebra", {}) for i in range(4) for t in (0, 1)),
                    tuple(C.fact_prompt("animals", i, 0) for i in range(4)))
    with pytest.raises(InterpError, match=r"answers only 0% of its held-out forget prompts \(< 50%\), so there is nothing to forget"):
        run_unlearning(model, [wrong], [sae_dir], UnlearnConfig(n_corpus_docs=2))


@pytest.fixture(scope="module")
def sae_dir(model, tmp_path_factory):
    from test_unlearn import make_sae

    out = tmp_path_factory.mktemp("sae") / "tiny"
    make_sae(model).save_model(str(out))
    return str(out)


def test_saes_naming_different_models_are_refused(model, sae_dir, tmp_path):
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from interp.unlearn.pipeline import load_saes
    from test_unlearn import HOOK

    other = tmp_path / "other"
    StandardSAE(StandardSAEConfig(d_in=model.cfg.d_model, d_sae=8, metadata=SAEMetadata(hook_name=HOOK, model_name="gpt2"))).save_model(str(other))
    with pytest.raises(InterpError, match=f"SAEs from different models: {sae_dir} was trained on 'embedded', {other} on 'gpt2'"):
        load_saes(model, [sae_dir, str(other)])


def test_transfer_to_a_copy_of_the_sae_maps_every_feature_to_itself(model, sae_dir, tmp_path):
    import shutil

    from interp.unlearn import FeatureEdit, UnlearnSpec
    from interp.unlearn.pipeline import transfer_spec
    from test_unlearn import HOOK, tiny_concept

    twin = tmp_path / "twin"
    shutil.copytree(sae_dir, twin)
    spec = UnlearnSpec([FeatureEdit(sae_dir, HOOK, [3, 7, 1], [1.0, 2.0, 3.0])], "clamp", 2.5, ["colors-tiny"])
    tr = transfer_spec(model, spec, str(twin), [tiny_concept()])
    e = tr.spec.edits[0]
    assert e.sae_dir == str(twin) and e.hook == HOOK and e.features == [3, 7, 1]
    assert tr.cosines == pytest.approx([1.0, 1.0, 1.0], abs=1e-5) and (tr.spec.method, tr.spec.value) == ("clamp", 2.5)
