"""Seeded random transcoder sets for the embedded model (the graph tests need one per MLP layer, not trained ones)."""

import torch


def random_transcoders(model, d_sae: int = 96, skip: bool = False, seed: int = 0, threshold: float = 1.8) -> dict:
    """{layer: SAELens JumpReLU(Skip)Transcoder} with N(0, 1/d) encoders: about 4% of latents fire per token."""
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.transcoder import (JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig, JumpReLUTranscoder,
                                          JumpReLUTranscoderConfig)

    d = model.cfg.d_model
    g = torch.Generator().manual_seed(seed)
    out = {}
    for L in range(model.cfg.n_layers):
        meta = SAEMetadata(model_name="embedded", hook_name=f"blocks.{L}.ln2.hook_normalized", hook_name_out=f"blocks.{L}.hook_mlp_out",
                           hook_layer=L)
        common = dict(d_in=d, d_sae=d_sae, d_out=d, dtype="float32", device="cpu", apply_b_dec_to_input=False, metadata=meta)
        cls, ccls = (JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig) if skip else (JumpReLUTranscoder, JumpReLUTranscoderConfig)
        tc = cls(ccls(**common))
        state = {"W_enc": torch.randn(d, d_sae, generator=g) / d ** 0.5, "b_enc": torch.zeros(d_sae),
                 "W_dec": torch.randn(d_sae, d, generator=g) * 0.05, "b_dec": torch.randn(d, generator=g) * 0.01,
                 "threshold": torch.full((d_sae,), threshold)}
        if skip:
            state["W_skip"] = torch.randn(d, d, generator=g) * 0.02
        tc.load_state_dict(state)
        out[L] = tc.eval()
    return out
