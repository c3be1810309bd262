"""Real-Chromium test of the Circuits page's bugs (issue 14) and curves (issue 13): `interp app` in a
subprocess with two saved results in the user data dir; choose ioi.json and check the path box and
the loaded result; click a heatmap cell and read the "Head (layer.head)" picker; see the CPR/CMD
curves. Screenshot: test-artifacts/screenshots/circuits_*.png.

Before the fix, the first check failed (the path box stayed at the first file's path and Load
loaded that file) and the heatmap click left the picker at its first value."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_browser import CHROMIUM, LAUNCH_ARGS, ROOT, SHOTS, _free_port, _wait_health, _wait_idle

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
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip("Debian chromium is not installed")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python client is not installed")
    home = tmp_path_factory.mktemp("circ_home")
    files = _results(home)
    port = _free_port()
    env = {**os.environ, "INTERP_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "interp", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc)
        yield url, files
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_saved_file_choice_heatmap_click_and_curves(app):
    from playwright.sync_api import sync_playwright

    url, files = app
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        page.goto(f"{url}/circuits", wait_until="domcontentloaded")
        page.wait_for_selector("h1", timeout=90_000)
        _wait_idle(page)
        page.get_by_text("Load saved result").click()
        _wait_idle(page)
        # bug 1: choose ioi.json (the second entry) and check what the path box and Load give
        page.get_by_text("choose a saved result").click()
        page.get_by_role("option", name=str(files["ioi"])).click()
        _wait_idle(page)
        assert page.get_by_label("Result JSON path").input_value() == str(files["ioi"])
        page.get_by_role("button", name="Load").click()
        _wait_idle(page)
        assert page.get_by_text("ioi on embedded").count() >= 1
        assert page.get_by_text("docstring on embedded").count() == 0
        # the curves and the heatmap are drawn
        charts = page.locator("[data-testid='stVegaLiteChart']")
        assert charts.count() >= 2
        # bug 2: click the heatmap cell layer 1, head 0 (top-left cell: layers run top-down from the highest)
        heat = charts.nth(1).locator("canvas, svg").first
        box = heat.bounding_box()
        page.mouse.click(box["x"] + 0.25 * (box["width"] - 110) + 40, box["y"] + 0.25 * (box["height"] - 40))
        _wait_idle(page)
        picker = page.locator("[data-testid='stSelectbox']").filter(has_text="Head (layer.head)")
        assert "1.0" in picker.inner_text()
        page.screenshot(path=str(SHOTS / "circuits_loaded.png"), full_page=True)
        browser.close()
