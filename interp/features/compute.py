"""Feature statistics for any feature source, in one pass over a corpus.

`build_feature_stats` streams token rows through the model once (stopping after the hook's layer),
feeds every batch to the accumulators of interp.features.accumulators, and finalizes them into
named arrays. Per feature it keeps:

* the top-K activating contexts (a window of tokens around the max token, with per-token values);
* activation-interval samples, as SAEDashboard shows them: (0, max] cut into `n_intervals` equal
  intervals, up to `interval_samples` contexts from each, drawn from a uniform reservoir of its
  firing tokens (plus the top contexts, so the top intervals are never empty), with the share of
  firings in each interval estimated from the reservoir; and `n_quantile` evenly spaced order
  statistics of the reservoir (the quantile samples of the JSON export);
* firing frequency, max and mean activation, and a histogram of log10(activation) when firing;
* logit effects: the direction through ln_final and W_U,  e = (center(d) * w_ln) @ W_U
  (ln_final's scale is a positive scalar per token, so it changes sizes, not the ranking;
  SAEDashboard makes the same approximation);
* the most correlated other features: Pearson r over the first `corr_tokens` tokens;
* a label (interp.features.labels): a concept category where the corpus defines concepts,
  else its top activating tokens and its top promoted tokens;
* per vocabulary token, the features most *specific* to it (see `token_specificity`).

BOS tokens and each row's first token are excluded (they carry attention-sink outliers).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from interp.errors import InterpError
from interp.features import accumulators as A
from interp.features.firing import f1_from_counts
from interp.features.labels import ConceptMatcher, make_labels
from interp.features.sources import FeatureSource, SaeSource
from interp.features.store import FORMAT_VERSION, FeatureStore, save_stats
from interp.progress import Progress, ProgressFn

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge

log = logging.getLogger(__name__)


@dataclass
class StatsConfig:
    """How `build_feature_stats` samples the corpus and what it keeps per feature."""

    n_tokens: int = 200_000  # tokens to stream through the model (rounded up to whole rows)
    source: str = "corpus"  # corpus, a text/.jsonl/.parquet file, a dataset directory, or hf:NAME (interp.data.sources)
    seq_len: int | None = None  # row length; default the model's n_ctx
    batch_size: int = 32  # rows per forward
    top_k: int = 20  # top-activating contexts kept per feature
    n_quantile: int = 6  # evenly spaced quantile samples kept per feature (JSON export)
    reservoir: int = 64  # firing tokens sampled uniformly per feature (interval and quantile samples come from it)
    n_intervals: int = 8  # activation intervals (0, max] is cut into, for the interval samples
    interval_samples: int = 4  # contexts kept per interval
    left: int = 10  # context tokens kept before the activating token
    right: int = 3  # context tokens kept after it
    n_logits: int = 10  # top promoted / suppressed tokens kept
    n_corr: int = 5  # most correlated features kept
    corr_tokens: int = 1_048_576  # tokens used for the correlations (sparse codes: cheap; dense: an F x F matmul per batch)
    hist_bins: int = 40  # bins of the log10-activation histogram
    hist_lo: float = -4.0  # log10 activation at the first bin edge
    hist_hi: float = 2.0  # log10 activation at the last bin edge
    label_min_f1: float = 0.2  # a concept label needs at least this F1
    token_index_max: int = 40_000_000  # keep per-token top features only if d_vocab * F is at most this
    token_top: int = 8  # features kept per vocabulary token (token search)
    seed: int = 0  # corpus and reservoir seed
    text_field: str = "text"  # the text field of JSONL / parquet / dataset sources
    split: str = "train"  # the split of a dataset source with several
    prepend_bos: bool = True  # BOS at position 0 of every row (SAELens' prepend_bos)

    @property
    def source_spec(self):
        """The `interp.data.sources.SourceSpec` these fields describe."""
        from interp.data.sources import SourceSpec

        return SourceSpec(source=self.source, text_field=self.text_field, split=self.split, context_size=self.seq_len,
                          prepend_bos=self.prepend_bos, seed=self.seed)

    def __post_init__(self):
        for name in ("n_tokens", "batch_size", "top_k", "n_intervals", "interval_samples", "n_logits", "n_corr", "token_top"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InterpError(f"--tokens must be positive" if name == "n_tokens" else f"{name} must be a whole number >= 1, got {v!r}")
        if self.n_tokens > 10**12:
            raise InterpError(f"--tokens {self.n_tokens} is more than 10^12; give a realistic token count")
        if self.n_quantile < 0 or self.reservoir < max(self.n_quantile, 1):
            raise InterpError("need 0 <= n_quantile <= reservoir and reservoir >= 1")
        if self.left < 0 or self.right < 0:
            raise InterpError("left/right must be >= 0")
        if not (math.isfinite(self.hist_lo) and math.isfinite(self.hist_hi)) or not self.hist_lo < self.hist_hi or self.hist_bins < 2:
            raise InterpError("need finite hist_lo < hist_hi and at least 2 histogram bins")
        if self.seq_len is not None and self.seq_len < 2:
            raise InterpError(f"seq_len must be >= 2, got {self.seq_len}")


def corpus_defines_concepts(source: str) -> bool:
    """Concept labels only mean something on the embedded world corpus (its fact sentences)."""
    return source == "corpus"


def quantile_samples(vals: Tensor, toks: Tensor, acts: Tensor, Q: int) -> dict[str, Tensor]:
    """Q evenly spaced order statistics of each feature's reservoir sample (values [R, F], -inf = none)."""
    R, F = vals.shape
    W = toks.shape[-1]
    dev = vals.device
    order = vals.argsort(dim=0, descending=True)
    n_fire = (vals > -math.inf).sum(0)  # [F]
    q_v = torch.zeros(F, Q, device=dev)
    q_t = torch.full((F, Q, W), -1, dtype=torch.long, device=dev)
    q_a = torch.zeros(F, Q, W, device=dev)
    ar = torch.arange(F, device=dev)
    has = n_fire > 0
    for j in range(Q if R else 0):
        # rank j*(n-1)/(Q-1) of the sorted (descending) reservoir
        rank = ((n_fire - 1).clamp(min=0).double() * (j / max(Q - 1, 1))).round().long().clamp(max=R - 1)
        pick = order.gather(0, rank[None])[0]
        q_v[:, j] = torch.where(has, vals[pick, ar], torch.zeros((), device=dev))
        q_t[:, j] = torch.where(has[:, None], toks[pick, ar], torch.full((), -1, dtype=torch.long, device=dev))
        q_a[:, j] = torch.where(has[:, None], acts[pick, ar], torch.zeros((), device=dev))
    return {"q_vals": q_v.half(), "q_tokens": q_t, "q_acts": q_a.half()}


