"""AppTest for the Circuits page: load a saved result, see the charts and tables, send a head to the
Prompt lab; bad input shows one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from interp.circuits.run import CircuitResult, MethodRun

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture()
def result_file(tmp_path):
    ref = {"model": "embedded", "task": "ioi", "fingerprint": "x", "heads": [[0, 1], [1, 0]], "n_layers": 2, "n_heads": 2,
           "keep": 0.9, "full_metric": 2.0, "circuit_metric": 1.9, "faithfulness": 0.95, "n_prompts": 8, "n_forward": 11, "seconds": 0.1}
    runs = [MethodRun(m, s, [[0.1, 3.0], [2.0, 0.0]], [[0, 1], [1, 0]], 0.5 + s, 1.0, 1.0, float("nan"), 1.0, 1.0, 1.0, 0.97, 2,
                      [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]) for m in ("discrete-sae", "patching") for s in range(2)]
    res = CircuitResult("embedded", "ioi", 2, 2, 2.0, 0.1, True, ref, runs).summarize()
    return res.save(tmp_path / "ioi.json")


def _circuits_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page("pages/circuits.py").run()
    assert not at.exception, at.exception
    return at


def test_page_loads_a_result_and_sends_a_head_to_prompt_lab(result_file):
    at = _circuits_page()
    assert at.title[0].value == "Circuits"
    at.radio(key="circ_mode").set_value("Load saved result").run()
    at.text_input(key="circ_path").input(str(result_file)).run()
    at.button(key="circ_load").click().run()
    assert not at.exception, at.exception
    assert not at.error
    assert any("ioi on embedded" in s.value for s in at.subheader)
    table = at.dataframe[0].value
    assert list(table["method"]) == ["discrete-sae", "patching"] and table["seeds"].tolist() == [2, 2]
    # numbers audit: every cell of the methods table is the library's (comparison_frame), no column cut
    from interp.circuits.views import comparison_frame

    lib = comparison_frame(CircuitResult.load(result_file))
    assert list(table.columns) == list(lib.columns) and table.astype(str).values.tolist() == lib.astype(str).values.tolist()
    # the layered circuit graph, the head heatmap, the ROC curves (tabs: all drawn)
    assert len(at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart")) >= 3
    at.selectbox(key="circ_head").set_value("1.0").run()
    at.button(key="circ_send").click().run()
    assert at.session_state["ablate_heads"] == [(1, 0)]


def test_bad_inputs_show_one_line_errors(tmp_path):
    at = _circuits_page()
    at.radio(key="circ_mode").set_value("Load saved result").run()
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"nope": 1}))
    at.text_input(key="circ_path").input(str(bad)).run()
    at.button(key="circ_load").click().run()
    assert not at.exception
    assert "is not a circuits result file" in at.error[0].value and "\n" not in at.error[0].value
    at.radio(key="circ_mode").set_value("Run now").run()
    at.selectbox(key="circ_task").set_value("custom JSONL file").run()
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"positive": "a b", "negative": "a c"}))
    at.text_input(key="circ_task_file").input(str(f)).run()
    at.button(key="circ_run").click().run()
    assert not at.exception
    assert "line 1: missing field answer" in at.error[0].value


def test_run_now_starts_a_job_with_the_discrete_sae_options(tmp_path, monkeypatch):
    """The options expander reaches the method: the job's parameters give exactly that config, and
    the page stays usable (the run is a background job, cancelled here)."""
    from interp import jobs

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    at = _circuits_page()
    at.multiselect(key="circ_methods").set_value(["discrete-sae"]).run()
    at.selectbox(key="circ_preset").set_value("legacy").run()  # the quick one: codes on 10 pairs
    at.selectbox(key="circ_pos").set_value("last").run()
    at.number_input(key="circ_topk").set_value(2).run()
    at.checkbox(key="circ_perlayer").check().run()
    at.checkbox(key="circ_qkv").check().run()
    at.button(key="circ_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (job,) = jobs.history()
    try:
        assert job.kind == "circuits" and job.params["methods"] == ["discrete-sae"] and job.params["task"] == "ioi"
        cfg = jobs.circuit_config(job.params).sae
        assert (cfg.position, cfg.top_k_codes, cfg.per_layer, cfg.qkv_edges, cfg.unit_norm) == ("last", 2, True, True, False)
        assert (cfg.arch, cfg.n_read) == ("standard", 0)  # the legacy preset reached the method
        assert "model embedded" in job.header and "methods discrete-sae" in job.header and "seeds 1" in job.header
        assert any("background job" in i.value for i in at.info)
    finally:
        jobs.cancel(job.id)
    assert jobs.get(job.id).state == "cancelled"


def _two_results(tmp_path, monkeypatch):
    """Two saved results (ioi, then docstring: the newest first in the list) in the user results dir."""
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    from interp.circuits.views import results_dir

    out = {}
    for task in ("ioi", "docstring"):
        runs = [MethodRun("eap", 0, [[0.1, 3.0], [2.0, 0.0]], [[0, 1]], 0.5, 1.0, float("nan"), float("nan"), float("nan"),
                          float("nan"), float("nan"), 0.9, 1, [], cpr=0.7, cmd=0.3,
                          curves={"node": {"x": [0.0, 0.25, 0.5, 1.0], "f": [0.0, 0.6, 0.9, 1.0]},
                                  "node_mean": {"x": [0.0, 1.0], "f": [0.0, 1.0]}},
                          edge_scores=[[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
                                       [[[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])]
        out[task] = CircuitResult("embedded", task, 2, 2, 2.0, 0.1, True, None, runs).summarize().save(results_dir() / f"{task}.json")
    return out


def test_choosing_a_saved_file_loads_that_file(tmp_path, monkeypatch):
    """Bug (issue 14): choosing ioi.json left the path box at docstring.json and loaded docstring.
    With the old page this test failed: the path box kept the first file's path."""
    files = _two_results(tmp_path, monkeypatch)
    at = _circuits_page()
    at.radio(key="circ_mode").set_value("Load saved result").run()
    at.selectbox(key="circ_file").set_value(str(files["docstring"])).run()
    assert at.text_input(key="circ_path").value == str(files["docstring"])
    at.selectbox(key="circ_file").set_value(str(files["ioi"])).run()
    assert at.text_input(key="circ_path").value == str(files["ioi"])
    at.button(key="circ_load").click().run()
    assert not at.exception, at.exception
    assert any(s.value == "ioi on embedded" for s in at.subheader)


