"""`interp app` opens the dashboard in its own app window: Chromium or Chrome with ``--app=URL``
(no tabs, no address bar) when one is installed, else the default browser; ``--no-window`` only serves.

The window is opened once the server answers ``/_stcore/health``, from a daemon thread, so the
command's own process (which forwards signals to Streamlit) is never blocked by it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from pathlib import Path

log = logging.getLogger(__name__)

CHROMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "microsoft-edge")
MAC_CHROMES = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
               "/Applications/Chromium.app/Contents/MacOS/Chromium")


def find_chrome() -> str | None:
    """A Chromium-family browser that takes ``--app=URL``: $INTERP_BROWSER, else the first on PATH
    (or in /Applications on macOS); None if there is none."""
    env = os.environ.get("INTERP_BROWSER")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    for name in CHROMES:
        p = shutil.which(name)
        if p:
            return p
    if sys.platform == "darwin":
        return next((p for p in MAC_CHROMES if Path(p).is_file()), None)
    return None


def window_command(chrome: str, url: str, profile: Path) -> list[str]:
    """The app-window command line: its own profile dir, so it opens as a window even when the
    user's browser is already running."""
    return [chrome, f"--app={url}", f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
            "--window-size=1440,900"]


def wait_healthy(url: str, timeout: float = 120.0) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def has_display() -> bool:
    """False on a Linux machine without X11 / Wayland (a server, CI): no window can open there."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def open_window(url: str) -> subprocess.Popen | None:
    """Open `url` as an app window (Chromium/Chrome --app), else in the default browser; nothing
    without a display (a console browser would take over the terminal)."""
    from interp.io import user_data_dir
    from interp.procs import die_with_parent

    if not has_display():
        log.warning("no display: open %s in a browser yourself", url)
        return None
    chrome = find_chrome()
    if chrome is None:
        webbrowser.open(url)
        return None
    return subprocess.Popen(window_command(chrome, url, user_data_dir("app-window")), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def open_when_ready(url: str) -> threading.Thread:
    """Open the window once the server is healthy (a daemon thread; logs and gives up after 2 minutes)."""

    def run() -> None:
        if wait_healthy(url):
            try:
                win = open_window(url)
                if win is not None:
                    win.wait()  # this thread lives as long as the window: PR_SET_PDEATHSIG follows the forking thread
            except OSError as e:
                log.warning("could not open a window (%s); open %s yourself", e, url)
        else:
            log.warning("the dashboard did not answer within 2 minutes; no window opened")

    t = threading.Thread(target=run, name="interp-app-window", daemon=True)
    t.start()
    return t
