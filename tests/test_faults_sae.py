"""Faults and bad input for SAE training and SAE artifacts (issue 12): every bad input is one line,
exit 2, before any work, with the output location unchanged; checkpoints are checked and resumed;
a kill -9 anywhere in train-sae resumes to the bit-identical SAE."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from interp.errors import InterpError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(capsys, *args):
    from types import SimpleNamespace

    from interp.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)


def _snapshot(root: Path) -> dict:
    """{relative path: bytes (files) or None (dirs)} of everything under root."""
    if root.is_file():
        return {".": root.read_bytes()}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _assert_clean_error(r, *fragments):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


from test_sae import tiny  # noqa: E402,F401  (the tiny random model on disk)


@pytest.fixture(scope="module")
def tiny_path(tiny):
    """The directory of test_sae's tiny random model (2 layers, d_model 32, n_ctx 32)."""
    return tiny[1]


def _train_args(model: str, out: Path, acts: Path, *extra: str) -> list[str]:
    return ["train-sae", "--model", model, "--hook", "blocks.0.hook_resid_post", "--d-sae", "64", "--k", "4",
            "--tokens", str(60 * 256), "--batch-size", "256", "--checkpoint-every", "10", "--out", str(out),
            "--acts-dir", str(acts), "--act-tokens", "8192", "--eval-tokens", "256", *extra]


# --- bad input: refused before any work, location unchanged -------------------------------------


BAD_TRAIN = [
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--lr", "nan"], "--lr must be a finite number > 0"),
    (["--lr", "-1"], "--lr must be a finite number > 0"),
    (["--d-sae", "0"], "--d-sae must be positive"),
    (["--k", "0"], "--k must be positive"),
    (["--k", "100"], "--k 100 is larger than --d-sae 64"),
    (["--arch", "standard", "--k", "4"], "standard SAEs take --l1, not --k"),
    (["--tokens", "0"], "fewer than one batch"),
    (["--eval-tokens", "-5"], "--eval-tokens must be positive"),
    (["--d-sae", "4000000000"], "needs about"),
    (["--arch", "batchtopk", "--optimizer", "signum"], "TopK recipes"),
]


@pytest.mark.parametrize("extra,msg", BAD_TRAIN, ids=[e[1][:24] for e in BAD_TRAIN])
def test_train_sae_bad_values_fail_before_collection(extra, msg, tiny_path, tmp_path, capsys):
    out, acts = tmp_path / "out", tmp_path / "acts"
    args = _train_args(tiny_path, out, acts)
    # later flags win in argparse; --k with --arch standard needs the --k given
    r = _cli(capsys, *args, *extra)
    _assert_clean_error(r, msg)
    assert not out.exists() and not acts.exists() and not out.with_name("out.partial").exists()


def test_train_sae_unknown_hook_names_close_matches(tiny_path, tmp_path, capsys):
    args = _train_args(tiny_path, tmp_path / "out", tmp_path / "acts")
    args[args.index("blocks.0.hook_resid_post")] = "blocks.0.hook_resid_pots"
    r = _cli(capsys, *args)
    _assert_clean_error(r, "blocks.0.hook_resid_pots", "blocks.0.hook_resid_post")
    assert not (tmp_path / "acts").exists()


def test_train_sae_out_refuses_a_file_and_foreign_directories(tiny_path, tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("my notes")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "a.jpg").write_bytes(b"\xff\xd8")
    before = _snapshot(tmp_path)
    for target in (f, foreign):
        for over in ([], ["--overwrite"]):
            r = _cli(capsys, *_train_args(tiny_path, target, tmp_path / "acts"), *over)
            _assert_clean_error(r, str(target))
    assert _snapshot(tmp_path) == before  # nothing moved to .old, no .partial, no acts


def test_existing_sae_dir_needs_overwrite_and_is_replaced_atomically(tiny_path, tmp_path, capsys):
    out, acts = tmp_path / "sae", tmp_path / "acts"
    assert _cli(capsys, *_train_args(tiny_path, out, acts, "--checkpoint-every", "0")).returncode == 0
    first = _snapshot(out)
    r = _cli(capsys, *_train_args(tiny_path, out, acts, "--seed", "1"))
    _assert_clean_error(r, "pass --overwrite")
    assert _snapshot(out) == first
    assert _cli(capsys, *_train_args(tiny_path, out, acts, "--seed", "1", "--overwrite")).returncode == 0
    assert (out / "sae_weights.safetensors").read_bytes() != first["sae_weights.safetensors"]
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts", "sae"]  # no .old / .tmp / .partial left


def test_user_acts_dir_of_another_run_is_refused_not_deleted(tiny_path, tmp_path, capsys):
    acts = tmp_path / "acts"
    assert _cli(capsys, *_train_args(tiny_path, tmp_path / "a", acts, "--checkpoint-every", "0")).returncode == 0
    before = _snapshot(acts)
    args = _train_args(tiny_path, tmp_path / "b", acts)
    args[args.index("blocks.0.hook_resid_post")] = "blocks.1.hook_mlp_out"
    r = _cli(capsys, *args)
    _assert_clean_error(r, "holds a different collect run")
    assert _snapshot(acts) == before and not (tmp_path / "b").exists()


