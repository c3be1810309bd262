"""Feature statistics for any feature source (SAE latents, MLP neurons, MoE-X units), in one pass.

A *feature source* (`FeatureSource`) names a hook, maps that hook's activations to feature values
`encode(acts[..., d]) -> [..., F]`, and optionally gives each feature's write direction into the
residual stream (`directions() -> [F, d_model]`) for logit effects. `SaeSource` wraps a SAELens SAE,
`NeuronSource` the neurons of one MLP layer.

`build_feature_stats` streams token rows of a corpus through the model once (stopping after the
hook's layer) and keeps, per feature:

* the top-K activating contexts (a window of tokens around the max token, with per-token values);
* samples spread over the feature's activation distribution (a uniform reservoir of firing
  tokens, then evenly spaced order statistics of it: the quantile samples);
* firing frequency, max and mean activation, and a histogram of log10(activation) when firing;
* logit effects: the direction through ln_final and W_U,  e = (center(d) * w_ln) @ W_U
  (ln_final's scale is a positive scalar per token, so it changes sizes, not the ranking;
  SAEDashboard makes the same approximation);
* the most correlated other features: Pearson r over the first `corr_tokens` tokens;
* an offline label: the concept category of the embedded corpus whose tokens (tokens inside a fact
  sentence of that category) the feature's firing tracks best, F1 = 2 tp / (fires + in_category),
  if that F1 >= `label_min_f1`; else its most common top-activating tokens.

BOS tokens and each row's first token are excluded (they carry attention-sink outliers). The result is written next to the
SAE as `feature_stats.safetensors` (arrays) + `feature_stats.json` (metadata, labels, vocabulary),
so the dashboard and reports read it without loading the model.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from interp.data import corpus as C
from interp.errors import InterpError

if TYPE_CHECKING:  # reading statistics (the dashboard) must not pay for importing TransformerLens
    from transformer_lens import HookedTransformer

    from interp.hooks import HookSpec

log = logging.getLogger(__name__)

STATS_FILE = "feature_stats.safetensors"
META_FILE = "feature_stats.json"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- feature sources
@runtime_checkable
class FeatureSource(Protocol):
    """Anything whose features can be read off one hook of a model."""

    hook: HookSpec  # where the input activations come from
    n_features: int  # F

    def encode(self, acts: Float[Tensor, "... d"]) -> Float[Tensor, "... F"]: ...

    def directions(self, model: HookedTransformer) -> Float[Tensor, "F d_model"] | None: ...


def _layer_of(name: str) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def to_residual(model: HookedTransformer, hook: HookSpec, dirs: Float[Tensor, "F d"]) -> Float[Tensor, "F d_model"] | None:
    """Map write directions at `hook` into the residual stream (None when no linear path exists)."""
    name, layer = hook.name, _layer_of(hook.name)
    if name.endswith(("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_mlp_out", "hook_attn_out")):
        return dirs
    if name.endswith("attn.hook_z") and layer is not None:
        W_O = model.blocks[layer].attn.W_O.detach()  # [H, d_head, d_model]
        return dirs @ (W_O[hook.head] if hook.head is not None else W_O.reshape(-1, W_O.shape[-1]))
    if name.endswith("mlp.hook_post") and layer is not None:
        return dirs @ model.blocks[layer].mlp.W_out.detach()
    return None


class SaeSource:
    """The latents of a SAELens SAE at its own hook (from `sae.cfg.metadata`)."""

    def __init__(self, sae, model: HookedTransformer):
        from interp.hooks import HookSpec, parse_hook

        md = sae.cfg.metadata
        if not getattr(md, "hook_name", None):
            raise InterpError("this SAE's cfg has no metadata.hook_name, so its hook is unknown")
        head = getattr(md, "hook_head_index", None)
        self.sae = sae
        self.hook = parse_hook(model, HookSpec(md.hook_name, head))
        self.n_features = int(sae.cfg.d_sae)

    @torch.no_grad()
    def encode(self, acts):
        return self.sae.encode(acts.to(self.sae.dtype)).float()

    @torch.no_grad()
    def directions(self, model):
        return to_residual(model, self.hook, self.sae.W_dec.detach().float())


class NeuronSource:
    """The d_mlp neurons of one MLP layer (``blocks.L.mlp.hook_post``); a neuron fires when > 0."""

    def __init__(self, model: HookedTransformer, layer: int):
        if not 0 <= layer < model.cfg.n_layers:
            raise InterpError(f"layer {layer} out of range: the model has {model.cfg.n_layers} layers")
        if model.cfg.attn_only:
            raise InterpError("this model is attention-only; it has no MLP neurons")
        from interp.hooks import parse_hook

        self.hook = parse_hook(model, f"blocks.{layer}.mlp.hook_post")
        self.n_features = int(model.cfg.d_mlp)

    def encode(self, acts):
        return acts.float()

    @torch.no_grad()
    def directions(self, model):
        return to_residual(model, self.hook, torch.eye(self.n_features))


# ----------------------------------------------------------------------------- concept labels
class ConceptMatcher:
    """Marks tokens that lie inside a fact sentence of each concept category of the embedded corpus.

    A fact sentence is ``fact_prompt(...).text + answer + "."``; it is matched as a token
    subsequence (with and without a leading space), so it works on any packed token rows."""

    def __init__(self, model: HookedTransformer):
        tok = model.tokenizer
        self.categories = list(C.CATEGORIES)
        self._by_start: dict[tuple[int, int], list[tuple[tuple[int, ...], int]]] = {}
        for ci, cat in enumerate(self.categories):
            for t in range(len(C.FACT_TEMPLATES[cat])):
                for i in range(len(C.FACTS[cat])):
                    p = C.fact_prompt(cat, i, t)
                    s = p.text + p.answer + "."
                    for variant in (" " + s, s):
                        ids = tuple(tok(variant, add_special_tokens=False)["input_ids"])
                        if len(ids) >= 2:
                            self._by_start.setdefault(ids[:2], []).append((ids, ci))

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T] category index, -1 outside fact sentences."""
        out = torch.full(rows.shape, -1, dtype=torch.long)
        for b, row in enumerate(rows.tolist()):
            for i in range(len(row) - 1):
                cands = self._by_start.get((row[i], row[i + 1]))
                if not cands:
                    continue
                for ids, ci in cands:
                    if tuple(row[i : i + len(ids)]) == ids:
                        out[b, i : i + len(ids)] = ci
                        break
        return out


