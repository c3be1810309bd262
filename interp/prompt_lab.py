"""Prompt lab: run one prompt, look inside, and compare a clean run with an ablated one.

* `prepare`: tokens of a prompt (BOS first); longer than n_ctx -> keep BOS + the last n_ctx - 1
  tokens and say so (`Prepared.truncated`); an empty prompt is an `InterpError`.
* `next_tokens`: the next-token distribution (top k).
* `top_features`: per token, the k strongest features of a feature source (SAE latents, neurons).
* `attention`: the attention pattern of every head of one layer.
* `feature_values`: one feature's value on every token of the prompt (Neuronpedia's custom-text view).
* `Ablation` + `compare`: zero- or mean-ablate heads (`interp.hooks.patch_heads` on
  ``attn.hook_z``) and edit SAE features with the project's one vocabulary (`interp.edits`:
  zero / scale / set / clamp, applied through `edit_hook`, which keeps the SAE error term), then report clean vs ablated next-token distributions, the
  tokens whose logits moved most, and a chosen logit difference ``logit[a] - logit[b]`` at the
  last position.
* `known_answers` / `task_examples`: the right and wrong answer of a prompt where a task defines
  them (IOI: the indirect object vs the subject), so the logit difference starts on what matters.

Every tensor made here lives on the model's device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

from interp.device import device_of
from interp.edits import MODES as CLAMP_OPS
from interp.edits import LatentEdit, edit_hook
from interp.errors import InterpError
from interp.hooks import capture, intervene, parse_hook, patch_heads
from interp.sae.io import sae_hook

HEAD_MODES = ("zero", "mean")


@dataclass
class Prepared:
    """A tokenized prompt, ready to run."""

    tokens: Int[Tensor, "1 T"]
    str_tokens: list[str]
    truncated: bool
    n_original: int  # tokens before truncation (with BOS)


def prepare(model: TransformerBridge, prompt: str) -> Prepared:
    if not prompt or not prompt.strip():
        raise InterpError("the prompt is empty; type some text")
    toks = model.to_tokens(prompt, truncate=False)  # BOS first
    n = toks.shape[1]
    truncated = n > model.cfg.n_ctx
    if truncated:
        toks = torch.cat([toks[:, :1], toks[:, n - model.cfg.n_ctx + 1 :]], dim=1)
    return Prepared(toks, model.to_str_tokens(toks[0]), truncated, n)


@dataclass
class TokenProb:
    token: str
    token_id: int
    prob: float
    logit: float


@torch.no_grad()
def predict(model: TransformerBridge, tokens: Int[Tensor, "1 T"], k: int = 10) -> list[TokenProb]:
    """The clean next-token distribution (top k) at the last position."""
    return next_tokens(model(tokens)[0, -1], model, k)


def next_tokens(logits_V: Float[Tensor, "V"], model: TransformerBridge, k: int = 10) -> list[TokenProb]:
    probs = logits_V.float().softmax(-1)
    top = probs.topk(min(k, len(probs)))
    return [TokenProb(model.tokenizer.decode([int(i)]), int(i), float(p), float(logits_V[i])) for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def top_features(model: TransformerBridge, source, tokens: Int[Tensor, "1 T"], k: int = 5) -> list[list[tuple[int, float]]]:
    """For each position, the `k` features of `source` with the largest value (only those > 0)."""
    with capture(model, [source.hook]) as store:
        model(tokens)
    feats = source.encode(store[str(source.hook)])[0]  # [T, F]
    top = feats.topk(min(k, feats.shape[-1]), dim=-1)
    return [[(int(i), float(v)) for v, i in zip(vs, ix) if v > 0] for vs, ix in zip(top.values, top.indices)]


@torch.no_grad()
def feature_values(model: TransformerBridge, source, tokens: Int[Tensor, "1 T"], feature: int) -> list[float]:
    """The value of one feature of `source` on every token of the prompt."""
    if not 0 <= feature < source.n_features:
        raise InterpError(f"feature id {feature} out of range: this source has features 0..{source.n_features - 1}")
    with capture(model, [source.hook]) as store:
        model(tokens)
    return source.encode(store[str(source.hook)])[0, :, feature].float().tolist()


@torch.no_grad()
def attention(model: TransformerBridge, tokens: Int[Tensor, "1 T"], layer: int) -> Float[Tensor, "H T T"]:
    if not 0 <= layer < model.cfg.n_layers:
        raise InterpError(f"layer {layer} out of range: the model has {model.cfg.n_layers} layers")
    name = f"blocks.{layer}.attn.hook_pattern"
    with capture(model, [name]) as store:
        model(tokens)
    return store[name][0]


@torch.no_grad()
def mean_z(model: TransformerBridge, layer: int, n_rows: int = 16, seed: int = 0) -> Float[Tensor, "H d_head"]:
    """Mean of ``blocks.L.attn.hook_z`` over `n_rows` rows of the embedded corpus (for mean ablation)."""
    from interp.activations import text_source, token_rows

    docs, _ = text_source("corpus", seed)
    rows = torch.stack([r for _, r in zip(range(n_rows), token_rows(model, docs, min(64, model.cfg.n_ctx)))]).to(device_of(model))
    name = f"blocks.{layer}.attn.hook_z"
    with capture(model, [name]) as store:
        model(rows)
    return store[name][:, 1:].mean(dim=(0, 1))


@dataclass
class Ablation:
    """What to change in the ablated run."""

    heads: list[tuple[int, int]] = field(default_factory=list)  # (layer, head) pairs
    head_mode: str = "zero"  # zero | mean
    clamps: list[LatentEdit] = field(default_factory=list)  # SAE latent edits (interp.edits; need `sae`)

    def __post_init__(self):
        if self.head_mode not in HEAD_MODES:
            raise InterpError(f"unknown head ablation {self.head_mode!r}; use zero or mean")

    @property
    def empty(self) -> bool:
        return not self.heads and not self.clamps


def ablation_hooks(model: TransformerBridge, ab: Ablation, sae=None, means: dict[int, Tensor] | None = None) -> list[tuple[str, object]]:
    """TransformerLens hooks for `ab` (validated against the model and SAE)."""
    hooks: list[tuple[str, object]] = []
    for layer, head in ab.heads:
        if not 0 <= layer < model.cfg.n_layers or not 0 <= head < model.cfg.n_heads:
            raise InterpError(f"head {layer}.{head} does not exist: the model has {model.cfg.n_layers} layers x {model.cfg.n_heads} heads")
        name = f"blocks.{layer}.attn.hook_z"
        if ab.head_mode == "zero":
            hooks.append((name, patch_heads([head])))
        else:
            m = (means or {}).get(layer)
            hooks.append((name, patch_heads([head], mean_z(model, layer) if m is None else m)))  # m: [H, d_head]
    if ab.clamps:
        if sae is None:
            raise InterpError("clamping features needs an SAE; pick one in the sidebar")
        spec = parse_hook(model, sae_hook(sae))
        hooks.append((spec.name, edit_hook(sae, ab.clamps, head=spec.head)))
    return hooks


class LogitChange(NamedTuple):
    """One token's next-token logit and probability, clean vs ablated."""

    token: str
    token_id: int
    clean_logit: float
    ablated_logit: float
    clean_prob: float
    ablated_prob: float
    shift: float = 0.0  # mean(ablated logits) - mean(clean logits): moves every logit, changes no probability

    @property
    def delta(self) -> float:
        """The change `logit_changes` ranks by: (ablated - mean) - (clean - mean)."""
        return self.ablated_logit - self.clean_logit - self.shift

    @property
    def raw_delta(self) -> float:
        """ablated - clean logit, the mean shift included."""
        return self.ablated_logit - self.clean_logit


