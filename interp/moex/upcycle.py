"""Upcycling: an MoE layer initialised from a trained dense MLP.

The M dense neurons are dealt out to the E experts of width D: the neuron order is a fresh random
permutation for every pass over the M neurons, and expert e takes the next D of them (so with
E * D = c * M every neuron sits in about c experts). Copies get 1% noise so that experts
holding the same neuron can drift apart. The decoder is scaled by M / D: with
gates summing to 1 over k experts that each hold D of the M neurons, the expected output then
matches the dense MLP's. Everything outside the MLPs is copied unchanged.
"""

from __future__ import annotations

import torch

from interp.errors import InterpError
from interp.moex.layer import MoEMLP, MoEXConfig


@torch.no_grad()
def upcycle_mlp(dense, cfg: MoEXConfig, seed: int = 0, noise: float = 0.01) -> MoEMLP:
    """A new `MoEMLP(cfg)` whose experts are copies of `dense`'s neurons (see module docstring)."""
    # any MLP with W_in [d, M], b_in, W_out [M, d], b_out: ours or TransformerLens's (a language model's)
    if not all(hasattr(dense, n) for n in ("W_in", "b_in", "W_out", "b_out")) or getattr(dense, "W_gate", None) is not None:
        raise InterpError(f"upcycling needs a dense (non-gated) MLP, got {type(dense).__name__}")
    if not cfg.is_moe:
        raise InterpError(f"upcycling target must be switch or moex, got {cfg.arch}")
    d, M = dense.W_in.shape
    if cfg.d_model != d:
        raise InterpError(f"d_model mismatch: dense {d} vs MoE {cfg.d_model}")
    g = torch.Generator().manual_seed(seed)
    E, D = cfg.n_experts, cfg.d_mlp
    passes = -(-E * D // M)
    order = torch.cat([torch.randperm(M, generator=g) for _ in range(passes)])[: E * D].reshape(E, D)
    moe = MoEMLP(cfg)
    W_in, b_in, W_out = dense.W_in.detach().cpu(), dense.b_in.detach().cpu(), dense.W_out.detach().cpu()
    jitter = lambda t: t * (1 + noise * torch.randn(t.shape, generator=g))  # noqa: E731
    moe.W_enc.copy_(jitter(W_in[:, order].permute(1, 0, 2)))  # [E, d, D]
    moe.b_enc.copy_(b_in[order])
    moe.W_dec.copy_(W_out[order] * (M / D))  # [E, D, d]
    moe.b_dec.copy_(dense.b_out.detach().cpu())
    return moe.to(dense.W_in.device)


@torch.no_grad()
def upcycle_model(dense_model, cfg: MoEXConfig, seed: int = 0):
    """Replace every dense MLP of `dense_model` (in place) with its upcycled MoE; returns the model."""
    from interp.models import swap_mlp

    for layer, block in enumerate(dense_model.blocks):
        swap_mlp(dense_model, layer, upcycle_mlp(block.mlp, cfg, seed=seed))
    return dense_model
