"""MoE-X training as a background job (`interp.jobs` "moex-train"): result, cancel, output policy, the page's form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp import jobs
from job_helpers import wait_job
from interp.errors import InterpError

# a seconds-long model on weighted-random games (no Stockfish)
TINY = {"arch": "moex", "steps": 6, "seed": 0, "layers": 1, "d_model": 32, "heads": 4, "n_ctx": 64, "experts": 4, "topk": 2,
        "expert_width": 16, "batch_size": 4, "games": 24, "val_games": 8}




def test_moex_train_job_writes_a_loadable_model_and_its_numbers(tmp_path, monkeypatch):
    from interp.moex.model import load_chess_model

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))  # the game store, for the child too
    j = jobs.start("moex-train", dict(TINY), title="tiny", root=tmp_path / "jobs")
    done = wait_job(tmp_path / "jobs", j.id, lambda x: x.state != "running", timeout=120.0)
    assert done.state == "done", (done.reason, (Path(done.dir) / "log.txt").read_text()[-2000:])
    r = done.result()
    assert r["model_dir"] == str(Path(done.dir) / "model")  # a new directory inside the job's own folder
    model, mcfg, mlp, cfg = load_chess_model(r["model_dir"])
    assert (mlp.arch, mlp.n_experts, mlp.top_k, mcfg.n_layers, mcfg.d_model) == ("moex", 4, 2, 1, 32)
    # the result's numbers are the ones the model directory records
    assert r["val_loss"] == pytest.approx(cfg["val_loss"]) and r["legal_move_rate"] == cfg["curve"][-1]["legal_move_rate"]
    assert r["steps"] == 6 and [c["step"] for c in r["curve"]] == [2, 4, 6]  # eval every steps // 3
    assert 0 < r["val_loss"] < 10 and 0 <= r["legal_move_rate"] <= 1 and r["engine"] == "random"
    assert done.progress.fraction == 1.0
    assert json.loads((Path(done.dir) / "result.json").read_text()) == r


def test_cancelled_moex_job_leaves_no_result_and_no_model(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    out = tmp_path / "new-model"
    j = jobs.start("moex-train", {**TINY, "steps": 100_000, "out": str(out)}, root=tmp_path / "jobs")
    wait_job(tmp_path / "jobs", j.id, lambda x: "step" in x.progress.message, timeout=120.0)  # training has started
    c = jobs.cancel(j.id, tmp_path / "jobs")
    assert c.state == "cancelled"
    assert not any(p.name.startswith("result") for p in Path(c.dir).iterdir()) and not (Path(c.dir) / "model").exists()
    assert not out.exists() and not list(tmp_path.glob(".new-model*"))  # no model, no checkpoint, no temporary sibling


def test_moex_job_never_trains_over_an_existing_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    j = jobs.start("moex-train", {**TINY, "out": str(out)}, root=tmp_path / "jobs")
    c = wait_job(tmp_path / "jobs", j.id, lambda x: x.state != "running", timeout=120.0)
    assert c.state == "crashed" and "is not a chess model directory" in c.reason and "\n" not in c.reason
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_moex_train_config_uses_the_cli_rules_and_refuses_unknown_params():
    cfg = jobs.moex_train_config({"arch": "dense-relu", "steps": 30})
    d = jobs.MOEX_JOB_DEFAULTS
    # the CLI's rule: a dense model's width = k x expert width (equal active MLP params), one "expert"
    assert (cfg.mlp.arch, cfg.mlp.d_mlp, cfg.mlp.n_experts) == ("dense-relu", d["topk"] * d["expert_width"], 1)
    assert (cfg.engine, cfg.steps, cfg.eval_every, cfg.checkpoint_every, cfg.warmup) == ("random", 30, 10, 0, 3)
    with pytest.raises(InterpError, match=r"unknown MoE-X training parameter\(s\): layerz"):
        jobs.moex_train_config({"arch": "moex", "layerz": 2})
    with pytest.raises(InterpError, match="--experts 0: must be at least 1"):
        jobs.moex_train_config({"arch": "moex", "experts": 0})


def test_train_form_starts_a_job_with_the_forms_params(tmp_path, monkeypatch):
    """The MoE-X page's form: the job carries the form's architecture, steps and seed and the usual header;
    a path that exists is one error line and starts nothing."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "main.py"), default_timeout=240)
    at.run()
    at.switch_page("pages/moex.py").run()
    assert not at.exception, at.exception
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x.txt").write_text("x")
    at.text_input(key="moex_train_out").input(str(taken)).run()
    at.button(key="moex_train_go").click().run()
    assert not at.exception and len(at.error) == 1 and "is not a chess model directory" in at.error[0].value
    assert jobs.history() == [] and (taken / "x.txt").read_text() == "x"
    at.text_input(key="moex_train_out").input("").run()
    at.selectbox(key="moex_train_arch").set_value("switch").run()
    at.number_input(key="moex_train_steps").set_value(40).run()
    at.number_input(key="moex_train_seed").set_value(3).run()
    at.button(key="moex_train_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (job,) = jobs.history()
    try:
        assert job.kind == "moex-train" and {k: job.params[k] for k in ("arch", "steps", "seed")} == {"arch": "switch", "steps": 40, "seed": 3}
        assert "out" not in job.params  # the model goes into the job's own folder
        assert job.header == "MoE-X training · model chess switch (new) · device cpu · steps 40 · games 400 random · seed 3"
    finally:
        jobs.cancel(job.id)
    assert jobs.get(job.id).state == "cancelled"


def test_a_finished_model_opens_in_the_pages_views(tmp_path, monkeypatch):
    """A trained model from the job history opens in Routing / Units (the page's own views take a
    model directory), both from the page's list and from the jobs panel's "Open result"."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    j = jobs.start("moex-train", dict(TINY), title="Train chess moex")
    done = wait_job(None, j.id, lambda x: x.state != "running", timeout=120.0)
    assert done.state == "done", done.reason
    model_dir = done.result()["model_dir"]
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "main.py"), default_timeout=240)
    at.run()
    at.switch_page("pages/moex.py").run()
    listed = next(df.value for df in at.dataframe if "model directory" in df.value.columns)
    assert list(listed["model directory"]) == [model_dir]
    assert listed["validation loss (nats/char)"].iloc[0] == pytest.approx(done.result()["val_loss"])
    at.button(key="moex_train_open").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.text_input(key="moex_dir").value == model_dir
    assert any(c.value.startswith("moex: 1 layers, d_model 32") for c in at.caption)
    at.radio(key="moex_view").set_value("Routing").run()
    assert not at.exception and not at.error and not at.info  # a MoE model: the routing charts, no "no router"
    assert len(at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart")) == 3
    # the jobs panel's "Open result" (AppTest drops the sidebar after a page switch: its session entry is set here)
    at.text_input(key="moex_dir").input("").run()
    at.session_state["open_job"] = {"moex-train": j.id}
    at.run()
    assert at.text_input(key="moex_dir").value == model_dir
