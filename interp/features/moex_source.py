"""MoE-X expert units of a chess model as a feature source, so the one feature browser shows them.

Uses the read-only MoE-X APIs (interp.moex: `load_chess_model`, `hidden_hook_name`,
`games_to_tensor`, `shipped_games`); the chess models read characters, so their "tokens" are
the characters of the move text (interp.data.chess.VOCAB) and statistics run over given game
rows instead of a text corpus. Units of a dense MLP (``mlp.hook_post``) work the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from interp.errors import InterpError


class MoexSource:
    """The hidden units of one MoE-X (or dense) MLP layer of a chess model; a unit fires when > 0.

    Unit u of a MoE-X layer belongs to expert ``u // d_mlp`` (experts are one wide sparse MLP)."""

    kind = "moex"

    def __init__(self, model, mlp_cfg, layer: int):
        from interp.hooks import parse_hook
        from interp.moex.layer import hidden_hook_name

        if not 0 <= layer < model.cfg.n_layers:
            raise InterpError(f"layer {layer} out of range: the chess model has {model.cfg.n_layers} layers")
        self.hook = parse_hook(model, hidden_hook_name(mlp_cfg, layer))
        self.mlp_cfg = mlp_cfg
        self.n_features = int(mlp_cfg.n_experts * mlp_cfg.d_mlp) if mlp_cfg.is_moe else int(mlp_cfg.d_mlp)

    def encode(self, acts):
        return acts.float().reshape(*acts.shape[:-2], -1) if acts.dim() == 4 else acts.float()

    def directions(self, model):
        return None  # the chess model's unembedding is over characters; logit effects are not shown


def moex_stats_dir(model_name: str, layer: int) -> Path:
    from interp.io import user_data_dir

    return user_data_dir("feature_stats", "chess", model_name, f"units_L{layer}")


def build_moex_stats(model_dir: str | Path, layer: int, n_games: int = 200, progress=None, cfg=None):
    """Statistics of every unit of `layer` of the chess model in `model_dir`, over the shipped
    held-out games (cut to the model's context), stored under `moex_stats_dir`."""
    from interp.data.chess import VOCAB
    from interp.features.compute import StatsConfig, build_feature_stats
    from interp.features.store import save_stats
    from interp.moex.browse import shipped_games
    from interp.moex.model import load_chess_model
    from interp.moex.train import PAD, games_to_tensor

    model, mcfg, mlp, _ = load_chess_model(model_dir)
    games = shipped_games()["val"][:n_games]
    if not games:
        raise InterpError("no shipped chess games to compute unit statistics on")
    rows = games_to_tensor(games, mcfg.n_ctx)[:, :-1]
    cfg = cfg or StatsConfig(n_tokens=rows.numel(), batch_size=16, left=16, right=3, n_logits=1)
    src = MoexSource(model, mlp, layer)
    st = build_feature_stats(model, src, cfg, model_name=Path(model_dir).name, source_name=f"{Path(model_dir).name} L{layer}",
                             progress=progress, tokens=rows, vocab=list(VOCAB), ignore_ids=(PAD,))
    st.meta["experts"] = int(mlp.n_experts) if mlp.is_moe else 0
    st.meta["d_expert"] = int(mlp.d_mlp)
    out = moex_stats_dir(Path(model_dir).name, layer)
    save_stats(st, out)
    return st, out


@torch.no_grad()
def unit_board(model_dir: str | Path, layer: int, unit: int, piece: str | None = None, n_games: int = 60):
    """[8, 8] mean activation of a unit where each square holds `piece` (None: any), at the '.'
    before each white move (interp.moex.browse.unit_heatmap), with the unit's best board cell."""
    from interp.moex.browse import shipped_games, unit_heatmap, unit_table
    from interp.moex.model import load_chess_model

    model, mcfg, mlp, _ = load_chess_model(model_dir)
    table = unit_table(model, mlp, shipped_games()["val"][:n_games], mcfg.n_ctx, layer)
    return unit_heatmap(table, unit, piece), table.best_property[unit], float(table.best_f1[unit])
