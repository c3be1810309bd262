"""Running statistics of feature values over a stream of token batches.

Each accumulator holds a few running totals for all F features, takes one `Batch` at a time
(`update`) and turns its totals into named arrays at the end (`finalize`). They are independent:
`interp.features.compute` feeds the same batch to each. All state lives on `device` (the model's).

* `Firing`: count, sum and max of activations, and a histogram of log10(activation) when firing.
* `TopContexts`: the K largest activations per feature with a token window around each.
* `Reservoir`: a uniform sample of R firing tokens per feature (with windows): quantile samples
  and activation-interval samples come from it.
* `Correlation`: Pearson r between features over the first `max_tokens` tokens.
* `ConceptCounts`: per feature and concept category, tokens where it fires inside that category.
* `TokenIndex`: per vocabulary token, the summed activation of every feature (for token search).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """One batch of feature values, in the layouts the accumulators need (computed once)."""

    toks: Tensor  # [B, T] token ids
    real: Tensor  # [B, T] bool: counted positions (not BOS, not a row's first token)
    feats: Tensor  # [B, T, F] feature values, 0 at positions that are not real
    flat: Tensor  # [N, F] = feats.reshape(-1, F)
    fT: Tensor  # [F, N] contiguous: reductions along tokens are much faster this way
    fireT: Tensor  # [F, N] bool, fT > 0
    nz: Tensor  # [P, 2] (feature, token) pairs where it fires


def make_batch(toks: Tensor, real: Tensor, feats: Tensor) -> Batch:
    feats = feats * real[..., None]
    flat = feats.reshape(-1, feats.shape[-1])
    fT = flat.T.contiguous()
    fireT = fT > 0
    return Batch(toks, real, feats, flat, fT, fireT, fireT.nonzero())


def windows(feats_BTF: Tensor, toks_BT: Tensor, idx_KF: Tensor, left: int, right: int) -> tuple[Tensor, Tensor]:
    """Token and value windows around flat positions `idx` -> ([K, F, W] tokens (-1 = none), [K, F, W] values)."""
    B, T, F = feats_BTF.shape
    dev = feats_BTF.device
    b, t = idx_KF // T, idx_KF % T
    off = torch.arange(-left, right + 1, device=dev)
    tw = t[..., None] + off  # [K, F, W]
    ok = (tw >= 0) & (tw < T)
    twc = tw.clamp(0, T - 1)
    bb = b[..., None].expand_as(twc)
    f = torch.arange(F, device=dev)[None, :, None].expand_as(twc)
    vals = torch.where(ok, feats_BTF[bb, twc, f], torch.zeros((), device=dev))
    toks = torch.where(ok, toks_BT[bb, twc], torch.full((), -1, dtype=toks_BT.dtype, device=dev))
    return toks, vals


def merge_top(keys_a: Tensor, keys_b: Tensor, payloads_a: list[Tensor], payloads_b: list[Tensor], k: int) -> tuple[Tensor, list[Tensor]]:
    """Keep the k largest keys along dim 0 of two [*, F] sets, with their payloads ([*, F, ...])."""
    keys = torch.cat([keys_a, keys_b])
    top = keys.topk(min(k, len(keys)), dim=0)
    out = []
    for pa, pb in zip(payloads_a, payloads_b):
        p = torch.cat([pa, pb])
        ix = top.indices.view(*top.indices.shape, *([1] * (p.dim() - 2))).expand(-1, -1, *p.shape[2:])
        out.append(torch.gather(p, 0, ix))
    return top.values, out


class Firing:
    """count_f, sum_f, max_f and a histogram of log10(a) over firing tokens (`bins` bins on [lo, hi])."""

    def __init__(self, F: int, bins: int, lo: float, hi: float, device):
        self.bins, self.lo, self.hi = bins, lo, hi
        self.count = torch.zeros(F, dtype=torch.float64, device=device)
        self.act_sum = torch.zeros(F, dtype=torch.float64, device=device)
        self.max_act = torch.zeros(F, device=device)
        self.hist = torch.zeros(F * bins, dtype=torch.long, device=device)

    def update(self, b: Batch) -> None:
        F = len(self.count)
        self.count += torch.bincount(b.nz[:, 0], minlength=F)
        self.act_sum += b.fT.sum(1).double()
        self.max_act = torch.maximum(self.max_act, b.fT.amax(1))
        if len(b.nz):
            lv = b.fT[b.nz[:, 0], b.nz[:, 1]].log10()
            k = ((lv - self.lo) / (self.hi - self.lo) * self.bins).floor().long().clamp(0, self.bins - 1)
            self.hist.index_add_(0, b.nz[:, 0] * self.bins + k, torch.ones_like(k))

    def finalize(self, n_real: float) -> dict[str, Tensor]:
        return {"freq": (self.count / max(n_real, 1)).float(), "count": self.count.float(), "max_act": self.max_act.float(),
                "mean_act": (self.act_sum / self.count.clamp(min=1)).float(),
                "act_hist": self.hist.view(-1, self.bins).int()}


class TopContexts:
    """The K largest activations of every feature, each with a window of tokens and values."""

    def __init__(self, F: int, K: int, left: int, right: int, device):
        W = left + right + 1
        self.K, self.left, self.right = K, left, right
        self.vals = torch.full((0, F), -math.inf, device=device)
        self.toks = torch.zeros((0, F, W), dtype=torch.long, device=device)
        self.acts = torch.zeros((0, F, W), device=device)

    def update(self, b: Batch) -> None:
        kv = b.fT.topk(min(self.K, b.fT.shape[1]), dim=1)
        kvals, kidx = kv.values.T, kv.indices.T  # [K, F]
        tw, aw = windows(b.feats, b.toks, kidx, self.left, self.right)
        self.vals, (self.toks, self.acts) = merge_top(self.vals, kvals, [self.toks, self.acts], [tw, aw], self.K)

    def padded(self) -> tuple[Tensor, Tensor, Tensor]:
        """[K, F], [K, F, W], [K, F, W] with rows past the tokens seen padded (values -inf, tokens -1)."""
        v, t, a = self.vals, self.toks, self.acts
        n_pad = self.K - len(v)
        if n_pad > 0:  # fewer token positions than K (tiny runs)
            F, W = v.shape[1], t.shape[2]
            v = torch.cat([v, torch.full((n_pad, F), -math.inf, device=v.device)])
            t = torch.cat([t, torch.full((n_pad, F, W), -1, dtype=torch.long, device=v.device)])
            a = torch.cat([a, torch.zeros(n_pad, F, W, device=v.device)])
        return v, t, a

    def finalize(self) -> dict[str, Tensor]:
        v, t, a = self.padded()
        ok = v > 0
        return {"top_vals": torch.where(ok, v, torch.zeros((), device=v.device)).T.contiguous().half(),  # [F, K]
                "top_tokens": torch.where(ok[..., None], t, torch.full((), -1, device=v.device)).permute(1, 0, 2).contiguous(),
                "top_acts": a.permute(1, 0, 2).contiguous().half()}


class Reservoir:
    """A uniform sample of up to R firing tokens per feature: keep the R largest random keys.

    One random key per token, shared by all features, still gives each feature a uniform sample of
    its own firings. Keys come from a CPU generator (the same sample on every device)."""

    def __init__(self, F: int, R: int, left: int, right: int, seed: int, device):
        W = left + right + 1
        self.R, self.left, self.right = R, left, right
        self.g = torch.Generator().manual_seed(seed)
        self.keys = torch.full((0, F), -math.inf, device=device)
        self.vals = torch.zeros((0, F, 1), device=device)
        self.toks = torch.zeros((0, F, W), dtype=torch.long, device=device)
        self.acts = torch.zeros((0, F, W), device=device)

    def update(self, b: Batch) -> None:
        r = torch.rand(b.fT.shape[1], generator=self.g).to(b.fT.device)
        rk = torch.where(b.fireT, r, torch.full((), -1.0, device=r.device)).topk(min(self.R, b.fT.shape[1]), dim=1)
        rkeys, ridx = rk.values.T, rk.indices.T  # [R, F]
        rv = torch.gather(b.flat, 0, ridx)[..., None]
        tw, aw = windows(b.feats, b.toks, ridx, self.left, self.right)
        self.keys, (self.vals, self.toks, self.acts) = merge_top(self.keys, rkeys, [self.vals, self.toks, self.acts], [rv, tw, aw], self.R)

    def samples(self) -> tuple[Tensor, Tensor, Tensor]:
        """Values [R', F] (-inf where there is no firing sample), token and value windows [R', F, W]."""
        v = torch.where(self.keys >= 0, self.vals[..., 0], torch.full((), -math.inf, device=self.keys.device))
        return v, self.toks, self.acts


class Correlation:
    """Sums for Pearson r between features over the first `max_tokens` real tokens."""

    def __init__(self, F: int, max_tokens: int, device):
        self.max_tokens = max_tokens
        self.n = 0
        self.s = torch.zeros(F, dtype=torch.float64, device=device)
        self.xx = torch.zeros(F, F, dtype=torch.float64, device=device)

    def update(self, b: Batch) -> None:
        if self.n >= self.max_tokens:
            return
        F = len(self.s)
        x = b.flat[b.real.reshape(-1)]  # [n, F]
        self.n += x.shape[0]
        self.s += x.sum(0).double()
        k_act = int((x > 0).sum(1).max()) if len(x) else 0
        if 0 < k_act <= 128:
            # sparse codes: sum of products over each token's active pairs, sum_n x_ni x_nj
            v, ix = x.topk(k_act, dim=1)
            pair = (ix[:, :, None] * F + ix[:, None, :]).reshape(-1)
            self.xx.view(-1).index_add_(0, pair, (v[:, :, None] * v[:, None, :]).reshape(-1).double())
        elif k_act:
            self.xx += (x.T @ x).double()  # dense features (neurons): float32 product, float64 sum

    def finalize(self, n_top: int) -> dict[str, Tensor]:
        F = len(self.s)
        mean = self.s / max(self.n, 1)
        cov = self.xx / max(self.n, 1) - mean[:, None] * mean[None, :]
        sd = cov.diagonal().clamp(min=0).sqrt()
        corr = cov / (sd[:, None] * sd[None, :]).clamp(min=1e-12)
        corr.fill_diagonal_(-math.inf)
        corr[sd == 0] = -math.inf
        corr[:, sd == 0] = -math.inf
        cr = corr.topk(min(n_top, max(F - 1, 1)), dim=1)
        return {"corr_vals": cr.values.float().nan_to_num(neginf=0.0),
                "corr_ids": torch.where(cr.values > -math.inf, cr.indices, torch.full((), -1, device=cr.indices.device)).int()}


class ConceptCounts:
    """tp[f, c]: real tokens where f fires inside a fact sentence of category c; n_true[c]."""

    def __init__(self, F: int, matcher, device):
        self.matcher = matcher
        n_cat = len(matcher.categories)
        self.tp = torch.zeros(F, n_cat, dtype=torch.float64, device=device)
        self.n_true = torch.zeros(n_cat, dtype=torch.float64, device=device)

    def update(self, b: Batch) -> None:
        cats = self.matcher(b.toks).reshape(-1)
        n_cat = self.tp.shape[1]
        onehot = torch.nn.functional.one_hot(cats.clamp(min=0), n_cat).float() * (cats >= 0)[:, None]
        self.tp += (b.fireT.float() @ onehot).double()
        self.n_true += onehot.sum(0).double()


class TokenIndex:
    """Per vocabulary token v: how often it occurs (real positions) and, if `with_sums`, the summed
    activation of every feature on it (a [V, F] table; kept only when it fits in memory)."""

    def __init__(self, V: int, F: int, with_sums: bool, device):
        self.n = torch.zeros(V, dtype=torch.float64, device=device)
        self.sums = torch.zeros(V, F, device=device) if with_sums else None

    def update(self, b: Batch) -> None:
        t = b.toks.reshape(-1)
        self.n += torch.bincount(t[b.real.reshape(-1)], minlength=len(self.n)).double()
        if self.sums is not None:
            self.sums.index_add_(0, t, b.flat)
