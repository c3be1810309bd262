"""Load an SAE for unlearning and check that it fits the model and hook it will be applied to."""

from __future__ import annotations

import logging
from pathlib import Path

from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InterpError
from interp.hooks import HookSpec, hook_dim, parse_hook
from interp.sae.io import sae_hook

log = logging.getLogger(__name__)


def load(path: str | Path, model: TransformerBridge | None = None):
    """An SAELens SAE from a directory (or whatever `interp.sae.io.load_sae` accepts), on the
    model's device, checked against the model (`check_fits`) when one is given."""
    from interp.device import device_of
    from interp.sae.io import load_sae

    sae = load_sae(str(path), device=str(device_of(model)) if model is not None else "cpu")
    if model is not None:
        check_same_model(model, {str(path): sae})
        check_fits(model, sae, path=path)
    return sae


def _model_name(name) -> str:
    return Path(str(name)).name.replace("__", "/").split("/")[-1] if name else ""


def check_same_model(model: TransformerBridge, saes: dict) -> None:
    """One-line error if SAEs name different models in their cfg metadata; a warning if one names
    a model other than `model` (names are compared without directories, and a local model's name
    need not match what the SAE's trainer wrote, so the width check in `check_fits` decides)."""
    names = {str(p): _model_name(getattr(s.cfg.metadata, "model_name", None)) for p, s in saes.items()}
    named = {p: n for p, n in names.items() if n}
    if len(set(named.values())) > 1:
        (p1, n1), (p2, n2) = [(p, n) for p, n in named.items()][:1] + [(p, n) for p, n in named.items() if n != next(iter(named.values()))][:1]
        raise InterpError(f"SAEs from different models: {p1} was trained on {n1!r}, {p2} on {n2!r}")
    mine = _model_name(getattr(model.cfg, "model_name", None))
    for p, n in named.items():
        if mine and n != mine:
            log.warning("SAE %s names model %r, but the model loaded is %r", p, n, mine)


def check_fits(model: TransformerBridge, sae, hook: str | HookSpec | None = None, path: str | Path = "?") -> HookSpec:
    """The hook to apply `sae` at; raises a one-line `InterpError` if the SAE was trained on a
    different hook than `hook`, or its width does not match the model's activation there."""
    trained = HookSpec.from_str(sae_hook(sae, path))
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
