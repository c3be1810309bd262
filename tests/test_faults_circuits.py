"""Fault tests for `interp circuits`, run as a user would: every bad input is one `error:` line,
exit 2, before any work, and nothing is written into the package or over a user's file."""

from __future__ import annotations

import json

from faults import REPO, assert_clean_error, run_cli, tree_snapshot

PKG_REFS = REPO / "interp" / "circuits" / "reference"


def test_bad_task_sources_are_one_line_errors(tmp_path):
    d = tmp_path / "dir.jsonl"
    d.mkdir()
    b = tmp_path / "bin.jsonl"
    b.write_bytes(b"\x00\xff\x00binary")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"positive": "a", "negative": "b"}) + "\n")
    before = tree_snapshot(PKG_REFS)
    assert_clean_error(run_cli(["circuits", "--task", str(d), "--method", "patching"], env={"INTERP_HOME": str(tmp_path)}),
                       "is a directory")
    assert_clean_error(run_cli(["circuits", "--task", str(b), "--method", "patching"], env={"INTERP_HOME": str(tmp_path)}),
                       "is binary")
    assert_clean_error(run_cli(["circuits", "--task", str(bad), "--method", "patching"], env={"INTERP_HOME": str(tmp_path)}),
                       r"bad\.jsonl line 1: missing field answer")
    assert_clean_error(run_cli(["circuits", "--task", "iox"], env={"INTERP_HOME": str(tmp_path)}), "unknown task 'iox'")
    assert tree_snapshot(PKG_REFS) == before


def test_json_under_a_file_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli(["circuits", "--task", "ioi", "--method", "patching", "--json", str(blocker / "r.json")],
                env={"INTERP_HOME": str(tmp_path)})
    assert_clean_error(r, "is a file, not a directory")
    assert blocker.read_text() == "x"
