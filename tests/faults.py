"""Helpers for fault-injection tests: run the CLI as a user would, check its error, and prove that
a location on disk did not change.

    r = run_cli(["collect", "--tokens", "0", "--hooks", "blocks.0.hook_resid_post", "--out", str(out)])
    assert_clean_error(r, "--tokens")
    before = tree_snapshot(tmp_path); ...; assert_tree_unchanged(tmp_path, before)
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env(extra: dict | None = None) -> dict:
    """The environment a CLI subprocess gets: this checkout first on PYTHONPATH, one thread, the CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("INTERP_DEVICE", "cpu")
    env.setdefault("TQDM_DISABLE", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    if extra:
        env.update(extra)
    return env


def run_cli(args: list[str], cwd: str | Path | None = None, env: dict | None = None, timeout: float = 600,
            input: str | None = None) -> subprocess.CompletedProcess:
    """`python -m interp ARGS` in a subprocess (text mode, output captured)."""
    return subprocess.run([sys.executable, "-m", "interp", *map(str, args)], cwd=str(cwd) if cwd else None,
                          env=cli_env(env), capture_output=True, text=True, timeout=timeout, input=input)


def error_lines(stderr: str) -> list[str]:
    """stderr without the log lines libraries print (``WARNING name: ...``, progress bars)."""
    keep = []
    for line in stderr.splitlines():
        if not line.strip() or re.match(r"^(DEBUG|INFO|WARNING)\b", line) or "it/s]" in line or "%|" in line:
            continue
        keep.append(line)
    return keep


def assert_clean_error(result: subprocess.CompletedProcess, match: str | None = None) -> str:
    """Exit code 2, no traceback, and exactly one `error: ...` line on stderr (matching the regex
    `match` if given). Returns that line."""
    err = result.stderr
    assert "Traceback" not in err, f"traceback reached the user:\n{err[-3000:]}"
    lines = error_lines(err)
    assert result.returncode == 2, f"exit code {result.returncode}, expected 2\nstdout: {result.stdout[-800:]}\nstderr: {err[-2000:]}"
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n" + "\n".join(lines[:20])
    assert lines[0].startswith("error: "), lines[0]
    if match is not None:
        assert re.search(match, lines[0]), f"{lines[0]!r} does not match {match!r}"
    return lines[0]


def tree_snapshot(path: str | Path) -> dict[str, tuple]:
    """Every entry under `path` (and `path` itself) -> (kind, size, sha256 of a file / link target).

    A missing path snapshots as {}; compare two snapshots with `assert_tree_unchanged`."""
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        return {}
    snap: dict[str, tuple] = {}

    def one(p: Path, rel: str):
        if p.is_symlink():
            snap[rel] = ("link", os.readlink(p))
        elif p.is_file():
            snap[rel] = ("file", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode & 0o777)
        elif p.is_dir():
            snap[rel] = ("dir", p.stat().st_mode & 0o777)
            for child in sorted(p.iterdir()):
                one(child, f"{rel}/{child.name}" if rel else child.name)
        else:
            snap[rel] = ("other",)

    one(root, "")
    return snap


def assert_tree_unchanged(path: str | Path, before: dict[str, tuple]) -> None:
    """`path` holds exactly what `before` (a `tree_snapshot`) recorded: nothing added, removed or changed."""
    after = tree_snapshot(path)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), f"{path} changed: added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}"
