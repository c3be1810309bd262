"""The second round of hostile-user cases (issue 26), one test per symptom: outputs that never
replace what is not ours, children that die with their parent, bounds checked before work, every
config field checked, and bad values that used to run now exit 2 with one line.

Most cases call the CLI in this process (`interp.cli.main`: the same parser and error handling);
the orphan cases start real processes and SIGKILL them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from faults import REPO, assert_clean_error, assert_tree_unchanged, cli_env, tree_snapshot

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """`interp ...` in this process -> CompletedProcess (the cwd and INTERP_HOME are tmp_path)."""
    from interp.cli import main

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for k in ("INTERP_DEVICE", "INTERP_DTYPE", "INTERP_PROCESSING"):
        monkeypatch.setenv(k, os.environ[k]) if k in os.environ else monkeypatch.delenv(k, raising=False)

    def run(*args):
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            rc = e.code if isinstance(e.code, int) else 2
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), rc, out.out, out.err)

    return run


def write_sae_dir(d: Path, cfg_changes: dict | None = None, dtype=torch.float32, d_in: int = 256, d_sae: int = 8) -> Path:
    """A hand-written SAELens TopK directory for the embedded model's residual stream."""
    from safetensors.torch import save_file

    d.mkdir(parents=True, exist_ok=True)
    cfg = {"architecture": "topk", "d_in": d_in, "d_sae": d_sae, "k": 2, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"model_name": "embedded", "hook_name": HOOK, "hook_head_index": None}}
    cfg.update(cfg_changes or {})
    (d / "cfg.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(0)
    w = {"W_enc": torch.randn(d_in, d_sae, generator=g), "W_dec": torch.randn(d_sae, d_in, generator=g),
         "b_enc": torch.zeros(d_sae), "b_dec": torch.zeros(d_in)}
    save_file({k: (v * 10).to(dtype) if not dtype.is_floating_point else v.to(dtype) for k, v in w.items()},
              str(d / "sae_weights.safetensors"))
    return d


# ------------------------------------------------------------------------------------------------
# 1. One output policy


def test_atomic_writer_never_renames_over_a_fifo_or_a_symlink(tmp_path):
    from interp import io
    from interp.errors import InterpError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target.txt"
    target.write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(target)
    for p in (fifo, link):
        with pytest.raises(InterpError, match=r"is a (FIFO|symbolic link); interp never writes over one"):
            io.atomic_write_text(p, "x")
    assert fifo.is_fifo() and link.is_symlink() and target.read_text() == "mine"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["fifo", "link", "target.txt"]  # no temporary left


def test_circuits_and_unlearn_json_on_a_fifo_are_refused_before_work(tmp_path, cli):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    before = tree_snapshot(tmp_path)
    assert_clean_error(cli("circuits", "--task", "ioi", "--method", "patching", "--json", fifo), r"--json .*out\.json is a FIFO")
    assert_clean_error(cli("unlearn", "--concept", "colors", "--json", fifo), r"--json file .*out\.json is a FIFO")
    assert_clean_error(cli("report", "--sae", tmp_path, "--out", fifo), r"is a FIFO")
    assert_tree_unchanged(tmp_path, before)


def test_circuits_json_to_a_directory_is_refused_before_the_model_loads(tmp_path, cli, monkeypatch):
    import interp.circuits.run as R

    monkeypatch.setattr(R, "load_named_model", lambda *a, **k: pytest.fail("the model was loaded before the check"))
    (tmp_path / "d").mkdir()
    assert_clean_error(cli("circuits", "--task", "ioi", "--method", "patching", "--json", tmp_path / "d"), "is a directory")


def test_report_out_on_its_own_input_is_refused(tmp_path, cli):
    s = tmp_path / "S"
    s.mkdir()
    (s / "feature_stats.json").write_text('{"format_version": 0}')
    (s / "feature_stats.safetensors").write_bytes(b"x")
    before = tree_snapshot(s)
    assert_clean_error(cli("report", "--sae", s, "--out", s / "feature_stats.json", "--overwrite"),
                       r"would replace the input .*S of this command")
    assert_tree_unchanged(s, before)


def test_features_out_into_a_users_folder_with_their_feature_stats_is_refused(tmp_path, cli):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "feature_stats.json").write_text('{"my": "numbers"}')
    (d / "notes.txt").write_text("keep")
    before = tree_snapshot(d)
    assert_clean_error(cli("features", "--neurons", "0", "--out", d, "--tokens", "256"), r"--out .*mine exists; pass --overwrite")
    assert_clean_error(cli("features", "--neurons", "0", "--out", d, "--tokens", "256", "--overwrite"),
                       r"holds a feature_stats\.json that interp did not write")
    assert_tree_unchanged(d, before)


