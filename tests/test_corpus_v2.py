"""Corpus v2 (issue 25): many sentence frames, whole template families held out of training,
deterministic; the model card's seen / held-out numbers and target misses; resumable configs."""

import dataclasses
import re

import pytest
import torch

from interp.data import corpus_v2 as V


def test_generation_is_deterministic_and_has_100_plus_ioi_frames():
    assert V.generate_corpus(30, seed=3) == V.generate_corpus(30, seed=3) != V.generate_corpus(30, seed=4)
    assert V.task_prompts("ioi", 20, "heldout") == V.task_prompts("ioi", 20, "heldout")
    assert V.n_frames("seen") >= 100 and V.n_frames("heldout") >= 40
    assert len(V.IOI_SETTINGS) * len(V.IOI_ACTIONS) == V.n_frames("seen") + V.n_frames("heldout")
    for t in V.TASKS:
        seen, held = V.families(t, "seen"), V.families(t, "heldout")
        assert held and not set(seen) & set(held) and sorted(seen + held) == list(range(V.N_FAMILIES[t]))
    with pytest.raises(ValueError, match="unknown split 'train'"):
        V.families("ioi", "train")


def test_held_out_families_never_occur_in_training_text():
    docs = V.generate_corpus(3000, seed=0) + V.task_corpus(1000, seed=1, code_frac=0.5)
    text = "\n".join(docs)
    # phrases only the held-out families use
    for marker in (" quickly ", " was with ", "When they were done", "began in", "was over by", "Historians date", "@classmethod"):
        assert marker not in text, marker
    # held-out IOI setting 3 ("A and B went to P. S ...") vs seen "...went to P, S" (setting 0, a comma)
    assert not re.search(r"[A-Z][a-z]+ and [A-Z][a-z]+ went to the [a-z]+\.", text)
    for d in docs:
        if d.startswith("class ") or "\nclass " in d:
            assert "=None" not in d  # defaults inside a class: held out (style 9)
        if re.search(r"def \w+\([^)]*: (int|str|float|bool|list|dict)", d):
            assert ":type " in d  # type hints without :type lines: held out (style 2)
    # and the held-out prompts do use them
    held = V.task_prompts("greater-than", 60, "heldout")
    assert {p.meta["family"] for p in held} == set(V.HELDOUT_FAMILIES["greater-than"])
    assert any("Historians date" in p.text for p in held)


def test_prompts_are_well_formed():
    for p in V.task_prompts("ioi", 50, "heldout"):
        io, s, c = p.meta["io"], p.meta["s"], p.meta["c"]
        assert p.answer == " " + io and len({io, s, c}) == 3
        words = re.findall(r"[A-Z][a-z]+", p.text)
        assert words.count(s) == 2 and words.count(io) == 1 and p.text.endswith((" to", " for"))
        neg = re.findall(r"[A-Z][a-z]+", p.meta["abc"])
        assert neg.count(s) == 1 and neg.count(c) == 1 and io in neg  # the negative: S's first mention -> C
    for p in V.task_prompts("greater-than", 50, "seen"):
        assert int(p.answer) > p.meta["start"] and p.text.endswith(str(p.meta["century"]))
    for p in V.task_prompts("docstring", 50, "heldout"):
        args = p.meta["args"]
        assert p.answer == " " + args[-1] and len(set(args)) == len(args) and 2 <= len(args) <= 6
        assert p.text.endswith(":param") and p.text.count(":param ") == len(args) - 1


def test_v1_corpus_is_unchanged():
    """The shipped models' corpus: the v1 generator's output is the same as before v2 existed."""
    from interp.data import corpus as C

    assert C.corpus_hash(C.generate_corpus(200, seed=0)) == "f55da5005a0cd2f3"


def test_target_misses_and_line_by_hand():
    from interp import model_card

    card = {"ioi_accuracy": 0.9, "ioi_logit_diff": 5.0, "fact_accuracy": {"a": 1.0, "b": 0.8}, "corpus": "v2"}
    t = {"ioi_accuracy": 0.95, "ioi_logit_diff": 4.0, "fact_accuracy": 0.9}
    assert model_card.meets_targets(card, t) == {"ioi_accuracy": False, "ioi_logit_diff": True, "fact_accuracy": False}
    assert model_card.target_misses(card, t) == {"ioi_accuracy": 0.05, "fact_accuracy": 0.1}
    line = model_card.target_line(card, t)
    assert line == ("MISSES 2 of 3 targets on held-out templates: ioi_accuracy 0.900 < 0.95 (short by 0.050), "
                    "fact_accuracy 0.800 < 0.9 (short by 0.100)")
    assert model_card.target_line({**card, "ioi_accuracy": 0.96, "fact_accuracy": {"a": 0.95}}, t) == "all 3 targets met on held-out templates"