# ----------------------------------------------------------------------------- config and pass
@dataclass
class StatsConfig:
    """How `build_feature_stats` samples the corpus and what it keeps per feature."""

    n_tokens: int = 200_000  # tokens to stream through the model (rounded up to whole rows)
    source: str = "corpus"  # "corpus", a text file, or hf:NAME[:SPLIT[:COLUMN]] (see activations.text_source)
    seq_len: int | None = None  # row length; default the model's n_ctx
    batch_size: int = 32  # rows per forward
    top_k: int = 20  # top-activating contexts kept per feature
    n_quantile: int = 6  # quantile samples kept per feature
    reservoir: int = 32  # firing tokens sampled uniformly per feature (quantile samples come from it)
    left: int = 10  # context tokens kept before the activating token
    right: int = 3  # context tokens kept after it
    n_logits: int = 10  # top promoted / suppressed tokens kept
    n_corr: int = 5  # most correlated features kept
    corr_tokens: int = 1_048_576  # tokens used for the correlations (sparse codes: cheap; dense: an F x F matmul per batch)
    hist_bins: int = 40  # bins of the log10-activation histogram
    hist_lo: float = -4.0  # log10 activation at the first bin edge
    hist_hi: float = 2.0  # log10 activation at the last bin edge
    label_min_f1: float = 0.2  # a category label needs at least this F1
    token_index_max: int = 40_000_000  # keep per-token top features only if d_vocab * F is at most this
    seed: int = 0  # corpus and reservoir seed

    def __post_init__(self):
        if self.n_tokens <= 0:
            raise InterpError("--tokens must be positive")
        if self.top_k < 1 or self.n_quantile < 0 or self.reservoir < self.n_quantile:
            raise InterpError("need top_k >= 1 and 0 <= n_quantile <= reservoir")
        if self.left < 0 or self.right < 0 or self.batch_size < 1:
            raise InterpError("left/right must be >= 0 and batch_size >= 1")
        if not self.hist_lo < self.hist_hi or self.hist_bins < 2:
            raise InterpError("need hist_lo < hist_hi and at least 2 histogram bins")