def test_report_and_save_spec_never_replace_a_user_file_without_overwrite(tmp_path, cli):
    mine = tmp_path / "mine.html"
    mine.write_text("my page")
    assert_clean_error(cli("report", "--sae", tmp_path / "nowhere", "--out", mine), r"--out .*mine\.html exists; pass --overwrite")
    assert_clean_error(cli("unlearn", "--concept", "colors", "--save-spec", mine), r"mine\.html exists; pass --overwrite")
    assert_clean_error(cli("circuits", "--task", "ioi", "--json", mine), r"mine\.html exists; pass --overwrite")
    assert mine.read_text() == "my page"


def test_check_output_file_policy_table(tmp_path):
    from interp.errors import InterpError
    from interp.io import check_output_file

    new, mine, d = tmp_path / "new.json", tmp_path / "mine.json", tmp_path / "d"
    mine.write_text("x")
    d.mkdir()
    assert check_output_file(new) == new
    assert check_output_file(mine, overwrite=True) == mine
    for path, kw, msg in [(mine, {}, "pass --overwrite"), (d, {"overwrite": True}, "is a directory"),
                          (mine, {"overwrite": True, "inputs": [mine]}, "would replace the input"),
                          (d / "x", {"inputs": [d / "x", d]}, None)]:
        if msg is None:
            check_output_file(path, **kw)  # a new file inside an input folder replaces nothing
            continue
        with pytest.raises(InterpError, match=msg):
            check_output_file(path, **kw)


def test_sweep_results_md_escapes_html_and_markdown(tmp_path):
    from interp.sweep import _write_table

    evil = "<img src=x onerror=alert(1)>"
    rows = [{"id": "a", "status": "ok", "task": f"{evil}|x", "answer": "[c](javascript:alert(1)) `x` $y$", "v": 0.5}]
    _write_table(tmp_path, rows)
    md = (tmp_path / "results.md").read_text()
    assert "<img" not in md and "onerror=alert(1)&gt;" in md
    assert "\\[c\\](javascript:alert(1))" in md and "\\`x\\`" in md and "\\$y\\$" in md
    assert md.count("\n") == 3 and md.splitlines()[2].count(" | ") == 4  # the pipe in the value did not add a column
    assert json.loads((tmp_path / "results.json").read_text()) == rows  # the data itself is kept as it was


# ------------------------------------------------------------------------------------------------
# 2. Child processes die with their parent


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours is gone too
            if Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.2)
    return False


