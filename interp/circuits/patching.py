"""Per-head activation patching: the ablation machinery every method and metric shares.

A head is ablated by overwriting its ``attn.hook_z`` slice (its d_head output before W_O) with

* ``resample``: the same head's output on the paired *negative* prompt (same position), or
* ``mean``: its mean output over all real positions of the negative prompts.

`patching_scores` is the activation-patching baseline (resample ablation, one head at a time):

    score(l, h) = mean_i [ m_i(full) - m_i(head l.h resampled from negative_i) ]

All hooks are TransformerLens hooks inside `interp.hooks.intervene`, removed when the block ends.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from jaxtyping import Bool, Float
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.tasks import CircuitTask
from interp.hooks import capture, intervene, patch_heads, stop_layer

ABLATIONS = ("resample", "mean")


def _z_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


@torch.no_grad()
def head_z(model: TransformerBridge, tokens: torch.Tensor) -> list[Float[torch.Tensor, "n pos head d_head"]]:
    """Every layer's ``hook_z`` on `tokens` (the forward stops before ln_final and the unembedding)."""
    names = [_z_name(l) for l in range(model.cfg.n_layers)]
    with capture(model, names) as acts:
        model(tokens, stop_at_layer=stop_layer(model, names))
    return [acts[n] for n in names]


def real_mask(task: CircuitTask) -> Bool[torch.Tensor, "n pos"]:
    """True on the real (non-padding) positions of the task's prompts."""
    dev = task.pos_tokens.device
    return torch.arange(task.pos_tokens.shape[1], device=dev)[None, :] < task.lengths.to(dev)[:, None]


@torch.no_grad()
def ablation_source(model: TransformerBridge, task: CircuitTask, ablation: str = "resample") -> list[torch.Tensor]:
    """Per layer, what ablated heads are overwritten with: negative-run z [n, pos, H, d_head]
    (``resample``) or the mean over real negative positions [H, d_head] (``mean``)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; known: {ABLATIONS}")
    zs = head_z(model, task.neg_tokens)
    if ablation == "resample":
        return zs
    m = real_mask(task)
    return [z[m].mean(0) for z in zs]


@contextlib.contextmanager
def ablate_heads(model: TransformerBridge, ablated: Bool[torch.Tensor, "layer head"], source: list[torch.Tensor]) -> Iterator[TransformerBridge]:
    """Forwards inside the block run with the heads marked True in `ablated` overwritten by `source`."""
    edits = []
    for layer in range(model.cfg.n_layers):
        heads = ablated[layer].nonzero().flatten().tolist()
        if not heads:
            continue

        edits.append((_z_name(layer), patch_heads(heads, source[layer])))
    with intervene(model, edits):
        yield model


@torch.no_grad()
def metric_with_ablation(model: TransformerBridge, task: CircuitTask, ablated: Bool[torch.Tensor, "layer head"],
                         source: list[torch.Tensor]) -> float:
    """Mean task metric on the positive prompts with the `ablated` heads overwritten."""
    with ablate_heads(model, ablated, source):
        return float(task.metric_from_logits(model(task.pos_tokens)).mean())


@torch.no_grad()
def full_metric(model: TransformerBridge, task: CircuitTask) -> float:
    """Mean task metric of the unablated model on the positive prompts."""
    return float(task.metric_from_logits(model(task.pos_tokens)).mean())


@torch.no_grad()
def patching_scores(model: TransformerBridge, task: CircuitTask) -> Float[torch.Tensor, "layer head"]:
    """Activation-patching baseline: metric drop when one head is resampled from the negative run."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    src = ablation_source(model, task, "resample")
    base = full_metric(model, task)
    scores = torch.zeros(L, H)
    for layer in range(L):
        for head in range(H):
            mask = torch.zeros(L, H, dtype=torch.bool)
            mask[layer, head] = True
            scores[layer, head] = base - metric_with_ablation(model, task, mask, src)
    return scores
