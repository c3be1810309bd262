"""Bad input to `interp features` / `interp report`: one line on stderr, exit 2, no traceback,
nothing written or changed, and the check happens before any work. Most cases call the CLI in
process (fast); one goes through a real subprocess with tests/faults.py `run_cli`."""

from __future__ import annotations

import pytest

from faults import assert_clean_error, assert_tree_unchanged, run_cli, tree_snapshot
from interp.cli import main
from test_features_fixtures import save_tiny_sae

_snapshot = tree_snapshot


def _clean_error(capsys, argv: list[str], match: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (argv, rc, err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def sae_with_stats(tmp_path_factory, model):
    from interp import features as F

    d = save_tiny_sae(model, tmp_path_factory.mktemp("f") / "sae", d_sae=8, k=2)
    F.build_for_sae_dir(d, F.StatsConfig(n_tokens=512, top_k=3, reservoir=4, n_quantile=2), model=model)
    return d


def test_report_bad_inputs(capsys, tmp_path, sae_with_stats, monkeypatch):
    import interp.features.store as store

    calls = []
    monkeypatch.setattr(store, "load_file", lambda *a, **k: calls.append(a))
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    before = _snapshot(tmp_path)
    _clean_error(capsys, ["report", "--sae", str(sae_with_stats), "--out", str(a_file / "r.html")], "is a file, not a directory")
    _clean_error(capsys, ["report", "--sae", str(sae_with_stats), "--out", str(tmp_path)], "is a directory")
    assert not calls  # the output path was refused before the statistics were read
    monkeypatch.undo()
    _clean_error(capsys, ["report", "--sae", str(sae_with_stats), "--features", "0-999999999", "--out", str(tmp_path / "r.html")],
                 "out of range")
    _clean_error(capsys, ["report", "--sae", str(sae_with_stats), "--features", "x-y", "--out", str(tmp_path / "r.html")], "bad feature list")
    _clean_error(capsys, ["report", "--sae", str(tmp_path), "--out", str(tmp_path / "r.html")], "no feature statistics yet")
    assert_tree_unchanged(tmp_path, before)  # nothing written, the user's file untouched


@pytest.mark.parametrize("extra,match", [(["--tokens", "0"], "--tokens must be positive"),
                                         (["--tokens", "-5"], "--tokens must be positive"),
                                         (["--batch-size", "0"], "batch_size must be"),
                                         (["--top-k", "0"], "top_k must be"),
                                         (["--threads", "0"], "--threads must be >= 1")])
def test_features_bad_numbers(capsys, sae_with_stats, extra, match):
    before = _snapshot(sae_with_stats)
    _clean_error(capsys, ["features", "--sae", str(sae_with_stats), *extra], match)
    assert_tree_unchanged(sae_with_stats, before)


def test_features_bad_paths_and_nan_sae(capsys, tmp_path, model):
    from safetensors.torch import load_file, save_file

    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    _clean_error(capsys, ["features", "--sae", str(a_file)], "not an SAE directory")
    _clean_error(capsys, ["features", "--neurons", "0", "--out", str(a_file)], "is a file; give a directory path")
    _clean_error(capsys, ["features", "--neurons", "0", "--out", str(a_file / "sub")], "is a file, not a directory")
    _clean_error(capsys, ["features", "--sae", str(tmp_path), "--neurons", "0"], "exactly one of")
    assert a_file.read_text() == "mine"
    d = save_tiny_sae(model, tmp_path / "nan", d_sae=8, k=2)
    w = load_file(str(d / "sae_weights.safetensors"))
    w["W_dec"][1, 1] = float("inf")
    save_file(w, str(d / "sae_weights.safetensors"))
    before = _snapshot(d)
    _clean_error(capsys, ["features", "--sae", str(d), "--tokens", "256"], "NaN/Inf")
    assert_tree_unchanged(d, before)  # no statistics written for a broken SAE


def test_report_to_a_file_path_in_a_subprocess(tmp_path, sae_with_stats):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    before = tree_snapshot(tmp_path)
    r = run_cli(["report", "--sae", str(sae_with_stats), "--features", "0-999999999", "--out", str(a_file / "r.html")])
    assert_clean_error(r, "is a file, not a directory")
    assert_tree_unchanged(tmp_path, before)
