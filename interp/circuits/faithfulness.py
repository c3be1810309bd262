"""Reference-free faithfulness curves: MIB's CPR and CMD (Mueller et al. 2025, arXiv 2504.13151;
code: MIB-circuit-track ``MIB_circuit_track/evaluation.py::evaluate_area_under_curve``).

For a method's ranking, keep the top-ranked fraction x of the units (heads, or head -> head
edges) and ablate every other one, on held-out prompts; with m the task metric,

    f(x) = (m(C_x) - m(empty)) / (m(full) - m(empty))
    CPR  = integral_0^1 f(x) dx          (higher is better; 1 = every prefix as good as the model)
    CMD  = integral_0^1 |1 - f(x)| dx    (lower is better; 0 = every prefix matches the model)

by the trapezoid rule over the evaluated fractions, as MIB. Ablation: ``resample`` (each ablated
head takes its output on the paired negative prompt: MIB's "patching") or ``mean`` (its mean
output over the negative prompts).

Nodes: fractions k / N for k = 0..N heads. Deviation from MIB, which breaks ties by sort order:
a tied block of scores is kept or dropped as a whole (f is evaluated at the block boundaries and
interpolated linearly inside it), so a ranking with many ties (discrete-sae's code counts) is not
scored by an arbitrary order of its ties.

Edges: MIB's fractions (0.001 ... 1) of the head -> head edges a method scores; an edge u -> v is
removed by resampling u's output along it into all of v's q, k and v inputs (`acdc.removed_edges`).
Edges that no method here scores (into and out of MLPs, from the embeddings, into the logits)
stay in, so ``m(empty)`` at edge level is "no head -> head edge", not MIB's empty graph.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Float
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.patching import ablation_source, full_metric, metric_with_ablation
from interp.circuits.tasks import CircuitTask

MIB_EDGE_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
ABLATIONS = ("resample", "mean")


class Curve(NamedTuple):
    """A faithfulness curve and its areas."""

    fractions: list[float]  # fraction of units kept, increasing
    f: list[float]  # normalised faithfulness at each fraction
    cpr: float  # area under f
    cmd: float  # area under |1 - f|
    m_full: float  # metric of the full model
    m_empty: float  # metric with every unit ablated


def areas(fractions: list[float], f: list[float]) -> tuple[float, float]:
    """(CPR, CMD): trapezoid areas under f and under |1 - f| over `fractions` (MIB's rule)."""
    cpr = cmd = 0.0
    for i in range(len(f) - 1):
        dx = fractions[i + 1] - fractions[i]
        cpr += dx * (f[i] + f[i + 1]) / 2
        cmd += dx * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2
    return cpr, cmd


def _normalise(ms: list[float], m_full: float, m_empty: float) -> list[float]:
    d = m_full - m_empty
    return [(m - m_empty) / d if d != 0 else float("nan") for m in ms]


def tie_blocks(scores: torch.Tensor) -> list[list[int]]:
    """Flat indices of `scores` grouped by equal value, highest value first."""
    flat = scores.flatten()
    vals = sorted(set(flat.tolist()), reverse=True)
    return [(flat == v).nonzero().flatten().tolist() for v in vals]


@torch.no_grad()
def node_curve(model: TransformerBridge, task: CircuitTask, scores: Float[torch.Tensor, "layer head"],
               ablation: str = "resample", source: list[torch.Tensor] | None = None) -> Curve:
    """Keep the top heads by `scores` (tied blocks together), ablate the rest (see module doc)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; known: {ABLATIONS}")
    src = source if source is not None else ablation_source(model, task, ablation)
    n = scores.numel()
    kept = torch.zeros(n, dtype=torch.bool)
    m_full = full_metric(model, task)
    m_empty = metric_with_ablation(model, task, ~kept.view_as(scores), src)
    xs, ms = [0.0], [m_empty]
    for block in tie_blocks(scores):
        kept[block] = True
        xs.append(int(kept.sum()) / n)
        ms.append(m_full if kept.all() else metric_with_ablation(model, task, ~kept.view_as(scores), src))
    f = _normalise(ms, m_full, m_empty)
    return Curve(xs, f, *areas(xs, f), m_full, m_empty)


def _edge_masks(model: TransformerBridge, removed_hh: torch.Tensor):
    """`acdc.EdgeMasks` with the head -> head edges in `removed_hh` [L, H, L, H] removed (all of q, k, v)."""
    from interp.circuits.acdc import EdgeMasks

    L, H = model.cfg.n_layers, model.cfg.n_heads
    em = EdgeMasks.empty(L, H)
    for lu, hu, lv, hv in removed_hh.nonzero().tolist():
        em.qkv[:, lu * (H + 1) + hu, lv, hv] = True
    return em


@torch.no_grad()
def edge_curve(model: TransformerBridge, task: CircuitTask, edge_scores: Float[torch.Tensor, "layer head layer head"],
               fractions: tuple[float, ...] = MIB_EDGE_FRACTIONS) -> Curve:
    """Keep the top fraction of head -> head edges (layer(u) < layer(v)) by `edge_scores`, resample
    the others along the edge (see module doc). Ties are broken by index (as MIB's sort)."""
    from interp.circuits.acdc import removed_edges, source_outputs

    L = model.cfg.n_layers
    valid = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)[:, None, :, None].expand_as(edge_scores).contiguous()
    idx = valid.flatten().nonzero().flatten()
    order = idx[edge_scores.flatten()[idx].argsort(descending=True, stable=True)]
    neg_src = source_outputs(model, task.neg_tokens)

    def metric(n_keep: int) -> float:
        removed = valid.clone().flatten()
        removed[order[:n_keep]] = False
        with removed_edges(model, neg_src, _edge_masks(model, removed.view_as(edge_scores))):
            return float(task.metric_from_logits(model(task.pos_tokens)).mean())

    m_full = full_metric(model, task)
    m_empty = metric(0)
    xs = [0.0] + list(fractions)
    ms = [m_empty] + [metric(int(fr * len(order))) for fr in fractions]
    f = _normalise(ms, m_full, m_empty)
    # MIB integrates from its first fraction (0.001), not from 0; the 0 point is kept for the plot only.
    cpr, cmd = areas(xs[1:], f[1:])
    return Curve(xs, f, cpr, cmd, m_full, m_empty)