def _windows(feats_BTF: Tensor, toks_BT: Tensor, idx_KF: Tensor, left: int, right: int) -> tuple[Tensor, Tensor]:
    """Token and value windows around flat positions `idx` -> ([K, F, W] tokens (-1 = none), [K, F, W] values)."""
    B, T, F = feats_BTF.shape
    b, t = idx_KF // T, idx_KF % T
    off = torch.arange(-left, right + 1)
    tw = t[..., None] + off  # [K, F, W]
    ok = (tw >= 0) & (tw < T)
    twc = tw.clamp(0, T - 1)
    bb = b[..., None].expand_as(twc)
    f = torch.arange(F)[None, :, None].expand_as(twc)
    vals = torch.where(ok, feats_BTF[bb, twc, f], torch.zeros(()))
    toks = torch.where(ok, toks_BT[bb, twc], torch.full((), -1, dtype=toks_BT.dtype))
    return toks, vals


def _merge_top(keys_a, keys_b, payloads_a, payloads_b, k):
    """Keep the k largest keys along dim 0 of two [*, F] sets, with their payloads ([*, F, ...])."""
    keys = torch.cat([keys_a, keys_b])
    top = keys.topk(min(k, len(keys)), dim=0)
    out = []
    for pa, pb in zip(payloads_a, payloads_b):
        p = torch.cat([pa, pb])
        ix = top.indices.view(*top.indices.shape, *([1] * (p.dim() - 2))).expand(-1, -1, *p.shape[2:])
        out.append(torch.gather(p, 0, ix))
    return top.values, out


@dataclass
class FeatureStats:
    """Feature statistics: arrays (`t`, name -> tensor, first dim F or d_vocab) and metadata (`meta`)."""

    t: dict[str, Tensor]
    meta: dict

    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def labels(self) -> list[str]:
        return self.meta["labels"]

    @property
    def vocab(self) -> list[str]:
        return self.meta["vocab"]

    def check_id(self, i: int) -> int:
        if not isinstance(i, int) or not 0 <= i < self.n_features:
            raise InterpError(f"feature id {i} out of range: this source has features 0..{self.n_features - 1}")
        return i

    def feature(self, i: int) -> "FeatureView":
        return feature_view(self, i)