def test_checkpoint_config_match_ignores_eval_fields_and_new_defaults():
    from interp.build import BuildConfig, same_weights_config

    cfg = BuildConfig.testbed()
    saved = dataclasses.asdict(cfg)
    assert same_weights_config(saved, dataclasses.replace(cfg, eval_every=50, ckpt_every=7))
    older = {k: v for k, v in saved.items() if k != "eval_curve_n"}  # a checkpoint from before a field existed
    assert same_weights_config(older, cfg)
    assert not same_weights_config(older, dataclasses.replace(cfg, lr=1e-3))
    assert not same_weights_config({**saved, "gone": 1}, cfg)
    v1 = {k: v for k, v in dataclasses.asdict(BuildConfig()).items() if k not in ("corpus", "eval_every", "eval_curve_n")}
    assert same_weights_config(v1, BuildConfig()) and not same_weights_config(v1, cfg)
    assert cfg.phase1_done({k: v for k, v in cfg.phase1_key().items() if k != "corpus"}) is False  # default v1 != v2
    with pytest.raises(ValueError, match="corpus must be one of v1, v2"):
        BuildConfig(corpus="v3")


def test_quick_v2_attn_build_reports_seen_heldout_and_a_learning_curve(tmp_path):
    import json

    from interp.build_attn import AttnBuildConfig, train_attn_model

    cfg = dataclasses.replace(AttnBuildConfig.quick(), corpus="v2", eval_every=20, eval_curve_n=4, eval_n=8, n_docs=600)
    torch.set_num_threads(1)
    _, card = train_attn_model(cfg, out_dir=tmp_path / "m", work_dir=tmp_path / "w")
    written = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert written["corpus"] == "v2" and set(written["templates"]) == {"seen", "heldout"}
    assert written["ioi_accuracy"] == written["templates"]["heldout"]["ioi_accuracy"]  # targets are on held-out
    assert written["template_families"]["ioi"]["heldout"] == list(V.HELDOUT_FAMILIES["ioi"])
    assert [p["step"] for p in written["task_curve"]] == [20, 40, 50]  # phase 1 every 20 + its end, phase 2's end
    assert set(written["task_curve"][0]) == {"step", "phase", "seen", "heldout"}
    assert written["target_line"].startswith("MISSES") and set(written["targets"]) == {"ioi_accuracy", "docstring_accuracy", "greater_than_prob_diff"}


def test_build_default_ends_with_one_target_line(tmp_path, capsys):
    """`interp build-default` says in its last line whether the model met its targets, and by how much it missed."""
    from interp.cli import main

    torch.set_num_threads(1)
    assert main(["build-default", "--quick", "--attn-only", "--out", str(tmp_path / "m"), "--work-dir", str(tmp_path / "w")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    card = __import__("json").loads((tmp_path / "m" / "model_card.json").read_text())
    assert last == f"targets: {card['target_line']}"
    assert last.startswith("targets: MISSES") and "(short by " in last  # a 40-step toy model misses them


@pytest.mark.slow
def test_resumed_build_keeps_one_learning_curve_equal_to_an_unbroken_one(tmp_path):
    """A build stopped after its step-20 checkpoint resumes there: the learning-curve file is cut back to
    step 20 (no duplicate points) and the resumed points equal the unbroken run's."""
    import json

    from interp.build_attn import AttnBuildConfig, train_attn_model

    torch.set_num_threads(1)
    cfg = dataclasses.replace(AttnBuildConfig.quick(), corpus="v2", eval_every=10, eval_curve_n=4, eval_n=4, n_docs=600,
                              phase2_steps=0)
    work = tmp_path / "w"
    train_attn_model(cfg, out_dir=tmp_path / "m", work_dir=work)
    unbroken = [json.loads(ln) for ln in (work / "phase1_evals.jsonl").read_text().splitlines()]
    assert [p["step"] for p in unbroken] == [10, 20, 30, 40]
    assert json.loads((work / "phase1_ckpt.json").read_text())["step"] == 20  # ckpt_every 20
    (work / "phase1.json").unlink()  # as if the process died after step 40's eval, before phase 1 was marked done
    train_attn_model(cfg, out_dir=tmp_path / "m2", work_dir=work)
    resumed = [json.loads(ln) for ln in (work / "phase1_evals.jsonl").read_text().splitlines()]
    assert [p["step"] for p in resumed] == [10, 20, 30, 40]
    assert resumed[2:] == unbroken[2:]  # same weights after resuming from the checkpoint


def test_learning_curve_file_skips_a_line_cut_by_a_crash(tmp_path, caplog):
    from interp.build import _read_points

    f = tmp_path / "phase1_evals.jsonl"
    f.write_text('{"step": 10, "seen": {}}\n{"step": 20, "se')
    assert _read_points(f) == [{"step": 10, "seen": {}}] and "unreadable learning-curve line" in caplog.text
    assert _read_points(tmp_path / "absent.jsonl") == []
