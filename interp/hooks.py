"""Context managers that capture or intervene on a TransformerLens `TransformerBridge`; the model is
never mutated (the bridge's hook switches a hook needs are turned on for the block and restored).

A *hook spec* names a TransformerLens hook point and, optionally, one attention head:
``"blocks.1.hook_resid_post"`` or ``"blocks.1.attn.hook_z:3"`` (head 3 of layer 1's ``hook_z``,
i.e. that head's d_head-dim output before W_O, as SAELens' ``hook_head_index`` uses it).

    with capture(model, ["blocks.0.hook_resid_post"]) as acts:
        model(tokens)
    acts["blocks.0.hook_resid_post"]  # [batch, pos, d_model]

    with intervene(model, {"blocks.0.attn.hook_z": patch_heads([3])}):
        logits = model(tokens)       # head 0.3 zero-ablated; hooks removed on exit

Hooks behind a bridge switch: ``attn.hook_result`` (per-head output z_h W_O[h], [batch, pos, head,
d_model]) needs ``set_use_attn_result``, ``hook_q/k/v_input`` (each head's own copy of its input)
``set_use_split_qkv_input``, ``hook_mlp_in`` ``set_use_hook_mlp_in``. `capture` and `intervene` turn
on exactly the switches their hooks need and restore them on exit (`hook_switches`). A bridge whose
attention class has no per-head result (TransformerLens' native attention) still yields
``attn.hook_result`` to `capture`, computed from ``attn.hook_z`` and W_O:
``result[b, p, h] = z[b, p, h] @ W_O[h]``.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InterpError


@dataclass(frozen=True)
class HookSpec:
    """A hook point name plus an optional head index (for per-head hooks like ``attn.hook_z``)."""

    name: str
    head: int | None = None

    def __str__(self) -> str:
        return self.name if self.head is None else f"{self.name}:{self.head}"

    @property
    def safe(self) -> str:
        """A file-system-safe name, e.g. ``blocks.1.attn.hook_z.h3``."""
        return self.name if self.head is None else f"{self.name}.h{self.head}"

    @classmethod
    def from_str(cls, spec: str) -> "HookSpec":
        """``NAME`` or ``NAME:HEAD`` -> HookSpec (the name is not checked against a model; see `parse_hook`)."""
        name, _, head = str(spec).partition(":")
        try:
            return cls(name, int(head) if head else None)
        except ValueError:
            raise InterpError(f"bad head index in hook {spec!r}; write NAME:HEAD, e.g. blocks.0.attn.hook_z:3") from None

    def select(self, act: torch.Tensor) -> torch.Tensor:
        """Cut this spec's slice out of the hook's activation ([..., head, d_head] -> [..., d_head])."""
        return act if self.head is None else act[..., self.head, :]


def parse_hook(model: TransformerBridge, spec: str | HookSpec) -> HookSpec:
    """Validate a hook spec against `model`; unknown names get the closest valid suggestions."""
    hs = spec if isinstance(spec, HookSpec) else HookSpec.from_str(spec)
    if hs.name not in model.hook_dict and not (_result_from_z(model, hs.name) and hs.name[: -len("hook_result")] + "hook_z" in model.hook_dict):
        close = difflib.get_close_matches(hs.name, list(model.hook_dict), n=3, cutoff=0.4)
        hint = f"; closest valid: {', '.join(close)}" if close else ""
        raise InterpError(f"unknown hook {hs.name!r} for this model{hint}")
    if hs.head is not None:
        if not any(hs.name.endswith(s) for s in ("hook_z", "hook_q", "hook_k", "hook_v", "hook_result", "hook_pattern", "hook_attn_scores")):
            raise InterpError(f"hook {hs.name!r} has no head dimension; a head index needs attn.hook_z/q/k/v/result")
        if not 0 <= hs.head < model.cfg.n_heads:
            raise InterpError(f"head {hs.head} out of range: the model has {model.cfg.n_heads} heads per layer")
    return hs


def hook_dim(model: TransformerBridge, spec: HookSpec) -> int:
    """Width of the activation a spec yields (run once on a 2-token input)."""
    acts = {}
    with torch.no_grad(), capture(model, [spec]) as acts:
        model(torch.zeros(1, 2, dtype=torch.long, device=model.cfg.device), stop_at_layer=stop_layer(model, [spec]))
    return acts[str(spec)].shape[-1]


_LAYER_RE = re.compile(r"^blocks\.(\d+)\.")


def hook_layer(name: str | HookSpec) -> int | None:
    """The block index a hook name lives in (``blocks.3.attn.hook_z`` -> 3); None outside the blocks."""
    m = _LAYER_RE.match(name.name if isinstance(name, HookSpec) else str(name).partition(":")[0])
    return int(m.group(1)) if m else None


def stop_layer(model: TransformerBridge | int, hooks: list[str | HookSpec]) -> int | None:
    """The one answer to "where can the forward stop": the `stop_at_layer` value that runs exactly the
    blocks up to the deepest of `hooks` and skips the rest (and ln_final/unembed).

    ``blocks.L.*`` -> L + 1 (``stop_at_layer=n_layers`` still skips ln_final and the unembedding);
    ``hook_embed`` / ``hook_pos_embed`` alone -> 0; None (run everything) when a hook lies after the
    blocks (``ln_final.*``) or `hooks` is empty. Pass it to ``model(..., stop_at_layer=...)``."""
    if not hooks:
        return None
    layers = []
    for h in hooks:
        name = h.name if isinstance(h, HookSpec) else str(h).partition(":")[0]
        layer = hook_layer(name)
        if layer is None:
            if name in ("hook_embed", "hook_pos_embed", "hook_tokens"):
                layer = -1
            else:
                return None
        layers.append(layer)
    return max(layers) + 1


def prompt_tokens(model: TransformerBridge, text: str | list[str], truncate: bool = False,
                  prepend_bos: bool | None = None) -> torch.Tensor:
    """`model.to_tokens(text)` on the model's device, refusing a prompt longer than the context.

    A prompt of more than ``n_ctx`` tokens is an `InterpError` naming both lengths, unless
    `truncate` (then the first ``n_ctx`` tokens are kept, as TransformerLens' `to_tokens` would
    silently do)."""
    toks = model.to_tokens(text, prepend_bos=prepend_bos, truncate=False)
    n_ctx = model.cfg.n_ctx
    if toks.shape[1] > n_ctx:
        if not truncate:
            raise InterpError(f"prompt is {toks.shape[1]} tokens, longer than the model's context of {n_ctx}; "
                              "shorten it or ask for truncation (--truncate)")
        toks = toks[:, :n_ctx]
    return toks.to(model.cfg.device)


# hook-name suffix -> the bridge switch that makes it fire, and the method that sets it
_SWITCHES = {
    "attn.hook_result": ("use_attn_result", "set_use_attn_result"),
    "hook_q_input": ("use_split_qkv_input", "set_use_split_qkv_input"),
    "hook_k_input": ("use_split_qkv_input", "set_use_split_qkv_input"),
    "hook_v_input": ("use_split_qkv_input", "set_use_split_qkv_input"),
    "hook_mlp_in": ("use_hook_mlp_in", "set_use_hook_mlp_in"),
}


def supports_head_results(model) -> bool:
    """Whether every attention block of `model` computes per-head results itself (`set_use_attn_result`)."""
    blocks = getattr(model, "blocks", None) or []
    return bool(blocks) and all(getattr(getattr(b, "attn", None), "supports_attn_result", False) for b in blocks)


def _result_from_z(model, name: str) -> bool:
    """True when ``attn.hook_result`` must be computed from hook_z (the bridge cannot fire it)."""
    return name.endswith("attn.hook_result") and not supports_head_results(model)


@contextlib.contextmanager
def hook_switches(model, names) -> Iterator[None]:
    """Turn on the bridge switches that hooks `names` need (see module docstring) for the block,
    then put every switch back as it was, even after an error."""
    need = {}
    for n in names:
        n = n.name if isinstance(n, HookSpec) else str(n)
        for suffix, (flag, setter) in _SWITCHES.items():
            if n.endswith(suffix) and not (suffix == "attn.hook_result" and _result_from_z(model, n)):
                need[flag] = setter
    turned = []
    try:
        for flag, setter in need.items():
            if not bool(getattr(model.cfg, flag, False)):
                try:
                    getattr(model, setter)(True)
                except NotImplementedError as e:
                    raise InterpError(f"this model's attention cannot expose {flag[4:]} hooks ({str(e).split('.')[0]})") from None
                turned.append(setter)
        yield
    finally:
        for setter in turned:
            getattr(model, setter)(False)


@contextlib.contextmanager
def capture(model: TransformerBridge, specs: list[str | HookSpec], detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the activations at `specs` during forwards inside the block (last forward wins)."""
    parsed = [parse_hook(model, s) for s in specs]
    store: dict[str, torch.Tensor] = {}

    def make(hs: HookSpec):
        if _result_from_z(model, hs.name):  # per-head result from z and W_O (module docstring)
            W_O = model.blocks[hook_layer(hs.name)].attn.W_O  # [H, d_head, d_model]

            def from_z(z, hook):
                a = hs.select(torch.einsum("bphd,hdm->bphm", z, W_O.to(z.dtype)))
                store[str(hs)] = a.detach() if detach else a

            return hs.name[: -len("hook_result")] + "hook_z", from_z

        def fn(act, hook):
            a = hs.select(act)
            store[str(hs)] = a.detach() if detach else a

        return hs.name, fn

    with hook_switches(model, parsed), model.hooks(fwd_hooks=[make(hs) for hs in parsed]):
        yield store


