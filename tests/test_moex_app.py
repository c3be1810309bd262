"""AppTest for the MoE-X page: shipped models, lazily computed views, the unit browser, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _moex_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=240)
    at.run()
    at.switch_page("pages/moex.py").run()
    assert not at.exception, at.exception
    return at


def _charts(at) -> int:
    return len(at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"))


def test_moex_page_computes_only_the_open_view_and_hides_lm_pickers():
    at = _moex_page()
    assert at.title[0].value == "MoE-X sparse experts"
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="moex_model").value == "moex"
    assert not [s for s in at.sidebar.selectbox if s.label in ("Model", "SAE")]  # the LM / SAE pickers do not apply
    comparison = at.dataframe[0].value
    assert {"dense-gelu", "dense-gelu+sae", "switch", "moex", "moex-upcycled"} <= set(comparison["model"])
    # only the comparison view ran: no unit table, no routing charts yet
    assert not any("best cell" in df.value.columns for df in at.dataframe) and _charts(at) == 1
    # the comparison chart has bars: numbers parsed from the table's "mean ± std" cells (it drew none before)
    import pyarrow as pa

    chart = (at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"))[0].proto
    values = [r for d in chart.datasets for r in pa.ipc.open_stream(d.data.data).read_all().to_pylist()]
    from interp.moex.browse import comparison_points, shipped_comparison

    pts = comparison_points(shipped_comparison()["rows"])
    assert values and sorted(v["mean"] for v in values) == sorted(p["mean"] for p in pts)
    at.radio(key="moex_view").set_value("Routing").run()
    assert not at.exception and _charts(at) == 3  # load, active units, estimate vs measured


def test_units_view_states_positions_ranks_by_f1_with_enough_firings():
    at = _moex_page()
    at.radio(key="moex_view").set_value("Units & board").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("'.' characters just before a white move" in c.value and "every char" in c.value for c in at.caption)
    units = next(df.value for df in at.dataframe if "best cell" in df.value.columns)
    f1 = units["F1"].to_numpy(dtype=float)
    ranked = f1[np.isfinite(f1)]
    assert len(ranked) > 0 and (np.diff(ranked) <= 0).all()  # F1 descending, units without F1 last
    assert np.isnan(f1[len(ranked):]).all()
    assert (units.loc[np.isfinite(f1), "firings at '.'"] >= 10).all()
    assert ((units.loc[~np.isfinite(f1), "firings at '.'"] < 10) | (units.loc[~np.isfinite(f1), "cell occurrences"] == 0)).all()
    # numbers audit (symptom: F1 = 1.000 units first whose best cell occurs at 1-2 of 958 positions)
    assert (units.loc[np.isfinite(f1), "cell occurrences"] >= 10).all()
    heat = [c for c in at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart")]
    assert heat, "the top unit fires: its heatmap is drawn"
    # another expert, a stricter firing floor, a piece filter: no errors
    at.number_input(key="moex_expert").set_value(3).run()
    at.number_input(key="moex_min_firings").set_value(50).run()
    at.selectbox(key="moex_piece").set_value("P").run()
    assert not at.exception and not at.error


def test_dense_model_has_no_router_and_bad_dir_is_one_error():
    at = _moex_page()
    at.selectbox(key="moex_model").set_value("dense-gelu").run()
    at.radio(key="moex_view").set_value("Routing").run()
    assert not at.exception
    assert any("no router" in i.value for i in at.info)
    at.text_input(key="moex_dir").input("/nonexistent/dir").run()
    assert not at.exception
    assert len(at.error) == 1 and "not a chess model directory" in at.error[0].value
