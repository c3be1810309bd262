"""Reading stored statistics: one feature as plain Python values, and searches over features.

Nothing here touches a model: pages and reports call these on a `FeatureStore`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import torch

from interp.errors import InterpError
from interp.features.store import FeatureStore

MAX_IDS = 100_000  # a feature list longer than this is refused before it is built


@dataclass
class Context:
    """A window of tokens around one activating token; `values[i]` is the feature on `tokens[i]`."""

    tokens: list[str]
    token_ids: list[int]
    values: list[float]
    peak: int  # index of the activating token in the window
    value: float  # the feature's value there


@dataclass
class Interval:
    """Samples whose activation lies in (lo, hi]; `share` = `n_firings` / all firings of the feature
    (see `interval_counts`: exact where the top activations prove it, else an estimate)."""

    lo: float
    hi: float
    share: float
    samples: list[Context]
    n_firings: float = 0.0  # firings in (lo, hi]: exact if `exact`, else estimated
    exact: bool = False  # every firing in this interval is one of the stored top activations


@dataclass
class FeatureView:
    """Everything known about one feature, as plain Python values (what pages and reports show)."""

    id: int
    label: str
    label_f1: float
    freq: float
    max_act: float
    mean_act: float
    top: list[Context]
    quantiles: list[Context]
    hist_edges: list[float]  # log10 activation bin edges
    hist_counts: list[int]
    intervals: list[Interval] = field(default_factory=list)  # highest first; empty for format-1 statistics
    label_inputs: list[str] = field(default_factory=list)  # input side of the label: top activating tokens
    label_outputs: list[str] = field(default_factory=list)  # output side: top promoted tokens
    pos_logits: list[tuple[str, float]] = field(default_factory=list)
    neg_logits: list[tuple[str, float]] = field(default_factory=list)
    logit_hist: list[int] = field(default_factory=list)
    logit_range: tuple[float, float] = (0.0, 0.0)
    correlated: list[tuple[int, float, str]] = field(default_factory=list)  # (id, r, label)
    category_f1: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # "dead", "dense", "rare" (see `flags_of`)


DENSE_FREQ = 0.1  # fires on more than 10% of tokens: SAEBench / SAELens call such latents dense
RARE_FREQ = 1e-5  # fires on fewer than 1 token in 100k


def flags_of(freq: float, count: float) -> list[str]:
    if count == 0:
        return ["dead"]
    out = []
    if freq > DENSE_FREQ:
        out.append("dense")
    if freq < RARE_FREQ:
        out.append("rare")
    return out


def _contexts(stats: FeatureStore, vals_row: list, toks_rows: list, acts_rows: list) -> list[Context]:
    left = stats.meta["config"]["left"]
    vocab = stats.vocab
    out = []
    for v, tr, ar in zip(vals_row, toks_rows, acts_rows):
        if not v > 0:
            continue
        keep = [j for j, x in enumerate(tr) if x >= 0]
        if left not in keep:
            continue
        ids = [tr[j] for j in keep]
        out.append(Context([vocab[x] for x in ids], ids, [float(ar[j]) for j in keep], keep.index(left), float(v)))
    return out


def interval_counts(edges: list[float], count: float, top_vals: list[float], top_k: int,
                    reservoir_share: list[float]) -> tuple[list[float], list[bool]]:
    """Firings per activation interval ``(edges[j], edges[j+1]]``, consistent with the stored
    firing count and the stored top activations.

    The top list holds the `top_k` largest firings, so with v_K its smallest value:

    * if the feature fired at most `top_k` times, the top list is every firing: counts are exact;
    * an interval with ``lo >= v_K`` holds only firings above v_K, all in the top list: exact;
    * the other firings, ``R = count - sum(exact)``, are spread over the remaining intervals: each
      gets the top activations it holds (a lower bound) plus a part of what is left,
      ``R - sum(known)``, proportional to the reservoir's share of that interval (a uniform sample
      of firings), evenly if the reservoir saw none of them.

    Why: the reservoir alone (64 samples) gives the top interval ~0% although the top activations
    show it holds 20 firings. -> (counts, exact) per interval, low to high; counts sum to `count`."""
    n = len(edges) - 1
    tops = sorted((min(v, edges[-1]) for v in top_vals if v > 0), reverse=True)  # stored in float16: may round above the max
    known = [sum(1 for v in tops if edges[j] < v <= edges[j + 1]) for j in range(n)]
    if count <= len(tops) or len(tops) < top_k:  # the top list is every firing
        return [float(k) for k in known], [True] * n
    v_k = tops[-1]
    exact = [edges[j] >= v_k for j in range(n)]
    rest = [j for j in range(n) if not exact[j]]
    extra = max(count - sum(known), 0.0)  # firings not in the top list: all <= v_K, in the `rest` intervals
    w = [max(reservoir_share[j], 0.0) for j in rest]
    tot = sum(w)
    counts = [float(k) for k in known]
    for j, wj in zip(rest, w):
        counts[j] += extra * (wj / tot if tot > 0 else 1 / len(rest))
    return counts, exact


def _intervals(stats: FeatureStore, i: int, max_act: float) -> list[Interval]:
    t = stats.t
    if "iv_vals" not in t:
        return []
    n = t["iv_vals"].shape[1]
    edges = [max_act * j / n for j in range(n + 1)]
    count = float(t["count"][i])
    counts, exact = interval_counts(edges, count, t["top_vals"][i].float().tolist(), int(t["top_vals"].shape[1]),
                                    t["iv_share"][i].float().tolist())
    out = []
    for j in reversed(range(n)):
        samples = _contexts(stats, t["iv_vals"][i, j].float().tolist(), t["iv_tokens"][i, j].tolist(), t["iv_acts"][i, j].float().tolist())
        if samples or counts[j] > 0:
            out.append(Interval(edges[j], edges[j + 1], counts[j] / count if count else 0.0, sorted(samples, key=lambda c: -c.value),
                                counts[j], exact[j]))
    return out


def feature_view(stats: FeatureStore, i: int) -> FeatureView:
    i = stats.check_id(i)
    t, vocab, labels, meta = stats.t, stats.vocab, stats.labels, stats.meta
    max_act = float(t["max_act"][i])
    fv = FeatureView(
        id=i, label=labels[i], label_f1=float(meta["label_f1"][i]), freq=float(t["freq"][i]),
        max_act=max_act, mean_act=float(t["mean_act"][i]),
        top=_contexts(stats, t["top_vals"][i].float().tolist(), t["top_tokens"][i].tolist(), t["top_acts"][i].float().tolist()),
        quantiles=_contexts(stats, t["q_vals"][i].float().tolist(), t["q_tokens"][i].tolist(), t["q_acts"][i].float().tolist()),
        hist_edges=meta["hist_edges"], hist_counts=t["act_hist"][i].tolist(),
        intervals=_intervals(stats, i, max_act),
        label_inputs=list(meta.get("label_inputs", [[]] * stats.n_features)[i]),
        label_outputs=list(meta.get("label_outputs", [[]] * stats.n_features)[i]),
        category_f1={c: float(x) for c, x in zip(meta.get("categories", []), t["cat_f1"][i].tolist())},
        flags=flags_of(float(t["freq"][i]), float(t["count"][i])),
    )
    if "logit_pos_ids" in t:
        fv.pos_logits = [(vocab[a], float(b)) for a, b in zip(t["logit_pos_ids"][i].tolist(), t["logit_pos_vals"][i].float().tolist())]
        fv.neg_logits = [(vocab[a], float(b)) for a, b in zip(t["logit_neg_ids"][i].tolist(), t["logit_neg_vals"][i].float().tolist())]
        fv.logit_hist = t["logit_hist"][i].tolist()
        fv.logit_range = tuple(t["logit_range"][i].tolist())
        if not fv.label_outputs:
            fv.label_outputs = [s for s, _ in fv.pos_logits[:3]]
    fv.correlated = [(j, float(r), labels[j]) for j, r in zip(t["corr_ids"][i].tolist(), t["corr_vals"][i].tolist()) if j >= 0]
    return fv


def iter_views(stats: FeatureStore, ids: list[int]) -> Iterator[FeatureView]:
    for i in ids:
        yield feature_view(stats, i)


# ----------------------------------------------------------------------------- search
class Hit(NamedTuple):
    """One search result: a feature, how well it matches (higher first), and its label."""

    feature: int
    score: float
    label: str
    value: float = 0.0  # token search: mean activation on the token
    freq: float = 0.0
    dense: bool = False  # fires on more than DENSE_FREQ of all tokens (says little about any one token)


def search_labels(stats: FeatureStore, query: str, limit: int = 50) -> list[int]:
    """Feature ids whose label contains `query` (case-insensitive), best label F1 first, then rarer first."""
    q = query.strip().lower()
    if not q:
        return []
    f1, freq = stats.meta["label_f1"], stats.t["freq"].tolist()
    hits = [i for i, lab in enumerate(stats.labels) if q in lab.lower()]
    return sorted(hits, key=lambda i: (-f1[i], freq[i]))[:limit]


def token_ids_of(stats: FeatureStore, token: str) -> list[int]:
    """Vocabulary ids of `token`: the exact string, else the same string up to surrounding spaces."""
    vocab = stats.vocab
    ids = [i for i, s in enumerate(vocab) if s == token] or [i for i, s in enumerate(vocab) if s.strip() == token.strip() and token.strip()]
    if not ids:
        raise InterpError(f"token {token!r} is not in the vocabulary (note the leading space, e.g. ' Mary')")
    return ids


def features_for_token(stats: FeatureStore, token: str, limit: int = 8, include_dense: bool = False) -> list[Hit]:
    """Features most specific to `token` (an exact vocabulary string, e.g. ' Mary'), most specific
    first (interp.features.compute.token_specificity: share of the feature's activation on the
    token x its mean activation there relative to its max), with their labels.

    Dense features (firing on more than `DENSE_FREQ` of tokens) are left out unless
    `include_dense`; then they keep their rank and carry ``dense=True``."""
    hits = _features_for_token(stats, token, limit + (0 if include_dense else 64))
    return (hits if include_dense else [h for h in hits if not h.dense])[:limit]


def _features_for_token(stats: FeatureStore, token: str, limit: int) -> list[Hit]:
    ids = token_ids_of(stats, token)
    t, labels = stats.t, stats.labels
    freq = t["freq"]
    if "token_top_ids" in t:
        tid = max(ids, key=lambda x: float(t["token_count"][x]))
        if float(t["token_count"][tid]) == 0:
            raise InterpError(f"token {stats.vocab[tid]!r} never occurred in the corpus the statistics were built on")
        score = t["token_top_spec"][tid].float() if "token_top_spec" in t else t["token_top_vals"][tid].float()
        hits = [Hit(int(a), float(s), labels[int(a)], float(v), float(freq[int(a)]), float(freq[int(a)]) > DENSE_FREQ)
                for a, s, v in zip(t["token_top_ids"][tid].tolist(), score.tolist(), t["token_top_vals"][tid].float().tolist()) if v > 0]
        return sorted(hits, key=lambda h: -h.score)[:limit]
    # large vocabularies: features whose top contexts peak on this token, scored by the share of
    # their top contexts that do (specificity) times the activation there relative to their max
    left = stats.meta["config"]["left"]
    centre = t["top_tokens"][:, :, left].long()
    on = torch.isin(centre, torch.tensor(ids)) & (t["top_vals"].float() > 0)
    n_top = (t["top_vals"].float() > 0).sum(1).clamp(min=1)
    val = (on.float() * t["top_vals"].float()).max(1).values
    score = on.sum(1) / n_top * val / t["max_act"].clamp(min=1e-12)
    top = score.topk(min(limit, len(score)))
    return [Hit(int(i), float(s), labels[int(i)], float(val[i]), float(freq[i]), float(freq[i]) > DENSE_FREQ)
            for i, s in zip(top.indices, top.values) if s > 0]


def parse_feature_range(text: str, n_features: int) -> list[int]:
    """'0-99', '3,7,10-12' -> ids; every id must be in range (checked before any list is built)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise InterpError("no feature ids given")
    spans = []
    for part in parts:
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if not m:
            raise InterpError(f"bad feature list {text!r}; write e.g. 0-99 or 3,7,10-12")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise InterpError(f"bad feature range {part!r}: the end is before the start")
        for x in (lo, hi):
            if not x < n_features:
                raise InterpError(f"feature id {x} out of range: this source has features 0..{n_features - 1}")
        spans.append((lo, hi))
    total = sum(hi - lo + 1 for lo, hi in spans)
    if total > MAX_IDS:
        raise InterpError(f"{total:,} feature ids asked for; at most {MAX_IDS:,} per report")
    ids: list[int] = []
    for lo, hi in spans:
        ids.extend(range(lo, hi + 1))
    return list(dict.fromkeys(ids))


def density_histogram(stats: FeatureStore, bins: int = 30) -> tuple[list[float], list[int]]:
    """Histogram of log10 firing frequency across all features (dead features excluded)."""
    f = stats.t["freq"]
    lf = f[f > 0].log10()
    if len(lf) == 0:
        return [0.0, 1.0], [0]
    lo, hi = float(lf.min()), float(lf.max()) + 1e-6
    counts = torch.histc(lf, bins=bins, min=lo, max=hi).long().tolist()
    return torch.linspace(lo, hi, bins + 1).tolist(), counts


def log10_freq(fv: FeatureView) -> float | None:
    """Where a feature sits on `density_histogram`'s x axis (None for a dead feature)."""
    return math.log10(fv.freq) if fv.freq > 0 else None
