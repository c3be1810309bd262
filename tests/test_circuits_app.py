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
    assert len(at.get("graphviz_chart")) == 2 and len(at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart")) >= 2
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


def test_run_now_passes_the_discrete_sae_options(monkeypatch):
    """The options expander reaches the method: the config discrete-sae runs with is recorded."""
    import interp.circuits.run as R

    seen = []
    real = R.discrete_sae_scores
    monkeypatch.setattr(R, "discrete_sae_scores", lambda model, task, cfg: seen.append(cfg) or real(model, task, cfg))
    at = _circuits_page()
    at.multiselect(key="circ_methods").set_value(["discrete-sae"]).run()
    at.selectbox(key="circ_pos").set_value("last").run()
    at.number_input(key="circ_topk").set_value(2).run()
    at.checkbox(key="circ_perlayer").check().run()
    at.checkbox(key="circ_qkv").check().run()
    at.button(key="circ_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(seen) == 1
    cfg = seen[0]
    assert (cfg.position, cfg.top_k_codes, cfg.per_layer, cfg.qkv_edges, cfg.unit_norm) == ("last", 2, True, True, False)
    assert any("ioi on embedded" in s.value for s in at.subheader)
