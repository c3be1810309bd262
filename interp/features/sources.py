"""Feature sources: anything whose features can be read off one hook of a model.

A source names a hook (`hook`), maps that hook's activations to feature values
``encode(acts[..., d]) -> [..., F]``, and optionally gives each feature's write direction into the
residual stream (``directions(model) -> [F, d_model]``) for logit effects.

* `SaeSource`: the latents of a SAELens SAE at its own hook (any hook, including one attention
  head's output ``blocks.L.attn.hook_z:H`` for per-head SAEs);
* `NeuronSource`: the neurons of one MLP layer (``blocks.L.mlp.hook_post``);
* `MoexSource` (interp.features.moex_source): the expert units of a MoE-X layer of a chess model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError

if TYPE_CHECKING:  # reading statistics (the dashboard) must not pay for importing TransformerLens
    from transformer_lens import TransformerBridge

    from interp.hooks import HookSpec


@runtime_checkable
class FeatureSource(Protocol):
    """Anything whose features can be read off one hook of a model."""

    hook: HookSpec  # where the input activations come from
    n_features: int  # F
    kind: str  # "sae", "neurons", "moex": what one unit is (shown in the browser)

    def encode(self, acts: Float[Tensor, "... d"]) -> Float[Tensor, "... F"]: ...

    def directions(self, model: TransformerBridge) -> Float[Tensor, "F d_model"] | None: ...


def layer_of(name: str) -> int | None:
    """The block index in a hook name (``blocks.3.hook_resid_post`` -> 3), None outside blocks
    (interp.hooks.hook_layer, imported late: reading statistics must not import TransformerLens)."""
    from interp.hooks import hook_layer

    return hook_layer(name)


def to_residual(model: TransformerBridge, hook: HookSpec, dirs: Float[Tensor, "F d"]) -> Float[Tensor, "F d_model"] | None:
    """Map write directions at `hook` into the residual stream (None when no linear path exists)."""
    name, layer = hook.name, layer_of(hook.name)
    if name.endswith(("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_mlp_out", "hook_attn_out")):
        return dirs
    if name.endswith("attn.hook_z") and layer is not None:
        W_O = model.blocks[layer].attn.W_O.detach()  # [H, d_head, d_model]
        dirs = dirs.to(W_O.device, W_O.dtype)
        return dirs @ (W_O[hook.head] if hook.head is not None else W_O.reshape(-1, W_O.shape[-1]))
    if name.endswith("attn.hook_result") and layer is not None:
        return dirs
    if name.endswith("mlp.hook_post") and layer is not None:
        W_out = model.blocks[layer].mlp.W_out.detach()
        return dirs.to(W_out.device, W_out.dtype) @ W_out
    return None


class SaeSource:
    """The latents of a SAELens SAE at its own hook (from `sae.cfg.metadata`)."""

    kind = "sae"

    def __init__(self, sae, model: TransformerBridge):
        from interp.hooks import parse_hook
        from interp.sae.io import sae_hook

        self.sae = sae
        self.hook = parse_hook(model, sae_hook(sae))
        self.n_features = int(sae.cfg.d_sae)

    @torch.no_grad()
    def encode(self, acts):
        return self.sae.encode(acts.to(self.sae.W_enc.device, self.sae.dtype)).float()

    @torch.no_grad()
    def directions(self, model):
        return to_residual(model, self.hook, self.sae.W_dec.detach().float())


class NeuronSource:
    """The d_mlp neurons of one MLP layer (``blocks.L.mlp.hook_post``); a neuron fires when > 0."""

    kind = "neurons"

    def __init__(self, model: TransformerBridge, layer: int):
        if not 0 <= layer < model.cfg.n_layers:
            raise InterpError(f"layer {layer} out of range: the model has {model.cfg.n_layers} layers")
        if model.cfg.attn_only:
            raise InterpError("this model is attention-only; it has no MLP neurons")
        from interp.hooks import parse_hook

        self.hook = parse_hook(model, f"blocks.{layer}.mlp.hook_post")
        self.n_features = int(model.cfg.d_mlp)

    def encode(self, acts):
        return acts.float()

    @torch.no_grad()
    def directions(self, model):
        from interp.device import device_of

        return to_residual(model, self.hook, torch.eye(self.n_features, device=device_of(model)))