@dataclass
class Comparison:
    """Clean vs ablated run of one prompt, at the last position."""

    clean: list[TokenProb]
    ablated: list[TokenProb]
    clean_logit_diff: float | None
    ablated_logit_diff: float | None
    kl: float  # KL(clean || ablated) of the next-token distributions
    target: tuple[str, str] | None
    changes: list[LogitChange] = field(default_factory=list)  # largest |logit change| first, after removing the mean shift
    note: str = ""  # why the ablated run equals the clean one, when it does (see `unchanged_reason`)


def logit_changes(model: TransformerBridge, clean: Float[Tensor, "V"], ablated: Float[Tensor, "V"], k: int = 10) -> list[LogitChange]:
    """The k tokens whose logit moved most between the runs. Logits are compared after removing
    each run's mean (a shift of every logit changes no probability), so the ranking shows real moves."""
    c, a = clean.float(), ablated.float()
    shift = float(a.mean() - c.mean())
    d = (a - a.mean()) - (c - c.mean())
    top = d.abs().topk(min(k, len(d))).indices
    pc, pa = c.softmax(-1), a.softmax(-1)
    return [LogitChange(model.tokenizer.decode([int(i)]), int(i), float(c[i]), float(a[i]), float(pc[i]), float(pa[i]), shift)
            for i in top]


UNCHANGED_KL = 1e-9  # KL(clean || ablated) below this: the edit changed nothing at the last position


@torch.no_grad()
def unchanged_reason(model: TransformerBridge, tokens: Int[Tensor, "1 T"], ab: Ablation, sae=None) -> str:
    """Why an ablation leaves the next-token distribution unchanged (call it when KL ~ 0): for
    zero / scale / clamp edits of SAE features that are inactive (<= 0) at every position, or at
    the last one; scale by 1; set to the value the feature already has. '' if none of these holds."""
    if ab.heads or not ab.clamps or sae is None:
        return ""
    spec = parse_hook(model, sae_hook(sae))
    with capture(model, [spec.name]) as store:
        model(tokens)
    x = store[spec.name]
    if spec.head is not None:
        x = x[:, :, spec.head]
    f_TF = sae.encode(x.to(sae.dtype))[0]  # [T, d_sae] (as interp.hooks.sae_edit encodes)
    why = []
    for e in ab.clamps:
        e.check(f_TF.shape[-1])
        ids = ", ".join(f"#{i}" for i in e.features)
        acts = f_TF[:, e.features]  # [T, n]
        if e.mode == "scale" and e.value == 1:
            why.append(f"scale by 1 leaves features {ids} as they are")
        elif e.mode in ("zero", "scale", "clamp") and not (acts > 0).any():
            why.append(f"features {ids} are inactive at every position of this prompt, and {e.mode} only changes "
                       "active features (use 'set' to switch one on)")
        elif e.mode in ("zero", "scale", "clamp") and not (acts[-1] > 0).any():
            why.append(f"features {ids} are inactive at the last position (active only earlier, at positions "
                       f"{', '.join(str(int(t)) for t in (acts > 0).any(1).nonzero()[:, 0].tolist())}), and what the edit "
                       "changes there does not reach the next-token prediction")
        elif e.mode == "set" and torch.allclose(acts, torch.full_like(acts, e.value)):
            why.append(f"features {ids} already have the value {e.value:g} everywhere")
    return "; ".join(why)


