"""MoE-X: layer math, routing, hooks, upcycling, chess data, board metrics, training, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp.data.chess import PIECE_CLASSES, ChessDataConfig, board_properties, clean_games, encode, generate_games
from interp.errors import InterpError
from interp.moex.layer import DenseMLP, MoEMLP, MoEXConfig, hidden_hook_name
from interp.moex.metrics import coverage, reconstruction
from interp.moex.model import ChessModelConfig, build_chess_model

torch.set_num_threads(1)


def _moe(E=3, D=2, d=2, k=2, **kw) -> MoEMLP:
    torch.manual_seed(0)
    return MoEMLP(MoEXConfig("moex", d_model=d, d_mlp=D, n_experts=E, top_k=k, **kw))


# ---------- layer ----------

def test_output_equals_explicit_sum_over_chosen_experts():
    m = _moe()
    with torch.no_grad():
        m.W_enc.copy_(torch.tensor([[[1.0, -1.0], [0.0, 2.0]], [[-1.0, 0.5], [1.0, 1.0]], [[2.0, 0.0], [-1.0, -1.0]]]))
        m.b_enc.copy_(torch.tensor([[0.0, 0.1], [0.2, 0.0], [0.0, -0.5]]))
        m.W_dec.copy_(torch.arange(12.0).reshape(3, 2, 2) / 10)
        m.b_dec.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    out = m(x)
    _, idx, gates = m.route(x)
    for n in range(2):
        expect = m.b_dec.clone()
        for j in range(2):
            e = int(idx[n, j])
            expect += gates[n, j] * (torch.relu(x[n] @ m.W_enc[e] + m.b_enc[e]) @ m.W_dec[e])
        assert torch.allclose(out[n], expect, atol=1e-6)
    assert torch.allclose(gates.sum(-1), torch.ones(2))


def test_router_picks_the_sparsest_experts():
    # x > 0 everywhere: expert 1's units all have negative weights (never active), expert 0 all
    # positive (always active), expert 2 half and half. Top-2 sparsest = {1, 2}.
    m = _moe(E=3, D=4, d=3, k=2)
    with torch.no_grad():
        m.W_enc[0] = torch.rand(3, 4) + 0.5
        m.W_enc[1] = -(torch.rand(3, 4) + 0.5)
        m.W_enc[2] = torch.tensor([[1.0, -1.0, 1.0, -1.0]] * 3) * torch.rand(3, 4).add(0.5)
        m.b_enc.zero_()
    x = torch.rand(16, 3) + 0.1
    _, idx, _ = m.route(x)
    assert all(set(r.tolist()) == {1, 2} for r in idx)
    true_active = torch.stack([(x @ m.W_enc[e] > 0).sum(-1) for e in range(3)], -1).float()  # [N, E]
    assert (true_active[:, 1] <= true_active[:, 2]).all() and (true_active[:, 2] < true_active[:, 0]).all()
    est = m.expected_active(x)  # the estimate orders the experts the same way
    assert (est[:, 1] < est[:, 2]).all() and (est[:, 2] < est[:, 0]).all()


def test_sparsity_estimate_tracks_true_active_count():
    torch.manual_seed(1)
    m = _moe(E=8, D=64, d=16, k=2)
    with torch.no_grad():  # experts with different mean weights -> different sparsity
        m.W_enc.add_(torch.linspace(-0.4, 0.4, 8)[:, None, None])
    x = torch.rand(64, 16)
    true = torch.stack([(x @ m.W_enc[e] + m.b_enc[e] > 0).sum(-1) for e in range(8)], -1).float()
    est = m.expected_active(x)
    corr = np.corrcoef(est.detach().flatten().numpy(), true.flatten().numpy())[0, 1]
    assert corr > 0.9


def test_top_k_larger_than_experts_is_a_clear_error():
    with pytest.raises(InterpError, match="top_k=3 is larger than the number of experts E=2"):
        MoEXConfig("moex", d_model=8, d_mlp=4, n_experts=2, top_k=3)
    with pytest.raises(InterpError, match="no experts"):
        MoEXConfig("dense-gelu", d_model=8, d_mlp=4, n_experts=4)
    with pytest.raises(InterpError, match="unknown MLP architecture"):
        MoEXConfig("mixtral")


def test_active_params_equal_hidden_units_across_archs():
    dense = MoEXConfig("dense-gelu", d_model=16, d_mlp=64)
    moex = MoEXConfig("moex", d_model=16, d_mlp=32, n_experts=8, top_k=2)
    switch = MoEXConfig("switch", d_model=16, d_mlp=32, n_experts=8, top_k=2)
    assert dense.active_params() == 2 * 16 * 64 + 64 + 16
    assert moex.active_params() - dense.active_params() == 2 * 8 * 16  # + the router's statistics only
    assert switch.active_params() - dense.active_params() == 8 * 16
    assert moex.act == "relu" and moex.router == "sparsity" and switch.act == "gelu" and switch.router == "softmax"


@pytest.fixture(scope="module")
def tiny_model():
    mcfg = ChessModelConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=32)
    return build_chess_model(mcfg, MoEXConfig("moex", d_model=16, d_mlp=8, n_experts=4, top_k=2)).eval()


def test_hooks_cache_and_z_is_zero_outside_chosen_experts(tiny_model):
    toks = torch.tensor([encode(";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba")])
    logits, cache = tiny_model.run_with_cache(toks)
    z = cache["blocks.1.mlp.hook_moex_z"]
    gates = cache["blocks.1.mlp.hook_gates"]
    assert z.shape == (1, toks.shape[1], 4 * 8) and gates.shape == (1, toks.shape[1], 4)
    assert ((gates != 0).sum(-1) == 2).all()
    z_ped = z.reshape(1, -1, 4, 8)
    assert (z_ped[gates == 0] == 0).all()
    assert (z >= 0).all()  # ReLU experts, non-negative gates
    assert torch.allclose(tiny_model(toks), logits)  # caching changes nothing
    assert hidden_hook_name(tiny_model.blocks[0].mlp.cfg, 0) == "blocks.0.mlp.hook_moex_z"


def test_editing_z_in_a_hook_changes_the_output_and_is_undone(tiny_model):
    toks = torch.tensor([encode(";1.d4 d5 2.c4 e6 3.Nc3")])
    base = tiny_model(toks)
    outs = {}

    def zero(z, hook):
        return torch.zeros_like(z)

    def grab(x, hook):
        outs["mlp"] = x

    tiny_model.run_with_hooks(toks, fwd_hooks=[("blocks.1.mlp.hook_moex_z", zero), ("blocks.1.hook_mlp_out", grab)])
    assert torch.allclose(outs["mlp"], tiny_model.blocks[1].mlp.b_dec.expand_as(outs["mlp"]), atol=1e-6)
    assert torch.allclose(tiny_model(toks), base)  # hooks removed, model unchanged


def test_dense_mlp_has_transformer_lens_hooks():
    mcfg = ChessModelConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=16)
    model = build_chess_model(mcfg, MoEXConfig("dense-relu", d_model=16, d_mlp=32))
    _, cache = model.run_with_cache(torch.tensor([encode(";1.e4 e5")]))
    assert cache["blocks.0.mlp.hook_post"].shape[-1] == 32 and (cache["blocks.0.mlp.hook_post"] >= 0).all()


def test_upcycled_single_expert_equals_the_dense_mlp():
    from interp.moex.upcycle import upcycle_mlp

    torch.manual_seed(0)
    dense = DenseMLP(MoEXConfig("dense-relu", d_model=8, d_mlp=16))
    moe = upcycle_mlp(dense, MoEXConfig("moex", d_model=8, d_mlp=16, n_experts=1, top_k=1), noise=0.0)
    x = torch.randn(5, 8)
    assert torch.allclose(moe(x), dense(x), atol=1e-5)
    big = upcycle_mlp(dense, MoEXConfig("moex", d_model=8, d_mlp=8, n_experts=4, top_k=2), noise=0.0)
    # every dense neuron is copied into the experts (E * D = 2 * M: each exactly twice)
    cols = big.W_enc.permute(0, 2, 1).reshape(-1, 8)
    matches = (cols[:, None, :] == dense.W_in.T[None]).all(-1).sum(0)
    assert (matches == 2).all()


# ---------- chess data ----------

def test_board_properties_on_a_known_position():
    game = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4."
    props = board_properties([game])
    assert list(props.char_index) == [i for i, c in enumerate(game) if c == "."]
    last = props.squares[-1]
    cls = lambda sq: PIECE_CLASSES[last[sq]]  # noqa: E731
    import chess

    assert cls(chess.E4) == "P" and cls(chess.F3) == "N" and cls(chess.B5) == "B" and cls(chess.C6) == "n"
    assert cls(chess.A6) == "p" and cls(chess.E2) == "empty" and cls(chess.E8) == "k"
    assert list(props.extras[-1]) == [False, False, True, True, True, True]


def test_check_pin_and_castling_properties():
    check = board_properties([";1.e4 e5 2.f4 Qh4+ 3."])
    assert check.extras[-1][0]  # white is in check at "3."
    pin = board_properties([";1.d4 e5 2.Nc3 Bb4 3."])
    assert pin.extras[-1][1]  # Nc3 is pinned to the king
    kings = board_properties([";1.e4 e5 2.Ke2 Ke7 3."])
    assert list(kings.extras[-1][2:]) == [False] * 4


def test_illegal_pgn_lines_are_skipped_and_counted():
    res = clean_games([";1.e4 e5 2.Nf3", ";1.e5 e4", "1.e4 e5", ";1.e4 e5 2.Ke3", "", ";1.e4 e5 2.Nf"])
    assert res.games == [";1.e4 e5 2.Nf3", ";1.e4 e5 2.Nf"]  # a move cut off at the end is fine
    assert res.skipped == 3
    assert "illegal or malformed move 'e5'" in res.reasons[0] and "must start with ';'" in res.reasons[1]
    with pytest.raises(InterpError, match="not in the chess vocabulary"):
        encode(";1.e4 e5 2.Nf3 {comment}")


def test_generated_games_are_legal_and_deterministic():
    cfg = ChessDataConfig(n_games=3, seed=7, max_chars=80)
    a, b = generate_games(cfg), generate_games(cfg)
    assert a == b and all(len(g) <= 80 and g.startswith(";1.") for g in a)
    assert clean_games(a).skipped == 0
    assert generate_games(ChessDataConfig(n_games=3, seed=8, max_chars=80)) != a
    with pytest.raises(InterpError, match="unknown chess engine"):
        ChessDataConfig(engine="leela")


# ---------- metrics ----------

def test_coverage_against_hand_computation():
    # 4 positions, 2 features, 2 properties. Feature 0 max 2; feature 1 max 1.
    acts = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 0.5], [0.0, 0.0]])
    props = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=torch.bool)
    # t=0: f0 fires {0,1} -> prop0 F1 = 1; f1 fires {1,2} -> prop1 F1 = 1. Coverage 1.0 at t=0.
    res = coverage(acts, props, thresholds=(0.0, 0.6))
    assert res.score == pytest.approx(1.0) and res.threshold == 0.0
    assert list(res.best_feature) == [0, 1]
    # t=0.6: f0 fires where > 1.2 -> {0}: prop0 F1 = 2*1/(1+2) = 2/3; f1 fires where > 0.6 -> {1}:
    # prop1 F1 = 2/3 and prop0 F1 (f1) = 2/3. Coverage = 2/3.
    assert coverage(acts, props, thresholds=(0.6,)).score == pytest.approx(2 / 3)
    # a property never true is left out of the mean
    props3 = torch.cat([props, torch.zeros(4, 1, dtype=torch.bool)], 1)
    res3 = coverage(acts, props3, thresholds=(0.0,))
    assert res3.score == pytest.approx(1.0) and np.isnan(res3.best_f1[2])


def test_reconstruction_against_hand_computation():
    # train: feature 0 fires exactly on property 0 (10 times) -> kept; feature 1 fires on prop 1
    # only half the time -> precision 0.5, dropped.
    n = 20
    a_tr = torch.zeros(n, 2)
    p_tr = torch.zeros(n, 2, dtype=torch.bool)
    a_tr[:10, 0] = 1.0
    p_tr[:10, 0] = True
    a_tr[:, 1] = 1.0
    p_tr[::2, 1] = True
    # test: 4 positions; prop0 true at 0,1; feature 0 fires at 0 and 2; prop1 true at 3 (never predicted)
    a_te = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    p_te = torch.tensor([[1, 0], [1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    res = reconstruction(a_tr, p_tr, a_te, p_te, thresholds=(0.0,))
    # predicted: (0,p0), (2,p0); tp = 1; F1 = 2*1 / (2 + 3) = 0.4
    assert res.score == pytest.approx(0.4)
    assert res.n_kept_pairs == 1 and res.properties_predicted == 1
    # fewer than 10 firings: nothing kept, F1 0
    assert reconstruction(a_tr[8:], p_tr[8:], a_te, p_te, thresholds=(0.0,)).score == 0.0


def test_metric_input_errors():
    with pytest.raises(InterpError, match="same N"):
        coverage(torch.zeros(3, 2), torch.zeros(4, 2, dtype=torch.bool))
    with pytest.raises(InterpError, match="no property is ever true"):
        coverage(torch.ones(3, 2), torch.zeros(3, 2, dtype=torch.bool))


# ---------- training, resume, evaluation ----------

def _tcfg(tmp_path, arch="moex", steps=4, **kw):
    from interp.moex.train import TrainConfig

    moe = arch in ("moex", "switch")
    mlp = MoEXConfig(arch, d_model=16, d_mlp=8 if moe else 16, n_experts=4 if moe else 1, top_k=2 if moe else 1)
    kw = {"checkpoint_every": 0, **kw}
    return TrainConfig(mlp=mlp, model=ChessModelConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=48), steps=steps,
                       batch_size=4, warmup=2, n_games=16, n_val_games=6, engine="random", store=str(tmp_path / "games"), **kw)


def _weights(d):
    from safetensors.torch import load_file

    return load_file(str(d / "model.safetensors"))


def test_train_resume_is_bit_identical_and_checks_the_config(tmp_path):
    from interp.moex.train import train_chess_model

    cfg = _tcfg(tmp_path, steps=6)
    full = train_chess_model(cfg, tmp_path / "a")
    assert train_chess_model(cfg, tmp_path / "b", stop_at=3) is None
    assert (tmp_path / "b" / "checkpoint" / "step-000003" / "optimizer.safetensors").is_file()
    with pytest.raises(InterpError, match=r"--resume: the checkpoint in .* another config \(.*mlp.arch: moex -> switch;"):
        train_chess_model(_tcfg(tmp_path, arch="switch", steps=6), tmp_path / "b", resume=True)
    with pytest.raises(InterpError, match=r"another config \(lr: 0.001 -> 0.002\)"):
        train_chess_model(_tcfg(tmp_path, steps=6, lr=2e-3), tmp_path / "b", resume=True)
    with pytest.raises(InterpError, match="holds a checkpoint at step 3; pass --resume"):
        train_chess_model(cfg, tmp_path / "b")
    before = json.loads((tmp_path / "b" / "checkpoint" / "manifest.json").read_text())["checkpoints"]["3"]["train_seconds"]
    res = train_chess_model(cfg, tmp_path / "b", resume=True)
    assert res.resumed_from == 3 and not (tmp_path / "b" / "checkpoint").exists()
    # the recorded training time counts the steps before the resume too
    assert before > 0 and json.loads((tmp_path / "b" / "cfg.json").read_text())["train_seconds"] == pytest.approx(before + res.train_seconds)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical
    assert res.tokens == full.tokens and res.val_loss == full.val_loss
    with pytest.raises(InterpError, match="holds a trained model; pass --overwrite"):
        train_chess_model(_tcfg(tmp_path, arch="dense-gelu"), tmp_path / "a")
    with pytest.raises(InterpError, match="nothing to resume"):
        train_chess_model(cfg, tmp_path / "a", resume=True)
    with pytest.raises(InterpError, match="holds no checkpoint to resume"):
        train_chess_model(cfg, tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


def test_resume_skips_a_truncated_checkpoint(tmp_path):
    from interp.moex.train import train_chess_model

    cfg = _tcfg(tmp_path, steps=6, checkpoint_every=2)
    train_chess_model(cfg, tmp_path / "a")
    assert train_chess_model(cfg, tmp_path / "b", stop_at=5) is None
    ckpt = tmp_path / "b" / "checkpoint"
    man = json.loads((ckpt / "manifest.json").read_text())
    assert sorted(man["checkpoints"], key=int) == ["4", "5"]  # the last two are kept
    p = ckpt / "step-000005" / "model.safetensors"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # a crash mid-write
    res = train_chess_model(cfg, tmp_path / "b", resume=True)
    assert res.resumed_from == 4
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_learning_curve_is_recorded(tmp_path):
    from interp.moex.model import read_cfg
    from interp.moex.train import train_chess_model

    res = train_chess_model(_tcfg(tmp_path, steps=4, eval_every=2), tmp_path / "a")
    assert [p["step"] for p in res.curve] == [2, 4]
    assert res.curve[-1]["val_loss"] == res.val_loss and 0 <= res.curve[0]["legal_move_rate"] <= 1
    assert res.curve[-1]["tokens"] == res.tokens > res.curve[0]["tokens"] > 0
    assert read_cfg(tmp_path / "a")["curve"] == res.curve


def test_upcycle_train_and_evaluate(tmp_path):
    from interp.moex.evaluate import evaluate_chess_model
    from interp.moex.train import train_chess_model

    train_chess_model(_tcfg(tmp_path, arch="dense-relu"), tmp_path / "dense")
    train_chess_model(_tcfg(tmp_path, steps=2), tmp_path / "m0")
    with pytest.raises(InterpError, match="upcycling needs a dense one"):
        train_chess_model(_tcfg(tmp_path, steps=2, upcycle_from=str(tmp_path / "m0")), tmp_path / "m1")
    res = train_chess_model(_tcfg(tmp_path, steps=2, upcycle_from=str(tmp_path / "dense")), tmp_path / "up")
    assert np.isfinite(res.val_loss)
    ev = evaluate_chess_model(tmp_path / "up", n_metric_games=16, n_legal=3)
    assert ev.arch == "moex" and ev.n_features == 4 * 8 and 0 <= ev.coverage <= 1 and 0 <= ev.reconstruction <= 1
    assert 0 <= ev.legal_move_rate <= 1 and ev.feature_source == "blocks.0.mlp.hook_moex_z"


def test_games_file_with_illegal_lines(tmp_path):
    from interp.moex.train import split_games

    games = generate_games(ChessDataConfig(n_games=10, seed=1, max_chars=49))
    f = tmp_path / "games.txt"
    f.write_text("\n".join(games[:5] + [";1.e4 e5 2.Qxf7", "garbage"] + games[5:]) + "\n")
    tr, va = split_games(_tcfg(tmp_path, games_file=str(f)))
    assert len(tr) == 4 and len(va) == 6 and ";1.e4 e5 2.Qxf7" not in tr + va
    assert va == games[:6] and tr == games[6:]  # the first games are held out


# ---------- CLI ----------

def test_cli_errors_are_one_line(tmp_path, capsys):
    from interp.cli import main

    assert main(["moex", "train", "--arch", "moex", "--experts", "2", "--topk", "3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: top_k=3 is larger than the number of experts E=2"
    assert main(["moex", "eval", str(tmp_path)]) == 2
    assert "not a chess model directory" in capsys.readouterr().err
    bad = tmp_path / "g.txt"
    bad.write_text(";1.e4 e5\n;1.e4 e4\n")
    assert main(["moex", "games", "--check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "1 legal games, 1 skipped" in out and "line 2" in out


# Openings every shipped model continues legally. The shipped models are small (legal-move rate ~0.2
# on mid-game positions), and some miss deeper lines (e.g. dense-gelu plays Nh3 after 1.e4 c5 2.Nf3 d6).
OPENINGS = (";1.", ";1.e4 e5 2.", ";1.d4 d5 2.c4 e6 3.", ";1.e4 e6 2.", ";1.c4 e5 2.", ";1.d4 Nf6 2.")


def _legal_openings(model) -> int:
    """How many of OPENINGS the model continues with a legal white move (greedy)."""
    import chess

    from interp.moex.evaluate import greedy_move

    n = 0
    for prefix in OPENINGS:
        board = chess.Board()
        for san in (t.split(".")[-1] for t in prefix[1:].split()):
            if san:
                board.push_san(san)
        try:
            board.parse_san(greedy_move(model, prefix) or "?")
            n += 1
        except ValueError:  # illegal, ambiguous or not a move at all
            pass
    return n


def test_shipped_models_load_offline_and_predict_legal_openings():
    from interp.moex.model import load_chess_model, shipped_models

    models = shipped_models()
    assert {"dense-gelu", "switch", "moex", "moex-upcycled"} <= set(models)
    for name, path in models.items():
        model, mcfg, mlp, cfg = load_chess_model(path, device="cpu")
        assert mlp.arch == json.loads((path / "cfg.json").read_text())["mlp"]["arch"]
        # the shipped models are small (legal-move rate about 0.3 on held-out mid-game positions, README),
        # but the common openings they have seen many times are mostly legal
        assert _legal_openings(model) >= 5, name
    # a random model is not: the check can fail
    rnd = build_chess_model(ChessModelConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=32),
                            MoEXConfig("dense-gelu", d_model=16, d_mlp=16), device="cpu")
    assert _legal_openings(rnd.eval()) == 0


def test_load_balancing_loss_only_when_asked():
    m = _moe(E=4, D=4, d=4, k=1, balance_coef=0.1).train()
    m(torch.randn(32, 4))
    assert m.aux_loss.item() > 0  # E * sum f_i P_i >= coef when any expert is used
    m.eval()(torch.randn(32, 4))
    assert m.aux_loss.item() == 0


@pytest.mark.skipif(__import__("interp.data.chess", fromlist=["x"]).find_stockfish() is None,
                    reason="no stockfish binary (apt-get install -y stockfish)")
def test_stockfish_games_are_legal_and_deterministic():
    cfg = ChessDataConfig(n_games=2, seed=3, max_chars=60, engine="stockfish", stockfish_nodes=200)
    a = generate_games(cfg)
    assert a == generate_games(cfg) and clean_games(a).skipped == 0


def test_best_property_per_feature_needs_enough_firings():
    from interp.moex.metrics import best_property_per_feature

    # feature 0 fires exactly where property 1 holds (F1 = 1); feature 1 fires once, on property 0;
    # feature 2 fires on 3 of 4 positions of property 0's 2 -> F1 = 2*2 / (3 + 2) = 0.8
    acts = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    props = torch.tensor([[False, True], [True, True], [True, False], [False, False]])
    best = best_property_per_feature(acts, props, thresholds=(0.0,), min_firings=2)
    assert best.f1[0] == pytest.approx(1.0) and best.index[0] == 1
    assert np.isnan(best.f1[1])  # one firing: no F1, however lucky
    assert best.f1[2] == pytest.approx(0.8) and best.index[2] == 0
    loose = best_property_per_feature(acts, props, thresholds=(0.0,), min_firings=1)
    assert loose.f1[1] == pytest.approx(2 * 1 / (1 + 2)) and loose.index[1] == 0


def test_ship_stores_float16_weights_that_load_into_the_float32_model(tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    from interp.moex.model import load_chess_model
    from interp.moex.suite import SuiteScale, build_suite, ship

    scale = replace(SuiteScale.tiny(), store=str(tmp_path / "store"))
    build_suite(tmp_path / "runs", scale, only=["dense-gelu", "moex"], seeds=(0,), device="cpu")
    shipped = ship(tmp_path / "runs" / "seed0", dest=tmp_path / "shipped", names=("dense-gelu", "moex"))
    toks = torch.tensor([encode(";1.e4 e5 2.Nf3 Nc6 3.")])
    for src, dst in zip([tmp_path / "runs" / "seed0" / n for n in ("dense-gelu", "moex")], shipped):
        full = load_file(str(src / "model.safetensors"))
        half = load_file(str(dst / "model.safetensors"))
        assert full.keys() == half.keys()
        assert all(half[k].dtype == (torch.float16 if v.dtype == torch.float32 else v.dtype) for k, v in full.items())
        assert (dst / "model.safetensors").stat().st_size < 0.6 * (src / "model.safetensors").stat().st_size
        a, b = load_chess_model(src)[0], load_chess_model(dst)[0]
        assert next(b.parameters()).dtype == torch.float32
        with torch.no_grad():
            la, lb = a(toks), b(toks)
        assert (la - lb).abs().max() < 1e-2 and not torch.equal(la, lb)  # float16 rounding, nothing else
