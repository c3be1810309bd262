"""Evaluate a chess model: validation loss, legal-move rate, board-state coverage and reconstruction.

    evaluate_chess_model(model_dir) -> ChessEval

Feature sources (`feature_activations`): the hidden units of layer `layer` (``hook_moex_z`` for
MoE layers, ``hook_post`` for dense MLPs), optionally encoded by an SAE trained on them (the
dense+SAE baseline). Activations are read at every '.' before a white move (see
`interp.data.chess.board_properties`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from interp.data.chess import PIECE_CLASSES, STOI, VOCAB, board_properties, encode, parse_game
from interp.device import device_of
from interp.errors import InterpError
from interp.moex.layer import hidden_hook_name
from interp.moex.metrics import coverage, reconstruction
from interp.moex.model import SHIPPED_DIR, load_chess_model
from interp.moex.train import CURVE_LEGAL, TrainConfig, games_to_tensor, split_games, validation_loss

log = logging.getLogger(__name__)


@torch.no_grad()
def hidden_activations(model, hook: str, games: list[str], n_ctx: int, batch_size: int = 16, progress=None) -> torch.Tensor:
    """[G, n_ctx, F] activations at `hook` for each game (padded games are cut to n_ctx), on the CPU.

    `progress(done_games, total_games)` after each batch."""
    toks = games_to_tensor(games, n_ctx, device_of(model))[:, :-1]
    outs = []
    for i in range(0, len(games), batch_size):
        _, cache = model.run_with_cache(toks[i:i + batch_size], names_filter=hook)
        outs.append(cache[hook].float().cpu())
        if progress is not None:
            progress(min(i + batch_size, len(games)), len(games))
    return torch.cat(outs)


@torch.no_grad()
def feature_activations(model, hook: str, games: list[str], n_ctx: int, sae=None, batch_size: int = 16):
    """-> (acts [N positions, F], BoardProperties) at every '.' before a white move within n_ctx."""
    props = board_properties(games, max_char=n_ctx)
    acts = []
    for i in range(0, len(games), batch_size):
        h = hidden_activations(model, hook, games[i:i + batch_size], n_ctx, batch_size)
        sel = (props.game_index >= i) & (props.game_index < i + batch_size)
        a = h[torch.as_tensor(props.game_index[sel] - i), torch.as_tensor(props.char_index[sel])]
        if sae is not None:
            a = sae.encode(a.to(device_of(sae))).float().cpu()
        acts.append(a)
    return torch.cat(acts), props


@torch.no_grad()
def greedy_move(model, prefix: str, max_len: int = 8) -> str:
    """The model's greedy continuation of `prefix` up to the next space (or `max_len` characters)."""
    ids, out = encode(prefix), ""
    dev = device_of(model)
    for _ in range(max_len):
        nxt = int(model(torch.tensor([ids], device=dev))[0, -1].argmax())
        if nxt == STOI[" "]:
            break
        ids.append(nxt)
        out += VOCAB[nxt]
    return out


@torch.no_grad()
def legal_move_rate(model, games: list[str], n_ctx: int, n_samples: int = 100, seed: int = 0, max_len: int = 8) -> float:
    """Fraction of greedy white-move continuations (after a random move number 'N.') that are legal."""
    rng = np.random.default_rng(seed)
    legal = total = 0
    for text in games[:n_samples]:
        parsed = parse_game(text)
        ok = [j for j, d in enumerate(parsed.dot_positions) if d + max_len < n_ctx]
        if not ok:
            continue
        j = int(rng.choice(ok))
        out = greedy_move(model, text[: parsed.dot_positions[j] + 1], max_len)
        total += 1
        try:
            parsed.boards[j].parse_san(out)
            legal += 1
        except ValueError:
            pass
    return legal / max(total, 1)


def train_dense_sae(model, hook: str, games: list[str], n_ctx: int, d_sae: int, k: int, steps: int = 600, seed: int = 0):
    """The dense+SAE baseline: a TopK SAE (SAELens, via interp.sae.train) on the MLP hidden units."""
    from interp.sae.train import train_sae_on_tensor

    h = hidden_activations(model, hook, games, n_ctx)
    acts = h.reshape(-1, h.shape[-1])
    g = torch.Generator().manual_seed(seed)
    acts = acts[torch.randperm(len(acts), generator=g)[: 200_000]]
    return train_sae_on_tensor(acts, arch="topk", d_sae=d_sae, k=k, steps=steps, batch_size=1024, seed=seed, hook_name=hook)


