"""`interp unlearn` on bad input: one line on stderr, exit 2, before any work, nothing written.

One case runs the real CLI in a subprocess (`faults.run_cli`); the others call `interp.cli.main`
in-process (a subprocess per case would cost the suite a torch import each) and check the same
way (`faults.assert_clean_error` on the captured result, `faults.tree_snapshot`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from faults import assert_clean_error, assert_tree_unchanged, run_cli, tree_snapshot
from interp.cli import main
from interp.data import corpus as C

SAE = str(Path(__file__).resolve().parents[1] / "saes" / "embedded" / "resid_post_L3_topk")


def clean_error(capsys, argv: list[str], *needles: str) -> str:
    rc = main(argv)
    out = capsys.readouterr()
    line = assert_clean_error(subprocess.CompletedProcess(argv, rc, out.out, out.err))
    for n in needles:
        assert n in line, (n, line)
    return line


def concept_file(path: Path, n_forget: int, answer: str | None = None) -> Path:
    lines = ["# forget"] + [f"{C.fact_prompt('colors', i, 0).text}\t{answer or C.FACTS['colors'][i][1]}" for i in range(n_forget)]
    lines += ["# retain"] + [f"{C.fact_prompt('animals', i, 0).text}\t{C.FACTS['animals'][i][1]}" for i in range(6)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_too_few_prompts_for_the_splits(tmp_path):
    f = concept_file(tmp_path / "few.txt", 3)
    before = tree_snapshot(tmp_path)
    r = run_cli(["unlearn", "--concept", str(f), "--sae", SAE, "--json", str(tmp_path / "r.json")])
    assert_clean_error(r, "has 3 forget prompts with a completion.*need at least 2 each")
    assert_tree_unchanged(tmp_path, before)


@pytest.mark.parametrize("data, needle", [(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"), (b"# forget\nabc\x00def\n", "is binary")])
def test_binary_concept_file(capsys, tmp_path, data, needle):
    f = tmp_path / "bin.txt"
    f.write_bytes(data)
    clean_error(capsys, ["unlearn", "--concept", str(f), "--sae", SAE], needle)


def test_unreadable_concept_file(capsys, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    f = concept_file(tmp_path / "locked.txt", 8)
    f.chmod(0)
    clean_error(capsys, ["unlearn", "--concept", str(f), "--sae", SAE], "cannot read concept file")


def test_output_paths_that_are_directories_or_under_a_file(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    (tmp_path / "afile").write_text("x")
    before = tree_snapshot(tmp_path)
    clean_error(capsys, ["unlearn", "--concept", "colors", "--sae", SAE, "--json", str(tmp_path / "out")], "is a directory")
    clean_error(capsys, ["unlearn", "--concept", "colors", "--sae", SAE, "--save-spec", str(tmp_path / "afile" / "s.json")],
                "is a file, not a directory")
    clean_error(capsys, ["unlearn", "--concept", "colors", "--method", "direction", "--save-spec", str(tmp_path / "s.json")],
                "--save-spec needs an SAE method")
    assert_tree_unchanged(tmp_path, before)


def test_saes_from_different_models(capsys, tmp_path):
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(SAE, other)
    cfg = json.loads((other / "cfg.json").read_text())
    cfg["metadata"]["model_name"] = "gpt2"
    (other / "cfg.json").write_text(json.dumps(cfg))
    clean_error(capsys, ["unlearn", "--concept", "colors", "--sae", SAE, str(other)], "SAEs from different models")


def test_concept_the_model_does_not_know(capsys, tmp_path):
    f = concept_file(tmp_path / "wrong.txt", 12, answer="zebra")
    clean_error(capsys, ["unlearn", "--concept", str(f), "--sae", SAE], "nothing to forget")


def test_bad_numbers(capsys):
    clean_error(capsys, ["unlearn", "--concept", "colors", "--sae", SAE, "--n-features", "0"], "--n-features must be at least 1")
    clean_error(capsys, ["unlearn", "--concept", "colors", "--sae", SAE, "--retain-threshold", "2"], "retain_threshold")
    clean_error(capsys, ["unlearn", "--concept", "colors", "--sae", SAE, "--value", "nan"], "not nan")
