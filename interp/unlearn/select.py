"""Pick the SAE features most tied to a concept.

For every feature i of an SAE at hook h, over the counted token positions of the forget prompts
F (every token but BOS, or with `positions="last"` only the last one, which predicts the
completion) and of the retain data R (every token of the retain prompts + held-out corpus text):

    freq_F[i] = fraction of F tokens where a_i > 0      mean_F[i] = mean of a_i where a_i > 0
    freq_R[i], mean_R[i] likewise on R

Features with freq_R > `retain_threshold` are dropped (they carry something the model needs
elsewhere). The rest are ranked by

    score "dir":   freq_F * mean_F * max(0, cos(W_dec[i], u))   (the default: active on the concept
                   AND writing along its direction; u = mean_F(x) - mean_R(x) of the hook's own
                   activations, the direction baseline's vector)
    score "freq":  freq_F - freq_R                         (SAEBench / Farrell et al.: sparsity)
    score "act":   freq_F * mean_F - freq_R * mean_R       (difference of expected activation)

and the top `n_features` with a positive score are chosen. `mean_F` is the feature's "typical
activation" that the clamp intervention scales. On the embedded model "dir" with a looser retain
threshold (0.2) is what makes clamping work: frequency-ranked features that are rare on retain data
barely cover the forget prompts' predicting position (benchmarks/unlearning).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from interp.errors import InterpError
from interp.hooks import capture, stop_layer
from interp.unlearn import saes as S
from interp.unlearn.concepts import Concept
from interp.device import device_of
from interp.unlearn.tokens import last_positions, token_batches

log = logging.getLogger(__name__)

SCORES = ("dir", "freq", "act")
POSITIONS = ("last", "all")


@dataclass
class SelectConfig:
    """How features are chosen from their forget/retain statistics."""

    n_features: int = 20  # features kept per SAE
    retain_threshold: float = 0.2  # drop features active on more than this fraction of retain tokens
    score: str = "dir"  # ranking: "dir", "freq" or "act" (module docstring)
    positions: str = "last"  # forget-prompt tokens counted: "last" (the predicting one) or "all"

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise InterpError(f"unknown positions {self.positions!r}; use one of {', '.join(POSITIONS)}")
        if self.n_features < 1:
            raise InterpError("n_features must be at least 1")
        if not 0.0 <= self.retain_threshold <= 1.0:
            raise InterpError("retain_threshold is a fraction of tokens, between 0 and 1")
        if self.score not in SCORES:
            raise InterpError(f"unknown score {self.score!r}; use one of {', '.join(SCORES)}")


@dataclass
class FeatureStats:
    """Per-feature statistics of one SAE on one concept's forget and retain data."""

    sae_dir: str  # the SAE directory
    hook: str  # hook spec the SAE reads
    freq_forget: Float[torch.Tensor, " d_sae"]  # fraction of forget tokens where the feature is active
    freq_retain: Float[torch.Tensor, " d_sae"]  # same on retain tokens
    mean_forget: Float[torch.Tensor, " d_sae"]  # mean activation where active, forget tokens
    mean_retain: Float[torch.Tensor, " d_sae"]  # mean activation where active, retain tokens
    top_tokens: Int[torch.Tensor, "3 d_sae"]  # the 3 forget/retain token ids with the largest activations
    cos_dir: Float[torch.Tensor, " d_sae"]  # cosine of each decoder row with the forget - retain mean difference
    n_forget_tokens: int
    n_retain_tokens: int


@dataclass
class Selection:
    """The features chosen at one SAE, with the numbers that chose them."""

    sae_dir: str
    hook: str
    features: list[int]
    scores: list[float]
    freq_forget: list[float]
    freq_retain: list[float]
    typical: list[float]  # mean activation on forget tokens where active (the clamp's unit)
    labels: list[str] = field(default_factory=list)
    detectors: list[int] = field(default_factory=list)  # conditional edits: fire only where one of these is active

    def rows(self) -> list[dict]:
        return [
            {"sae_dir": self.sae_dir, "hook": self.hook, "feature": f, "score": s, "freq_forget": ff, "freq_retain": fr, "typical_act": t, "label": lab}
            for f, s, ff, fr, t, lab in zip(self.features, self.scores, self.freq_forget, self.freq_retain, self.typical, self.labels)
        ]

    def top(self, n: int) -> "Selection":
        """The first `n` features (the selection is sorted by score)."""
        return Selection(self.sae_dir, self.hook, self.features[:n], self.scores[:n], self.freq_forget[:n],
                         self.freq_retain[:n], self.typical[:n], self.labels[:n], self.detectors)


@torch.no_grad()
def _accumulate(model, sae, hs, texts: list[str], batch_size: int, last_only: bool = False):
    d, dev = sae.cfg.d_sae, device_of(model)
    count, total, n, sum_x = torch.zeros(d, device=dev), torch.zeros(d, device=dev), 0, torch.zeros(sae.cfg.d_in, device=dev)
    top_v, top_t = torch.full((3, d), -float("inf"), device=dev), torch.zeros(3, d, dtype=torch.long, device=dev)
    for toks_BP, mask_BP in token_batches(model, texts, batch_size):
        if last_only:  # only the position that predicts the completion
            mask_BP = last_positions(mask_BP)
        with capture(model, [hs]) as acts:
            model(toks_BP, stop_at_layer=stop_layer(model, [hs]))
        x_ND = acts[str(hs)][mask_BP]
        sum_x += x_ND.float().sum(0)
        a_NF = sae.encode(x_ND.to(sae.dtype)).float()
        count += (a_NF > 0).sum(0)
        total += a_NF.clamp(min=0).sum(0)
        n += a_NF.shape[0]
        v = torch.cat([top_v, a_NF.topk(min(3, a_NF.shape[0]), dim=0).values])
        t = torch.cat([top_t, toks_BP[mask_BP][a_NF.topk(min(3, a_NF.shape[0]), dim=0).indices]])
        best = v.topk(3, dim=0).indices
        top_v, top_t = v.gather(0, best), t.gather(0, best)
    return count.cpu(), total.cpu(), n, top_v.cpu(), top_t.cpu(), sum_x.cpu()


