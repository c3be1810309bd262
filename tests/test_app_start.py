"""The first page is fast: Home draws without importing TransformerLens or SAELens (a fresh process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_home_draws_without_transformerlens_or_saelens(tmp_path):
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'app' / 'main.py')!r}, default_timeout=240)\n"
        "at.run()\n"
        "assert not at.exception, at.exception\n"
        "print('TITLE', at.title[0].value)\n"
        "print('SIDEBAR', [s.label for s in at.sidebar.selectbox])\n"
        "print('MODELS', [o for s in at.sidebar.selectbox if s.label == 'Model' for o in s.options])\n"
        "print('HEAVY', [m for m in ('transformer_lens', 'sae_lens', 'transformers') if m in sys.modules])\n"
    )
    env = {"PYTHONPATH": str(ROOT), "INTERP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["TITLE"].startswith("interp")
    assert lines["HEAVY"] == "[]"
    assert "'SAE'" in lines["SIDEBAR"] and "'Model'" in lines["SIDEBAR"] and "'Device'" in lines["SIDEBAR"]
    assert "'embedded-attn'" in lines["MODELS"]  # every shipped model is offered (it was missing)


def test_interp_app_opens_its_own_app_window(tmp_path, monkeypatch):
    """`interp app` opens Chromium/Chrome with --app=URL (its own profile), the default browser when
    none is found, nothing without a display; --no-window only serves."""
    from interp.cli import build_parser
    from interp.commands import window as W

    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("INTERP_BROWSER", str(fake))
    assert W.find_chrome() == str(fake)
    cmd = W.window_command(W.find_chrome(), "http://127.0.0.1:8501", tmp_path / "profile")
    assert cmd[:2] == [str(fake), "--app=http://127.0.0.1:8501"] and f"--user-data-dir={tmp_path / 'profile'}" in cmd
    monkeypatch.setenv("INTERP_BROWSER", str(tmp_path / "missing"))
    assert W.find_chrome() is None
    opened = []
    monkeypatch.setattr(W.webbrowser, "open", lambda url: opened.append(url))
    monkeypatch.setenv("DISPLAY", ":0")
    assert W.open_window("http://x") is None and opened == ["http://x"]  # no Chromium: the default browser
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert W.open_window("http://y") is None and opened == ["http://x"]  # no display: nothing opens
    assert build_parser().parse_args(["app", "--no-window"]).no_window is True
    assert build_parser().parse_args(["app"]).no_window is False