def interval_samples(res: tuple[Tensor, Tensor, Tensor], top: tuple[Tensor, Tensor, Tensor], max_act: Tensor,
                     n_int: int, S: int) -> dict[str, Tensor]:
    """Up to S contexts per activation interval ((j/n, (j+1)/n] x max_f), reservoir samples first
    (they are representative), then top contexts not already in the reservoir; and the share of
    firings per interval, estimated from the reservoir. -> iv_vals [F, n, S], iv_tokens/iv_acts
    [F, n, S, W], iv_share [F, n]."""
    rv, rt, ra = res  # [R, F], [R, F, W]
    tv, tt, ta = top  # [K, F], [K, F, W]
    dev = rv.device
    dup = (tv[:, None, :] == rv[None, :, :]).any(1)  # [K, F] top context already sampled
    tv = torch.where(dup | (tv <= 0), torch.full((), -math.inf, device=dev), tv)
    vals = torch.cat([rv, tv]).T  # [F, P] in priority order
    toks = torch.cat([rt, tt]).permute(1, 0, 2)  # [F, P, W]
    acts = torch.cat([ra, ta]).permute(1, 0, 2)
    F, P = vals.shape
    W = toks.shape[-1]
    m = max_act.clamp(min=1e-12)[:, None]
    bucket = ((vals / m) * n_int).ceil().long().clamp(1, n_int) - 1  # (j/n, (j+1)/n] -> j
    bucket = torch.where(vals > 0, bucket, torch.full((), -1, device=dev))
    # rank of each candidate among the candidates of its bucket, in priority order
    onehot = torch.nn.functional.one_hot(bucket.clamp(min=0), n_int) * (bucket >= 0)[..., None]  # [F, P, n]
    rank = (onehot.cumsum(1) - 1).gather(2, bucket.clamp(min=0)[..., None])[..., 0]  # [F, P]
    keep = (bucket >= 0) & (rank < S)
    f_i, p_i = keep.nonzero(as_tuple=True)
    b_i, r_i = bucket[f_i, p_i], rank[f_i, p_i]
    iv_v = torch.zeros(F, n_int, S, device=dev)
    iv_t = torch.full((F, n_int, S, W), -1, dtype=torch.long, device=dev)
    iv_a = torch.zeros(F, n_int, S, W, device=dev)
    iv_v[f_i, b_i, r_i] = vals[f_i, p_i]
    iv_t[f_i, b_i, r_i] = toks[f_i, p_i]
    iv_a[f_i, b_i, r_i] = acts[f_i, p_i]
    n_res = (rv > -math.inf).sum(0).clamp(min=1)  # [F]
    share = onehot[:, : rv.shape[0]].sum(1).float() / n_res[:, None]  # reservoir part only: a uniform sample
    return {"iv_vals": iv_v.half(), "iv_tokens": iv_t, "iv_acts": iv_a.half(), "iv_share": share.half()}


