"""Board-state interpretability metrics of Karvonen et al. (2024), for any feature source.

Features are the columns of an activation matrix A [N positions, F] (MoE-X units, dense MLP
neurons, SAE latents, Switch units); properties are a boolean matrix P [N, C] (e.g. "e4 holds a
white pawn" for every square x 13 piece classes). A feature f at threshold t is the classifier
"A[:, f] > t * max_f", where max_f is f's largest activation on the reference (training) set.

* coverage = max_t  mean_{c : P[:, c] has a positive}  max_f F1(f at t, c)
* reconstruction: for each t, keep the (f, c) pairs whose classifier is >= `min_precision` precise
  with >= `min_firings` firings on the training positions; on held-out positions predict
  c = 1 wherever any kept feature for c fires; reconstruction = max_t micro-F1 of the predicted
  board against the true board (over all positions x properties).

Both are computed with one [F, N] x [N, C] matrix product per threshold.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from jaxtyping import Bool, Float

from interp.errors import InterpError
from interp.features.firing import fires, firing_f1

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(10))


class CoverageResult(NamedTuple):
    score: float
    threshold: float
    best_f1: np.ndarray
    """[C] best F1 of any feature per property at the best threshold (NaN for absent properties)"""
    best_feature: np.ndarray
    """[C] index of that feature"""


class ReconstructionResult(NamedTuple):
    score: float
    threshold: float
    n_kept_pairs: int
    """(feature, property) pairs >= min_precision precise at that threshold"""
    properties_predicted: int
    """properties with at least one kept feature"""


def _as_tensors(acts, props):
    a = torch.as_tensor(np.asarray(acts) if not torch.is_tensor(acts) else acts, dtype=torch.float32)
    p = torch.as_tensor(np.asarray(props) if not torch.is_tensor(props) else props).to(torch.float32)
    if a.dim() != 2 or p.dim() != 2 or a.shape[0] != p.shape[0]:
        raise InterpError(f"need acts [N, F] and props [N, C] with the same N, got {tuple(a.shape)} and {tuple(p.shape)}")
    if a.shape[0] == 0:
        raise InterpError("no positions to score")
    return a, p


def feature_max(acts: Float[torch.Tensor, "N F"]) -> Float[torch.Tensor, "F"]:
    return torch.as_tensor(acts, dtype=torch.float32).max(0).values


def _fires(acts_NF: torch.Tensor, max_F: torch.Tensor, t: float) -> torch.Tensor:
    """The shared firing rule (interp.features.firing: above t * max, never for a feature whose max <= 0), as floats."""
    return fires(acts_NF, max_F, t).to(torch.float32)


def coverage(acts: Float[torch.Tensor, "N F"], props: Bool[torch.Tensor, "N C"], thresholds=THRESHOLDS,
             max_F: torch.Tensor | None = None) -> CoverageResult:
    """Mean over present properties of the best F1 of any feature, maximised over thresholds."""
    a, p = _as_tensors(acts, props)
    max_F = feature_max(a) if max_F is None else torch.as_tensor(max_F, dtype=torch.float32)
    n_pos_C = p.sum(0)
    present = n_pos_C > 0
    if not present.any():
        raise InterpError("no property is ever true in these positions")
    best = None
    for t in thresholds:
        vals, idx = firing_f1(a, p > 0, max_F, t).max(0)
        score = vals[present].mean().item()
        if best is None or score > best[0]:
            best = (score, t, vals, idx)
    score, t, vals, idx = best
    f1 = vals.numpy().astype(float)
    f1[~present.numpy()] = np.nan
    return CoverageResult(score, t, f1, idx.numpy())


def reconstruction(acts_train: Float[torch.Tensor, "N F"], props_train: Bool[torch.Tensor, "N C"],
                   acts_test: Float[torch.Tensor, "M F"], props_test: Bool[torch.Tensor, "M C"],
                   thresholds=THRESHOLDS, min_precision: float = 0.95, min_firings: int = 10) -> ReconstructionResult:
    """F1 of the board predicted on test positions from features that are precise on training positions."""
    a_tr, p_tr = _as_tensors(acts_train, props_train)
    a_te, p_te = _as_tensors(acts_test, props_test)
    if a_tr.shape[1] != a_te.shape[1] or p_tr.shape[1] != p_te.shape[1]:
        raise InterpError("train and test must have the same features and properties")
    max_F = feature_max(a_tr)
    n_true = p_te.sum().item()
    best = None
    for t in thresholds:
        f_tr = _fires(a_tr, max_F, t)
        n_fire_F = f_tr.sum(0)
        tp_FC = f_tr.T @ p_tr
        keep_FC = (tp_FC >= min_precision * n_fire_F[:, None]) & (n_fire_F[:, None] >= min_firings)
        pred_MC = (_fires(a_te, max_F, t) @ keep_FC.to(torch.float32)) > 0
        tp = (pred_MC & (p_te > 0)).sum().item()
        f1 = 2 * tp / max(pred_MC.sum().item() + n_true, 1e-9)
        if best is None or f1 > best.score:
            best = ReconstructionResult(f1, t, int(keep_FC.sum()), int(keep_FC.any(0).sum()))
    return best


class BestProperty(NamedTuple):
    f1: np.ndarray
    """[F] the best F1 of each feature for any property over the thresholds (NaN: too few firings)"""
    index: np.ndarray
    """[F] the property of that F1"""
    threshold: np.ndarray
    """[F] the t of 'fires above t * max' that gives it"""
    cell_count: np.ndarray | None = None
    """[F] positions where that property holds (its support: an F1 on a cell seen twice means little)"""


def best_property_per_feature(acts: Float[torch.Tensor, "N F"], props: Bool[torch.Tensor, "N C"], thresholds=THRESHOLDS,
                              min_firings: int = 10, max_F: torch.Tensor | None = None, min_cell: int = 1) -> BestProperty:
    """For each feature, the property it detects best: max over t and c of F1("A[:, f] > t * max_f", c).

    A feature that fires (> 0) at fewer than `min_firings` positions gets NaN, so that a unit
    that fired once with a lucky hit does not rank first; a property that holds at fewer than
    `min_cell` positions is never a feature's best (an F1 of 1.0 on a cell seen once or twice
    is luck, not a detector). The same classifiers as `coverage`, seen from the feature's side
    instead of the property's.
    """
    a, p = _as_tensors(acts, props)
    n_cell_C = (p > 0).sum(0)
    p = p.clone()
    rare = n_cell_C < max(min_cell, 1)
    p[:, rare] = 0  # such a property gets F1 0 for every feature (never best unless nothing else fires)
    max_F = feature_max(a) if max_F is None else torch.as_tensor(max_F, dtype=torch.float32)
    F_ = a.shape[1]
    best = torch.full((F_,), -1.0)
    best_idx = torch.zeros(F_, dtype=torch.long)
    best_t = torch.zeros(F_)
    for t in thresholds:
        f1_FC = firing_f1(a, p > 0, max_F, t)
        val, idx = f1_FC.max(1)
        better = val > best
        best, best_idx, best_t = torch.where(better, val, best), torch.where(better, idx, best_idx), torch.where(better, t, best_t)
    enough = fires(a).sum(0) >= min_firings
    f1 = best.numpy().astype(float)
    f1[~enough.numpy()] = np.nan
    thr = best_t.numpy().astype(float)
    thr[~enough.numpy()] = np.nan
    return BestProperty(f1, best_idx.numpy(), thr, n_cell_C[best_idx].numpy())
