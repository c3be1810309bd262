"""Faults and bad input for the foundation commands (collect, demo, build-default, app, the global
flags): exit 2, one `error:` line, no traceback, the output location unchanged; and kill -9 at
random points of `interp collect`, then resume, bit-identical to an uninterrupted run.

Most bad-input cases call the CLI in-process (`interp.cli.main`, same parser and error handling,
no interpreter start-up per case); `test_real_subprocess_errors` and the kill test go through a
real `python -m interp` with tests/faults.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults import assert_clean_error, assert_tree_unchanged, cli_env, run_cli, tree_snapshot
from interp.cli import main

HOOK = "blocks.1.hook_resid_post"


def run_main(argv: list[str], capsys, monkeypatch) -> subprocess.CompletedProcess:
    """`interp ARGV` in this process, as a CompletedProcess (env changes by the CLI are undone)."""
    for k in ("INTERP_DEVICE", "INTERP_DTYPE", "INTERP_PROCESSING"):
        monkeypatch.setenv(k, os.environ.get(k, "")) if k in os.environ else monkeypatch.delenv(k, raising=False)
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        rc = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, rc, out, err)


@pytest.fixture()
def ws(tmp_path):
    """A workspace with the inputs the cases refer to."""
    (tmp_path / "a_file").write_text("keep me\n")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("my notes\n")
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02\x03abc")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "nofield.jsonl").write_text('{"body": "hello"}\n')
    (tmp_path / "badline.jsonl").write_text('{"text": "hello"}\nnot json\n')
    (tmp_path / "nodir").mkdir()
    (tmp_path / "nodir" / "x.txt").write_text("x")
    (tmp_path / "badcfg").mkdir()
    (tmp_path / "badcfg" / "config.json").write_text("{not json")
    return tmp_path


# (argv with {ws} placeholders, regex the error line must match)
BAD = [
    # global flags
    (["--device", "cuda", "demo"], r"CUDA is not available"),
    (["--device", "cuda:3", "demo"], r"CUDA is not available"),
    (["--device", "tpu", "demo"], r"--device: 'tpu': expected auto, cpu"),
    (["demo", "--device", "gpu"], r"--device: 'gpu'"),
    (["--dtype", "float8", "demo"], r"--dtype: 'float8': expected one of"),
    (["--dtype", "float16", "--device", "cpu", "demo"], r"float16 is not supported on the CPU"),
    (["--processing", "fold", "demo"], r"--processing 'fold': expected none, tl-default"),
    (["no-such-command"], r"invalid choice"),
    # demo
    (["demo", "--model", "gpt3"], r"unknown model 'gpt3'"),
    (["demo", "--model", "{ws}/missing/model"], r"does not exist"),
    (["demo", "--model", "{ws}/a_file"], r"is a file"),
    (["demo", "--model", "{ws}/nodir"], r"holds no model"),
    (["demo", "--model", "{ws}/badcfg"], r"not a Hugging Face config|config"),
    (["demo", "--model", "embedded-attn-x"], r"unknown model"),
    (["demo", "--top", "0"], r"--top 0: must be at least 1"),
    (["demo", "--prompt", " "], r"--prompt is empty"),
    (["demo", "--prompt", "a b " * 200], r"longer than the model's context of 128"),
    # collect: sizes and ranges
    (["collect", "--hooks", HOOK, "--tokens", "0", "--out", "{ws}/o"], r"--tokens 0: must be a positive"),
    (["collect", "--hooks", HOOK, "--tokens", "-5", "--out", "{ws}/o"], r"--tokens -5"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--context-size", "-5", "--out", "{ws}/o"], r"--context-size -5"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--context-size", "1", "--out", "{ws}/o"], r"at least 2"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--context-size", "4096", "--out", "{ws}/o"], r"longer than the model's context"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--batch-size", "0", "--out", "{ws}/o"], r"--batch-size 0"),
    (["collect", "--hooks", HOOK, "--tokens", "1000000000000000", "--out", "{ws}/o"], r"needs about .* (TB|PB) on disk"),
    (["collect", "--hooks", HOOK, "--tokens", "x", "--out", "{ws}/o"], r"invalid int value"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--store-dtype", "int8", "--out", "{ws}/o"], r"invalid choice"),
    # collect: hooks
    (["collect", "--hooks", "blocks.1.hook_resid_pots", "--tokens", "10", "--out", "{ws}/o"], r"closest valid: blocks\.1\.hook_resid_post"),
    (["collect", "--hooks", "blocks.0.attn.hook_z:99", "--tokens", "10", "--out", "{ws}/o"], r"head 99 out of range"),
    (["collect", "--hooks", "blocks.0.attn.hook_z:x", "--tokens", "10", "--out", "{ws}/o"], r"bad head index"),
    (["collect", "--hooks", HOOK, HOOK, "--tokens", "10", "--out", "{ws}/o"], r"given twice"),
    # collect: output locations never replaced
    (["collect", "--hooks", HOOK, "--tokens", "10", "--out", "{ws}/a_file"], r"is a file"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--out", "{ws}/a_file", "--overwrite"], r"is a file"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--out", "{ws}/foreign", "--overwrite"], r"is not an interp output of this kind \(no manifest.json"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--out", "{ws}/a_file/sub"], r"is a file, not a directory"),
    # collect: sources
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/nope.txt", "--out", "{ws}/o"], r"does not exist"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/empty.txt", "--out", "{ws}/o"], r"is empty"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/binary.txt", "--out", "{ws}/o"], r"not text"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/latin1.txt", "--out", "{ws}/o"], r"not UTF-8"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/nofield.jsonl", "--out", "{ws}/o"], r"no text field 'text' \(it has: body\)"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/badline.jsonl", "--out", "{ws}/o"], r"line 2 is not JSON"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/nodir", "--out", "{ws}/o"], r"not a Hugging Face dataset"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "{ws}/a_file.parquet", "--out", "{ws}/o"], r"does not exist"),
    (["collect", "--hooks", HOOK, "--tokens", "10", "--source", "hf:", "--out", "{ws}/o"], r"needs a dataset name"),
    # build-default
    (["build-default", "--quick", "--out", "{ws}/a_file"], r"is a file"),
    (["build-default", "--quick", "--out", "{ws}/foreign"], r"is not an interp"),
    (["build-default", "--quick", "--out", "{ws}/new", "--work-dir", "{ws}/a_file/w"], r"is a file, not a directory"),
    # app
    (["app", "--port", "0"], r"--port 0: expected 1-65535"),
    (["app", "--port", "70000"], r"--port 70000"),
]


@pytest.mark.parametrize("argv,match", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_and_changes_nothing(argv, match, ws, capsys, monkeypatch):
    before = tree_snapshot(ws)
    r = run_main([a.replace("{ws}", str(ws)) for a in argv], capsys, monkeypatch)
    assert_clean_error(r, match)
    assert_tree_unchanged(ws, before)


def test_bad_env_values_are_one_line(capsys, monkeypatch):
    monkeypatch.setenv("INTERP_DEVICE", "quantum")
    assert_clean_error(run_main(["demo"], capsys, monkeypatch), r"INTERP_DEVICE='quantum'")
    monkeypatch.setenv("INTERP_DEVICE", "cpu")
    monkeypatch.setenv("INTERP_DTYPE", "int4")
    assert_clean_error(run_main(["demo"], capsys, monkeypatch), r"INTERP_DTYPE='int4'")


def test_app_refuses_a_busy_port(capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert_clean_error(run_main(["app", "--port", port], capsys, monkeypatch), rf"port {port} on 127.0.0.1 is already in use")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    import interp.commands.core as core

    def boom(args):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(core, "cmd_demo", boom)  # main() builds its parser afresh, so the patch is seen
    line = assert_clean_error(run_main(["demo"], capsys, monkeypatch), r"unexpected RuntimeError: kaboom; rerun with --debug")
    assert "second line" not in line
    with pytest.raises(RuntimeError, match="kaboom"):
        main(["--debug", "demo"])
    for exc, needle in [(OSError(28, "No space left on device", "/x/y"), "/x/y: no space left on the device"),
                        (MemoryError(), "out of memory"),
                        (json.JSONDecodeError("Expecting value", "x", 0), "not valid JSON"),
                        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8")]:
        monkeypatch.setattr(core, "cmd_demo", lambda args, e=exc: (_ for _ in ()).throw(e))
        assert_clean_error(run_main(["demo"], capsys, monkeypatch), needle)


def test_real_subprocess_errors(tmp_path):
    """The same guarantees through `python -m interp` (no in-process shortcuts)."""
    (tmp_path / "a_file").write_text("keep")
    before = tree_snapshot(tmp_path)
    assert_clean_error(run_cli(["--device", "cuda", "demo"]), r"CUDA is not available")
    assert_clean_error(run_cli(["collect", "--hooks", HOOK, "--tokens", "10", "--out", tmp_path / "a_file", "--overwrite"]), r"is a file")
    assert_tree_unchanged(tmp_path, before)


def _collect_args(out: Path) -> list[str]:
    return ["collect", "--hooks", HOOK, "blocks.0.attn.hook_z:3", "--tokens", 6144, "--context-size", 32,
            "--batch-size", 4, "--shard-rows", 8, "--out", out]


def _shards_done(out: Path) -> int:
    try:
        return json.loads((out / "manifest.json").read_text())["shards_done"]
    except (OSError, ValueError, KeyError):
        return -1


def _kill_at(out: Path, when) -> None:
    """Start a collect into `out` and kill -9 it when `when(elapsed_s, shards_done)` says so."""
    p = subprocess.Popen([sys.executable, "-m", "interp", *map(str, _collect_args(out))], env=cli_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while p.poll() is None:
            if when(time.time() - t0, _shards_done(out)):
                os.kill(p.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        p.wait()


@pytest.mark.slow
def test_kill_9_then_resume_is_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    r = run_cli(_collect_args(ref))
    assert r.returncode == 0, r.stderr[-2000:]
    want = tree_snapshot(ref)
    assert json.loads((ref / "manifest.json").read_text())["n_shards"] == 24
    rng = random.Random(12)
    kills = [lambda t, s, k=rng.randint(3, 20): s >= k,  # mid-run, after some shards (then a shard is truncated)
             lambda t, s, x=rng.uniform(0.5, 8.0): t >= x]  # a random moment (start-up included)
    for i, when in enumerate(kills):
        out = tmp_path / f"run{i}"
        _kill_at(out, when)
        if i == 0 and out.exists():  # and truncate the last shard the manifest vouches for
            done = _shards_done(out)
            if done > 0:
                f = out / HOOK / f"shard_{done - 1:05d}.safetensors"
                f.write_bytes(f.read_bytes()[:50])
        r = run_cli(_collect_args(out))
        assert r.returncode == 0, r.stderr[-2000:]
        got = tree_snapshot(out)
        assert got == want, f"kill {i}: resumed run differs from the uninterrupted one"
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".run{i}.")], "temporary siblings left behind"


@pytest.mark.slow
def test_app_sigterm_stops_streamlit_and_frees_the_port():
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "interp", "app", "--port", str(port)], env=cli_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the dashboard did not come up in 240 s")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
    from interp.commands.core import port_free

    # Streamlit (the child) is gone too: nothing listens on the port (SO_REUSEADDR, as `interp app`'s own
    # check, so the TIME_WAIT of the health-check connections does not count)
    assert port_free("127.0.0.1", port)