def token_specificity(sums_VF: Tensor, n_V: Tensor, act_sum_F: Tensor, max_F: Tensor, k: int) -> dict[str, Tensor]:
    """Features most specific to each vocabulary token v, for token search:

        share(v, f) = S[v, f] / sum_v' S[v', f]      (the part of f's activation that falls on v)
        level(v, f) = (S[v, f] / n_v) / max_f         (mean activation on v, relative to f's max)
        specificity = share * level

    A dense feature that fires everywhere has a tiny share on any one token; a feature that fires
    once on v has a low level; the top scores go to features that fire strongly and mostly on v.
    -> token_top_ids / token_top_spec [V, k] and token_top_vals (the mean activation on v)."""
    mean = sums_VF / n_V.clamp(min=1).float()[:, None]
    spec = (sums_VF / act_sum_F.float().clamp(min=1e-12)[None, :]) * (mean / max_F.clamp(min=1e-12)[None, :])
    top = spec.topk(min(k, spec.shape[1]), dim=1)
    return {"token_top_ids": top.indices.int(), "token_top_spec": top.values.half(),
            "token_top_vals": mean.gather(1, top.indices).half()}


def logit_effects(model: TransformerBridge, dirs: Tensor, n_logits: int, n_bins: int = 30) -> dict[str, Tensor]:
    """Top promoted / suppressed tokens and a histogram of every token's logit effect."""
    d = dirs.float().to(model.W_U.device)
    if model.cfg.normalization_type in ("LN", "LNPre"):
        d = d - d.mean(-1, keepdim=True)
    if getattr(model.ln_final, "w", None) is not None:
        d = d * model.ln_final.w.detach().float()
    eff = d @ model.W_U.detach().float()  # [F, V]
    nl = min(n_logits, eff.shape[1])
    pos, neg = eff.topk(nl, dim=1), (-eff).topk(nl, dim=1)
    lo, hi = eff.min(1).values, eff.max(1).values
    bins = ((eff - lo[:, None]) / (hi - lo).clamp(min=1e-9)[:, None] * n_bins).floor().long().clamp(0, n_bins - 1)
    hist = torch.zeros(eff.shape[0], n_bins, dtype=torch.int32, device=eff.device)
    hist.scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.int32))
    return {"logit_pos_ids": pos.indices.int(), "logit_pos_vals": pos.values.half(), "logit_neg_ids": neg.indices.int(),
            "logit_neg_vals": (-neg.values).half(), "logit_hist": hist, "logit_range": torch.stack([lo, hi], 1).float()}


