"""Pick the SAE features most tied to a concept.

For every feature i of an SAE at hook h, over the counted token positions of the forget prompts
F (every token but BOS, or with `positions="last"` only the last one, which predicts the
completion) and of the retain data R (every token of the retain prompts + held-out corpus text):

    freq_F[i] = fraction of F tokens where a_i > 0      mean_F[i] = mean of a_i where a_i > 0
    freq_R[i], mean_R[i] likewise on R

Features with freq_R > `retain_threshold` are dropped (they carry something the model needs
elsewhere). The rest are ranked by

    score "contrast": (freq_F * mean_F - freq_L * mean_L - freq_R * mean_R) * max(0, cos(W_dec[i], u_L))
                   (the default; L = the retain prompts' last tokens, the same kind of position as
                   the forget side's "last", u_L = mean_F(x) - mean_L(x): fires where a forget prompt
                   is about to be answered more than where another concept's prompt is (what retain
                   accuracy measures) and than on retain text at large (what the loss measures),
                   and writes along the forget - retain-answer difference)
    score "dir":   freq_F * mean_F * max(0, cos(W_dec[i], u))   (active on the concept and writing
                   along its direction; u = mean_F(x) - mean_R(x) of the hook's own activations,
                   the direction baseline's vector)
    score "freq":  freq_F - freq_R                         (SAEBench / Farrell et al.: sparsity)
    score "act":   freq_F * mean_F - freq_R * mean_R       (difference of expected activation)

and the top `n_features` with a positive score are chosen. `mean_F` is the feature's "typical
activation" that the clamp intervention scales. Why "contrast": with "dir" the top features at the
answer position of the embedded model were "an answer comes next" features (top tokens ' is',
' called') that fire at the answer position of every concept's prompts; they pass the retain
threshold because that position is a small share of all retain tokens, and clamping them breaks
the other concepts first, so the search stopped before forgetting much. Comparing with the retain
prompts' answer positions removes them; subtracting the activity on all retain tokens too keeps
features whose clamp raises the corpus loss (the bar that then binds) down the ranking
(benchmarks/unlearning: options table).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float, Int
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InterpError
from interp.hooks import capture, stop_layer
from interp.unlearn import saes as S
from interp.unlearn.concepts import Concept
from interp.device import device_of
from interp.unlearn.tokens import last_positions, token_batches

log = logging.getLogger(__name__)

SCORES = ("contrast", "dir", "freq", "act")
POSITIONS = ("last", "all")


@dataclass
class SelectConfig:
    """How features are chosen from their forget/retain statistics."""

    n_features: int = 20  # features kept per SAE
    retain_threshold: float = 0.2  # drop features active on more than this fraction of retain tokens
    score: str = "contrast"  # ranking: "contrast", "dir", "freq" or "act" (module docstring)
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
    # the retain prompts' last tokens only (the position that predicts their completion): score "contrast"
    freq_retain_last: Float[torch.Tensor, " d_sae"] | None = None
    mean_retain_last: Float[torch.Tensor, " d_sae"] | None = None
    cos_last: Float[torch.Tensor, " d_sae"] | None = None  # cosine with mean_F(x) - mean of x on those tokens


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


@dataclass
class _Sums:
    """Running sums of one SAE's latents over some token positions."""

    count: torch.Tensor  # [d_sae] positions where the latent is active
    total: torch.Tensor  # [d_sae] sum of its positive activations
    sum_x: torch.Tensor  # [d_in] sum of the hook's activations
    top_v: torch.Tensor  # [3, d_sae] largest activations seen
    top_t: torch.Tensor  # [3, d_sae] their token ids
    n: int = 0  # positions counted

    @classmethod
    def zeros(cls, d_sae: int, d_in: int, dev) -> "_Sums":
        return cls(torch.zeros(d_sae, device=dev), torch.zeros(d_sae, device=dev), torch.zeros(d_in, device=dev),
                   torch.full((3, d_sae), -float("inf"), device=dev), torch.zeros(3, d_sae, dtype=torch.long, device=dev))

    def add(self, x_ND: torch.Tensor, a_NF: torch.Tensor, tok_N: torch.Tensor) -> None:
        self.sum_x += x_ND.float().sum(0)
        self.count += (a_NF > 0).sum(0)
        self.total += a_NF.clamp(min=0).sum(0)
        self.n += a_NF.shape[0]
        top = a_NF.topk(min(3, a_NF.shape[0]), dim=0)
        v, t = torch.cat([self.top_v, top.values]), torch.cat([self.top_t, tok_N[top.indices]])
        best = v.topk(3, dim=0).indices
        self.top_v, self.top_t = v.gather(0, best), t.gather(0, best)

    def merge(self, o: "_Sums") -> "_Sums":
        v, t = torch.cat([self.top_v, o.top_v]), torch.cat([self.top_t, o.top_t])
        best = v.topk(3, dim=0).indices
        return _Sums(self.count + o.count, self.total + o.total, self.sum_x + o.sum_x, v.gather(0, best), t.gather(0, best), self.n + o.n)

    def freq(self) -> torch.Tensor:
        return (self.count / max(self.n, 1)).cpu()

    def mean(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).cpu()

    def mean_x(self) -> torch.Tensor:
        return (self.sum_x / max(self.n, 1)).cpu()