def _wait_file(p: Path, timeout: float = 60.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.exists() and p.read_text().strip():
            return p.read_text().strip()
        time.sleep(0.1)
    raise AssertionError(f"{p} never appeared")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
def test_app_child_dies_when_interp_app_is_killed_9(tmp_path):
    """`interp app` runs Streamlit through `run_child`; here the child is a sleeper writing its pid."""
    pidfile = tmp_path / "child.pid"
    child = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = subprocess.Popen([sys.executable, "-c", "import sys; from interp.commands.core import run_child; "
                               f"run_child([sys.executable, '-c', {child!r}])"], env=cli_env())
    try:
        pid = int(_wait_file(pidfile))
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait_gone(pid), f"the app's child {pid} outlived its killed parent"
    finally:
        parent.kill()
        with __import__("contextlib").suppress(Exception):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
def test_sweep_pool_worker_dies_when_interp_sweep_is_killed_9(tmp_path):
    """The sweep's process pool (spawned workers) with a trial that sleeps: kill -9 the driver."""
    pidfile = tmp_path / "worker.pid"
    helper = tmp_path / "sleepy_trial.py"
    helper.write_text("import os, time\n"
                      f"def run_trial(*a):\n    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n    time.sleep(120)\n")
    code = ("import sys; sys.path.insert(0, %r); import sleepy_trial, interp.sweep as S; S.run_trial = sleepy_trial.run_trial; "
            "list(S._execute([S.Trial('cmd', {}, ('demo',))], ('out', None, 1), None, 1, 1, 0))") % str(tmp_path)
    env = cli_env({"PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])})
    driver = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        pid = int(_wait_file(pidfile))
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        assert _wait_gone(pid), f"the sweep worker {pid} outlived its killed driver"
    finally:
        driver.kill()
        with __import__("contextlib").suppress(Exception):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


# ------------------------------------------------------------------------------------------------
# 3. Bounds before work


def test_iter_lines_refuses_a_long_line_with_its_number_holding_at_most_the_bound(tmp_path):
    from interp.data.lines import iter_lines
    from interp.errors import InterpError

    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"text": "ok"}\n' + b"x" * 5000 + b"\n")
    got = []
    with pytest.raises(InterpError, match=r"a\.jsonl line 2 is longer than 1,000 bytes"):
        for ln, line in iter_lines(f, "source", limit=1000, chunk=64):
            got.append((ln, line))
    assert got == [(1, '{"text": "ok"}')]
    assert list(iter_lines(f, limit=10_000)) == [(1, '{"text": "ok"}'), (2, "x" * 5000)]


def test_collect_refuses_a_jsonl_line_over_the_bound_before_the_model(tmp_path, cli, monkeypatch):
    import interp.models as M

    monkeypatch.setattr(M, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    monkeypatch.setenv("INTERP_MAX_LINE_BYTES", "1000")
    src = tmp_path / "big.jsonl"
    src.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": "y" * 5000}) + "\n")
    assert_clean_error(cli("collect", "--hooks", HOOK, "--tokens", "256", "--out", tmp_path / "o", "--source", src),
                       r"big\.jsonl line 2 is longer than 1,000 bytes")
    assert not (tmp_path / "o").exists()


def test_circuits_task_file_line_over_the_bound_is_refused(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("INTERP_MAX_LINE_BYTES", "1000")
    t = tmp_path / "t.jsonl"
    t.write_text(json.dumps({"positive": "a " * 1000, "negative": "b", "answer": " x", "wrong_answer": " y"}) + "\n")
    assert_clean_error(cli("circuits", "--task", t), r"t\.jsonl line 1 is longer than 1,000 bytes")


def test_circuits_prompt_longer_than_the_context_is_refused_not_cut(tmp_path, cli):
    t = tmp_path / "long.jsonl"
    row = {"positive": "When Mary and John went to the store, " * 30 + "John gave a drink to",
           "negative": "When Alice and Bob went to the store, " * 30 + "Bob gave a drink to", "answer": " Mary",
           "wrong_answer": " John"}
    t.write_text(json.dumps(row) + "\n")
    assert_clean_error(cli("circuits", "--task", t, "--method", "patching", "--eval-prompts", "0"),
                       r"long\.jsonl line 1: the prompt is \d+ tokens, longer than the model's context of 128")


def test_tokens_beyond_a_small_source_say_so(tmp_path, cli):
    src = tmp_path / "small.txt"
    src.write_text("The cat sat on the mat.\n\nA dog ran.\n")
    d = write_sae_dir(tmp_path / "sae")
    assert_clean_error(cli("eval-sae", d, "--source", src, "--tokens", "100000"),
                       r"--tokens 100,000 is more than the source .*small\.txt can give \(it is 36 bytes")
    assert_clean_error(cli("collect", "--hooks", HOOK, "--tokens", "100000", "--out", tmp_path / "o", "--source", src),
                       "is more than the source")
    assert_clean_error(cli("train-sae", "--hook", HOOK, "--tokens", "8192", "--batch-size", "64", "--out", tmp_path / "o",
                           "--source", src), r"--tokens 8,192 is more than the source")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,msg", [
    (["circuits", "--task", "ioi", "--prompts", "100000000"], r"--prompts 100,000,000 is above the limit of 100,000"),
    (["eval-sae", "{sae}", "--tokens", "1000000000000"], r"--tokens 1,000,000,000,000 is above the limit"),
    (["moex", "games", "--n", "1000000000000"], r"--n 1,000,000,000,000 is above the limit of 10,000,000"),
    (["train-sae", "--hook", HOOK, "--tokens", "1000000000000", "--out", "o"], r"--tokens 1,000,000,000,000 is above"),
])
def test_huge_counts_are_refused_at_once(argv, msg, tmp_path, cli):
    sae = write_sae_dir(tmp_path / "sae")
    assert_clean_error(cli(*[a.format(sae=sae) for a in argv]), msg)
    assert not (tmp_path / "o").exists()


def test_moex_eval_on_a_cfg_with_a_billion_layers_is_refused(tmp_path, cli):
    d = tmp_path / "m"
    d.mkdir()
    (d / "cfg.json").write_text(json.dumps({"kind": "interp-chess-model", "model": {"n_layers": 10**9, "d_model": 256},
                                            "mlp": {"arch": "dense-gelu", "d_model": 256, "d_mlp": 1024}}))
    (d / "model.safetensors").write_bytes(b"")
    assert_clean_error(cli("moex", "eval", d), r"m/cfg\.json: field n_layers = 1,000,000,000 of the chess model config is above")


# ------------------------------------------------------------------------------------------------
# 4. Every config field checked


@pytest.mark.parametrize("change,msg", [
    ({"k": "8"}, r"cfg\.json: field k must be an integer, not str '8'"),
    ({"k": 10**18}, r"cfg\.json: field k = 1000000000000000000 is outside \[1, 8\]"),
    ({"metadata": [1, 2]}, r"cfg\.json: field metadata must be a JSON object, not list"),
    ({"d_sae": 2.5}, r"field d_sae must be an integer"),
    ({"dtype": "int4"}, r"field dtype = 'int4' is not one of"),
])
def test_sae_cfg_fields_are_checked_one_by_one(change, msg, tmp_path, cli):
    d = write_sae_dir(tmp_path / "sae", change)
    assert_clean_error(cli("eval-sae", d, "--tokens", "256"), msg)


def test_int8_weights_under_a_float32_cfg_are_refused(tmp_path, cli):
    d = write_sae_dir(tmp_path / "sae", dtype=torch.int8)
    assert_clean_error(cli("eval-sae", d, "--tokens", "256"), r"W_dec is int8 but cfg\.json says dtype float32")


def _moex_ckpt(out: Path, man) -> None:
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize("checkpoints,msg", [
    ([], r"field checkpoints must be an object"),
    ({"5": []}, r"field checkpoints\.5 must be an object"),
    ({"x": {"files": {}}}, r"field checkpoints\.x must be keyed by a step number"),
    ({"5": {"files": 3}}, r"field checkpoints\.5\.files must be an object of file name -> sha256"),
    ({"5": {"files": {"model.safetensors": "ab"}, "train_seconds": "long"}}, r"checkpoints\.5\.train_seconds must be a number"),
])
def test_malformed_moex_manifests_under_resume_name_the_field(checkpoints, msg, tmp_path, cli):
    from interp.moex.train import CKPT_KIND

    out = tmp_path / "run"
    _moex_ckpt(out, {"kind": CKPT_KIND, "train": {}, "checkpoints": checkpoints})
    before = tree_snapshot(out)
    r = cli("moex", "train", "--arch", "dense-gelu", "--engine", "random", "--layers", "1", "--d-model", "16", "--heads", "2",
            "--out", out, "--resume")
    line = assert_clean_error(r, msg)
    assert "manifest.json" in line and "--overwrite" in line
    assert_tree_unchanged(out, before)


@pytest.mark.parametrize("manifest", [[], "not json"])
def test_damaged_moex_manifest_does_not_wedge_overwrite(manifest, tmp_path):
    """A manifest `[]` or one that is not JSON was refused even with --overwrite."""
    from interp.moex.train import TrainConfig, check_train_output

    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    assert check_train_output(out, TrainConfig(), resume=False, overwrite=True) is None


@pytest.mark.parametrize("overwrite", [False, True])
def test_damaged_sae_checkpoint_does_not_wedge_a_rerun(overwrite, tmp_path, cli):
    """A .partial checkpoint whose manifest is `[]` made every rerun (and --overwrite) fail with
    "unexpected AttributeError" until the folder was deleted by hand."""
    ck = tmp_path / "sae.partial" / "ckpt" / "step_00000008"
    ck.mkdir(parents=True)
    (ck / "manifest.json").write_text("[]")
    (ck / "state.json").write_text("[1]")
    r = cli("train-sae", "--hook", HOOK, "--out", tmp_path / "sae", "--d-sae", "32", "--k", "4", "--tokens", "1024",
            "--batch-size", "64", "--act-tokens", "1024", "--eval-tokens", "128", *(["--overwrite"] if overwrite else []))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "sae" / "sae_weights.safetensors").is_file()


@pytest.mark.parametrize("manifest,state,msg", [
    ([], {"step": 1}, r"field sha256 must be a non-empty object"),
    (None, [1], r"state\.json does not hold a JSON object"),
    (None, {"step": "3", "config": {}}, r"field step must be an integer"),
])
def test_damaged_sae_checkpoint_is_skipped_with_a_reason(manifest, state, msg, tmp_path):
    """A manifest `[]`, or a state `[1]` with a matching checksum, used to raise AttributeError on every rerun."""
    from interp.errors import InterpError
    from interp.io import sha256_file
    from interp.sae.train import _verify_checkpoint

    ck = tmp_path / "step_00000003"
    ck.mkdir()
    (ck / "state.json").write_text(json.dumps(state))
    man = manifest if manifest is not None else {"step": 3, "sha256": {"state.json": sha256_file(ck / "state.json")}}
    (ck / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InterpError, match=msg):
        _verify_checkpoint(ck)


@pytest.mark.parametrize("grid,msg", [
    (["foo"], r"--grid foo: not a field of the SAE config; fields are hook, model, arch"),
    (["d_sae=abc"], r"d_sae='abc' in --grid: expected an integer"),
    (["k=abc,-1"], r"k='abc' in --grid: expected an integer"),
    (["nonexistent_field=1,2"], r"--grid nonexistent_field: not a field"),
    (["k=4,4"], r"a value is repeated"),
    (["k=-1"], r"--k must be positive"),
])
def test_bad_sweep_grids_are_one_line_before_any_work(grid, msg, tmp_path, cli):
    assert_clean_error(cli("sweep", "sae", "--hook", HOOK, "--out", tmp_path / "sw", "--grid", *grid), msg)
    assert not (tmp_path / "sw").exists()


def test_sweep_grid_over_k_and_over_any_field_runs():
    """`--grid k=4,8` failed with "multiple values for keyword argument 'k'" even with valid values."""
    from interp.cli import build_parser
    from interp.commands.scale import sweep_trials

    args = build_parser().parse_args(["sweep", "sae", "--hook", HOOK, "--out", "x", "--d-sae", "32", "--batch-size", "64", "--grid", "k=4,8",
                                      "seed=0,1", "shuffle", "aux_coef=0,0.5", "tokens=2560"])
    trials, cols = sweep_trials(args)
    pts = sorted((t.params["k"], t.params["seed"], t.params["shuffle"], t.params["aux_coef"], t.params["tokens"]) for t in trials)
    assert len(pts) == 16 and pts[0] == (4, 0, False, 0.0, 2560) and pts[-1] == (8, 1, True, 0.5, 2560)
    assert {"seed", "shuffle", "aux_coef", "tokens"} <= set(cols)


def test_cmd_sweep_with_a_missing_path_value_is_refused_before_running(tmp_path, cli):
    assert_clean_error(cli("sweep", "cmd", "--out", tmp_path / "sw", "--command", "unlearn --concept colors",
                           "--grid", f"sae={tmp_path}/no/such/sae"), r"--grid sae: .*no/such/sae does not exist")
    assert not (tmp_path / "sw").exists()


# ------------------------------------------------------------------------------------------------
# 5. Bad values that used to run


def test_list_root_that_is_not_a_folder_exits_2(tmp_path, cli):
    (tmp_path / "f").write_text("x")
    assert_clean_error(cli("list", "--root", tmp_path / "f"), r"--root .*f is not a directory")
    assert_clean_error(cli("list", "--root", tmp_path / "missing"), r"--root .*missing does not exist")


def test_train_sae_nproc_0_exits_2(tmp_path, cli):
    assert_clean_error(cli("train-sae", "--hook", HOOK, "--out", tmp_path / "o", "--nproc", "0"), r"--nproc must be at least 1")
    assert not (tmp_path / "o").exists()


def test_circuits_answer_equal_to_wrong_answer_exits_2(tmp_path, cli):
    t = tmp_path / "same.jsonl"
    t.write_text(json.dumps({"positive": "a b", "negative": "c d", "answer": " x", "wrong_answer": [" y", " x"]}) + "\n")
    assert_clean_error(cli("circuits", "--task", t), r"same\.jsonl line 1: answer ' x' is also a wrong_answer")


def test_circuits_reference_dir_that_is_a_file_exits_2(tmp_path, cli):
    (tmp_path / "f").write_text("x")
    assert_clean_error(cli("circuits", "--task", "ioi", "--reference-dir", tmp_path / "f"), r"--reference-dir .*f is a file")
    assert (tmp_path / "f").read_text() == "x"


def test_moex_build_with_nothing_to_build_exits_2(tmp_path, cli):
    assert_clean_error(cli("moex", "build", "--seeds", "0", "--tiny", "--root", tmp_path / "b"), r"--seeds 0: must be at least 1")
    assert not (tmp_path / "b").exists()


def test_unlearn_min_base_acc_out_of_range_fails_before_the_model(tmp_path, cli, monkeypatch):
    import interp.models as M

    monkeypatch.setattr(M, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert_clean_error(cli("unlearn", "--concept", "colors", "--min-base-acc", "2"), r"min_base_acc 2: must lie in \[0, 1\]")


def test_non_utf8_folder_names_are_refused_at_creation_and_named_on_read(tmp_path, cli):
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/sae-\xff"))
    assert_clean_error(cli("train-sae", "--hook", HOOK, "--out", bad, "--tokens", "4096"), r"the path is not UTF-8 text")
    assert not any(p.name.startswith("sae-") for p in tmp_path.iterdir())
    write_sae_dir(bad)
    assert_clean_error(cli("eval-sae", bad, "--tokens", "256"), r"sae-\ufffd: the path is not UTF-8 text, which SAELens cannot open")


# ------------------------------------------------------------------------------------------------
# 6. Caches under INTERP_HOME


def test_train_sae_activation_cache_lives_under_interp_home(tmp_path, monkeypatch):
    from interp.sae.train import acts_dir_for

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    d = acts_dir_for("embedded", [HOOK], 1000)
    assert (tmp_path / "home" / "acts") in d.parents
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------
# 8. Errors on any rank reach the user with their text


def test_an_error_on_rank_1_alone_is_reported_with_its_text(tmp_path, monkeypatch):
    """Rank 0 only saw "lost contact"; the launcher now reports what rank 1 said."""
    from types import SimpleNamespace

    from interp import distributed as dist

    monkeypatch.setenv(dist.RANK_ERRORS_ENV, str(tmp_path))
    dist.record_rank_error(1, "shard 3 of /data/acts is corrupt or truncated", secondary=False)
    time.sleep(0.01)
    dist.record_rank_error(0, "rank 0 lost contact with the other ranks (one died, was killed or timed out): x", secondary=True)
    failures = {0: SimpleNamespace(exitcode=2, timestamp=2), 1: SimpleNamespace(exitcode=2, timestamp=1)}
    with pytest.raises(dist.RankFailed, match=r"^rank 1: shard 3 of /data/acts is corrupt or truncated$"):
        dist._report_failure(SimpleNamespace(failures=failures), dist._rank_errors(str(tmp_path)))
    # the same bad input on every rank: rank 0 printed it, nothing more is said
    shared = [{"rank": 1, "error": "bad", "time": 1.0}, {"rank": 0, "error": "bad", "time": 1.1}]
    assert dist._report_failure(SimpleNamespace(failures=failures), shared) == 2