@torch.no_grad()
def build_feature_stats(model: TransformerBridge, source: FeatureSource, cfg: StatsConfig, model_name: str = "embedded",
                        source_name: str = "", progress: ProgressFn | None = None, tokens: Tensor | None = None,
                        vocab: list[str] | None = None, ignore_ids: tuple[int, ...] | None = None) -> FeatureStore:
    """One pass over `cfg.n_tokens` tokens of `cfg.source` (or of the given token rows `tokens`
    [N, T], e.g. to compare with another tool on exactly the same tokens, or chess games);
    everything in the module docstring. A model without a tokenizer needs `tokens`, `vocab` (the
    string of each id) and `ignore_ids` (ids never counted, e.g. padding) instead of BOS.
    `progress(done_tokens, total_tokens, message)` is called after every batch."""
    from interp.data.sources import open_source
    from interp.device import device_of
    from interp.hooks import capture, stop_layer

    hs, F = source.hook, source.n_features
    dev = device_of(model)
    seq_len = cfg.seq_len or model.cfg.n_ctx
    if tokens is not None:
        if tokens.dim() != 2 or tokens.shape[0] == 0:
            raise InterpError(f"token rows must be a non-empty [N, T] tensor, got shape {tuple(tokens.shape)}")
        seq_len = int(tokens.shape[1])
    if seq_len > model.cfg.n_ctx:
        raise InterpError(f"row length {seq_len} is longer than the model's n_ctx {model.cfg.n_ctx}")
    V = model.cfg.d_vocab
    tok = model.tokenizer
    if tok is None and (tokens is None or vocab is None):
        raise InterpError("this model has no tokenizer: give token rows and their vocabulary")
    if ignore_ids is None:
        ignore_ids = (tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id,)
    ignore = torch.tensor([i for i in ignore_ids if i is not None], dtype=torch.long, device=dev)
    stop = stop_layer(model, [hs])  # the one answer to "stop the forward after this hook's layer"
    if tokens is None:
        src = open_source(cfg.source_spec, tok)
        rows, corpus_id = src.rows(seq_len), src.id
    else:
        rows, corpus_id = iter(tokens), f"{tokens.shape[0]} given token rows"
    concepts = tokens is None and corpus_defines_concepts(cfg.source)
    matcher = ConceptMatcher(model) if concepts else None

    firing = A.Firing(F, cfg.hist_bins, cfg.hist_lo, cfg.hist_hi, dev)
    top = A.TopContexts(F, cfg.top_k, cfg.left, cfg.right, dev)
    res = A.Reservoir(F, cfg.reservoir, cfg.left, cfg.right, cfg.seed, dev)
    corr = A.Correlation(F, cfg.corr_tokens, dev)
    cc = A.ConceptCounts(F, matcher, dev) if matcher else None
    tix = A.TokenIndex(V, F, V * F <= cfg.token_index_max, dev)
    accs = [a for a in (firing, top, res, corr, cc, tix) if a is not None]

    n_seen = 0
    t0 = time.perf_counter()
    with Progress(cfg.n_tokens, "feature stats", progress, unit="tok", unit_scale=True) as bar:
        while n_seen < cfg.n_tokens:
            rows_left = -(-(cfg.n_tokens - n_seen) // seq_len)
            batch = [r for _, r in zip(range(min(cfg.batch_size, rows_left)), rows)]
            if not batch:
                if n_seen == 0:
                    raise InterpError(f"the source {cfg.source!r} has no text")
                log.warning("the source ran out of text after %d tokens", n_seen)
                break
            toks = torch.stack(batch).to(dev)  # [B, T]
            with capture(model, [hs]) as store:
                model(toks, stop_at_layer=stop)
            feats = source.encode(store[str(hs)]).float()  # [B, T, F]
            if not torch.isfinite(feats).all():
                raise InterpError(f"the {getattr(source, 'kind', 'feature')} source at {hs} gives NaN or Inf values "
                                  "(are its weights finite?); no statistics written")
            real = ~torch.isin(toks, ignore)
            real[:, 0] = False  # a row's first token sees no context: an outlier like BOS
            b = A.make_batch(toks, real, feats)
            for acc in accs:
                acc.update(b)
            n_seen += toks.numel()
            bar.update(toks.numel())
    n_real = float(tix.n.sum())
    seconds = time.perf_counter() - t0

    t: dict[str, Tensor] = {}
    t |= firing.finalize(n_real)
    t |= top.finalize()
    res_v, res_t, res_a = res.samples()
    t |= quantile_samples(res_v, res_t, res_a, cfg.n_quantile)
    t |= interval_samples((res_v, res_t, res_a), top.padded(), firing.max_act, cfg.n_intervals, cfg.interval_samples)
    t |= corr.finalize(cfg.n_corr)
    dirs = source.directions(model)
    if dirs is not None:
        t |= logit_effects(model, dirs, cfg.n_logits)
    categories = matcher.categories if matcher else []
    f1 = f1_from_counts(cc.tp, firing.count, cc.n_true).float() if cc else None
    t["cat_f1"] = f1 if f1 is not None else torch.zeros(F, 0, device=dev)
    t["token_count"] = tix.n.float()
    if tix.sums is not None:
        t |= token_specificity(tix.sums, tix.n, firing.act_sum, firing.max_act, cfg.token_top)

    if vocab is None:
        vocab = [tok.decode([i]) for i in range(V)]
    elif len(vocab) != V:
        raise InterpError(f"vocab has {len(vocab)} entries but the model has d_vocab {V}")
    centre = t["top_tokens"][:, :, cfg.left]  # [F, K]
    labels = make_labels(firing.count.cpu(), centre.cpu(), t["top_vals"].float().cpu(), vocab, categories,
                         f1.cpu() if f1 is not None else None,
                         t["logit_pos_ids"].cpu() if "logit_pos_ids" in t else None, cfg.label_min_f1)
    tok_dtype = torch.int16 if V < 32_768 else torch.int32
    for k in ("top_tokens", "q_tokens", "iv_tokens"):
        t[k] = t[k].to(tok_dtype)
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "source": source_name,
        "kind": getattr(source, "kind", "sae"),
        "hook": str(hs),
        "n_features": F,
        "d_vocab": V,
        "n_tokens": n_seen,
        "n_real_tokens": int(n_real),
        "corr_tokens": int(corr.n),
        "corpus": corpus_id,
        "seconds": round(seconds, 2),
        "config": asdict(cfg),
        "categories": categories,
        "category_tokens": [int(x) for x in cc.n_true.tolist()] if cc else [],
        "hist_edges": torch.linspace(cfg.hist_lo, cfg.hist_hi, cfg.hist_bins + 1).tolist(),
        "labels": labels.text,
        "label_f1": labels.f1,
        "label_inputs": labels.inputs,
        "label_outputs": labels.outputs,
        "vocab": vocab,
    }
    return FeatureStore({k: v.detach().cpu().contiguous() for k, v in t.items()}, meta)


def load_sae_dir(path: str | Path, device: str | None = None):
    """Load an SAE directory (SAELens format) through the SAE module's loader (which refuses NaN/Inf weights)."""
    from interp.sae.io import load_sae

    return load_sae(Path(path), device=str(device or "cpu"))


def build_for_sae_dir(sae_dir: str | Path, cfg: StatsConfig, model=None, model_name: str | None = None,
                      device: str | None = None, progress: ProgressFn | None = None) -> FeatureStore:
    """Load the SAE in `sae_dir` (and its model, on `device`), build its statistics and store them next to it.
    With `model` given, the SAE goes to the model's device."""
    from interp.device import device_of, resolve_device

    dev = str(device_of(model)) if model is not None else str(resolve_device(device))
    sae = load_sae_dir(sae_dir, dev)
    name = model_name or getattr(sae.cfg.metadata, "model_name", None) or "embedded"
    if model is None:
        from interp.models import load_model

        model = load_model(name, device=dev)
    stats = build_feature_stats(model, SaeSource(sae, model), cfg, model_name=name, source_name=str(sae_dir), progress=progress)
    save_stats(stats, sae_dir)
    return stats