def test_reference_free_result_shows_curves_and_scored_edges_only(tmp_path, monkeypatch):
    files = _two_results(tmp_path, monkeypatch)
    at = _circuits_page()
    at.radio(key="circ_mode").set_value("Load saved result").run()
    at.text_input(key="circ_path").input(str(files["ioi"])).run()
    at.button(key="circ_load").click().run()
    assert not at.exception, at.exception
    assert not at.error
    charts = at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart")
    assert len(charts) >= 3  # the graph, the head heatmap, the faithfulness curves
    from interp.circuits.views import graph_frames

    nodes, edges = graph_frames(CircuitResult.load(files["ioi"]), "eap")
    assert not edges.scored.any()  # only 0.1 chosen: no scored edge inside the circuit, only its input / logits links
    assert set(zip(edges.source, edges.target)) == {("input", "0.1"), ("0.1", "logits")}
    assert any("No reference circuit" in m.value for m in at.markdown)


def test_page_state_survives_navigation(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    at = _circuits_page()
    at.multiselect(key="circ_methods").set_value(["eap", "eap-ig"]).run()
    at.selectbox(key="circ_preset").set_value("legacy").run()
    at.switch_page("pages/prompt_lab.py").run()
    at.switch_page("pages/circuits.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="circ_methods").value == ["eap", "eap-ig"]
    assert at.selectbox(key="circ_preset").value == "legacy"
