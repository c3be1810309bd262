"""How good a found circuit is: ROC AUC and precision/recall against a reference, faithfulness,
mean +/- std over seeds, wall time and peak memory.

* ROC AUC (Mann-Whitney form): the probability that a random reference node scores higher than a
  random non-reference node, ties counting one half,

      AUC = (1 / (|P| |N|)) sum_{p in P, n in N} [s_p > s_n] + 0.5 [s_p = s_n].

  Hand-written (a dozen lines) so the package does not depend on scikit-learn.
* faithfulness = m(circuit) / m(full): the task metric with every head outside the circuit
  mean-ablated (mean output over the negative prompts), over the full model's metric.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import threading
import time
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.patching import ablation_source, full_metric, metric_with_ablation
from interp.circuits.tasks import CircuitTask


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC of `scores` for boolean `labels` (NaN when one class is empty)."""
    s = scores.flatten().double()
    y = labels.flatten().bool()
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).double().sum()
    eq = (pos[:, None] == neg[None, :]).double().sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def roc_curve(scores: torch.Tensor, labels: torch.Tensor) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) points, thresholds from high to low."""
    s = scores.flatten().double()
    y = labels.flatten().bool()
    P, N = int(y.sum()), int((~y).sum())
    pts = [(0.0, 0.0)]
    for t in sorted(set(s.tolist()), reverse=True):
        sel = s >= t
        pts.append((float((sel & ~y).sum()) / max(N, 1), float((sel & y).sum()) / max(P, 1)))
    return pts


LAYER_ONLY_AUC_TARGET = 0.75  # issue 25: a reference must not be found by layer position alone


def layer_only_auc(reference: torch.Tensor) -> float:
    """Node AUC of the best ranking that knows only each head's layer: heads ranked by layer,
    earlier layers first or later layers first, whichever scores higher (0.5 = layer says
    nothing; 1.0 = every reference head sits in the extreme layers). `reference`: [layer, head] bool."""
    L, H = reference.shape
    layer = torch.arange(L).repeat_interleave(H).view(L, H).double()
    return max(roc_auc(-layer, reference), roc_auc(layer, reference))


def reference_layers(reference: torch.Tensor) -> list[int]:
    """The layers that hold at least one reference head, ascending."""
    return [int(i) for i in reference.bool().any(1).nonzero().flatten()]


class PRF(NamedTuple):
    """Precision, recall and F1 of a chosen set against a reference set."""

    precision: float
    recall: float
    f1: float


def precision_recall_f1(chosen: torch.Tensor, reference: torch.Tensor) -> PRF:
    """Of boolean masks of equal shape."""
    c, r = chosen.flatten().bool(), reference.flatten().bool()
    tp = int((c & r).sum())
    p = tp / int(c.sum()) if c.any() else 0.0
    rc = tp / int(r.sum()) if r.any() else 0.0
    return PRF(p, rc, 2 * p * rc / (p + rc) if p + rc > 0 else 0.0)


def faithfulness(model: TransformerBridge, task: CircuitTask, circuit: torch.Tensor, source: list[torch.Tensor] | None = None) -> float:
    """m(only `circuit` heads live, the rest mean-ablated) / m(full model)."""
    src = source if source is not None else ablation_source(model, task, "mean")
    full = full_metric(model, task)
    return metric_with_ablation(model, task, ~circuit.bool(), src) / full if full != 0 else float("nan")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, ignoring NaN (std 0 for one value)."""
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, s


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measurement:
    """Filled in when a `measure()` block ends."""

    seconds: float = 0.0  # wall time of the block
    peak_mb: float = 0.0  # peak resident memory above the level at block entry (MB), sampled every 5 ms


@contextlib.contextmanager
def measure() -> Iterator[Measurement]:
    """Wall time and peak extra memory of a block (CUDA: peak allocated; CPU: sampled RSS)."""
    m = Measurement()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        try:
            base = _rss_bytes()
        except OSError:  # no /proc: fall back to the process high-water mark
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.005):
            try:
                peak[0] = max(peak[0], _rss_bytes())
            except OSError:
                return

    th = None if cuda else threading.Thread(target=sample, daemon=True)
    if th:
        th.start()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        if th:
            stop.set()
            th.join()
            try:
                peak[0] = max(peak[0], _rss_bytes())
            except OSError:
                pass
        else:
            peak[0] = torch.cuda.max_memory_allocated()
        m.peak_mb = max(0, peak[0] - base) / 2**20
