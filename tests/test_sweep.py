"""`interp sweep`: a 2-trial SAE grid on a local Ray instance (num_cpus=2) finishes and a rerun
skips both; a grown grid runs only the new trial (process pool); grids and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from interp import sweep as S
from interp.errors import InterpError

HOOK = "blocks.1.hook_resid_post"
BASE = dict(hook=HOOK, tokens=40 * 64, batch_size=64, checkpoint_every=0)


@pytest.fixture(autouse=True)
def _pythonpath(monkeypatch):
    # Ray workers and pool processes import this checkout's `interp`.
    repo = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_grid_and_sae_trials():
    assert S.grid(a=[1, 2], b=["x"], c=None) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    trials = S.sae_trials(BASE, arch=["topk", "standard"], d_sae=[32], k=[4, 8], l1=[0.5])
    # k goes to topk only, l1 to standard only; the standard point is not duplicated per k.
    assert [(t.params["arch"], t.params.get("k"), t.params.get("l1")) for t in trials] == [
        ("topk", 4, None), ("topk", 8, None), ("standard", None, 0.5)]
    assert len({t.id for t in trials}) == 3
    assert S.Trial("sae", dict(trials[0].params)).id == trials[0].id  # ids are stable
    with pytest.raises(InterpError, match="--k 64 is larger than --d-sae 32"):
        S.sae_trials(BASE, d_sae=[32], k=[64])


def test_command_trials_check_their_flags_before_running():
    trials = S.cmd_trials(["unlearn", "--concept", "animals"], value=[-25, -50], sweep=[True])
    assert len(trials) == 2
    assert S._cmd_argv(trials[0].command, trials[0].params, "r.json") == [
        "unlearn", "--concept", "animals", "--value", "-25", "--sweep", "--json", "r.json"]
    with pytest.raises(InterpError, match="does not accept the swept settings"):
        S.cmd_trials(["unlearn", "--concept", "animals"], no_such_flag=[1])


def test_unreachable_ray_address_is_one_line_before_any_work(tmp_path, monkeypatch):
    from interp.distributed import free_port

    monkeypatch.setattr(S, "RAY_CONNECT_TIMEOUT_S", 1.0)
    port = free_port()
    with pytest.raises(InterpError, match=rf"--ray 127.0.0.1:{port}: cannot reach the Ray cluster at 127.0.0.1:{port} within 1s"):
        S.run_sweep(S.sae_trials(BASE, d_sae=[32], k=[4]), tmp_path / "sw", ray=f"127.0.0.1:{port}")
    assert not (tmp_path / "sw").exists()
    with pytest.raises(InterpError, match="expected auto, HOST:PORT"):
        S.check_ray_address("nowhere")


def test_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(InterpError, match="is not an interp sweep"):
        S.run_sweep(S.sae_trials(BASE, d_sae=[32], k=[4]), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


@pytest.mark.slow
def test_ray_sweep_finishes_and_a_rerun_skips_both(tmp_path):
    pytest.importorskip("ray")
    trials = S.sae_trials(BASE, d_sae=[32], k=[4, 8])
    try:
        res = S.run_sweep(trials, tmp_path / "sw", ray="auto", workers=2, eval_tokens=256)
    except InterpError as e:
        # Ray waits a fixed 30 s for a local raylet (ray/_private/node.py); on a machine whose load
        # is many times its cores that is missed three times over. Anything else fails the test.
        if "timed out during startup" in str(e):
            pytest.skip(f"Ray could not start a local node on this overloaded machine: {e}")
        raise
    assert res.failed == [], res.rows
    assert sorted(res.ran) == sorted(t.id for t in trials) and res.skipped == []
    assert res.backend == "ray (local instance)"
    rows = json.loads((tmp_path / "sw" / "results.json").read_text())
    assert [r["id"] for r in rows] == [t.id for t in trials]
    assert [r["k"] for r in rows] == [4, 8] and all(r["status"] == "ok" for r in rows)
    for r in rows:  # the metrics in the table are the saved SAE's
        m = json.loads((tmp_path / "sw" / r["sae_dir"] / "metrics.json").read_text())
        assert r["l0"] == m["l0"] and r["explained_variance"] == m["explained_variance"]
        assert 0 < r["l0"] <= r["k"] + 1e-6  # a TopK SAE fires at most k latents per token
    table = (tmp_path / "sw" / "results.md").read_text()
    assert table.count("\n") == 4 and all(r["id"] in table for r in rows)
    stamp = {r["id"]: (tmp_path / "sw" / "trials" / f"{r['id']}.json").stat().st_mtime_ns for r in rows}

    again = S.run_sweep(trials, tmp_path / "sw", ray="auto", workers=2, eval_tokens=256)
    assert again.ran == [] and sorted(again.skipped) == sorted(stamp)
    assert again.rows == rows
    assert {i: (tmp_path / "sw" / "trials" / f"{i}.json").stat().st_mtime_ns for i in stamp} == stamp

    # A grown grid, now in a local process pool: only the new trial runs.
    grown = trials + S.sae_trials(BASE, d_sae=[32], k=[2])
    third = S.run_sweep(grown, tmp_path / "sw", ray=None, workers=2, eval_tokens=256)
    assert third.ran == [grown[2].id] and sorted(third.skipped) == sorted(stamp) and third.failed == []
    assert [r["k"] for r in json.loads((tmp_path / "sw" / "results.json").read_text())] == [4, 8, 2]
