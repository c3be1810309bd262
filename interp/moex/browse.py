"""What the MoE-X dashboard page shows: routing statistics, a per-unit summary, top contexts.

All functions take a loaded chess model (`load_chess_model`) and a list of games; none draws.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from interp.data.chess import BoardProperties, board_properties, property_names
from interp.errors import InterpError
from interp.features.firing import fires
from interp.moex.evaluate import hidden_activations, square_heatmap
from interp.moex.layer import MoEXConfig, hidden_hook_name
from interp.moex.model import SHIPPED_DIR


def shipped_games(path: str | Path = SHIPPED_DIR / "games.json") -> dict[str, list[str]]:
    """{"train": [...], "val": [...]}: the games shipped next to the models (for offline browsing)."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"no shipped games at {p}; the package is incomplete (reinstall interp)")
    return json.loads(p.read_text())


def shipped_comparison(path: str | Path = SHIPPED_DIR / "comparison.json") -> dict:
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"no comparison table at {p}; the package is incomplete (reinstall interp)")
    return json.loads(p.read_text())


def mean_std(cell) -> tuple[float, float]:
    """A table cell as (mean, std): ``"0.1976 ± 0.0066"`` -> (0.1976, 0.0066), a number -> (x, 0.0),
    anything else (``"-"``, empty) -> (NaN, NaN)."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return float(cell), 0.0
    parts = str(cell).replace("+/-", "±").split("±")
    try:
        return float(parts[0]), (float(parts[1]) if len(parts) > 1 else 0.0)
    except ValueError:
        return float("nan"), float("nan")


def comparison_points(rows: list[dict], metrics: tuple[str, ...] = ("coverage", "reconstruction")) -> list[dict]:
    """Long rows (model, metric, mean, std) of the comparison table's ``"mean ± std"`` cells, for a
    chart (the shipped table stores text: a chart of the raw cells draws no bars)."""
    out = []
    for r in rows:
        for m in metrics:
            mu, sd = mean_std(r.get(m))
            if mu == mu:
                out.append({"model": r["model"], "metric": m, "mean": mu, "std": sd, "seeds": int(r.get("seeds", 1))})
    return out


class RoutingStats(NamedTuple):
    expert_load: np.ndarray
    """[E] fraction of characters (all of them, padding excluded) routed to each expert"""
    active_per_token: np.ndarray
    """[tokens] number of z units > 0 per token"""
    active_when_chosen: np.ndarray
    """[E] mean units > 0 of an expert over the tokens routed to it"""
    estimated_when_chosen: np.ndarray
    """[E] the router's estimate of the same (sparsity router; NaN for softmax)"""


@torch.no_grad()
def routing_stats(model, mlp: MoEXConfig, games: list[str], n_ctx: int, layer: int, batch_size: int = 16,
                  progress=None) -> RoutingStats:
    """Expert load, active units per token and per chosen expert over every real character of `games`.
    `progress(done_games, total_games)` after each batch."""
    if not mlp.is_moe:
        raise InterpError(f"{mlp.arch} has no router")
    block = model.blocks[layer].mlp
    E, D = mlp.n_experts, mlp.d_mlp
    names = [f"blocks.{layer}.mlp.hook_gates", f"blocks.{layer}.mlp.hook_moex_z", f"blocks.{layer}.ln2.hook_normalized"]
    from interp.device import device_of
    from interp.moex.train import games_to_tensor

    toks = games_to_tensor(games, n_ctx, device_of(model))[:, :-1]
    real_GT = torch.arange(toks.shape[1])[None, :] < torch.tensor([min(len(g), n_ctx) for g in games])[:, None]
    chosen, active, expected = [], [], []
    for i in range(0, len(games), batch_size):
        _, cache = model.run_with_cache(toks[i:i + batch_size], names_filter=lambda n: n in names)
        real = real_GT[i:i + batch_size].reshape(-1)  # every real character (padding excluded)
        ch = cache[names[0]].reshape(-1, E).cpu()[real] != 0
        chosen.append(ch)
        active.append((cache[names[1]].reshape(-1, E, D).cpu()[real] > 0).sum(-1).float())  # [T, E]
        if mlp.router == "sparsity":
            expected.append(block.expected_active(cache[names[2]].reshape(-1, mlp.d_model)).cpu()[real])
        if progress is not None:
            progress(min(i + batch_size, len(games)), len(games))
    chosen, active = torch.cat(chosen), torch.cat(active)
    cnt = chosen.sum(0).clamp(min=1)
    est = np.full(E, np.nan)
    if expected:
        est = ((torch.cat(expected) * chosen).sum(0) / cnt).numpy()
    return RoutingStats(chosen.float().mean(0).numpy(), active.sum(1).numpy(), ((active * chosen).sum(0) / cnt).numpy(), est)