def colour_feature(per_token: list[list[tuple[int, float]]]) -> int | None:
    """A feature worth colouring a prompt by: the strongest feature at the last position, else the
    strongest anywhere (`top_features`' output); None if no feature fires on the prompt."""
    for pos in (per_token[-1:], per_token):
        best = max(((f, v) for fs in pos for f, v in fs if v > 0), key=lambda x: x[1], default=None)
        if best is not None:
            return best[0]
    return None


def token_id(model: TransformerBridge, token: str) -> int:
    """The id of a single token, e.g. ' Mary'; a clear error if the text is several tokens."""
    if not token:
        raise InterpError("give a token for the logit difference, e.g. ' Mary'")
    ids = model.to_tokens(token, prepend_bos=False)[0]
    if len(ids) != 1:
        raise InterpError(f"{token!r} is {len(ids)} tokens, not one; pick a single token (mind the leading space)")
    return int(ids[0])


@torch.no_grad()
def compare(model: TransformerBridge, tokens: Int[Tensor, "1 T"], ab: Ablation, sae=None, target: tuple[str, str] | None = None,
            k: int = 10, means: dict[int, Tensor] | None = None) -> Comparison:
    """Run clean and ablated; `target` = (a, b) gives the logit difference logit[a] - logit[b]."""
    ids = (token_id(model, target[0]), token_id(model, target[1])) if target else None
    clean = model(tokens)[0, -1]
    with intervene(model, ablation_hooks(model, ab, sae, means)):
        abl = model(tokens)[0, -1]
    lp, lq = clean.float().log_softmax(-1), abl.float().log_softmax(-1)
    kl = float((lp.exp() * (lp - lq)).sum())
    diff = (lambda lg: float(lg[ids[0]] - lg[ids[1]])) if ids else (lambda lg: None)
    note = unchanged_reason(model, tokens, ab, sae) if not ab.empty and kl < UNCHANGED_KL else ""
    return Comparison(next_tokens(clean, model, k), next_tokens(abl, model, k), diff(clean), diff(abl), kl, target,
                      logit_changes(model, clean, abl, k) if not ab.empty else [], note)


class Answers(NamedTuple):
    """The right (a) and wrong (b) next token of a prompt, and where that knowledge came from."""

    a: str
    b: str
    why: str


def known_answers(model: TransformerBridge, prompt: str) -> Answers | None:
    """The task's answers where the prompt has the shape of a known task, else None.

    IOI: two names of the corpus's name list, one said twice (the subject S) and one once (the
    indirect object IO), as in "When Mary and John went to the store, John gave a drink to":
    a = IO, b = S."""
    from interp.data import corpus as C

    words = re.findall(r"[A-Z][a-z]+", prompt)
    names = [w for w in words if w in set(C.NAMES)]
    distinct = list(dict.fromkeys(names))
    if len(distinct) == 2:
        counts = {n: names.count(n) for n in distinct}
        once = [n for n in distinct if counts[n] == 1]
        more = [n for n in distinct if counts[n] > 1]
        if len(once) == 1 and len(more) == 1:
            a, b = " " + once[0], " " + more[0]
            try:
                token_id(model, a), token_id(model, b)
            except InterpError:
                return None
            return Answers(a, b, "IOI: the indirect object vs the subject")
    return None


@dataclass
class TaskExample:
    """A prompt from a circuit task with its right and wrong answer tokens."""

    task: str
    prompt: str
    a: str
    b: str


def task_examples(model: TransformerBridge, task: str, n: int = 5) -> list[TaskExample]:
    """`n` prompts of a circuit task (ioi, greater-than, docstring) with their answers."""
    from interp.circuits.tasks import make_task

    t = make_task(model, task, n=n)
    dec = model.tokenizer.decode
    return [TaskExample(task, p, dec([g[0]]), dec([b[0]])) for p, g, b in zip(t.positive, t.good, t.bad)]


def parse_heads(text: str) -> list[tuple[int, int]]:
    """'0.1, 1.3' -> [(0, 1), (1, 3)]."""
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            a, b = part.split(".")
            out.append((int(a), int(b)))
        except ValueError:
            raise InterpError(f"bad head {part!r}; write LAYER.HEAD, e.g. 1.3") from None
    return out
