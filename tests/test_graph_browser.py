"""Real-Chromium test of the Feature circuits page: `interp app` in a subprocess, build the default
prompt's graph, see the graph chart, the pruning caption and the node card; move the node-threshold
slider with the keyboard and see the pruned graph shrink. Screenshots: test-artifacts/screenshots/graph_*.png."""

from __future__ import annotations

import re

import pytest

from browser_harness import SHOTS, have_chromium, launch_chromium, running_app, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not have_chromium():
        pytest.skip("Debian chromium is not installed")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python client is not installed")
    home = tmp_path_factory.mktemp("graph_home")
    with running_app({"INTERP_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as (url, _):
        yield url


def _counts(page) -> tuple[int, int]:
    text = page.get_by_text(re.compile(r"^After pruning:")).first.inner_text()
    m = re.search(r"After pruning: (\d+) features, (\d+) nodes, (\d+) edges", text)
    return int(m.group(1)), int(m.group(3))


def test_build_see_the_graph_and_prune_it(app):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        page.goto(f"{app}/graph", wait_until="domcontentloaded")
        page.wait_for_selector("h1", timeout=90_000)
        wait_idle(page)
        expect(page.get_by_text("Feature circuits").first).to_be_visible()
        page.get_by_role("button", name="Build graph").click()
        expect(page.get_by_text(re.compile(r"^After pruning:")).first).to_be_visible(timeout=180_000)
        wait_idle(page)
        chart = page.locator("[data-testid='stVegaLiteChart']").first
        expect(chart.locator("canvas, svg").first).to_be_visible(timeout=60_000)
        assert chart.bounding_box()["height"] >= 400
        expect(page.get_by_text(re.compile(r"Replacement score \d\.\d{3}"))).to_be_visible()
        page.screenshot(path=str(SHOTS / "graph_built.png"), full_page=True)
        feats, edges = _counts(page)
        assert feats > 0 and edges > 0
        # the node-threshold slider, lowered with the keyboard: the pruned graph can only shrink
        slider = page.get_by_role("slider").first
        slider.focus()
        for _ in range(20):
            slider.press("ArrowLeft")
        wait_idle(page)
        expect(page.get_by_text(re.compile(r"^After pruning:")).first).not_to_have_text(
            re.compile(rf"^After pruning: {feats} features, "), timeout=90_000)
        f2, e2 = _counts(page)
        assert f2 <= feats and e2 <= edges and (f2, e2) != (feats, edges)
        page.screenshot(path=str(SHOTS / "graph_pruned.png"), full_page=True)
        browser.close()
