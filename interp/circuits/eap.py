"""Edge attribution patching (EAP; Syed, Rager & Conmy, 2023), against TransformerLens 3.

A first-order Taylor estimate of what resample patching would do, from one forward and one
backward pass on the positive prompts. With ``Δr_u = r_u(negative) - r_u(positive)`` the change
of head u's residual-stream output (``attn.hook_result``) and ``g`` gradients of the mean metric:

    node score(u)      = | sum_{i,p} Δr_u[i,p] · ∂m/∂r_u[i,p] |
    edge score(u -> v) = | sum_{i,p} Δr_u[i,p] · (∂m/∂q_in_v + ∂m/∂k_in_v + ∂m/∂v_in_v)[i,p] |
    edge score(u -> logits) = | sum_{i,p} Δr_u[i,p] · ∂m/∂resid_final[i,p] |

where ``q_in_v`` etc. are head v's own copies of its input (TransformerLens' split-qkv hooks).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from interp.circuits.tasks import CircuitTask
from interp.hooks import capture


@contextlib.contextmanager
def split_heads(model: HookedTransformer) -> Iterator[HookedTransformer]:
    """Turn on per-head result, split q/k/v input and MLP input hooks for the block, then restore
    the config.

    These are TransformerLens config switches read at forward time (no weights change); the
    previous values come back on exit, even after an error."""
    old = (model.cfg.use_attn_result, model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in)
    model.cfg.use_attn_result, model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in = True, True, True
    try:
        yield model
    finally:
        model.cfg.use_attn_result, model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in = old


class EAPResult(NamedTuple):
    """Attribution-patching scores (absolute values)."""

    node_scores: Float[torch.Tensor, "layer head"]
    edge_scores: Float[torch.Tensor, "layer head layer head"]  # u -> v through v's q, k or v input
    logit_edge_scores: Float[torch.Tensor, "layer head"]  # u -> final residual stream


def eap_scores(model: HookedTransformer, task: CircuitTask) -> EAPResult:
    """EAP node and edge scores for `task` (see module docstring)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    res_names = [f"blocks.{l}.attn.hook_result" for l in range(L)]
    in_names = [f"blocks.{l}.hook_{x}_input" for l in range(L) for x in "qkv"]
    final = f"blocks.{L - 1}.hook_resid_post"
    with split_heads(model):
        with torch.no_grad(), capture(model, res_names) as neg:
            model(task.neg_tokens)
        with capture(model, res_names + in_names + [final], detach=False) as acts:
            metric = task.metric_from_logits(model(task.pos_tokens)).mean()
        names = res_names + in_names + [final]
        grads = dict(zip(names, torch.autograd.grad(metric, [acts[n] for n in names], allow_unused=True)))
    delta = [(neg[n] - acts[n].detach()) for n in res_names]  # [n, pos, H, d_model]
    nodes = torch.stack([torch.einsum("bphd,bphd->h", delta[l], grads[res_names[l]]) for l in range(L)]).abs()
    edges = torch.zeros(L, H, L, H)
    for lv in range(1, L):
        g_in = sum(grads[f"blocks.{lv}.hook_{x}_input"] for x in "qkv")  # [n, pos, H, d_model]
        for lu in range(lv):
            edges[lu, :, lv, :] = torch.einsum("bpud,bpvd->uv", delta[lu], g_in).abs()
    g_final = grads[final]
    logit_edges = torch.stack([torch.einsum("bphd,bpd->h", delta[l], g_final) for l in range(L)]).abs()
    return EAPResult(nodes.detach(), edges.detach(), logit_edges.detach())
