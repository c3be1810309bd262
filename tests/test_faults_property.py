"""Property tests (hypothesis): a random bad value in any numeric option of any command, or in
any field of an SAE's cfg.json, is one `error:` line, exit 2, before any work, and nothing is
written anywhere in the workspace (the output path, INTERP_HOME, the current folder).

`FIELDS` lists every int / float option of every command with the range its values must lie in;
`test_fields_table_covers_every_numeric_option` keeps it complete for the commands listed in
`BASE`. The commands run in this process (`interp.cli.main`), so an example costs milliseconds
unless the check comes late; the suite is bounded by `max_examples`.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from faults import assert_clean_error, assert_tree_unchanged, tree_snapshot  # noqa: E402

HOOK = "blocks.1.hook_resid_post"
SAE = "saes/embedded/resid_post_L1_topk"
MOEX = "interp/moex/shipped/moex"

# The command line each field is added to: valid, cheap, and writing under {ws} only.
BASE = {
    "demo": ["demo"],
    "collect": ["collect", "--hooks", HOOK, "--tokens", "256", "--out", "{ws}/out"],
    "app": ["app"],
    "train-sae": ["train-sae", "--hook", HOOK, "--out", "{ws}/out", "--tokens", "4096", "--batch-size", "64"],
    "eval-sae": ["eval-sae", "{repo}/" + SAE],
    "features": ["features", "--neurons", "0", "--out", "{ws}/out"],
    "circuits": ["circuits", "--task", "ioi", "--json", "{ws}/out.json"],
    "unlearn": ["unlearn", "--concept", "colors", "--json", "{ws}/out.json"],
    "moex train": ["moex", "train", "--arch", "moex", "--engine", "random", "--out", "{ws}/out"],
    "moex eval": ["moex", "eval", "{repo}/" + MOEX],
    "moex games": ["moex", "games", "--engine", "random", "--store", "{ws}/store", "--out", "{ws}/g.txt"],
    "moex build": ["moex", "build", "--tiny", "--root", "{ws}/out"],
    "sweep": ["sweep", "sae", "--hook", HOOK, "--out", "{ws}/out"],
}

POS, NONNEG = "int>=1", "int>=0"
# (command, flag) -> the kind of value it takes; bad values are drawn outside it.
FIELDS = {
    ("demo", "--top"): POS,
    ("collect", "--tokens"): POS, ("collect", "--seq-len"): POS, ("collect", "--batch-size"): POS,
    ("collect", "--shard-rows"): POS, ("collect", "--nproc"): POS, ("collect", "--nnodes"): POS,
    ("app", "--port"): "port",
    ("train-sae", "--head"): NONNEG, ("train-sae", "--d-sae"): POS, ("train-sae", "--k"): POS,
    ("train-sae", "--l1"): "float>=0", ("train-sae", "--tokens"): POS, ("train-sae", "--lr"): "float>0",
    ("train-sae", "--aux-coef"): "float>=0", ("train-sae", "--batch-size"): POS, ("train-sae", "--seed"): "int",
    ("train-sae", "--checkpoint-every"): NONNEG, ("train-sae", "--act-tokens"): POS, ("train-sae", "--eval-tokens"): POS,
    ("train-sae", "--seq-len"): POS, ("train-sae", "--nproc"): POS, ("train-sae", "--nnodes"): POS,
    ("eval-sae", "--tokens"): POS, ("eval-sae", "--seq-len"): POS,
    ("features", "--neurons"): NONNEG, ("features", "--tokens"): POS, ("features", "--seq-len"): POS,
    ("features", "--batch-size"): POS, ("features", "--top-k"): POS, ("features", "--seed"): "int", ("features", "--threads"): POS,
    ("circuits", "--seeds"): POS, ("circuits", "--prompts"): POS, ("circuits", "--eval-prompts"): NONNEG,
    ("circuits", "--keep"): "(0,1]", ("circuits", "--n-train"): POS, ("circuits", "--top-k-codes"): POS,
    ("circuits", "--sae-steps"): POS, ("circuits", "--tau"): "float>=0",
    ("unlearn", "--n-features"): POS, ("unlearn", "--value"): "finite", ("unlearn", "--retain-threshold"): "[0,1]",
    ("unlearn", "--split-seed"): "int", ("unlearn", "--min-base-acc"): "[0,1]",
    ("moex train", "--experts"): POS, ("moex train", "--topk"): POS, ("moex train", "--expert-width"): POS,
    ("moex train", "--d-mlp"): POS, ("moex train", "--balance"): "float>=0", ("moex train", "--layers"): POS,
    ("moex train", "--d-model"): POS, ("moex train", "--heads"): POS, ("moex train", "--n-ctx"): POS,
    ("moex train", "--steps"): POS, ("moex train", "--batch-size"): POS, ("moex train", "--lr"): "float>0",
    ("moex train", "--warmup"): NONNEG, ("moex train", "--games"): POS, ("moex train", "--val-games"): POS,
    ("moex train", "--nodes"): POS, ("moex train", "--workers"): POS, ("moex train", "--seed"): "int",
    ("moex train", "--checkpoint-every"): NONNEG, ("moex train", "--eval-every"): NONNEG,
    ("moex eval", "--layer"): NONNEG, ("moex eval", "--metric-games"): POS, ("moex eval", "--legal"): POS,
    ("moex games", "--n"): POS, ("moex games", "--workers"): POS, ("moex games", "--seed"): "int",
    ("moex games", "--max-chars"): "int>=8", ("moex games", "--nodes"): POS, ("moex games", "--random-fraction"): "[0,1]",
    ("moex build", "--seeds"): POS, ("moex build", "--workers"): POS,
    ("sweep", "--workers"): POS, ("sweep", "--cpus-per-trial"): "float>0", ("sweep", "--gpus-per-trial"): "float>=0",
    ("sweep", "--d-sae"): POS, ("sweep", "--k"): POS, ("sweep", "--l1"): "float>=0", ("sweep", "--lr"): "float>0",
    ("sweep", "--tokens"): POS, ("sweep", "--batch-size"): POS, ("sweep", "--seed"): "int",
    ("sweep", "--checkpoint-every"): NONNEG, ("sweep", "--eval-tokens"): POS,
}

NOT_A_NUMBER = st.sampled_from(["abc", "", "1e", "--", "one", "0x", "1,5", "\u0661\u0662x", "nan%"])
HUGE = st.integers(min_value=10**13, max_value=10**30)


def bad_values(kind: str) -> st.SearchStrategy[str]:
    """Text values outside `kind` (the argument as the user types it)."""
    nonfinite = st.sampled_from(["nan", "inf", "-inf"])
    if kind == "int":  # any integer is valid: only text that is not one
        return NOT_A_NUMBER
    if kind.startswith("int>="):
        lo = int(kind[5:])
        return st.one_of(NOT_A_NUMBER, st.integers(max_value=lo - 1).map(str), st.sampled_from(["1.5", "2e3"]))
    if kind == "port":
        return st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=65536).map(str))
    if kind == "float>0":
        return st.one_of(nonfinite, st.floats(max_value=0, allow_nan=False).map(repr))
    if kind == "float>=0":
        return st.one_of(nonfinite, st.floats(max_value=-1e-9, allow_nan=False).map(repr))
    if kind == "(0,1]":
        return st.one_of(nonfinite, st.floats(max_value=0, allow_nan=False).map(repr), st.floats(min_value=1.0001).map(repr))
    if kind == "[0,1]":
        return st.one_of(st.just("nan"), st.floats(max_value=-1e-9, allow_nan=False).map(repr),
                         st.floats(min_value=1.0001).map(repr))
    if kind == "finite":
        return nonfinite
    raise AssertionError(kind)


def _commands(parser) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                out[name] = sp
                out.update({f"{name} {k}": v for k, v in _commands(sp).items()})
    return out


def test_fields_table_covers_every_numeric_option():
    from interp.cli import build_parser

    cmds = _commands(build_parser())
    missing = [(c, a.option_strings[-1]) for c, sp in cmds.items() if c in BASE for a in sp._actions
               if a.option_strings and a.type in (int, float) and (c, a.option_strings[-1]) not in FIELDS]
    assert not missing, f"numeric options without a range in FIELDS: {missing}"


CASES = sorted(FIELDS)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_a_bad_value_in_any_field_is_one_line_exit_2_and_writes_nothing(case, data, tmp_path_factory, capsys, monkeypatch):
    from interp.cli import main
    from faults import REPO

    cmd, flag = case
    value = data.draw(bad_values(FIELDS[case]), label=f"{cmd} {flag}")
    ws = tmp_path_factory.mktemp("ws")
    monkeypatch.setenv("INTERP_HOME", str(ws / "home"))
    monkeypatch.chdir(ws)
    for k in ("INTERP_DEVICE", "INTERP_DTYPE", "INTERP_PROCESSING"):
        monkeypatch.setenv(k, os.environ[k]) if k in os.environ else monkeypatch.delenv(k, raising=False)
    argv = [a.format(ws=ws, repo=REPO) for a in BASE[cmd]] + [f"{flag}={value}"]
    before = tree_snapshot(ws)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 2
    out = capsys.readouterr()
    assert_clean_error(subprocess.CompletedProcess(argv, rc, out.out, out.err))
    assert_tree_unchanged(ws, before)
    assert not math.isnan(0.0)


# ------------------------------------------------------------------------------------------------
# Config files: a random bad value in any field of an SAE's cfg.json or a chess model's cfg.json

NOT_INT = st.one_of(st.text(max_size=5), st.floats(allow_nan=True), st.lists(st.integers(), max_size=2), st.booleans(),
                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
NOT_STR = st.one_of(st.integers(), st.floats(allow_nan=True), st.lists(st.text(max_size=2), max_size=2), st.booleans())
BAD_SAE_CFG = {
    "d_in": st.one_of(NOT_INT, st.integers(max_value=0), st.integers(min_value=2**24 + 1)),
    "d_sae": st.one_of(NOT_INT, st.integers(max_value=0), st.integers(min_value=2**24 + 1)),
    "k": st.one_of(NOT_INT.filter(lambda v: v is not None), st.integers(max_value=0), st.integers(min_value=9)),
    "dtype": st.one_of(NOT_STR, st.text(max_size=8).filter(lambda s: s.removeprefix("torch.") not in ("float32", "float16",
                                                                                                      "bfloat16", "float64"))),
    "architecture": st.one_of(NOT_STR, st.sampled_from(["", "topkk", "jumprelu2", "<b>x</b>"])),
    "metadata": st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=5), st.integers(), st.booleans()),
    "apply_b_dec_to_input": st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=1)),
    "metadata.hook_name": st.one_of(st.integers(), st.lists(st.text(max_size=2), min_size=1, max_size=2), st.booleans()),
    "metadata.hook_head_index": st.one_of(st.text(max_size=3), st.integers(max_value=-1), st.lists(st.integers(), max_size=1)),
}


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(BAD_SAE_CFG)), data=st.data())
def test_a_bad_value_in_any_sae_cfg_field_is_one_line_naming_field_and_file(field, data, tmp_path_factory, capsys, monkeypatch):
    import json

    from interp.cli import main
    from test_faults_round2 import write_sae_dir

    value = data.draw(BAD_SAE_CFG[field], label=field)
    ws = tmp_path_factory.mktemp("sae")
    monkeypatch.setenv("INTERP_HOME", str(ws / "home"))
    d = write_sae_dir(ws / "sae")
    cfg = json.loads((d / "cfg.json").read_text())
    if field.startswith("metadata."):
        cfg["metadata"][field.split(".", 1)[1]] = value
    else:
        cfg[field] = value
    (d / "cfg.json").write_text(json.dumps(cfg))
    before = tree_snapshot(ws)
    capsys.readouterr()
    rc = main(["eval-sae", str(d), "--tokens", "256"])
    out = capsys.readouterr()
    line = assert_clean_error(subprocess.CompletedProcess([], rc, out.out, out.err))
    assert "cfg.json" in line or "sae_weights" in line, line  # the file is named
    assert_tree_unchanged(ws, before)
