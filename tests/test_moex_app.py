"""AppTest for the MoE-X page: shipped models, comparison table, routing charts, unit browser, errors."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _moex_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    at.switch_page("pages/moex.py").run()
    assert not at.exception, at.exception
    return at


def _charts(at) -> int:
    return len(at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"))


def test_moex_page_shows_comparison_routing_and_units():
    at = _moex_page()
    assert at.title[0].value == "MoE-X sparse experts"
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="moex_model").value == "moex"
    tables = [df.value for df in at.dataframe]
    comparison = tables[0]
    assert {"dense-gelu", "dense-gelu+sae", "switch", "moex", "moex-upcycled"} <= set(comparison["model"])
    assert _charts(at) >= 5  # comparison, load, active units, estimate vs measured, board heatmap
    units = next(t for t in tables if "best cell" in t.columns)
    assert len(units) > 0 and units["F1"].is_monotonic_decreasing and units["t"].between(0, 0.9).all()
    # another expert and a piece filter re-draw without errors
    at.number_input(key="moex_expert").set_value(1).run()
    at.selectbox(key="moex_piece").set_value("P").run()
    assert not at.exception and not at.error


def test_dense_model_has_no_router_and_bad_dir_is_one_error():
    at = _moex_page()
    at.selectbox(key="moex_model").set_value("dense-gelu").run()
    assert not at.exception
    assert any("no router" in i.value for i in at.info)
    at.text_input(key="moex_dir").input("/nonexistent/dir").run()
    assert not at.exception
    assert len(at.error) == 1 and "not a chess model directory" in at.error[0].value