@torch.no_grad()
def build_feature_stats(model: HookedTransformer, source: FeatureSource, cfg: StatsConfig, model_name: str = "embedded",
                        source_name: str = "") -> FeatureStats:
    """One pass over `cfg.n_tokens` tokens of `cfg.source`; everything in the module docstring."""
    from interp.activations import text_source, token_rows
    from interp.hooks import capture

    hs, F = source.hook, source.n_features
    seq_len = cfg.seq_len or model.cfg.n_ctx
    if seq_len > model.cfg.n_ctx:
        raise InterpError(f"row length {seq_len} is longer than the model's n_ctx {model.cfg.n_ctx}")
    V = model.cfg.d_vocab
    bos = model.tokenizer.bos_token_id if model.tokenizer.bos_token_id is not None else model.tokenizer.eos_token_id
    layer = _layer_of(hs.name)
    stop = layer + 1 if layer is not None and layer + 1 < model.cfg.n_layers else None
    docs, corpus_id = text_source(cfg.source, cfg.seed)
    rows = token_rows(model, docs, seq_len)
    matcher = ConceptMatcher(model)
    n_cat = len(matcher.categories)
    g = torch.Generator().manual_seed(cfg.seed)
    K, R, W = cfg.top_k, cfg.reservoir, cfg.left + cfg.right + 1
    tok_dtype = torch.int16 if V < 32_768 else torch.int32

    count = torch.zeros(F, dtype=torch.float64)
    act_sum = torch.zeros(F, dtype=torch.float64)
    max_act = torch.zeros(F)
    hist = torch.zeros(F * cfg.hist_bins, dtype=torch.long)
    top_v = torch.full((0, F), -math.inf)
    top_t = torch.zeros((0, F, W), dtype=torch.long)
    top_a = torch.zeros((0, F, W))
    res_k = torch.full((0, F), -math.inf)
    res_v = torch.zeros((0, F, 1))
    res_t = torch.zeros((0, F, W), dtype=torch.long)
    res_a = torch.zeros((0, F, W))
    corr_n, corr_s = 0, torch.zeros(F, dtype=torch.float64)
    corr_xx = torch.zeros(F, F, dtype=torch.float64)
    tp = torch.zeros(F, n_cat, dtype=torch.float64)
    cat_count = torch.zeros(n_cat, dtype=torch.float64)
    token_index = V * F <= cfg.token_index_max
    tok_sum = torch.zeros(V, F) if token_index else None
    tok_n = torch.zeros(V, dtype=torch.float64)
    n_seen = 0
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.n_tokens, unit="tok", unit_scale=True, desc="feature stats")
    while n_seen < cfg.n_tokens:
        rows_left = -(-(cfg.n_tokens - n_seen) // seq_len)
        batch = [r for _, r in zip(range(min(cfg.batch_size, rows_left)), rows)]
        if not batch:
            if n_seen == 0:
                raise InterpError(f"the source {cfg.source!r} has no text")
            log.warning("the source ran out of text after %d tokens", n_seen)
            break
        toks = torch.stack(batch)  # [B, T]
        with capture(model, [hs]) as store:
            model(toks, stop_at_layer=stop)
        feats = source.encode(store[str(hs)]).float()  # [B, T, F]
        real = toks != bos  # [B, T]
        real[:, 0] = False  # a row's first token sees no context: an outlier like BOS
        feats = feats * real[..., None]
        flat = feats.reshape(-1, F)
        fT = flat.T.contiguous()  # [F, N]: reductions and topk along the contiguous dim are much faster
        fireT = fT > 0
        nz = fireT.nonzero()  # (feature, token) pairs
        count += torch.bincount(nz[:, 0], minlength=F)
        act_sum += fT.sum(1).double()
        max_act = torch.maximum(max_act, fT.amax(1))
        per_tok = torch.bincount(nz[:, 1], minlength=fT.shape[1])  # active features per token
        if len(nz):
            lv = fT[nz[:, 0], nz[:, 1]].log10()
            b = ((lv - cfg.hist_lo) / (cfg.hist_hi - cfg.hist_lo) * cfg.hist_bins).floor().long().clamp(0, cfg.hist_bins - 1)
            hist.index_add_(0, nz[:, 0] * cfg.hist_bins + b, torch.ones_like(b))
        # top-K contexts
        kv = fT.topk(min(K, fT.shape[1]), dim=1)
        kvals, kidx = kv.values.T, kv.indices.T  # [K, F]
        tw, aw = _windows(feats, toks, kidx, cfg.left, cfg.right)
        top_v, (top_t, top_a) = _merge_top(top_v, kvals, [top_t, top_a], [tw, aw], K)
        # uniform reservoir over firing tokens: keep the R largest random keys. One key per token,
        # shared by all features, still gives each feature a uniform sample of its own firings.
        r = torch.rand(fT.shape[1], generator=g)
        rk = torch.where(fireT, r, torch.full((), -1.0)).topk(min(R, fT.shape[1]), dim=1)
        rkeys, ridx = rk.values.T, rk.indices.T  # [R, F]
        rv = torch.gather(flat, 0, ridx)[..., None]
        rtw, raw = _windows(feats, toks, ridx, cfg.left, cfg.right)
        res_k, (res_v, res_t, res_a) = _merge_top(res_k, rkeys, [res_v, res_t, res_a], [rv, rtw, raw], R)
        # correlations on the first corr_tokens tokens
        if corr_n < cfg.corr_tokens:
            x = flat[real.reshape(-1)]  # [n, F]
            corr_n += x.shape[0]
            corr_s += x.sum(0).double()
            k_act = int(per_tok.max()) if len(x) else 0
            if 0 < k_act <= 128:
                # sparse codes: sum of products over each token's active pairs, sum_n x_ni x_nj
                v, ix = x.topk(k_act, dim=1)
                pair = (ix[:, :, None] * F + ix[:, None, :]).reshape(-1)
                corr_xx.view(-1).index_add_(0, pair, (v[:, :, None] * v[:, None, :]).reshape(-1).double())
            elif k_act:
                corr_xx += (x.T @ x).double()  # dense features (neurons): float32 product, float64 sum
        # concept categories
        cats = matcher(toks).reshape(-1)
        onehot = torch.nn.functional.one_hot(cats.clamp(min=0), n_cat).float() * (cats >= 0)[:, None]
        tp += (fireT.float() @ onehot).double()
        cat_count += onehot.sum(0).double()
        # per-token mean activation
        tflat = toks.reshape(-1)
        tok_n += torch.bincount(tflat[real.reshape(-1)], minlength=V).double()
        if token_index:
            tok_sum.index_add_(0, tflat, flat)
        n_seen += toks.numel()
        bar.update(toks.numel())
    bar.close()
    n_real_total = float(tok_n.sum())
    seconds = time.perf_counter() - t0

    # quantile samples: evenly spaced order statistics of the reservoir (firing tokens only)
    Q = cfg.n_quantile
    rvals = torch.where(res_k >= 0, res_v[..., 0], torch.full((), -math.inf))  # [R', F]
    order = rvals.argsort(dim=0, descending=True)
    n_fire_res = (res_k >= 0).sum(0)  # [F]
    q_vals = torch.zeros(F, Q)
    q_t = torch.full((F, Q, W), -1, dtype=torch.long)
    q_a = torch.zeros(F, Q, W)
    for j in range(Q):
        # rank j*(n-1)/(Q-1) of the sorted (descending) reservoir
        rank = ((n_fire_res - 1).clamp(min=0).double() * (j / max(Q - 1, 1))).round().long().clamp(max=max(len(order) - 1, 0))
        if len(order) == 0:
            break
        pick = order.gather(0, rank[None])[0]  # [F]
        has = n_fire_res > 0
        ar = torch.arange(F)
        q_vals[:, j] = torch.where(has, rvals[pick, ar], torch.zeros(()))
        q_t[:, j] = torch.where(has[:, None], res_t[pick, ar], torch.full((), -1, dtype=torch.long))
        q_a[:, j] = torch.where(has[:, None], res_a[pick, ar], torch.zeros(()))

    # correlations
    mean = corr_s / max(corr_n, 1)
    cov = corr_xx / max(corr_n, 1) - mean[:, None] * mean[None, :]
    sd = cov.diagonal().clamp(min=0).sqrt()
    corr = cov / (sd[:, None] * sd[None, :]).clamp(min=1e-12)
    corr.fill_diagonal_(-math.inf)
    corr[sd == 0] = -math.inf
    corr[:, sd == 0] = -math.inf
    nc = min(cfg.n_corr, max(F - 1, 1))
    cr = corr.topk(nc, dim=1)
    corr_vals = cr.values.float().nan_to_num(neginf=0.0)
    corr_ids = torch.where(cr.values > -math.inf, cr.indices, torch.full((), -1))

    # logit effects
    dirs = source.directions(model)
    t: dict[str, Tensor] = {}
    if dirs is not None:
        d = dirs.float()
        if model.cfg.normalization_type in ("LN", "LNPre"):
            d = d - d.mean(-1, keepdim=True)
        if getattr(model.ln_final, "w", None) is not None:
            d = d * model.ln_final.w.detach()
        eff = d @ model.W_U.detach()  # [F, V]
        nl = min(cfg.n_logits, V)
        pos, neg = eff.topk(nl, dim=1), (-eff).topk(nl, dim=1)
        t |= {"logit_pos_ids": pos.indices.int(), "logit_pos_vals": pos.values.half(),
              "logit_neg_ids": neg.indices.int(), "logit_neg_vals": (-neg.values).half()}
        lo, hi = eff.min(1).values, eff.max(1).values
        nb = 30
        bins = ((eff - lo[:, None]) / (hi - lo).clamp(min=1e-9)[:, None] * nb).floor().long().clamp(0, nb - 1)
        t["logit_hist"] = torch.zeros(F, nb, dtype=torch.int32).scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.int32))
        t["logit_range"] = torch.stack([lo, hi], 1).float()

    # labels
    fires = count.clone()
    f1 = (2 * tp / (fires[:, None] + cat_count[None, :]).clamp(min=1)).float()  # [F, C]
    vocab = [model.tokenizer.decode([i]) for i in range(V)]
    labels, label_f1 = [], []
    best_f1, best_c = f1.max(1) if n_cat else (torch.zeros(F), torch.zeros(F, dtype=torch.long))
    centre = top_t[:, :, cfg.left].T if len(top_t) else torch.zeros(F, 0, dtype=torch.long)  # [F, K]
    for i in range(F):
        if count[i] == 0:
            labels.append("dead (never fired)")
            label_f1.append(0.0)
        elif n_cat and best_f1[i] >= cfg.label_min_f1:
            labels.append(f"{matcher.categories[int(best_c[i])]} (F1 {float(best_f1[i]):.2f})")
            label_f1.append(float(best_f1[i]))
        else:
            ids = [int(x) for x, v in zip(centre[i], top_v[:, i]) if v > 0 and x >= 0]
            common = [vocab[x] for x, _ in Counter(ids).most_common(3)]
            labels.append("tokens: " + " ".join(repr(s) for s in common))
            label_f1.append(float(best_f1[i]) if n_cat else 0.0)

    n_pad = K - len(top_v)
    if n_pad > 0:  # fewer token positions than K (tiny runs)
        top_v = torch.cat([top_v, torch.full((n_pad, F), -math.inf)])
        top_t = torch.cat([top_t, torch.full((n_pad, F, W), -1, dtype=torch.long)])
        top_a = torch.cat([top_a, torch.zeros(n_pad, F, W)])
    top_valid = top_v > 0
    t |= {
        "freq": (count / max(n_real_total, 1)).float(),
        "count": count.float(),
        "max_act": max_act.float(),
        "mean_act": (act_sum / count.clamp(min=1)).float(),
        "act_hist": hist.view(F, cfg.hist_bins).int(),
        "top_vals": torch.where(top_valid, top_v, torch.zeros(())).T.contiguous().half(),  # [F, K]
        "top_tokens": torch.where(top_valid[..., None], top_t, torch.full((), -1)).permute(1, 0, 2).contiguous().to(tok_dtype),
        "top_acts": top_a.permute(1, 0, 2).contiguous().half(),
        "q_vals": q_vals.half(),
        "q_tokens": q_t.to(tok_dtype),
        "q_acts": q_a.half(),
        "corr_ids": corr_ids.int(),
        "corr_vals": corr_vals,
        "cat_f1": f1,
        "token_count": tok_n.float(),
    }
    if token_index:
        mean_tok = tok_sum / tok_n.clamp(min=1).float()[:, None]
        nt = min(8, F)
        tt = mean_tok.topk(nt, dim=1)
        t["token_top_ids"] = tt.indices.int()
        t["token_top_vals"] = tt.values.half()
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "source": source_name,
        "hook": str(hs),
        "n_features": F,
        "d_vocab": V,
        "n_tokens": n_seen,
        "n_real_tokens": int(n_real_total),
        "corr_tokens": int(corr_n),
        "corpus": corpus_id,
        "seconds": round(seconds, 2),
        "config": asdict(cfg),
        "categories": matcher.categories,
        "category_tokens": [int(x) for x in cat_count.tolist()],
        "hist_edges": torch.linspace(cfg.hist_lo, cfg.hist_hi, cfg.hist_bins + 1).tolist(),
        "labels": labels,
        "label_f1": label_f1,
        "vocab": vocab,
    }
    return FeatureStats({k: v.contiguous() for k, v in t.items()}, meta)


