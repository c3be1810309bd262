"""AppTest for the Feature circuits page: build a graph as a background job and open it (also from the
jobs history), prune it, pin nodes and name a supernode, run an intervention, read the head-level view;
bad input shows one error line and starts no job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    at.switch_page("pages/graph.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Feature circuits"
    return at


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """Jobs land under a temporary INTERP_HOME."""
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _build_as_job(at):
    """Click "Build graph": one "graph" job starts and the page says so; wait for it and rerun (as the
    jobs panel does when a job ends): the graph opens. Returns the job."""
    from interp import jobs

    at.button(key="g_build").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (job,) = jobs.history()
    assert job.kind == "graph" and at.session_state["g_job"] == job.id
    assert job.state != "running" or any("background job" in i.value for i in at.info)
    t0 = time.time()
    while jobs.get(job.id).state == "running" and time.time() - t0 < 300:
        time.sleep(0.2)
    job = jobs.get(job.id)
    assert job.state == "done", (job.state, job.reason)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return job


def _caption_counts(at) -> tuple[int, int]:
    cap = next(c.value for c in at.caption if c.value.startswith("After pruning"))
    feats = int(cap.split("After pruning: ")[1].split(" features")[0])
    edges = int(cap.split(" nodes, ")[1].split(" edges")[0])
    return feats, edges


@pytest.mark.slow  # about 25 s: the job loads the model in its own process, then two sessions
def test_build_runs_as_a_job_and_its_graph_opens_here_and_from_the_history(home):
    """The page starts a "graph" job with the model, transcoders, prompt and target in its parameters and
    header; the finished graph (the job's result_graph.safetensors) is what the page shows, and a new
    session opens it from the jobs history ("Open result")."""
    from interp.graphs import load_graph

    at = _page()
    at.text_input(key="g_prompt").input("The animal that says moo is the").run()
    at.radio(key="g_tkind").set_value("Given tokens").run()
    at.text_input(key="g_targets").input(" cow").run()
    job = _build_as_job(at)
    tc = str(Path(MAIN).parents[1] / "transcoders" / "embedded")
    assert job.params == {"model": "embedded", "device": job.params["device"], "transcoders": tc,
                          "prompt": "The animal that says moo is the", "target": [" cow"], "diff": None}
    assert job.header.startswith("Attribution graph · model embedded · transcoders ") and "target ' cow'" in job.header
    saved = load_graph(Path(job.dir) / job.result()["graph"])
    shown = at.session_state["g_graph"]
    assert shown.prompt == saved.prompt and shown.logit_tokens == [" cow"] and (shown.adjacency == saved.adjacency).all()
    assert any(f"{saved.n_features} feature nodes" in m.value for m in at.markdown)
    # a new session (after a restart, say) opens it from the history, as the jobs panel's "Open result" does
    at2 = _page()
    at2.text_input(key="g_model").input("no-such-model").run()  # the shown graph keeps its own model
    at2.session_state["open_job"] = {"graph": job.id}
    at2.run()
    assert not at2.exception, at2.exception
    assert not at2.error, [e.value for e in at2.error]
    assert at2.session_state["g_graph"].prompt == saved.prompt and at2.session_state["g_src"] == ("embedded", tc)
    assert _caption_counts(at2)[0] > 0


@pytest.mark.slow
def test_build_prune_pin_group_intervene_and_heads(home):
    at = _page()
    at.text_input(key="g_prompt").input("The animal that says moo is the").run()
    at.radio(key="g_tkind").set_value("Logit difference").run()
    at.text_input(key="g_diff_a").input(" cow").run()
    at.text_input(key="g_diff_b").input(" pig").run()
    _build_as_job(at)
    assert "logit( cow)-logit( pig)" in at.markdown[0].value or any("logit( cow)-logit( pig)" in m.value for m in at.markdown)
    f80, e80 = _caption_counts(at)
    at.slider(key="g_node_thr").set_value(0.5).run()
    f50, e50 = _caption_counts(at)
    assert f50 <= f80 and e50 <= e80 and f80 > 0
    # pin the first feature node, group it as a supernode, and see it in the viewer JSON qParams
    labels = at.selectbox(key="g_node").options  # shown labels, e.g. "L1 F23 @3 ' moo'"
    at.selectbox(key="g_node").select_index(next(i for i, lab in enumerate(labels) if " F" in lab)).run()
    at.button(key="g_feature_page").click().run()
    assert not at.exception, at.exception
    ctx = at.session_state["g_feature_ctx"][1]
    assert ctx and all(r["activation"] > 0 for r in ctx) and ctx[0]["activation"] >= ctx[-1]["activation"]
    at.button(key="g_pin").click().run()
    assert not at.exception, at.exception
    assert len(at.session_state["g_pinned_sel"]) == 1
    at.text_input(key="g_super_name").input("cow detector").run()
    at.button(key="g_group").click().run()
    assert "cow detector" in at.session_state["g_supernodes"]
    # ablate the pinned feature: the result table has predicted and measured columns with numbers
    at.multiselect(key="g_int_feats").set_value(list(at.session_state["g_pinned_sel"])).run()
    at.button(key="g_int_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.session_state["g_int_result"]
    assert list(table.columns) == ["logit node", "clean", "predicted change", "measured change"]
    assert table["measured change"].abs().sum() > 0
    assert len(at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart")) >= 2  # the graph and the head-level bars


def test_bad_inputs_show_one_line_errors(tmp_path, home):
    from interp import jobs

    at = _page()
    at.radio(key="g_tkind").set_value("Given tokens").run()
    at.text_input(key="g_targets").input(" Mary John").run()
    at.button(key="g_build").click().run()
    assert not at.exception
    assert "is 2 tokens, not one" in at.error[0].value and "\n" not in at.error[0].value
    assert jobs.history() == []  # refused before any job started
    at = _page()
    at.radio(key="g_mode").set_value("Load a graph file").run()
    bad = tmp_path / "x.graph.safetensors"
    bad.write_text(json.dumps({"nope": 1}))
    at.text_input(key="g_path").input(str(bad)).run()
    at.button(key="g_load").click().run()
    assert not at.exception
    assert "is not a readable graph file" in at.error[0].value
