"""The MoE-X browser's computations (interp.moex.browse): batching and reuse must not change them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.data.chess import ChessDataConfig, generate_games
from interp.moex.browse import routing_stats, top_contexts, unit_table
from interp.moex.layer import MoEXConfig
from interp.moex.model import ChessModelConfig, build_chess_model


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    mlp = MoEXConfig("moex", d_model=16, d_mlp=8, n_experts=4, top_k=2)
    model = build_chess_model(ChessModelConfig(n_layers=2, d_model=16, n_heads=2, n_ctx=48), mlp).eval()
    games = generate_games(ChessDataConfig(n_games=7, seed=3, max_chars=60))
    return model, mlp, games


def test_routing_stats_do_not_depend_on_the_batch_and_report_progress(setup):
    model, mlp, games = setup
    seen = []
    one = routing_stats(model, mlp, games, 48, layer=1, batch_size=100)
    many = routing_stats(model, mlp, games, 48, layer=1, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    for a, b in zip(one, many):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert one[0].sum() == pytest.approx(mlp.top_k)  # each character picks top_k experts: load sums to k


def test_top_contexts_from_the_unit_table_equal_a_fresh_forward(setup):
    model, mlp, games = setup
    table = unit_table(model, mlp, games, 48, layer=0, min_firings=1)
    assert table.hidden.shape[:2] == (len(games), 48)  # games_to_tensor pads to n_ctx + 1, the forward drops the last
    before = table.hidden.clone()
    for unit in (0, 5, 31):
        assert top_contexts(model, mlp, games, 48, 0, unit, hidden=table.hidden) == top_contexts(model, mlp, games, 48, 0, unit)
    assert torch.equal(table.hidden, before)  # the cached activations are not written into
