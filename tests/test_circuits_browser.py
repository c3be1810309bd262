"""Real-Chromium test of the Circuits page's bugs (issue 14) and curves (issue 13): `interp app` in a
subprocess with two saved results in the user data dir; choose ioi.json and check the path box and
the loaded result; click a heatmap cell and read the "Head (layer.head)" picker; see the CPR/CMD
curves. Screenshots: test-artifacts/screenshots/circuits_*.png. Each test failed on the code before
its fix (README, dashboard section)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_harness import SHOTS, have_chromium, launch_chromium, running_app, wait_idle

pytestmark = pytest.mark.browser


def _results(home: Path) -> dict[str, Path]:
    from interp.circuits.run import CircuitResult, MethodRun

    out = {}
    d = home / "circuits" / "results"
    for task in ("ioi", "docstring"):
        scores = [[0.1, 3.0], [2.0, 0.0]] if task == "ioi" else [[1.0, 0.0], [0.0, 1.0]]
        runs = [MethodRun(m, 0, scores, [[0, 1], [1, 0]], 0.5, 1.0, float("nan"), float("nan"), float("nan"), float("nan"),
                          float("nan"), 0.9, 2, [], cpr=0.7, cmd=0.3,
                          curves={"node": {"x": [0.0, 0.25, 0.5, 1.0], "f": [0.0, 0.6, 0.9, 1.0]}})
                for m in ("discrete-sae", "eap")]
        out[task] = CircuitResult("embedded", task, 2, 2, 2.0, 0.1, True, None, runs).summarize().save(d / f"{task}.json")
    os.utime(out["docstring"])  # docstring is the newest: the list's first entry, as in the bug report
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not have_chromium():
        pytest.skip("Debian chromium is not installed")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python client is not installed")
    home = tmp_path_factory.mktemp("circ_home")
    files = _results(home)
    with running_app({"INTERP_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as (url, _):
        yield url, files


@pytest.fixture
def page(app):
    from playwright.sync_api import sync_playwright

    url, _ = app
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = browser.new_page(viewport={"width": 1440, "height": 1200})
        pg.goto(f"{url}/circuits", wait_until="domcontentloaded")
        pg.wait_for_selector("h1", timeout=90_000)
        wait_idle(pg)
        pg.get_by_text("Load saved result").click()
        wait_idle(pg)
        yield pg
        browser.close()


def test_choosing_a_saved_file_loads_that_file(app, page):
    """Bug: choosing ioi.json left the path box at docstring.json, and Load loaded the docstring result."""
    from playwright.sync_api import expect

    _, files = app
    page.screenshot(path=str(SHOTS / "circuits_load_mode.png"), full_page=True)
    page.locator("[data-testid='stSelectbox']").filter(has_text="Saved result").click()
    page.get_by_role("option", name=str(files["ioi"])).click()
    # on a loaded machine the rerun may start seconds after the click: wait for the value, not for quiet
    expect(page.get_by_label("Result JSON path")).to_have_value(str(files["ioi"]), timeout=90_000)
    page.get_by_role("button", name="Load").click()
    expect(page.get_by_text("ioi on embedded")).to_be_visible(timeout=90_000)
    wait_idle(page)
    assert page.get_by_text("docstring on embedded").count() == 0
    assert page.locator("[data-testid='stVegaLiteChart']").count() >= 1  # the circuit graph (the other charts are in tabs)


def test_heatmap_click_picks_the_head(app, page):
    """Bug: clicking a heatmap cell showed its tooltip, but the "Head (layer.head)" picker stayed put."""
    from playwright.sync_api import expect

    _, files = app
    box_in = page.get_by_label("Result JSON path")
    box_in.fill(str(files["ioi"]))
    box_in.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Load").click()
    expect(page.get_by_text("ioi on embedded")).to_be_visible(timeout=90_000)
    wait_idle(page)
    picker = page.get_by_role("combobox", name="Head to ablate in the Prompt lab (layer.head)")
    assert picker.input_value() != "1.0"
    page.get_by_role("tab", name="Head scores & ROC").click()
    page.wait_for_timeout(300)
    # click the cell layer 1, head 0: the top-left one (layers run top-down from the highest)
    chart = page.locator(".st-key-circ_heat[data-testid='stVegaLiteChart'], .st-key-circ_heat [data-testid='stVegaLiteChart']").first
    heat = chart.locator("canvas, svg").first  # the plot (the chart's toolbar icons are svg too, outside it)
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    page.screenshot(path=str(SHOTS / "circuits_loaded.png"), full_page=True)
    page.mouse.click(box["x"] + 50 + 0.25 * (box["width"] - 160), box["y"] + 10 + 0.25 * (box["height"] - 50))
    page.screenshot(path=str(SHOTS / "circuits_clicked.png"), full_page=True)
    expect(picker).to_have_value("1.0", timeout=90_000)
    assert box["height"] >= 200, box  # the heatmap is no longer squashed to about 80 px
