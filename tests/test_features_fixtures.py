"""Shared helpers for the features / reports / app tests (no tests here): a tiny SAE whose latents
are real activation directions of the embedded model, saved in SAELens format."""

from __future__ import annotations

from pathlib import Path

import torch

HOOK = "blocks.0.hook_resid_post"


def make_tiny_sae(model, d_sae: int = 48, k: int = 6, seed: int = 0, hook: str = HOOK, dense_bias: float = 0.0):
    """A TopK SAE (SAELens classes) with decoder rows = normalised activations at `hook`.
    `dense_bias` > 0 gives latent 0 that encoder bias, so it fires (strongly) on every token."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from interp.hooks import capture

    g = torch.Generator().manual_seed(seed)
    toks = model.to_tokens(["When Mary and John went to the store, John gave a drink to Mary.",
                            "The color of a ripe banana is yellow. The animal that says moo is the cow."], padding_side="right")
    with torch.no_grad(), capture(model, [hook]) as acts:
        model(toks)
    a = acts[hook].reshape(-1, model.cfg.d_model)
    a = a - a.mean(0)
    dirs = a[torch.randint(len(a), (d_sae,), generator=g)] + 0.1 * torch.randn(d_sae, a.shape[1], generator=g)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    cfg = TopKSAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, k=k,
                        metadata=SAEMetadata(hook_name=hook, model_name="embedded"))
    sae = TopKSAE(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(dirs)
        sae.W_enc.copy_(dirs.T)
        sae.b_enc.zero_()
        sae.b_enc[0] = dense_bias
        sae.b_dec.zero_()
    return sae


def save_tiny_sae(model, out: Path, **kw) -> Path:
    sae = make_tiny_sae(model, **kw)
    out.mkdir(parents=True, exist_ok=True)
    sae.save_model(str(out))
    return out