# --- refusing broken SAEs -----------------------------------------------------------------------


def _plain_saelens_dir(path: Path, d_in: int = 32, hook: str = "blocks.0.hook_resid_post", model: str | None = None) -> Path:
    """An SAE directory written by plain SAELens (`SAE.from_dict` + `save_model`), not by interp."""
    from sae_lens import SAE

    torch.manual_seed(0)
    sae = SAE.from_dict({"architecture": "topk", "d_in": d_in, "d_sae": 48, "k": 4, "dtype": "float32", "device": "cpu",
                         "metadata": {"hook_name": hook, "model_name": model}})
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_()
    sae.save_model(str(path))
    return path


def test_plain_saelens_directory_loads_evaluates_and_fits(tiny_path, tmp_path, capsys):
    from interp.models import load_model
    from interp.sae.io import check_sae_fits, load_sae, sae_hook

    d = _plain_saelens_dir(tmp_path / "plain", model=tiny_path)
    sae = load_sae(d, device="cpu")
    assert sae_hook(sae) == "blocks.0.hook_resid_post" and sae.cfg.d_sae == 48
    model = load_model(tiny_path)
    assert check_sae_fits(sae, model) == "blocks.0.hook_resid_post"
    r = _cli(capsys, "eval-sae", str(d), "--tokens", "128", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["l0"] > 0
    wide = load_sae(_plain_saelens_dir(tmp_path / "wide", d_in=64), device="cpu")
    with pytest.raises(InterpError, match=r"SAE d_in=64 does not match hook blocks.0.hook_resid_post of this model \(width 32\)"):
        check_sae_fits(wide, model)


def test_check_sae_fits_warns_on_another_model(tiny_path, tmp_path, caplog):
    from interp.models import load_model
    from interp.sae.io import check_sae_fits, load_sae

    sae = load_sae(_plain_saelens_dir(tmp_path / "p", model="gpt2"), device="cpu")
    model = load_model(tiny_path)
    with caplog.at_level(logging.WARNING, logger="interp.sae.io"):
        check_sae_fits(sae, model)
    assert [r.message for r in caplog.records] == [f"this SAE was trained on model 'gpt2', applying it to {tiny_path!r}"]


def test_nan_weights_are_refused_by_load_and_eval(tmp_path, capsys):
    from interp.sae.io import load_sae

    d = _plain_saelens_dir(tmp_path / "nan")
    w = load_file(str(d / "sae_weights.safetensors"))
    w["W_enc"][3, 5] = float("nan")
    w["b_dec"][0] = float("inf")
    save_file(w, str(d / "sae_weights.safetensors"))
    with pytest.raises(InterpError, match=r"\(W_enc\) holds 1 NaN/Inf value\(s\); this SAE is broken"):
        load_sae(d, device="cpu")
    _assert_clean_error(_cli(capsys, "eval-sae", str(d)), "NaN/Inf")


def test_registry_ids_unknown_and_offline(tmp_path, monkeypatch):
    from interp.sae.io import load_sae

    with pytest.raises(InterpError, match=r"unknown SAELens release 'gpt2-small-res-jbb'.*did you mean gpt2-small-res-jb"):
        load_sae("sae-lens:gpt2-small-res-jbb/blocks.8.hook_resid_pre", device="cpu")
    with pytest.raises(InterpError, match=r"has no SAE id 'blocks.8.hook_resid_pree'; did you mean blocks.8.hook_resid_pre"):
        load_sae("sae-lens:gpt2-small-res-jb/blocks.8.hook_resid_pree", device="cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf" / "hub"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty_hf" / "hub"))
    with pytest.raises(InterpError) as e:
        load_sae("sae-lens:gpt2-small-res-jb/blocks.8.hook_resid_pre", device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("could not load gpt2-small-res-jb/blocks.8.hook_resid_pre from the SAELens registry")


# --- checkpoints: checksums, keep two, config diff, lock ---------------------------------------


def _fit(cfg, store_dir, ckpt, data_id="d"):
    from interp.activations import ActivationStore
    from interp.sae.train import fit_sae, store_batches

    store = ActivationStore(store_dir)
    return fit_sae(cfg, 32, store_batches(store, cfg.hook, cfg.batch_size, cfg.seed, cfg.shuffle), {"hook_name": cfg.hook},
                   ckpt_dir=ckpt, data_id=data_id)


@pytest.fixture(scope="module")
def small_store(tiny_path, tmp_path_factory):
    from interp.activations import CollectConfig, collect_activations
    from interp.models import load_model

    d = tmp_path_factory.mktemp("store") / "acts"
    collect_activations(load_model(tiny_path), CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=4096, dtype="float16"), d)
    return d


@pytest.mark.parametrize("optimizer", ["adam", "signum"])
def test_checkpoint_manifest_keep_two_and_corruption(optimizer, small_store, tmp_path, caplog):
    from interp.sae.config import SAETrainConfig

    cfg = SAETrainConfig(hook="blocks.0.hook_resid_post", d_sae=64, k=4, tokens=30 * 128, batch_size=128,
                         checkpoint_every=10, optimizer=optimizer)
    ref = _fit(cfg, small_store, None).sae.state_dict()
    ckpt = tmp_path / "ckpt"

    class Stop(Exception):
        pass

    # Stop the run right after the checkpoint of step 20 (10 and 20 exist), as a crash would.
    from interp.sae import train as T

    real = T._save_checkpoint
    calls = []

    def save_then_maybe_die(trainer, root, state):
        real(trainer, root, state)
        calls.append(state["step"])
        if state["step"] == 20:
            raise Stop

    T._save_checkpoint = save_then_maybe_die
    try:
        with pytest.raises(Stop):
            _fit(cfg, small_store, ckpt)
    finally:
        T._save_checkpoint = real
    assert sorted(p.name for p in ckpt.iterdir()) == ["step_00000010", "step_00000020"]
    man = json.loads((ckpt / "step_00000020" / "manifest.json").read_text())
    assert set(man["sha256"]) >= {"sae_weights.safetensors", "trainer_state.pt", "state.json"}
    # Truncate the newest checkpoint's weights: detected, reported, resumed from step 10.
    w = ckpt / "step_00000020" / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="interp.sae.train"):
        res = _fit(cfg, small_store, ckpt)
    assert res.resumed_from == 10
    assert any("skipping damaged checkpoint" in r.message and "step_00000020" in r.message for r in caplog.records)
    for k, v in res.sae.state_dict().items():  # bit-identical to the uninterrupted run
        assert torch.equal(v, ref[k]), k


def test_resume_with_a_changed_config_says_what_differs(small_store, tmp_path, caplog):
    from dataclasses import replace

    from interp.sae.config import SAETrainConfig

    cfg = SAETrainConfig(hook="blocks.0.hook_resid_post", d_sae=64, k=4, tokens=12 * 128, batch_size=128, checkpoint_every=5)
    from interp.sae import train as T

    real = T._save_checkpoint

    def die(trainer, root, state):
        real(trainer, root, state)
        raise KeyboardInterrupt

    T._save_checkpoint = die
    try:
        with pytest.raises(KeyboardInterrupt):
            _fit(cfg, small_store, tmp_path / "ckpt")
    finally:
        T._save_checkpoint = real
    with caplog.at_level(logging.WARNING, logger="interp.sae.train"):
        res = _fit(replace(cfg, lr=5e-3), small_store, tmp_path / "ckpt")
    assert res.resumed_from == 0
    msgs = [r.message for r in caplog.records if "different run" in r.message]
    assert len(msgs) == 1 and "lr: None -> 0.005" in msgs[0] and "starting fresh" in msgs[0]


def test_second_training_into_one_run_is_refused(tiny_path, tmp_path, capsys):
    out = tmp_path / "sae"
    partial = tmp_path / "sae.partial"
    partial.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (partial / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": holder.pid, "command": "interp train-sae"}))
        r = _cli(capsys, *_train_args(tiny_path, out, tmp_path / "acts"))
        assert r.returncode == 2 and str(holder.pid) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


# --- kill -9 anywhere, then resume: bit-identical ----------------------------------------------


def _wait_for(pred, proc, timeout=240):
    t0 = time.time()
    while not pred() and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.02)
    return pred()


@pytest.mark.parametrize("when", ["collecting", "after-checkpoint"])
def test_kill_9_then_resume_is_bit_identical(when, tiny_path, tmp_path, capsys):
    ref_out = tmp_path / "ref"
    assert _cli(capsys, *_train_args(tiny_path, ref_out, tmp_path / "ref_acts")).returncode == 0
    ref = load_file(str(ref_out / "sae_weights.safetensors"))

    out, acts = tmp_path / "sae", tmp_path / "acts"
    args = _train_args(tiny_path, out, acts)
    proc = subprocess.Popen([sys.executable, "-m", "interp", *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if when == "collecting":
        hit = _wait_for(lambda: any((acts / "blocks.0.hook_resid_post").glob("shard_*.safetensors")), proc)
    else:
        hit = _wait_for(lambda: any((tmp_path / "sae.partial" / "ckpt").glob("step_*/manifest.json")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert hit, f"the training subprocess finished or failed before the {when} kill point"
    assert not out.exists()
    r = _cli(capsys, *args)
    assert r.returncode == 0, r.stderr
    got = load_file(str(out / "sae_weights.safetensors"))
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    assert not (tmp_path / "sae.partial").exists()
    if when == "after-checkpoint":
        assert "resumed from step" in r.stdout
