"""The fast activation path: the same activations as HookedTransformer's hooks, from a quicker forward.

HookedTransformer runs every block through its own einsum attention and a hook point per tensor;
Hugging Face's GPT-2 runs the same math with fused kernels (scaled-dot-product attention,
`Conv1D` addmm) and is about 1.3x faster on a CPU (NOTES.md; `benchmarks/sae_bench.py` measures
it again). So for a GPT-2-style HookedTransformer (learned positions, LayerNorm, GELU MLP, full
multi-head attention) `fast_capture` copies the weights into a `transformers.GPT2Model` once and
records hooks as plain PyTorch module hooks:

====================================  ==================================================
TransformerLens hook                  GPT2Model module
====================================  ==================================================
``blocks.L.hook_resid_pre``           input of ``h.L``
``blocks.L.hook_resid_mid``           input of ``h.L.ln_2``
``blocks.L.hook_resid_post``          output of ``h.L``
``blocks.L.hook_attn_out``            output of ``h.L.attn`` (after ``c_proj``)
``blocks.L.hook_mlp_out``             output of ``h.L.mlp``
``blocks.L.attn.hook_z`` (any head)   input of ``h.L.attn.c_proj``, viewed [.., head, d_head]
``blocks.L.mlp.hook_pre``             output of ``h.L.mlp.c_fc``
``blocks.L.mlp.hook_post``            input of ``h.L.mlp.c_proj``
====================================  ==================================================

and stops the forward (an exception raised from the last hook it needs) as soon as every hook has
fired, so no block after the deepest hook, no final norm and no unembedding runs. Any other hook
or architecture falls back to HookedTransformer (`capture` with ``stop_at_layer``), with one info
line. `tests/test_forward.py` checks every served hook kind against HookedTransformer's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable

import torch

from interp.hooks import HookSpec, capture, parse_hook

log = logging.getLogger(__name__)

_BLOCK = re.compile(r"^blocks\.(\d+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out|"
                    r"attn\.hook_z|mlp\.hook_pre|mlp\.hook_post)$")
_HF_ACTS = {"gelu_new": "gelu_new", "gelu": "gelu", "gelu_fast": "gelu_fast", "gelu_pytorch_tanh": "gelu_pytorch_tanh",
            "relu": "relu", "silu": "silu"}


class _Stop(Exception):
    """Raised by the last hook needed: the rest of the forward is skipped."""


def gpt2_unsupported(cfg) -> str | None:
    """Why a HookedTransformer config cannot be run as a Hugging Face GPT-2 (None if it can)."""
    checks = [
        (cfg.positional_embedding_type == "standard", f"positional embedding {cfg.positional_embedding_type!r}"),
        (cfg.normalization_type in ("LN", "LNPre"), f"normalization {cfg.normalization_type!r}"),
        (cfg.act_fn in _HF_ACTS, f"activation {cfg.act_fn!r}"),
        (not cfg.attn_only and not cfg.gated_mlp and not cfg.parallel_attn_mlp, "block layout (attn-only, gated or parallel MLP)"),
        (getattr(cfg, "n_key_value_heads", None) in (None, cfg.n_heads), "grouped-query attention"),
        (cfg.d_head * cfg.n_heads == cfg.d_model, "d_head * n_heads != d_model"),
        (cfg.use_attn_scale and abs(cfg.attn_scale - cfg.d_head ** 0.5) < 1e-6, "attention scale"),
        (not getattr(cfg, "use_local_attn", False) and not getattr(cfg, "use_attn_in", False)
         and not getattr(cfg, "use_split_qkv_input", False), "local attention or split q/k/v inputs"),
    ]
    bad = [why for ok, why in checks if not ok]
    return ", ".join(bad) if bad else None


@torch.no_grad()
def hooked_to_gpt2(model):
    """A `transformers.GPT2Model` (eval mode, on the model's device and dtype) with the weights of
    a GPT-2-style HookedTransformer; its hidden states equal the HookedTransformer's residual stream.

    The mapping inverts TransformerLens' own GPT-2 import (`convert_gpt2_weights`):
    c_attn = [W_Q | W_K | W_V] as [d_model, 3 * n_heads * d_head], c_proj = W_O as
    [n_heads * d_head, d_model]; a LayerNorm whose scale was folded away (``LNPre``) becomes one
    with weight 1 and bias 0."""
    from transformers import GPT2Config, GPT2Model

    c = model.cfg
    why = gpt2_unsupported(c)
    if why:
        raise ValueError(f"not a GPT-2-style model: {why}")
    hf_cfg = GPT2Config(vocab_size=c.d_vocab, n_positions=c.n_ctx, n_embd=c.d_model, n_layer=c.n_layers, n_head=c.n_heads,
                        n_inner=c.d_mlp, activation_function=_HF_ACTS[c.act_fn], layer_norm_epsilon=c.eps,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, scale_attn_weights=True)
    hf_cfg._attn_implementation = "sdpa"
    p = next(model.parameters())
    # Every parameter is overwritten below, so skip Hugging Face's random init: for a GPT-2-small-sized
    # model it took 34 s of one busy core, more than the forward of a small collection.
    from transformers.initialization import no_init_weights

    with no_init_weights():
        hf = GPT2Model(hf_cfg)
    hf = hf.to(device=p.device, dtype=p.dtype).eval()

    def ln(dst, src, prefix):
        if c.normalization_type == "LN":
            dst.weight.copy_(src[f"{prefix}.w"])
            dst.bias.copy_(src[f"{prefix}.b"])
        else:
            dst.weight.fill_(1.0)
            dst.bias.zero_()

    sd = model.state_dict()
    hf.wte.weight.copy_(sd["embed.W_E"])
    hf.wpe.weight.copy_(sd["pos_embed.W_pos"])
    for i, blk in enumerate(hf.h):
        b = f"blocks.{i}"
        ln(blk.ln_1, sd, f"{b}.ln1")
        ln(blk.ln_2, sd, f"{b}.ln2")
        w = [sd[f"{b}.attn.W_{x}"].permute(1, 0, 2).reshape(c.d_model, -1) for x in "QKV"]
        blk.attn.c_attn.weight.copy_(torch.cat(w, dim=1))
        blk.attn.c_attn.bias.copy_(torch.cat([sd[f"{b}.attn.b_{x}"].reshape(-1) for x in "QKV"]))
        blk.attn.c_proj.weight.copy_(sd[f"{b}.attn.W_O"].reshape(-1, c.d_model))
        blk.attn.c_proj.bias.copy_(sd[f"{b}.attn.b_O"])
        blk.mlp.c_fc.weight.copy_(sd[f"{b}.mlp.W_in"])
        blk.mlp.c_fc.bias.copy_(sd[f"{b}.mlp.b_in"])
        blk.mlp.c_proj.weight.copy_(sd[f"{b}.mlp.W_out"])
        blk.mlp.c_proj.bias.copy_(sd[f"{b}.mlp.b_out"])
    ln(hf.ln_f, sd, "ln_final")
    return hf


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


@dataclass
class _Site:
    module: torch.nn.Module
    where: str  # "in" (forward pre-hook, first input) or "out" (forward hook, first output)
    heads: int | None  # view the tensor as [..., heads, d_head] (hook_z)


def _site(hf, spec: HookSpec, n_heads: int) -> _Site | None:
    m = _BLOCK.match(spec.name)
    if m is None:
        return None
    layer, kind = int(m.group(1)), m.group(2)
    blk = hf.h[layer]
    return {
        "hook_resid_pre": _Site(blk, "in", None),
        "hook_resid_mid": _Site(blk.ln_2, "in", None),
        "hook_resid_post": _Site(blk, "out", None),
        "hook_attn_out": _Site(blk.attn, "out", None),
        "hook_mlp_out": _Site(blk.mlp, "out", None),
        "attn.hook_z": _Site(blk.attn.c_proj, "in", n_heads),
        "mlp.hook_pre": _Site(blk.mlp.c_fc, "out", None),
        "mlp.hook_post": _Site(blk.mlp.c_proj, "in", None),
    }[kind]


class FastCapture:
    """``run(tokens) -> {spec: activation}`` for a fixed list of hook specs, through the fastest
    path the model allows (see the module docstring). `path` says which: "hf-gpt2" or "hooked"."""

    def __init__(self, model, specs: list[str | HookSpec], fast: bool = True):
        self.model = model
        self.specs = [parse_hook(model, s) for s in specs]
        self.hf = None
        self.path = "hooked"
        if fast:
            why = gpt2_unsupported(model.cfg) if hasattr(model, "cfg") else "not a HookedTransformer"
            if why is None:
                unserved = [str(s) for s in self.specs if _BLOCK.match(s.name) is None]
                why = f"hook(s) {', '.join(unserved)} have no module equivalent" if unserved else None
            if why is None:
                self.hf = hooked_to_gpt2(model)
                self.sites = [_site(self.hf, s, model.cfg.n_heads) for s in self.specs]
                self.path = "hf-gpt2"
            else:
                log.info("fast forward unavailable (%s); collecting through HookedTransformer", why)

    def _hooked(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        from interp.hooks import stop_layer

        with torch.no_grad(), capture(self.model, self.specs) as store:
            self.model(tokens, stop_at_layer=stop_layer(self.model, self.specs))
        return dict(store)

    def __call__(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.hf is None:
            return self._hooked(tokens)
        out: dict[str, torch.Tensor] = {}
        want = {str(s) for s in self.specs}
        handles = []

        def record(spec: HookSpec, site: _Site) -> Callable:
            def keep(x: torch.Tensor) -> None:
                if site.heads is not None:
                    x = x.view(*x.shape[:-1], site.heads, -1)
                out[str(spec)] = spec.select(x).detach()
                if want <= out.keys():
                    raise _Stop

            if site.where == "in":
                return site.module.register_forward_pre_hook(
                    lambda mod, args, kwargs: keep(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
            return site.module.register_forward_hook(lambda mod, args, res: keep(_first(res)))

        try:
            handles = [record(s, site) for s, site in zip(self.specs, self.sites)]
            with torch.no_grad():
                self.hf(input_ids=tokens.to(self.hf.wte.weight.device), use_cache=False)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return out