class UnitTable(NamedTuple):
    acts: torch.Tensor
    """[positions, F] unit activations at each '.' before a white move (where the board is scored)"""
    props: BoardProperties
    firing_rate: np.ndarray
    """[F] fraction of those '.' positions where the unit is > 0"""
    firing_rate_all: np.ndarray
    """[F] fraction of ALL characters of the games (padding excluded) where the unit is > 0"""
    n_firings: np.ndarray
    """[F] '.' positions where the unit is > 0"""
    best_property: list[str]
    """[F] the square:piece cell the unit detects best ('' if it fires at fewer than min_firings positions)"""
    best_f1: np.ndarray
    """[F] F1 of that cell (NaN if the unit fires at fewer than min_firings '.' positions)"""
    best_threshold: np.ndarray
    """[F] the t of 'fires above t * max activation' that gives best_f1"""
    n_positions: int
    """'.' positions measured"""
    n_chars: int
    """characters measured for firing_rate_all"""
    hidden: torch.Tensor | None = None
    """[G, n_ctx, F] the unit activations at every character (for `top_contexts` without another forward)"""
    best_cell_count: np.ndarray | None = None
    """[F] '.' positions where the best cell holds (at least `min_cell`, or the unit has no F1)"""
    min_cell: int = 1
    """a cell that holds at fewer '.' positions is never a unit's best"""


@torch.no_grad()
def unit_table(model, mlp: MoEXConfig, games: list[str], n_ctx: int, layer: int, min_firings: int = 10,
               progress=None, min_cell: int = 10) -> UnitTable:
    """Per-unit firing rates (at '.' positions and at every character) and the best board cell.

    A unit that fires at fewer than `min_firings` '.' positions gets no F1 (NaN): an F1 from a
    handful of firings ranks units that fired once above real detectors. Likewise a cell
    (square:piece) that holds at fewer than `min_cell` '.' positions is never a unit's best: an
    F1 of 1.000 on a cell seen once or twice is luck."""
    from interp.moex.metrics import best_property_per_feature

    hook = hidden_hook_name(mlp, layer)
    h = hidden_activations(model, hook, games, n_ctx, progress=progress)  # [G, n_ctx, F]
    real = torch.arange(h.shape[1])[None, :] < torch.tensor([min(len(g), n_ctx) for g in games])[:, None]
    fires_all = (fires(h) & real[..., None]).sum((0, 1)).float()
    props = board_properties(games, max_char=n_ctx)
    acts = h[torch.as_tensor(props.game_index), torch.as_tensor(props.char_index)]
    best = best_property_per_feature(acts, props.one_hot(), min_firings=min_firings, min_cell=min_cell)
    names = property_names()
    fired = fires(acts)
    n_fire = fired.sum(0).numpy()
    return UnitTable(acts, props, fired.float().mean(0).numpy(), (fires_all / real.sum()).numpy(), n_fire,
                     [names[i] if np.isfinite(f) else "" for i, f in zip(best.index.tolist(), best.f1)],
                     best.f1, best.threshold, len(acts), int(real.sum()), h,
                     np.where(np.isfinite(best.f1), best.cell_count, 0), min_cell)


def unit_heatmap(table: UnitTable, unit: int, piece: str | None = None) -> np.ndarray:
    """[8, 8] mean activation of `unit` where each square holds `piece` (None = any piece)."""
    if not 0 <= unit < table.acts.shape[1]:
        raise InterpError(f"unit {unit} out of range (0..{table.acts.shape[1] - 1})")
    return square_heatmap(table.acts[:, unit].numpy(), table.props, piece)


@torch.no_grad()
def top_contexts(model, mlp: MoEXConfig, games: list[str], n_ctx: int, layer: int, unit: int, n: int = 8,
                 left: int = 24, hidden: torch.Tensor | None = None) -> list[dict]:
    """The `n` characters (over all positions of `games`) where `unit` is largest, with text before them.

    `hidden`: the [G, n_ctx, F] activations of these games at this layer if already computed
    (`UnitTable.hidden`); else the model runs over the games."""
    h = hidden if hidden is not None else hidden_activations(model, hidden_hook_name(mlp, layer), games, n_ctx)
    if not 0 <= unit < h.shape[-1]:
        raise InterpError(f"unit {unit} out of range (0..{h.shape[-1] - 1})")
    a = h[..., unit].clone()
    for g, text in enumerate(games):  # padding after a game's end is not a context
        a[g, max(len(text) - 1, 0):] = float("-inf")
    vals, flat = a.reshape(-1).topk(min(n, a.numel()))
    out = []
    for v, f in zip(vals.tolist(), flat.tolist()):
        g, pos = divmod(f, a.shape[1])
        if v == float("-inf"):
            break
        text = games[g]
        out.append({"game": g, "position": pos, "activation": v, "context": text[max(0, pos - left): pos],
                    "char": text[pos], "next": text[pos + 1: pos + 4]})
    return out

