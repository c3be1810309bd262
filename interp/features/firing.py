"""The one answer to "does feature f fire here, and how well does that track property c?".

A feature *fires* at a position when its activation is above ``t * max_f`` (``max_f`` its largest
activation on a reference set; t = 0 means "above zero"); a feature that never exceeds zero
never fires, whatever t is. Its F1 against a binary property c is

    F1(f, c) = 2 tp / (n_fire(f) + n_true(c))

with tp the positions where f fires and c holds. Used by the feature browser's concept labels
(streamed: counts accumulated batch by batch, `f1_from_counts` at the end), the MoE-X chess
metrics (interp/moex/metrics.py: coverage, reconstruction, best property per unit) and the MoE-X
unit table (interp/moex/browse.py).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor


def fires(acts: Float[Tensor, "N F"], max_F: Float[Tensor, " F"] | None = None, t: float = 0.0) -> Bool[Tensor, "N F"]:
    """acts > t * max_F (and max_F > 0); with `max_F` None, acts > 0."""
    if max_F is None:
        return acts > 0
    max_F = max_F.to(acts.device, acts.dtype)
    return (acts > t * max_F) & (max_F > 0)


def f1_from_counts(tp: Float[Tensor, "F C"], n_fire: Float[Tensor, " F"], n_true: Float[Tensor, " C"]) -> Float[Tensor, "F C"]:
    """2 tp / (n_fire + n_true), 0 where both are 0."""
    return 2 * tp / (n_fire[:, None] + n_true[None, :]).clamp(min=1e-9)


def firing_f1(acts: Float[Tensor, "N F"], props: Bool[Tensor, "N C"], max_F: Float[Tensor, " F"] | None = None,
              t: float = 0.0) -> Float[Tensor, "F C"]:
    """F1 of every feature (firing above ``t * max_F``) against every property, in one matmul."""
    f = fires(acts, max_F, t).to(torch.float32)
    p = props.to(f.device, torch.float32)
    return f1_from_counts(f.T @ p, f.sum(0), p.sum(0))
