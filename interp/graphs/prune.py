"""Influence, pruning and the replacement / completeness scores, as circuit-tracer 0.5.0 defines them
(`circuit_tracer/graph.py`: `normalize_matrix`, `compute_influence`, `find_threshold`, `prune_graph`,
`compute_graph_scores`), step for step.

With A the adjacency matrix, |A| row-normalised to Â (each node's inputs sum to 1) and w the logit
weights (the logit nodes' probabilities, 0 elsewhere):

* node influence  I = w Â + w Â^2 + ...  (a finite sum: the graph is a DAG, so Â is nilpotent);
* node pruning keeps the nodes with the largest influence until they hold `node_threshold` (0.8)
  of the total; tokens and logits are always kept;
* edge influence on the node-pruned graph:  E[t, s] = Â'[t, s] * (I' + w)[t];  edges are kept until
  they hold `edge_threshold` (0.98) of the total; then feature / error nodes left without an
  outgoing kept edge, and features left without an incoming one, are dropped, repeatedly;
* replacement score = I(tokens) / (I(tokens) + I(errors)): the share of token-to-logit influence that
  reaches the logits through features rather than error nodes;
* completeness score = sum_t (I + w)[t] (1 - sum_{s error} Â[t, s]) / sum_t (I + w)[t]: the
  influence-weighted share of every node's inputs that does not come from error nodes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from interp.graphs.graph import Graph


def normalize_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """|A| with every row scaled to sum to 1 (rows of zeros stay zero)."""
    normalized = matrix.abs()
    return normalized / normalized.sum(dim=1, keepdim=True).clamp(min=1e-10)


def compute_influence(A: torch.Tensor, logit_weights: torch.Tensor, max_iter: int = 1000) -> torch.Tensor:
    """w A + w A^2 + ... for a nilpotent A (stops when the next term is exactly zero)."""
    current = logit_weights @ A
    influence = current
    for _ in range(max_iter):
        if not current.any():
            return influence
        current = current @ A
        influence = influence + current
    raise RuntimeError(f"influence did not converge after {max_iter} iterations (is the graph acyclic?)")


def logit_weights(graph: Graph) -> torch.Tensor:
    w = torch.zeros(graph.adjacency.shape[0])
    w[-graph.n_logits:] = graph.logit_probabilities.float()
    return w


def node_influence(graph: Graph) -> torch.Tensor:
    """[N] influence of every node on the logits."""
    return compute_influence(normalize_matrix(graph.adjacency), logit_weights(graph))


def find_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """The score at which the largest scores first hold `threshold` of the total."""
    sorted_scores = torch.sort(scores, descending=True).values
    cumulative = torch.cumsum(sorted_scores, dim=0) / torch.sum(sorted_scores)
    idx = min(int(torch.searchsorted(cumulative, threshold).item()), len(cumulative) - 1)
    return sorted_scores[idx]


class PruneResult(NamedTuple):
    """What `prune_graph` keeps."""

    node_mask: torch.Tensor  # [N] bool, nodes kept
    edge_mask: torch.Tensor  # [N, N] bool, edges kept (target, source)
    cumulative_scores: torch.Tensor  # [N] each node's cumulative share of influence in descending order


def prune_graph(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneResult:
    """circuit-tracer's `prune_graph` (module docstring)."""
    from interp.errors import InterpError

    if not (0.0 <= node_threshold <= 1.0 and 0.0 <= edge_threshold <= 1.0):
        raise InterpError(f"pruning thresholds must lie in [0, 1], got node {node_threshold}, edge {edge_threshold}")
    n_tokens, n_logits, n_features = graph.n_pos, graph.n_logits, graph.n_features
    A = graph.adjacency.float()
    w = logit_weights(graph)
    influence = compute_influence(normalize_matrix(A), w)
    node_mask = influence >= find_threshold(influence, node_threshold)
    node_mask[-n_logits - n_tokens:] = True

    pruned = A.clone()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    normalized_pruned = normalize_matrix(pruned)
    pruned_influence = compute_influence(normalized_pruned, w) + w
    edge_scores = normalized_pruned * pruned_influence[:, None]
    edge_mask = edge_scores >= find_threshold(edge_scores.flatten(), edge_threshold)

    old = node_mask.clone()
    node_mask[: -n_logits - n_tokens] &= edge_mask[:, : -n_logits - n_tokens].any(0)
    node_mask[:n_features] &= edge_mask[:n_features].any(1)
    while not torch.all(node_mask == old):
        old[:] = node_mask
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        node_mask[: -n_logits - n_tokens] &= edge_mask[:, : -n_logits - n_tokens].any(0)
        node_mask[:n_features] &= edge_mask[:n_features].any(1)

    sorted_scores, sorted_idx = torch.sort(influence, descending=True)
    cumulative = torch.cumsum(sorted_scores, dim=0) / torch.sum(sorted_scores)
    final = torch.zeros_like(influence)
    final[sorted_idx] = cumulative
    return PruneResult(node_mask, edge_mask, final)


class GraphScores(NamedTuple):
    replacement: float  # share of token -> logit influence through features, not errors (0..1)
    completeness: float  # influence-weighted share of node inputs not from errors (0..1)


def graph_scores(graph: Graph) -> GraphScores:
    """circuit-tracer's `compute_graph_scores` (module docstring)."""
    A = normalize_matrix(graph.adjacency.float())
    w = logit_weights(graph)
    influence = compute_influence(A, w)
    es, ee = graph.error_start, graph.token_start
    token_inf = influence[ee: graph.logit_start].sum()
    error_inf = influence[es:ee].sum()
    replacement = token_inf / (token_inf + error_inf)
    non_error = 1 - A[:, es:ee].sum(dim=-1)
    out_inf = influence + w
    completeness = (non_error * out_inf).sum() / out_inf.sum()
    return GraphScores(float(replacement), float(completeness))