@contextlib.contextmanager
def intervene(model: TransformerBridge, edits: dict[str, Callable] | list[tuple[str, Callable]]) -> Iterator[TransformerBridge]:
    """Run forwards with TransformerLens hooks `fn(act, hook) -> act`; all are removed on exit."""
    items = list(edits.items()) if isinstance(edits, dict) else list(edits)
    for name, _ in items:
        parse_hook(model, name)
        if _result_from_z(model, name):
            raise InterpError(f"cannot edit {name}: this model's attention ({type(model.blocks[0].attn).__name__}) "
                              "computes no per-head result; edit attn.hook_z instead")
    with hook_switches(model, [n for n, _ in items]), model.hooks(fwd_hooks=items):
        yield model


class Collector:
    """``Collector(model, specs)(tokens) -> {spec: activation}``: the collection forward of activations
    and SAE training, for a fixed list of hook specs.

    The bridge's own forward (Hugging Face's modules), stopped as soon as every spec has fired:
    ``stop_at_layer`` (`stop_layer`) skips the blocks after the deepest hook, and the last capture
    raises the bridge's own `StopAtLayerException` (its forward catches it and returns), so nothing
    after that hook runs, inside the block or after the last block (the bridge's
    ``stop_at_layer=n_layers`` would still run the final norm and the unembedding). The hook points
    are resolved once here and recorded with plain PyTorch forward hooks on them: the bridge's
    ``hooks()`` context rebuilds its alias table on every entry (``hook_dict``), which cost about
    12% of a small model's forward. This replaced a hand copy of the weights into a Hugging Face
    GPT-2 (``interp/forward.py``); speed in benchmarks/README.md ("The model runtime")."""

    def __init__(self, model: TransformerBridge, specs: list[str | HookSpec]):
        self.model = model
        self.specs = [parse_hook(model, s) for s in specs]
        hd = model.hook_dict
        self.sites = []  # (spec, hook point, transform)
        for s in self.specs:
            if _result_from_z(model, s.name):
                W_O = model.blocks[hook_layer(s.name)].attn.W_O
                self.sites.append((s, hd[s.name[: -len("hook_result")] + "hook_z"],
                                   lambda z, W_O=W_O: torch.einsum("bphd,hdm->bphm", z, W_O.to(z.dtype))))
            else:
                self.sites.append((s, hd[s.name], None))
        stop = stop_layer(model, self.specs)
        self.stop = stop if stop is not None and stop < model.cfg.n_layers else None

    def __call__(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        from transformer_lens.model_bridge.exceptions import StopAtLayerException

        store: dict[str, torch.Tensor] = {}
        want = len(self.sites)

        def make(spec: HookSpec, hp, transform):
            conv = hp.hook_conversion  # the bridge's view of this hook (e.g. hook_z as [.., head, d_head])

            def fn(module, args, out):
                a = out if conv is None else conv.convert(out)
                a = a if transform is None else transform(a)
                store[str(spec)] = spec.select(a).detach()
                if len(store) == want:
                    raise StopAtLayerException(out)

            return fn

        handles = [hp.register_forward_hook(make(s, hp, tf)) for s, hp, tf in self.sites]
        try:
            with torch.no_grad(), hook_switches(self.model, self.specs):
                self.model(tokens, stop_at_layer=self.stop)
        finally:
            for h in handles:
                h.remove()
        return store


def collect(model: TransformerBridge, specs: list[str | HookSpec], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The activations at `specs` for `tokens` through `Collector` (one batch)."""
    return Collector(model, specs)(tokens)


def patch_heads(heads: list[int], source: torch.Tensor | None = None) -> Callable:
    """THE head-ablation hook, for ``blocks.L.attn.hook_z`` ([batch, pos, H, d_head]): overwrite the
    heads in `heads` with

    * zeros (`source` None: zero ablation);
    * a mean (`source` [H, d_head], broadcast over batch and positions; or [pos, H, d_head] per position);
    * another run's z (`source` [batch, pos, H, d_head]: resample / activation patching, same rows
      and positions).

    Used by the prompt lab (zero / mean) and every circuit method (`interp.circuits.patching`)."""

    def fn(z, hook):
        z = z.clone()
        if source is None:
            z[:, :, heads] = 0.0
            return z
        s = source.to(device=z.device, dtype=z.dtype)
        if s.dim() == 2:
            z[:, :, heads] = s[heads]
        elif s.dim() == 3:
            z[:, :, heads] = s[: z.shape[1], heads]
        else:
            z[:, :, heads] = s[: z.shape[0], : z.shape[1], heads]
        return z

    return fn


def sae_edit(sae, edit: Callable[[torch.Tensor], torch.Tensor], head: int | None = None) -> Callable:
    """Hook that edits SAE latents while keeping the SAE error term, so only the edit moves:

        x' = x + decode(edit(encode(x))) - decode(encode(x))

    `edit` maps latents [..., d_sae] -> edited latents. For per-head SAEs (``hook_z`` with
    ``hook_head_index``) pass `head` and only that head's slice is edited. An identity `edit`
    leaves the activation exactly unchanged (up to float error)."""

    def fn(act, hook):
        x = act if head is None else act[..., head, :]
        feats = sae.encode(x.to(sae.dtype))
        delta = (sae.decode(edit(feats.clone())) - sae.decode(feats)).to(act.dtype)
        if head is None:
            return act + delta
        out = act.clone()
        out[..., head, :] = x + delta
        return out

    return fn


def run_from(model: TransformerBridge, resid: torch.Tensor, layer: int, stop_at_layer: int | None = None) -> torch.Tensor:
    """The forward from block `layer` on, given ``blocks.{layer}.hook_resid_pre`` = `resid`
    [batch, pos, d_model]: logits, or the residual stream at `stop_at_layer`.

    TransformerLens' bridge runs Hugging Face's own forward, which owns the layer loop, so it
    cannot start mid-way (its forward refuses ``start_at_layer``). Here the blocks before `layer`
    run on placeholder tokens (id 0, same shape) and their output is replaced by `resid` at
    ``blocks.{layer}.hook_resid_pre``: the result equals starting at `layer` (positions, masks and
    rotary tables depend only on the shape), but the compute of the earlier blocks is not saved.
    Hooks that record activations of blocks before `layer` see the placeholder run."""
    L = model.cfg.n_layers
    fwd = []
    if layer == 0 and not resid.is_floating_point():
        tokens = resid
    else:
        tokens = torch.zeros(resid.shape[:2], dtype=torch.long, device=resid.device)
        fwd.append((f"blocks.{layer}.hook_resid_pre", lambda act, hook: resid.to(act.dtype)))
    if stop_at_layer is None or stop_at_layer < L:
        with model.hooks(fwd_hooks=fwd):
            return model(tokens, stop_at_layer=stop_at_layer)
    # the residual after the last block: the bridge's stop_at_layer=n_layers would run the whole model
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    def stop(act, hook):
        raise StopAtLayerException(act)

    with model.hooks(fwd_hooks=fwd + [(f"blocks.{L - 1}.hook_resid_post", stop)]):
        return model(tokens)