def feature_stats(
    model: HookedTransformer, sae, sae_dir: str | Path, concept: Concept, corpus: list[str], batch_size: int = 32,
    positions: str = "last",
) -> FeatureStats:
    """Statistics of every feature of `sae` on the concept's forget prompts vs retain prompts + `corpus`.
    `positions` = "last" counts only the last token of each forget prompt (the one that predicts
    the completion); retain data always counts every token."""
    hs = S.check_fits(model, sae, path=sae_dir)
    cf, tf, nf, vf, kf, xf = _accumulate(model, sae, hs, [p.text for p in concept.forget], batch_size, positions == "last")
    cr, tr, nr, vr, kr, xr = _accumulate(model, sae, hs, [p.text for p in concept.retain] + list(corpus), batch_size)
    if nr == 0:
        raise InterpError(f"concept {concept.name!r} has no retain data to compare against")
    v, k = torch.cat([vf, vr]), torch.cat([kf, kr])
    best = v.topk(3, dim=0).indices
    u = xf / nf - xr / nr
    w = sae.W_dec.detach().float().cpu()
    cos = (w @ u) / (w.norm(dim=1) * u.norm()).clamp(min=1e-8)
    return FeatureStats(
        str(sae_dir), str(hs), cf / nf, cr / nr, tf / cf.clamp(min=1), tr / cr.clamp(min=1), k.gather(0, best), cos, nf, nr
    )


def score_features(stats: FeatureStats, score: str = "freq") -> Float[torch.Tensor, " d_sae"]:
    """The ranking score of every feature (module docstring)."""
    if score == "freq":
        return stats.freq_forget - stats.freq_retain
    if score == "dir":
        return stats.freq_forget * stats.mean_forget * stats.cos_dir.clamp(min=0)
    return stats.freq_forget * stats.mean_forget - stats.freq_retain * stats.mean_retain


def select_features(stats: FeatureStats, cfg: SelectConfig, model: HookedTransformer | None = None) -> Selection:
    """Top `cfg.n_features` features by score among those rare on retain data (module docstring)."""
    s = score_features(stats, cfg.score)
    ok = (stats.freq_retain <= cfg.retain_threshold) & (stats.freq_forget > 0) & (s > 0)
    s = torch.where(ok, s, torch.tensor(-float("inf")))
    n = min(cfg.n_features, int(ok.sum()))
    if n == 0:
        raise InterpError(f"no feature of {stats.sae_dir} fires more on the forget set than on retain data (retain threshold {cfg.retain_threshold})")
    idx = s.topk(n).indices.tolist()
    return Selection(
        stats.sae_dir, stats.hook, idx, s[idx].tolist(), stats.freq_forget[idx].tolist(), stats.freq_retain[idx].tolist(),
        stats.mean_forget[idx].tolist(), feature_labels(stats, idx, model),
    )


def detector_features(stats: FeatureStats, n: int, retain_threshold: float = 0.2) -> list[int]:
    """The concept's `n` best *detectors*: features that fire on forget tokens and rarely on retain
    data, ranked by freq_F - freq_R (SAEBench's sparsity score). Conditional clamping edits only
    where one of them fires."""
    s = stats.freq_forget - stats.freq_retain
    ok = (stats.freq_retain <= retain_threshold) & (s > 0)
    s = torch.where(ok, s, torch.tensor(-float("inf")))
    k = min(n, int(ok.sum()))
    return s.topk(k).indices.tolist() if k else []


def _stats_file_labels(sae_dir: str | Path) -> dict[int, str]:
    """Labels from the features module's ``feature_stats.json`` next to the SAE, if present."""
    p = Path(sae_dir) / "feature_stats.json"
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("could not read %s; using top tokens as labels", p)
        return {}
    labels = data.get("labels") if isinstance(data, dict) else None
    if isinstance(labels, list):
        return {i: str(lab) for i, lab in enumerate(labels) if lab}
    if isinstance(labels, dict):
        return {int(k): str(v) for k, v in labels.items() if v}
    feats = data.get("features") if isinstance(data, dict) else None
    if isinstance(feats, list):
        return {int(f.get("id", i)): str(f["label"]) for i, f in enumerate(feats) if isinstance(f, dict) and f.get("label")}
    return {}


def feature_labels(stats: FeatureStats, features: list[int], model: HookedTransformer | None = None) -> list[str]:
    """A label per feature: the stats file's label, else its top activating tokens."""
    known = _stats_file_labels(stats.sae_dir)
    out = []
    for f in features:
        if f in known:
            out.append(known[f])
        elif model is not None and model.tokenizer is not None:
            out.append(" ".join(repr(model.tokenizer.decode([int(t)])) for t in stats.top_tokens[:, f]))
        else:
            out.append("")
    return out
