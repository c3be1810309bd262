"""The local replacement model of one prompt, as hooks on the unmodified model (circuit-tracer's
`TransformerLensReplacementModel._configure_gradient_flow`, `_configure_skip_connection` and
`setup_attribution`, step by step).

On the clean run of the prompt (`setup`):

* every transcoder encodes its layer's MLP input ``x_L = blocks.L.ln2.hook_normalized``:
  ``f_L = act(x_L W_enc + b_enc)``; features at position 0 (BOS) are zeroed (circuit-tracer's
  ``zero_positions``);
* error nodes ``e_L = mlp_out_L - (f_L W_dec + b_dec + x_L W_skip^T)``, zero at position 0;
* token nodes: the token embeddings ``W_E[tokens]`` (positional embeddings are not nodes).

In the linearised forward (`linearising_hooks`), the values are the model's own, but gradients only
flow through the linear paths:

* attention patterns and every LayerNorm scale (``ln1``, ``ln2``, ``ln_final``) are detached;
* each MLP's output is replaced by ``skip(x_L) + (mlp_out_L - skip(x_L)).detach() + z_L`` with
  ``skip`` the transcoder's skip connection (zero without one), and ``z_L`` a zero tensor whose
  gradient is the gradient at the MLP output (circuit-tracer's ``hook_out_grad``);
* the embedding output is a fresh leaf, whose gradient gives the token edges;
* the forward stops once the final normalised residual is recorded (`StopForward`).

Model access goes only through hook names that TransformerLens' legacy model class and
TransformerBridge both expose (``hook_embed``, ``blocks.L.attn.hook_pattern``,
``blocks.L.ln1/ln2.hook_scale``, ``blocks.L.ln2.hook_normalized``, ``blocks.L.hook_mlp_out``,
``ln_final.hook_scale``, ``ln_final.hook_normalized``) and `interp.hooks`; the model is never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

ZERO_POSITIONS = slice(0, 1)  # circuit-tracer zeroes features and errors at the first position (BOS)


@dataclass
class Setup:
    """What the clean run of the prompt gives the graph."""

    logits: torch.Tensor  # [n_pos, d_vocab] clean logits
    active: torch.Tensor  # [n_active, 3] (layer, pos, feature), sorted as a coalesced sparse tensor
    values: torch.Tensor  # [n_active] activations
    encoder_vecs: torch.Tensor  # [n_active, d_model] W_enc column of each active feature
    decoder_vecs: torch.Tensor  # [n_active, d_model] activation * W_dec row of each active feature
    error_vecs: torch.Tensor  # [n_layers, n_pos, d_model]
    token_vecs: torch.Tensor  # [n_pos, d_model]


def _skip(tc, x: torch.Tensor) -> torch.Tensor | None:
    W = getattr(tc, "W_skip", None)
    return None if W is None else x @ W.T.to(x.dtype)


@torch.no_grad()
def setup(model, tokens: torch.Tensor, tcs: dict[int, object]) -> Setup:
    """The clean run of `tokens` [n_pos] (module docstring)."""
    from interp.hooks import capture

    n_layers = model.cfg.n_layers
    names = [f"blocks.{L}.ln2.hook_normalized" for L in range(n_layers)] + [f"blocks.{L}.hook_mlp_out" for L in range(n_layers)]
    with capture(model, names) as acts:
        logits = model(tokens[None])
    actives, values, enc, dec, errs = [], [], [], [], []
    for L in range(n_layers):
        tc = tcs[L]
        x = acts[f"blocks.{L}.ln2.hook_normalized"][0].float()
        f = tc.encode(x)
        f[ZERO_POSITIONS] = 0
        recon = tc.decode(f)
        skip = _skip(tc, x)
        if skip is not None:
            recon = recon + skip
        err = acts[f"blocks.{L}.hook_mlp_out"][0].float() - recon
        err[ZERO_POSITIONS] = 0
        errs.append(err)
        pos, feat = f.nonzero(as_tuple=True)  # row-major: sorted by (pos, feature), as a coalesced sparse tensor
        actives.append(torch.stack([torch.full_like(pos, L), pos, feat], dim=1))
        values.append(f[pos, feat])
        enc.append(tc.W_enc[:, feat].T.float())
        dec.append(tc.W_dec[feat].float() * f[pos, feat][:, None])
    W_E = model.W_E.detach().float()
    return Setup(logits=logits[0].float(), active=torch.cat(actives), values=torch.cat(values), encoder_vecs=torch.cat(enc),
                 decoder_vecs=torch.cat(dec), error_vecs=torch.stack(errs), token_vecs=W_E[tokens])


class StopForward(Exception):
    """Raised once ``ln_final.hook_normalized`` is recorded: the unembedding of the repeated forward
    (batch x positions x vocabulary logits) is never needed (circuit-tracer stops there too)."""


@dataclass
class Linearised:
    """Tensors recorded by the linearised forward: what gradients are read from and injected into."""

    inputs: list  # [n_layers + 1] feature-input activations x_L ([B, n_pos, d]), then ln_final.hook_normalized
    mlp_grads: list  # [n_layers] the zero leaves z_L at each MLP output
    embed: list  # [1] the embedding leaf


def linearising_hooks(model, tcs: dict[int, object], batch: int, n_pos: int) -> tuple[list[tuple[str, Callable]], Linearised]:
    """The hooks of the module docstring, and where they record their tensors."""
    n_layers, d = model.cfg.n_layers, model.cfg.d_model
    p = next(model.parameters())
    rec = Linearised(inputs=[None] * (n_layers + 1), mlp_grads=[torch.zeros(batch, n_pos, d, device=p.device, dtype=torch.float32,
                                                                            requires_grad=True) for _ in range(n_layers)],
                     embed=[None])

    def detach(act, hook):
        return act.detach()

    def embed(act, hook):
        leaf = act.detach().requires_grad_(True)
        rec.embed[0] = leaf
        return leaf

    def keep_input(act, hook, L):
        rec.inputs[L] = act
        return act

    def mlp_out(act, hook, L):
        x = rec.inputs[L]
        skip = _skip(tcs[L], x.float())
        if skip is None:
            out = act.detach() + rec.mlp_grads[L].to(act.dtype)
        else:
            skip = skip.to(act.dtype)
            out = skip + (act - skip).detach() + rec.mlp_grads[L].to(act.dtype)
        return out

    hooks: list[tuple[str, Callable]] = [("hook_embed", embed)]
    for L in range(n_layers):
        hooks += [(f"blocks.{L}.attn.hook_pattern", detach), (f"blocks.{L}.ln1.hook_scale", detach),
                  (f"blocks.{L}.ln2.hook_scale", detach),
                  (f"blocks.{L}.ln2.hook_normalized", lambda a, hook, L=L: keep_input(a, hook, L)),
                  (f"blocks.{L}.hook_mlp_out", lambda a, hook, L=L: mlp_out(a, hook, L))]
    def last(act, hook):
        keep_input(act, hook, n_layers)
        raise StopForward

    hooks += [("ln_final.hook_scale", detach), ("ln_final.hook_normalized", last)]
    return hooks, rec
