"""Edge attribution patching (EAP; Syed, Rager & Conmy, 2023), against TransformerLens 3.

A first-order Taylor estimate of what resample patching would do, from one forward and one
backward pass on the positive prompts. With ``Δr_u = r_u(negative) - r_u(positive)`` the change
of head u's residual-stream output (``attn.hook_result``) and ``g`` gradients of the mean metric:

    node score(u)      = | sum_{i,p} Δr_u[i,p] · ∂m/∂r_u[i,p] |
    edge score(u -> v) = | sum_{i,p} Δr_u[i,p] · (∂m/∂q_in_v + ∂m/∂k_in_v + ∂m/∂v_in_v)[i,p] |
    edge score(u -> logits) = | sum_{i,p} Δr_u[i,p] · ∂m/∂resid_final[i,p] |

where ``q_in_v`` etc. are head v's own copies of its input (TransformerLens' split-qkv hooks).

EAP-IG (Hanna et al., 2024; MIB's strongest family; authors' code: EAP-IG ``attribute.py::
get_scores_eap_ig``, the "EAP-IG-inputs" variant): the same products, with the gradient averaged
over ``steps`` runs whose input embedding (``blocks.0.hook_resid_pre``) is interpolated from the
negative to the positive prompt, alpha = k / steps for k = 0..steps-1 (the authors' schedule):

    g_IG = (1 / steps) sum_k  ∂m/∂r (at resid_0 = neg_0 + (k / steps)(pos_0 - neg_0))

MIB runs it with 5 steps; so does `eap_ig_scores` by default.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
from jaxtyping import Float
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.tasks import CircuitTask
from interp.hooks import capture, hook_switches, intervene


@contextlib.contextmanager
def split_heads(model: TransformerBridge) -> Iterator[TransformerBridge]:
    """Turn on per-head result, split q/k/v input and MLP input hooks for the block, then restore
    them (`interp.hooks.hook_switches`: the bridge's ``set_use_attn_result``,
    ``set_use_split_qkv_input``, ``set_use_hook_mlp_in``; no weights change; the previous values
    come back on exit, even after an error)."""
    names = ["blocks.0.attn.hook_result", "blocks.0.hook_q_input"]
    if not model.cfg.attn_only:
        names.append("blocks.0.hook_mlp_in")
    with hook_switches(model, names):
        yield model


class EAPResult(NamedTuple):
    """Attribution-patching scores (absolute values)."""

    node_scores: Float[torch.Tensor, "layer head"]
    edge_scores: Float[torch.Tensor, "layer head layer head"]  # u -> v through v's q, k or v input
    logit_edge_scores: Float[torch.Tensor, "layer head"]  # u -> final residual stream


def _per_query_head(g: torch.Tensor, H: int) -> torch.Tensor:
    """[n, pos, heads, d] -> [n, pos, H, d]. With grouped-query attention (Llama, Gemma-2, Qwen2)
    TransformerLens' k/v inputs have one slot per key/value head, shared by H / n_kv query heads;
    that shared input's gradient is attributed to every query head of its group (an edge into
    any head of the group), since no per-query-head split of it exists."""
    if g.shape[2] == H:
        return g
    return g.repeat_interleave(H // g.shape[2], dim=2)


def _scores(L: int, H: int, delta: list[torch.Tensor], grads: dict, res_names: list[str], final: str) -> EAPResult:
    nodes = torch.stack([torch.einsum("bphd,bphd->h", delta[l], grads[res_names[l]]) for l in range(L)]).abs()
    edges = torch.zeros(L, H, L, H, device=nodes.device)
    for lv in range(1, L):
        g_in = sum(_per_query_head(grads[f"blocks.{lv}.hook_{x}_input"], H) for x in "qkv")  # [n, pos, H, d_model]
        for lu in range(lv):
            edges[lu, :, lv, :] = torch.einsum("bpud,bpvd->uv", delta[lu], g_in).abs()
    logit_edges = torch.stack([torch.einsum("bphd,bpd->h", delta[l], grads[final]) for l in range(L)]).abs()
    return EAPResult(nodes.detach().cpu(), edges.detach().cpu(), logit_edges.detach().cpu())


def eap_scores(model: TransformerBridge, task: CircuitTask) -> EAPResult:
    """EAP node and edge scores for `task` (see module docstring)."""
    return eap_ig_scores(model, task, steps=0)


@torch.enable_grad()  # attribution needs gradients even when the caller turned them off
def eap_ig_scores(model: TransformerBridge, task: CircuitTask, steps: int = 5) -> EAPResult:
    """EAP-IG node and edge scores (see module docstring); ``steps=0`` is plain EAP (gradient at
    the positive input only)."""
    if steps < 0:
        raise ValueError("steps must be >= 0")
    L, H = model.cfg.n_layers, model.cfg.n_heads
    res_names = [f"blocks.{l}.attn.hook_result" for l in range(L)]
    in_names = [f"blocks.{l}.hook_{x}_input" for l in range(L) for x in "qkv"]
    final = f"blocks.{L - 1}.hook_resid_post"
    embed = "blocks.0.hook_resid_pre"
    names = res_names + in_names + [final]
    with split_heads(model):
        with torch.no_grad(), capture(model, res_names + [embed]) as neg:
            model(task.neg_tokens)
        with torch.no_grad(), capture(model, res_names + [embed]) as pos:
            model(task.pos_tokens)
        alphas = [k / steps for k in range(steps)] if steps else [None]
        grads: dict = {}
        for alpha in alphas:
            # the input of the gradient run is a leaf that takes gradients (as the authors' hook), so
            # attribution works whether or not the model's weights require grad
            mixed = pos[embed] if alpha is None else neg[embed] + alpha * (pos[embed] - neg[embed])
            edits = [(embed, lambda a, hook, x=mixed: x.clone().requires_grad_(True))]
            with intervene(model, edits), capture(model, names, detach=False) as acts:
                metric = task.metric_from_logits(model(task.pos_tokens)).mean()
            g = torch.autograd.grad(metric, [acts[n] for n in names], allow_unused=True)
            for n, gi in zip(names, g):
                gi = torch.zeros_like(acts[n]) if gi is None else gi.detach()
                grads[n] = grads[n] + gi / len(alphas) if n in grads else gi / len(alphas)
    delta = [(neg[n] - pos[n]) for n in res_names]  # [n, pos, H, d_model]
    return _scores(L, H, delta, grads, res_names, final)
