"""The testbed's ship / rebuild scripts (issue 25): what they refuse, what they compute, nothing
touched on a refusal."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"testbed_{name}", ROOT / "benchmarks" / "testbed" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_build(out: Path, build: dict, misses: dict) -> None:
    (out / "tokenizer").mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"\0" * 1000)
    (out / "config.json").write_text("{}")
    line = "all 3 targets met" if not misses else "MISSES 1 of 3 targets: x"
    (out / "model_card.json").write_text(json.dumps({"build": build, "target_misses": misses, "target_line": line}))


def test_ship_refuses_unfinished_foreign_or_missing_builds_and_touches_nothing(tmp_path, capsys):
    ship = _load("ship")
    repo = tmp_path / "repo"
    (repo / "interp" / "embedded").mkdir(parents=True)
    old = repo / "interp" / "embedded" / "model.safetensors"
    old.write_bytes(b"old")
    root = tmp_path / "runs"
    assert "no finished build" in ship.check("embedded", root / "out" / "embedded", False, True)
    _fake_build(root / "out" / "embedded", {"lr": 1}, {})
    assert "another config than the testbed recipe" in ship.check("embedded", root / "out" / "embedded", False, True)
    good = ship.expected_build("embedded", True)
    (root / "out" / "embedded" / "model_card.json").write_text(json.dumps({"build": good, "target_misses": {"x": 0.1},
                                                                            "target_line": "MISSES 1 of 3 targets: x"}))
    why = ship.check("embedded", root / "out" / "embedded", False, True)
    assert why.startswith("embedded: misses targets (MISSES 1 of 3") and why.endswith("pass --accept-misses to ship it anyway")
    assert ship.check("embedded", root / "out" / "embedded", True, True) == ""
    assert ship.main(["--root", str(root), "--models", "embedded", "--repo", str(repo), "--quick"]) == 2
    assert capsys.readouterr().err.startswith("error: embedded: misses targets")
    assert old.read_bytes() == b"old"  # refused: nothing moved


def test_ship_swaps_in_the_build_and_keeps_the_old_one(tmp_path):
    ship = _load("ship")
    repo, root = tmp_path / "repo", tmp_path / "runs"
    (repo / "interp" / "embedded_attn").mkdir(parents=True)
    (repo / "interp" / "embedded_attn" / "model.safetensors").write_bytes(b"old")
    _fake_build(root / "out" / "embedded-attn", ship.expected_build("embedded-attn", True), {})
    # budget: the replaced directory's weights are not counted, the new ones are
    assert ship.budget_after(repo, {"interp/embedded_attn": root / "out" / "embedded-attn"}) == 1000
    assert ship.main(["--root", str(root), "--models", "embedded-attn", "--repo", str(repo), "--quick"]) == 0
    assert (repo / "interp" / "embedded_attn" / "model.safetensors").read_bytes() == b"\0" * 1000
    kept = list((root / "replaced").glob("embedded-attn-*/model.safetensors"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"old"
    assert not (repo / "interp" / "embedded_attn.incoming").exists()


def test_rebuild_quick_refuses_the_real_checkout_and_lists_every_step(capsys):
    rebuild = _load("rebuild")
    assert rebuild.main(["--quick"]) == 2
    assert "give --repo a scratch copy of the repository (not a git checkout)" in capsys.readouterr().err
    assert rebuild.main(["--list", "--log", "/tmp/unused-testbed-log"]) == 0
    out = capsys.readouterr().out
    for step in rebuild.STEPS:
        assert f"{step}: " in out
    assert "--seeds 10 --other-seeds 10 --acdc-seeds 10" in out and "benchmarks/testbed/card_refs.py" in out


def test_card_reference_entry():
    card_refs = _load("card_refs")
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = True
    e = card_refs.reference_entry(SimpleNamespace(mask=mask, heads=[(1, 2), (3, 0)]))
    assert e["layers"] == [1, 3] and e["heads"] == [[1, 2], [3, 0]] and e["layer_only_target"] == 0.75
    # later layers first: the layer-3 head beats the 23 negatives of layers 0-2 (layer 1 holds 7) and ties 7; the
    # layer-1 head beats 8 and ties 7 -> (26.5 + 11.5) / (2 x 30) = 0.6333 (earlier first: 22 / 60)
    assert e["layer_only_auc"] == 0.6333 and e["layer_only_met"] is True
    assert card_refs.reference_entry(None) == {"reference": None}
    empty = card_refs.reference_entry(SimpleNamespace(mask=torch.zeros(2, 2, dtype=torch.bool), heads=[]))
    assert empty["layer_only_auc"] is None and empty["layers"] == [] and json.dumps(empty, allow_nan=False)


def test_curve_table_counts_phase2_after_phase1(tmp_path):
    curve = _load("curve")
    m = {"ioi_accuracy": 0.5, "ioi_logit_diff": -1.25, "greater_than_prob_diff": 0.7, "docstring_accuracy": 0.125}
    (tmp_path / "phase1_evals.jsonl").write_text(json.dumps({"step": 300, "seen": m, "heldout": m}) + "\n")
    (tmp_path / "phase2_evals.jsonl").write_text(json.dumps({"step": 100, "seen": m, "heldout": m}) + "\n")
    (tmp_path / "phase1_ckpt.json").write_text(json.dumps({"config": {"steps": 4200}}))
    rows = curve.table(tmp_path).splitlines()
    assert rows[2] == "| 300 | 1 | 0.50 / -1.25 | 0.50 / -1.25 | 0.70 | 0.70 | 0.12 | 0.12 |"
    assert rows[3].startswith("| 4300 | 2 |") and len(rows) == 4


def test_train_lock_refuses_a_live_holder_and_takes_a_stale_one(tmp_path):
    import os
    import subprocess
    import sys

    train = _load("train")
    lock = tmp_path / "train.lock"
    assert train.take_lock(lock) and lock.read_text().strip() == str(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.write_text(f"{child.pid}\n")
        assert not train.take_lock(lock)  # a live process holds it
    finally:
        child.kill()
        child.wait()
    assert train.take_lock(lock) and lock.read_text().strip() == str(os.getpid())  # its process is gone
