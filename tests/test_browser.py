"""Real-browser test: `interp app` in a subprocess, every page opened in headless Debian Chromium,
no error on screen, one screenshot per page under test-artifacts/screenshots/."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = ["home", "features", "prompt_lab", "reports", "circuits", "unlearning", "moex"]
URLS = {"home": ""}  # the default page lives at the root URL
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"interp app exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("the app did not answer /_stcore/health in time")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python client is not installed")
    import torch

    from interp import features as F
    from interp.models import load_model
    from test_features_fixtures import save_tiny_sae

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("browser_saes")
    model = load_model("embedded")
    d = save_tiny_sae(model, root / "embedded" / "tiny", d_sae=24, k=4)
    F.build_for_sae_dir(d, F.StatsConfig(n_tokens=2048, top_k=5, reservoir=8, n_quantile=4), model=model)
    port = _free_port()
    env = {**os.environ, "INTERP_SAE_ROOT": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "interp", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc)
        yield url
    finally:
        # `interp app` runs streamlit as a child: stop the whole process group this test started
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_idle(page, quiet_ms: int = 1500, timeout_s: float = 120) -> None:
    """Wait until no script run is in progress (Streamlit's running indicator absent) for quiet_ms."""
    end, quiet_since = time.time() + timeout_s, None
    while time.time() < end:
        running = page.locator("[data-testid='stStatusWidget'], [data-testid='stSkeleton']").count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif (time.time() - quiet_since) * 1000 >= quiet_ms:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the page kept running")


def test_every_page_renders_without_error(app_url):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        external = []  # the app must work offline: no request may leave 127.0.0.1
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        for name in PAGES:
            page.goto(f"{app_url}/{URLS.get(name, name)}", wait_until="domcontentloaded")
            page.wait_for_selector("h1", timeout=90_000)
            # wait until the script run is over (the running indicator disappears)
            _wait_idle(page)
            text = page.inner_text("body")
            n_exc = page.locator("[data-testid='stException']").count()
            n_err = page.locator("[data-testid='stAlertContentError']").count()
            if n_exc or n_err or "Traceback" in text or "Page not found" in text:
                problems.append(f"{name}: {n_exc} exceptions, {n_err} errors: {text[:300]!r}")
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        browser.close()
    assert not problems, problems
    assert not external, f"requests to the internet: {external[:5]}"
    assert all((SHOTS / f"{n}.png").stat().st_size > 5000 for n in PAGES)
