"""Load an SAE for unlearning and check that it fits the model and hook it will be applied to."""

from __future__ import annotations

from pathlib import Path

from transformer_lens import HookedTransformer

from interp.errors import InterpError
from interp.hooks import HookSpec, hook_dim, parse_hook


def load(path: str | Path):
    """An SAELens SAE from a directory (through the SAE module's loader, which gives one-line errors)."""
    from interp.sae.io import load_sae

    return load_sae(path)


def sae_hook(sae, path: str | Path = "?") -> HookSpec:
    """The hook an SAE was trained on, from its cfg metadata (``hook_name``, ``hook_head_index``)."""
    md = sae.cfg.metadata
    name = getattr(md, "hook_name", None)
    if not name:
        raise InterpError(f"SAE {path} has no hook_name in its cfg metadata, so it cannot be placed in the model")
    head = getattr(md, "hook_head_index", None)
    return HookSpec(name, None if head is None else int(head))


def check_fits(model: HookedTransformer, sae, hook: str | HookSpec | None = None, path: str | Path = "?") -> HookSpec:
    """The hook to apply `sae` at; raises a one-line `InterpError` if the SAE was trained on a
    different hook than `hook`, or its width does not match the model's activation there."""
    trained = sae_hook(sae, path)
    if hook is not None:
        hs = parse_hook(model, hook)
        if (hs.name, hs.head) != (trained.name, trained.head):
            raise InterpError(f"SAE {path} was trained on {trained} but is applied at {hs}")
    try:
        hs = parse_hook(model, trained)
    except InterpError as e:
        raise InterpError(f"SAE {path} does not fit this model: {e}") from None
    d = hook_dim(model, hs)
    if d != sae.cfg.d_in:
        raise InterpError(f"SAE {path} expects d_in={sae.cfg.d_in} at {hs}, but this model's activation there has width {d} (an SAE from a different model?)")
    return hs


def check_features(sae, features: list[int], path: str | Path = "?") -> None:
    bad = [f for f in features if not 0 <= int(f) < sae.cfg.d_sae]
    if bad:
        raise InterpError(f"feature {bad[0]} does not exist: SAE {path} has {sae.cfg.d_sae} features (0..{sae.cfg.d_sae - 1})")
