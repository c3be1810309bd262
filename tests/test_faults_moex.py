"""MoE-X under faults: kill -9 during `moex train` then --resume (bit-identical), bad inputs as
one-line errors (exit 2) that leave the user's files untouched, CLI defaults equal to TrainConfig."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from interp.errors import InterpError
from tests.faults import assert_clean_error, assert_tree_unchanged, cli_env, tree_snapshot

TINY = ["--engine", "random", "--layers", "1", "--d-model", "16", "--heads", "2", "--n-ctx", "48", "--expert-width", "8",
        "--experts", "4", "--topk", "2", "--games", "24", "--val-games", "6", "--batch-size", "4", "--warmup", "2"]
DENSE = TINY[:12] + TINY[16:]  # without --experts / --topk


def _env(tmp_path) -> dict:
    return cli_env({"INTERP_HOME": str(tmp_path / "home")})


def _one_line_error(p: subprocess.CompletedProcess, match: str) -> None:
    assert_clean_error(p, match)


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """`interp ...` in this process (no interpreter start-up per call) -> CompletedProcess-like result."""
    from interp.cli import main

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def run(*args):
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as e:  # argparse errors
            rc = e.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), rc, out.out, out.err)

    return run


def _weights(d: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(d / "model.safetensors"))


def test_kill_9_during_train_then_resume_is_bit_identical(tmp_path, cli):
    args = ["moex", "train", "--arch", "moex", *TINY, "--steps", "60", "--checkpoint-every", "5"]
    out = tmp_path / "killed"
    # the only subprocess: a real `interp moex train` killed with SIGKILL after its second checkpoint
    proc = subprocess.Popen([sys.executable, "-m", "interp", *args, "--out", str(out)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    man = out / "checkpoint" / "manifest.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if man.is_file():
            try:
                steps = [int(s) for s in json.loads(man.read_text())["checkpoints"]]
            except (ValueError, KeyError):
                steps = []
            if steps and max(steps) >= 10:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "cfg.json").exists()
    _one_line_error(cli(*args, "--out", str(out)), "holds a checkpoint at step")  # no --resume: refused, kept
    assert cli(*args, "--out", str(out), "--resume").returncode == 0
    assert cli(*args, "--out", str(tmp_path / "ref")).returncode == 0  # the same run, never interrupted
    wa, wb = _weights(tmp_path / "ref"), _weights(out)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ca, cb = (json.loads((d / "cfg.json").read_text()) for d in (tmp_path / "ref", out))
    assert ca["val_loss"] == cb["val_loss"] and ca["tokens"] == cb["tokens"]


def test_out_that_is_a_file_or_a_foreign_directory_is_refused(tmp_path, cli):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    _one_line_error(cli("moex", "train", "--arch", "dense-gelu", *DENSE, "--steps", "2", "--out", str(f)),
                    "is a file")
    assert f.read_text() == "mine"
    d = tmp_path / "photos"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"\xff\xd8")
    before = tree_snapshot(d)
    for extra in ([], ["--overwrite"], ["--resume"]):
        p = cli("moex", "train", "--arch", "dense-gelu", "--engine", "random", "--steps", "2", "--out", str(d), *extra)
        _one_line_error(p, "photos")
    assert_tree_unchanged(d, before)


def test_bad_inputs_are_one_line_errors(tmp_path, cli):
    binary = tmp_path / "games.pgn"
    binary.write_bytes(bytes(range(256)) * 4)
    _one_line_error(cli("moex", "train", "--arch", "dense-gelu", "--data", str(binary), "--out", str(tmp_path / "o")),
                    "binary content")
    assert not (tmp_path / "o").exists()
    _one_line_error(cli("moex", "games", "--check", str(binary)), "binary content")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\nworld\n")
    _one_line_error(cli("moex", "train", "--arch", "moex", "--data", str(junk), "--out", str(tmp_path / "o")),
                    "holds no legal game")
    bad = tmp_path / "badcfg"
    bad.mkdir()
    (bad / "cfg.json").write_text("{not json")
    _one_line_error(cli("moex", "eval", str(bad)), "is not valid JSON")
    _one_line_error(cli("moex", "train", "--arch", "moex", "--out", str(bad), "--overwrite"), "is not valid JSON")
    assert (bad / "cfg.json").read_text() == "{not json"


def test_checkpoint_and_weights_of_another_architecture(tmp_path, cli):
    from interp.moex.model import load_chess_model

    base = ["moex", "train", *TINY, "--steps", "4", "--checkpoint-every", "2"]
    assert cli(*base, "--arch", "moex", "--out", str(tmp_path / "m")).returncode == 0
    assert cli("moex", "train", *DENSE, "--steps", "4", "--arch", "dense-relu", "--out", str(tmp_path / "d")).returncode == 0
    # weights of a MoE-X model behind a dense cfg.json
    (tmp_path / "d" / "model.safetensors").write_bytes((tmp_path / "m" / "model.safetensors").read_bytes())
    with pytest.raises(InterpError, match="do not match its cfg.json"):
        load_chess_model(tmp_path / "d")
    # upcycling from a MoE model, resuming a switch run from a moex checkpoint
    _one_line_error(cli(*base, "--arch", "moex", "--upcycle-from", str(tmp_path / "m"), "--out", str(tmp_path / "u")),
                    "upcycling needs a dense one")
    _stop(str(tmp_path / "s"))
    _one_line_error(cli(*base, "--arch", "switch", "--out", str(tmp_path / "s"), "--resume"), "mlp.arch: moex -> switch")


def _stop(out: str):  # a moex run stopped at step 2 (checkpoint left) with the TINY settings
    import argparse

    from interp.commands.moex import register, train_config_from_args
    from interp.moex.train import train_chess_model

    ap = argparse.ArgumentParser()
    register(ap.add_subparsers())
    args = ap.parse_args(["moex", "train", "--arch", "moex", *TINY, "--steps", "4", "--checkpoint-every", "2",
                          "--out", out])
    train_chess_model(train_config_from_args(args), args.out, stop_at=2)


def test_cli_defaults_equal_train_config():
    import argparse

    from interp.commands.moex import register, train_config_from_args
    from interp.moex.train import TrainConfig

    ap = argparse.ArgumentParser()
    register(ap.add_subparsers())
    args = ap.parse_args(["moex", "train", "--arch", "moex", "--out", "x"])
    assert train_config_from_args(args) == TrainConfig()
    dense = train_config_from_args(ap.parse_args(["moex", "train", "--arch", "dense-gelu", "--out", "x"]))
    td = TrainConfig()
    assert dense.mlp.d_mlp == td.mlp.top_k * td.mlp.d_mlp  # equal active hidden units
    assert dense.mlp.active_params() == td.mlp.active_params() - 2 * td.mlp.n_experts * td.mlp.d_model


def test_game_store_resumes_regenerates_damage_and_ignores_worker_count(tmp_path):
    from interp.data.chess import CHUNK, ChessDataConfig, build_game_store, read_game_store

    cfg = ChessDataConfig(n_games=2 * CHUNK, seed=5, max_chars=40, engine="random")
    one = build_game_store(cfg, tmp_path / "a", workers=1)
    assert one.n_available == 2 * CHUNK
    games = read_game_store(one.path)
    chunk = one.path / "chunk-000001.txt"
    chunk.write_text(chunk.read_text()[:100])  # truncated by a crash
    with pytest.raises(InterpError, match="fewer than the 200"):
        read_game_store(one.path, 2 * CHUNK)
    again = build_game_store(cfg, tmp_path / "a")
    assert again.games_per_second > 0 and read_game_store(one.path) == games
    grown = build_game_store(ChessDataConfig(n_games=3 * CHUNK, seed=5, max_chars=40, engine="random"), tmp_path / "a")
    assert grown.n_available == 3 * CHUNK and read_game_store(one.path)[: 2 * CHUNK] == games
    (one.path / "manifest.json").write_text("garbage")
    with pytest.raises(InterpError, match="not a readable game-store manifest"):
        build_game_store(cfg, tmp_path / "a")


def test_games_are_read_while_a_generator_holds_the_store_lock(tmp_path):
    from interp.data.chess import CHUNK, ChessDataConfig, build_game_store, load_or_generate, read_game_store
    from interp.io import RunLock

    cfg = ChessDataConfig(n_games=2 * CHUNK, seed=5, max_chars=40, engine="random")
    store = build_game_store(cfg, tmp_path, workers=1).path
    games = read_game_store(store)
    before = tree_snapshot(store)
    with RunLock(store, "game store"):  # what `interp moex games` holds while it adds chunks
        assert load_or_generate(ChessDataConfig(n_games=150, seed=5, max_chars=40, engine="random"), tmp_path) == games[:150]
        with pytest.raises(InterpError, match=r"is in use by pid .*; it holds 200 complete games now, fewer than the 300 asked for"):
            load_or_generate(ChessDataConfig(n_games=3 * CHUNK, seed=5, max_chars=40, engine="random"), tmp_path)
    assert_tree_unchanged(store, before)


@pytest.mark.skipif(__import__("interp.data.chess", fromlist=["x"]).find_stockfish() is None,
                    reason="no stockfish binary (apt-get install -y stockfish)")
def test_stockfish_store_is_the_same_for_any_worker_count(tmp_path):
    from interp.data.chess import CHUNK, ChessDataConfig, build_game_store, clean_games, read_game_store

    cfg = ChessDataConfig(n_games=2 * CHUNK, seed=2, max_chars=24, stockfish_nodes=20)
    one = read_game_store(build_game_store(cfg, tmp_path / "a", workers=1).path)
    two = read_game_store(build_game_store(cfg, tmp_path / "b", workers=2).path)  # two spawned processes
    assert one == two and len(set(one)) > 20 and clean_games(one).skipped == 0  # 24-character games: few distinct