@dataclass
class ChessEval:
    arch: str
    val_loss: float
    legal_move_rate: float
    coverage: float
    coverage_threshold: float
    reconstruction: float
    reconstruction_threshold: float
    n_features: int
    l0: float
    """mean number of units > 0 per position"""
    layer: int
    feature_source: str

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_features(acts_tr, props_tr, acts_te, props_te):
    """(CoverageResult on held-out positions, ReconstructionResult train -> held-out) for board cells."""
    p_tr, p_te = props_tr.one_hot(), props_te.one_hot()
    cov = coverage(acts_te, p_te, max_F=acts_tr.max(0).values)
    rec = reconstruction(acts_tr, p_tr, acts_te, p_te)
    return cov, rec


def evaluate_chess_model(model_dir, layer: int | None = None, n_metric_games: int = 300, n_legal: int = 100,
                         sae=None, games: dict | None = None, device=None, recorded: bool = False) -> ChessEval:
    """Validation loss, legal-move rate, and coverage / reconstruction of layer `layer`'s units (default: last).

    `games`: {"train": [...], "val": [...]}; default: the model's own split (regenerated from its
    training record, or the shipped games.json for the shipped models). `recorded`: take the loss and
    legal-move rate from the training record's final curve point when it measured the same games
    (the same numbers; saves a second pass)."""
    model, mcfg, mlp, cfg = load_chess_model(model_dir, device=device)
    tcfg = TrainConfig(**{k: v for k, v in cfg["train"].items() if k in TrainConfig.__dataclass_fields__}) if "train" in cfg else None
    if tcfg is None:
        raise InterpError(f"{model_dir} has no training record; cannot find its held-out games")
    layer = mcfg.n_layers - 1 if layer is None else layer
    if not 0 <= layer < mcfg.n_layers:
        raise InterpError(f"layer {layer} out of range (model has {mcfg.n_layers} layers)")
    shipped = Path(model_dir).resolve().parent / "games.json"
    if games is None and Path(model_dir).resolve().parent == SHIPPED_DIR.resolve() and shipped.is_file():
        games = json.loads(shipped.read_text())  # the shipped models' own held-out games: no regeneration
    train_games, val_games = (games["train"], games["val"]) if games is not None else split_games(tcfg)
    n_ctx = mcfg.n_ctx
    last = (cfg.get("curve") or [{}])[-1]
    if recorded and last.get("n_val_games") == len(val_games) and n_legal == min(CURVE_LEGAL, len(val_games)):
        val, legal = last["val_loss"], last["legal_move_rate"]
    else:
        val = validation_loss(model, val_games, n_ctx)
        legal = legal_move_rate(model, val_games, n_ctx, n_samples=n_legal)
    hook = hidden_hook_name(mlp, layer)
    a_tr, p_tr = feature_activations(model, hook, train_games[:n_metric_games], n_ctx, sae=sae)
    a_te, p_te = feature_activations(model, hook, val_games, n_ctx, sae=sae)
    cov, rec = evaluate_features(a_tr, p_tr, a_te, p_te)
    return ChessEval(mlp.arch if sae is None else f"{mlp.arch}+sae", val, legal, cov.score, cov.threshold, rec.score,
                     rec.threshold, a_te.shape[1], float((a_te > 0).float().sum(1).mean()), layer,
                     hook if sae is None else f"sae({hook})")


def square_heatmap(acts_N: np.ndarray, props, piece: str | None = None) -> np.ndarray:
    """[8, 8] (rank, file): a unit's mean activation over the positions where each square holds
    `piece` (a `PIECE_CLASSES` symbol; None = any piece). NaN where that never happens."""
    if piece is not None and piece not in PIECE_CLASSES:
        raise InterpError(f"unknown piece class {piece!r}; use one of {', '.join(PIECE_CLASSES)}")
    sq = props.squares  # [N, 64]
    mask = (sq == PIECE_CLASSES.index(piece)) if piece is not None else (sq != 0)
    tot = (mask * acts_N[:, None]).sum(0)
    cnt = mask.sum(0)
    mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return mean.reshape(8, 8)
