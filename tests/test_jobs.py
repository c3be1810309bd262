"""interp.jobs: a library call in a child process with overall progress, cancel and a history."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from interp import jobs
from job_helpers import wait_job
from interp.errors import InterpError




def test_a_job_reports_progress_and_lands_its_result_in_the_history(tmp_path):
    j = jobs.start("sleep", {"seconds": 1.0, "steps": 5}, title="nap", header="model embedded · seed 0", root=tmp_path)
    assert j.state == "running" and j.title == "nap"
    mid = wait_job(tmp_path, j.id, lambda x: x.progress.done > 0)
    assert 0 < mid.progress.fraction <= 1 and mid.progress.elapsed_s > 0
    done = wait_job(tmp_path, j.id, lambda x: x.state != "running")
    assert done.state == "done" and done.result() == {"slept": 1.0, "steps": 5}
    assert done.progress.fraction == 1.0 and done.header == "model embedded · seed 0"
    assert [h.id for h in jobs.history(tmp_path)] == [j.id]


def test_cancel_kills_the_process_group_and_leaves_no_result(tmp_path):
    j = jobs.start("sleep", {"seconds": 60.0, "steps": 600}, root=tmp_path)
    wait_job(tmp_path, j.id, lambda x: x.progress.done > 0)
    pid = jobs.get(j.id, tmp_path).pid
    c = jobs.cancel(j.id, tmp_path)
    assert c.state == "cancelled" and c.reason == "cancelled by the user"
    assert not jobs._pid_alive(pid)
    assert not any(p.name.startswith("result") for p in Path(c.dir).iterdir())
    with pytest.raises(InterpError, match="has no result"):
        c.result()
    assert jobs.cancel(j.id, tmp_path).state == "cancelled"  # cancelling twice changes nothing


def test_a_crashed_job_says_why_and_survives_a_restart(tmp_path):
    j = jobs.start("sleep", {"seconds": 0.4, "steps": 4, "fail": "the concept file is empty"}, root=tmp_path)
    c = wait_job(tmp_path, j.id, lambda x: x.state != "running")
    assert c.state == "crashed" and c.reason == "the concept file is empty"
    assert not (Path(c.dir) / "result.json").exists()
    # a job whose process vanished without a word (server killed, machine rebooted): crashed, with a reason
    ghost = tmp_path / "20000101-000000-dead00"
    ghost.mkdir()
    (ghost / "job.json").write_text(json.dumps({"id": ghost.name, "kind": "sleep", "title": "t", "params": {}, "created": 0}))
    (ghost / "pid.json").write_text(json.dumps({"pid": 2 ** 22 + 12345}))
    jobs._CHILDREN.clear()  # as after an app restart: only the files are left
    hist = jobs.history(tmp_path)
    assert [h.id for h in hist] == [j.id, ghost.name]  # newest first
    assert hist[1].state == "crashed" and "ended without a result" in hist[1].reason


def test_bad_job_requests_are_one_line_errors_before_anything_starts(tmp_path):
    with pytest.raises(InterpError, match="unknown job kind 'nope'"):
        jobs.start("nope", {}, root=tmp_path)
    with pytest.raises(InterpError, match="plain JSON values"):
        jobs.start("sleep", {"x": object()}, root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InterpError, match="bad job id"):
        jobs.get("../etc", tmp_path)


def test_a_job_started_from_a_short_lived_thread_outlives_it(tmp_path):
    """Streamlit draws each page on its own thread: a job must not die with that thread
    (PR_SET_PDEATHSIG fires when the forking thread exits)."""
    import threading

    box = []
    t = threading.Thread(target=lambda: box.append(jobs.start("sleep", {"seconds": 1.5, "steps": 3}, root=tmp_path)))
    t.start()
    t.join()
    time.sleep(0.5)
    assert jobs.get(box[0].id, tmp_path).state == "running"
    assert wait_job(tmp_path, box[0].id, lambda x: x.state != "running").state == "done"


def test_history_with_a_limit_reads_the_newest_finished_and_every_running_job(tmp_path):
    for i, state in enumerate(["done", "running", "done", "done"]):  # oldest first
        d = tmp_path / f"2026010{i}-000000-aaaaa{i}"
        d.mkdir()
        (d / "job.json").write_text(json.dumps({"id": d.name, "kind": "sleep", "title": str(i), "params": {}, "created": i}))
        if state == "done":
            (d / "status.json").write_text(json.dumps({"state": "done", "finished": i}))
        else:
            (d / "pid.json").write_text(json.dumps({"pid": os.getpid()}))  # alive: this test's own process
    assert [j.title for j in jobs.history(tmp_path)] == ["3", "2", "1", "0"]
    assert [j.title for j in jobs.history(tmp_path, limit=1)] == ["3", "1"]  # the newest done, and the running one


@pytest.mark.slow
def test_an_sae_training_job_writes_an_sae_that_loads(tmp_path):
    """The same call as `interp train-sae`, in a job: the SAE lands in its directory and opens with SAELens."""
    from dataclasses import asdict

    from interp.sae.config import SAETrainConfig
    from interp.sae.io import load_sae

    cfg = SAETrainConfig(hook="blocks.0.hook_resid_post", d_sae=64, k=4, tokens=4096, batch_size=512)
    out = tmp_path / "sae"
    j = jobs.start("sae-training", {"config": asdict(cfg), "out": str(out), "eval_tokens": 1024}, root=tmp_path / "jobs")
    done = wait_job(tmp_path / "jobs", j.id, lambda x: x.state != "running", timeout=600)
    assert done.state == "done", done.reason
    res = done.result()
    assert res["out_dir"] == str(out) and 0 < res["metrics"]["l0"] <= 4.0 + 1e-6
    assert load_sae(out).cfg.d_sae == 64


def test_job_titles_from_user_text_show_as_text_not_markdown(tmp_path, monkeypatch):
    """A graph job's title carries the user's prompt: `*`, `$` and backticks must show as written in
    the jobs panel, not as emphasis, LaTeX or code (the panel rendered them as Markdown)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INTERP_HOME", str(tmp_path))
    from interp import jobs

    title = "graph · *Mary* paid $5 for `x`"
    j = jobs.start("sleep", {"seconds": 0.2, "steps": 2}, title=title, header="prompt *x*")
    for _ in range(300):
        if jobs.get(j.id).state != "running":
            break
        time.sleep(0.1)

    def page():
        from app.jobs_panel import _panel_body

        _panel_body()

    at = AppTest.from_function(page, default_timeout=60).run()
    shown = [m.value for m in at.markdown]
    assert any(r"\*Mary\* paid \$5 for \`x\`" in v for v in shown), shown
    assert not any("*Mary*" in v.replace(r"\*", "") for v in shown)