# ----------------------------------------------------------------------------- storage
def save_stats(stats: FeatureStats, directory: str | Path) -> Path:
    """Write `feature_stats.safetensors` + `feature_stats.json` into `directory` (temp files, then rename)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp_s, tmp_j = d / (STATS_FILE + ".tmp"), d / (META_FILE + ".tmp")
    save_file(stats.t, str(tmp_s))
    tmp_j.write_text(json.dumps(stats.meta))
    tmp_s.replace(d / STATS_FILE)
    tmp_j.replace(d / META_FILE)  # the json last: its presence marks a complete pair
    return d


def has_stats(directory: str | Path) -> bool:
    d = Path(directory)
    return (d / STATS_FILE).exists() and (d / META_FILE).exists()


def load_stats(directory: str | Path) -> FeatureStats:
    """Read the statistics stored next to an SAE; a clear `InterpError` if missing or corrupt."""
    d = Path(directory)
    if not has_stats(d):
        raise InterpError(f"{d} has no feature statistics yet; build them with `interp features --sae {d}`")
    try:
        meta = json.loads((d / META_FILE).read_text())
        t = load_file(str(d / STATS_FILE))
    except (json.JSONDecodeError, SafetensorError, OSError) as e:
        raise InterpError(f"feature statistics in {d} are corrupt ({e}); rebuild them with `interp features --sae {d}`") from None
    if meta.get("format_version") != FORMAT_VERSION or t["freq"].shape[0] != meta.get("n_features"):
        raise InterpError(f"feature statistics in {d} are from another version; rebuild them with `interp features --sae {d}`")
    return FeatureStats(t, meta)


# ----------------------------------------------------------------------------- reading one feature
@dataclass
class Context:
    """A window of tokens around one activating token; `values[i]` is the feature on `tokens[i]`."""

    tokens: list[str]
    token_ids: list[int]
    values: list[float]
    peak: int  # index of the activating token in the window
    value: float  # the feature's value there


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
    pos_logits: list[tuple[str, float]] = field(default_factory=list)
    neg_logits: list[tuple[str, float]] = field(default_factory=list)
    logit_hist: list[int] = field(default_factory=list)
    logit_range: tuple[float, float] = (0.0, 0.0)
    correlated: list[tuple[int, float, str]] = field(default_factory=list)  # (id, r, label)
    category_f1: dict[str, float] = field(default_factory=dict)


def _contexts(stats: FeatureStats, i: int, vals: str, toks: str, acts: str) -> list[Context]:
    left = stats.meta["config"]["left"]
    vocab = stats.vocab
    out = []
    for v, tr, ar in zip(stats.t[vals][i].tolist(), stats.t[toks][i].tolist(), stats.t[acts][i].tolist()):
        if v <= 0:
            continue
        keep = [j for j, x in enumerate(tr) if x >= 0]
        ids = [tr[j] for j in keep]
        out.append(Context([vocab[x] for x in ids], ids, [float(ar[j]) for j in keep], keep.index(left), float(v)))
    return out


def feature_view(stats: FeatureStats, i: int) -> FeatureView:
    i = stats.check_id(i)
    t, vocab, labels = stats.t, stats.vocab, stats.labels
    fv = FeatureView(
        id=i, label=labels[i], label_f1=float(stats.meta["label_f1"][i]), freq=float(t["freq"][i]),
        max_act=float(t["max_act"][i]), mean_act=float(t["mean_act"][i]),
        top=_contexts(stats, i, "top_vals", "top_tokens", "top_acts"),
        quantiles=_contexts(stats, i, "q_vals", "q_tokens", "q_acts"),
        hist_edges=stats.meta["hist_edges"], hist_counts=t["act_hist"][i].tolist(),
        category_f1={c: float(x) for c, x in zip(stats.meta["categories"], t["cat_f1"][i].tolist())},
    )
    if "logit_pos_ids" in t:
        fv.pos_logits = [(vocab[a], float(b)) for a, b in zip(t["logit_pos_ids"][i].tolist(), t["logit_pos_vals"][i].tolist())]
        fv.neg_logits = [(vocab[a], float(b)) for a, b in zip(t["logit_neg_ids"][i].tolist(), t["logit_neg_vals"][i].tolist())]
        fv.logit_hist = t["logit_hist"][i].tolist()
        fv.logit_range = tuple(t["logit_range"][i].tolist())
    fv.correlated = [(j, float(r), labels[j]) for j, r in zip(t["corr_ids"][i].tolist(), t["corr_vals"][i].tolist()) if j >= 0]
    return fv


def search_labels(stats: FeatureStats, query: str, limit: int = 50) -> list[int]:
    """Feature ids whose label contains `query` (case-insensitive), best label F1 first."""
    q = query.strip().lower()
    if not q:
        return []
    hits = [i for i, lab in enumerate(stats.labels) if q in lab.lower()]
    f1 = stats.meta["label_f1"]
    return sorted(hits, key=lambda i: -f1[i])[:limit]


def features_for_token(stats: FeatureStats, token: str, limit: int = 8) -> list[tuple[int, float]]:
    """Features with the highest mean activation on `token` (an exact vocabulary string, e.g. ' Mary')."""
    vocab = stats.vocab
    ids = [i for i, s in enumerate(vocab) if s == token] or [i for i, s in enumerate(vocab) if s.strip() == token.strip() and token.strip()]
    if not ids:
        raise InterpError(f"token {token!r} is not in the vocabulary (note the leading space, e.g. ' Mary')")
    if "token_top_ids" in stats.t:
        tid = max(ids, key=lambda x: float(stats.t["token_count"][x]))
        if float(stats.t["token_count"][tid]) == 0:
            raise InterpError(f"token {vocab[tid]!r} never occurred in the corpus the statistics were built on")
        pairs = [(int(a), float(b)) for a, b in zip(stats.t["token_top_ids"][tid].tolist(), stats.t["token_top_vals"][tid].tolist()) if b > 0]
        return pairs[:limit]
    # large vocabularies: features whose top contexts peak on this token
    left = stats.meta["config"]["left"]
    centre = stats.t["top_tokens"][:, :, left].long()
    hits = torch.isin(centre, torch.tensor(ids)).float() * stats.t["top_vals"].float()
    score = hits.max(1).values
    top = score.topk(min(limit, len(score)))
    return [(int(i), float(v)) for i, v in zip(top.indices, top.values) if v > 0]


def density_histogram(stats: FeatureStats, bins: int = 30) -> tuple[list[float], list[int]]:
    """Histogram of log10 firing frequency across all features (dead features excluded)."""
    f = stats.t["freq"]
    lf = f[f > 0].log10()
    if len(lf) == 0:
        return [0.0, 1.0], [0]
    lo, hi = float(lf.min()), float(lf.max()) + 1e-6
    counts = torch.histc(lf, bins=bins, min=lo, max=hi).long().tolist()
    return torch.linspace(lo, hi, bins + 1).tolist(), counts


def parse_feature_range(text: str, n_features: int) -> list[int]:
    """'0-99', '3,7,10-12' -> ids; every id must be in range."""
    ids: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                ids.extend(range(lo, hi + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise InterpError(f"bad feature list {text!r}; write e.g. 0-99 or 3,7,10-12") from None
    if not ids:
        raise InterpError("no feature ids given")
    bad = [i for i in ids if not 0 <= i < n_features]
    if bad:
        raise InterpError(f"feature id {bad[0]} out of range: this source has features 0..{n_features - 1}")
    return list(dict.fromkeys(ids))


def load_sae_dir(path: str | Path):
    """Load an SAE directory (SAELens format) through the SAE module's loader."""
    from interp.sae.io import load_sae

    return load_sae(Path(path))


def build_for_sae_dir(sae_dir: str | Path, cfg: StatsConfig, model=None, model_name: str | None = None) -> FeatureStats:
    """Load the SAE in `sae_dir` (and its model), build its statistics and store them next to it."""
    sae = load_sae_dir(sae_dir)
    name = model_name or getattr(sae.cfg.metadata, "model_name", None) or "embedded"
    if model is None:
        from interp.models import load_model

        model = load_model(name)
    stats = build_feature_stats(model, SaeSource(sae, model), cfg, model_name=name, source_name=str(sae_dir))
    save_stats(stats, sae_dir)
    return stats


def iter_views(stats: FeatureStats, ids: list[int]) -> Iterator[FeatureView]:
    for i in ids:
        yield feature_view(stats, i)