@torch.no_grad()
def _accumulate(model, sae, hs, texts: list[str], batch_size: int) -> tuple[_Sums, _Sums]:
    """Sums over every counted token of `texts` and over each text's last token (one forward)."""
    dev = device_of(model)
    every, last = _Sums.zeros(sae.cfg.d_sae, sae.cfg.d_in, dev), _Sums.zeros(sae.cfg.d_sae, sae.cfg.d_in, dev)
    for toks_BP, mask_BP in token_batches(model, texts, batch_size):
        with capture(model, [hs]) as acts:
            model(toks_BP, stop_at_layer=stop_layer(model, [hs]))
        x_BPD = acts[str(hs)]
        a_BPF = sae.encode(x_BPD.to(sae.dtype)).float()
        every.add(x_BPD[mask_BP], a_BPF[mask_BP], toks_BP[mask_BP])
        m = last_positions(mask_BP)  # the position that predicts the completion
        last.add(x_BPD[m], a_BPF[m], toks_BP[m])
    return every, last


def _cos(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return (w @ u) / (w.norm(dim=1) * u.norm()).clamp(min=1e-8)


def feature_stats(
    model: TransformerBridge, sae, sae_dir: str | Path, concept: Concept, corpus: list[str], batch_size: int = 32,
    positions: str = "last",
) -> FeatureStats:
    """Statistics of every feature of `sae` on the concept's forget prompts vs retain prompts + `corpus`.
    `positions` = "last" counts only the last token of each forget prompt (the one that predicts
    the completion); retain data always counts every token. The retain prompts' last tokens are
    also kept apart (`freq_retain_last`, ...: the same kind of position as the forget side)."""
    hs = S.check_fits(model, sae, path=sae_dir)
    f_all, f_last = _accumulate(model, sae, hs, [p.text for p in concept.forget], batch_size)
    fg = f_last if positions == "last" else f_all
    r_all, r_last = _accumulate(model, sae, hs, [p.text for p in concept.retain], batch_size)
    c_all, _ = _accumulate(model, sae, hs, list(corpus), batch_size)
    rt = r_all.merge(c_all)
    if rt.n == 0:
        raise InterpError(f"concept {concept.name!r} has no retain data to compare against")
    both = fg.merge(rt)
    w = sae.W_dec.detach().float().cpu()
    u_last = fg.mean_x() - r_last.mean_x() if r_last.n else fg.mean_x() - rt.mean_x()
    return FeatureStats(
        str(sae_dir), str(hs), fg.freq(), rt.freq(), fg.mean(), rt.mean(), both.top_t.cpu(), _cos(w, fg.mean_x() - rt.mean_x()), fg.n, rt.n,
        r_last.freq(), r_last.mean(), _cos(w, u_last),
    )


def score_features(stats: FeatureStats, score: str = "freq") -> Float[torch.Tensor, " d_sae"]:
    """The ranking score of every feature (module docstring)."""
    if score == "freq":
        return stats.freq_forget - stats.freq_retain
    if score == "dir":
        return stats.freq_forget * stats.mean_forget * stats.cos_dir.clamp(min=0)
    if score == "contrast":
        if stats.freq_retain_last is None:
            raise InterpError("score 'contrast' needs the retain prompts' last-token statistics (feature_stats computes them)")
        act = stats.freq_forget * stats.mean_forget - stats.freq_retain_last * stats.mean_retain_last - stats.freq_retain * stats.mean_retain
        return act * stats.cos_last.clamp(min=0)
    return stats.freq_forget * stats.mean_forget - stats.freq_retain * stats.mean_retain


def select_features(stats: FeatureStats, cfg: SelectConfig, model: TransformerBridge | None = None) -> Selection:
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


def feature_labels(stats: FeatureStats, features: list[int], model: TransformerBridge | None = None) -> list[str]:
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
