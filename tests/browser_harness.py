"""What every real-browser check of the dashboard shares: `interp app` in a subprocess of its own
process group, Debian's Chromium through playwright, and waiting for Streamlit to finish a run.

Used by tests/test_browser.py, tests/test_circuits_browser.py and benchmarks/app_bench.py (which
puts tests/ on sys.path to import it). Setup: `apt-get install -y chromium` and the playwright
Python client; no `playwright install` is needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def have_chromium() -> bool:
    import shutil

    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until the app answers /_stcore/health with 'ok' (AssertionError if it exits or times out)."""
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
        time.sleep(0.1)
    raise AssertionError("the app did not answer /_stcore/health in time")


@contextmanager
def running_app(env: dict[str, str], wait: bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    """`interp app` on a free port with `env` added to the environment; yields (url, process), after
    the health check unless wait=False. On exit the whole process group it started is stopped
    (`interp app` runs Streamlit as a child): SIGTERM, then SIGKILL after 10 s."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "interp", "app", "--port", str(port), "--no-window"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_health(url, proc)
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def launch_chromium(playwright):
    """Headless Debian Chromium (no `playwright install` needed or possible here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)


def wait_idle(page, quiet_ms: int = 1200, timeout_s: float = 120) -> None:
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
