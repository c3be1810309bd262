"""Transcoders on disk, in SAELens' own format: save, load, list, and check that they fit a model.

A transcoder directory is what SAELens' `SAE.save_model` writes (``cfg.json`` +
``sae_weights.safetensors``) plus our ``metrics.json``. The architectures:

* ``jumprelu_transcoder`` / ``jumprelu_skip_transcoder``: SAELens' own `JumpReLUTranscoder` /
  `JumpReLUSkipTranscoder`; plain ``sae_lens.JumpReLUTranscoder.load_from_disk(dir)`` loads them.
* ``topk_transcoder`` / ``topk_skip_transcoder``: SAELens 6.54 has no TopK transcoder, so
  `TopKTranscoder` here extends its `Transcoder` with SAELens' own `TopK` activation and is
  registered through SAELens' registry (`register_sae_class`); after
  ``import interp.transcoders.io`` SAELens' ``Transcoder.load_from_disk`` / ``SAE.load_from_disk``
  load them too.

``cfg.metadata`` records ``hook_name`` (the input hook, ``blocks.L.ln2.hook_normalized``),
``hook_name_out`` (``blocks.L.hook_mlp_out``), ``hook_layer`` and ``model_name``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interp.errors import InterpError

log = logging.getLogger(__name__)

CFG, WEIGHTS, METRICS = "cfg.json", "sae_weights.safetensors", "metrics.json"
TRANSCODER_ARCHS = ("transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder",
                    "topk_transcoder", "topk_skip_transcoder")


@functools.cache
def register() -> dict:
    """Register the TopK transcoder classes with SAELens (once); returns {architecture: class}."""
    from dataclasses import dataclass as dc
    from typing import Any

    import sae_lens as sl
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopK
    from sae_lens.saes.transcoder import SkipTranscoder, Transcoder, TranscoderConfig
    from sae_lens.util import filter_valid_dataclass_fields

    @dc
    class TopKTranscoderConfig(TranscoderConfig):
        k: int = 32  # active latents per token

        @classmethod
        def architecture(cls) -> str:
            return "topk_transcoder"

        @classmethod
        def from_dict(cls, config_dict: dict[str, Any]):
            res = cls(**filter_valid_dataclass_fields(config_dict, cls))
            if "metadata" in config_dict:
                res.metadata = SAEMetadata(**config_dict["metadata"])
            return res

        def to_dict(self) -> dict[str, Any]:
            return {**super().to_dict(), "k": self.k}

    @dc
    class TopKSkipTranscoderConfig(TopKTranscoderConfig):
        @classmethod
        def architecture(cls) -> str:
            return "topk_skip_transcoder"

    class TopKTranscoder(Transcoder):
        """SAELens' `Transcoder` whose activation is SAELens' `TopK` (ReLU of the k largest pre-activations)."""

        def get_activation_fn(self):
            return TopK(self.cfg.k)

        @classmethod
        def from_dict(cls, config_dict):
            return cls(TopKTranscoderConfig.from_dict(config_dict))

    class TopKSkipTranscoder(TopKTranscoder, SkipTranscoder):
        """TopK transcoder with SAELens' skip connection ``x @ W_skip.T``."""

        @classmethod
        def from_dict(cls, config_dict):
            return cls(TopKSkipTranscoderConfig.from_dict(config_dict))

    sl.register_sae_class("topk_transcoder", TopKTranscoder, TopKTranscoderConfig)
    sl.register_sae_class("topk_skip_transcoder", TopKSkipTranscoder, TopKSkipTranscoderConfig)
    return {"topk_transcoder": TopKTranscoder, "topk_skip_transcoder": TopKSkipTranscoder}


def read_cfg(path: str | Path) -> dict:
    """cfg.json of a transcoder directory; one-line `InterpError` when it is not one."""
    p = Path(path)
    f = p / CFG
    if not p.is_dir() or not f.is_file() or not (p / WEIGHTS).is_file():
        raise InterpError(f"{p} is not a transcoder directory (needs {CFG} and {WEIGHTS})")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise InterpError(f"{f} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if cfg.get("architecture") not in TRANSCODER_ARCHS:
        raise InterpError(f"{p} holds a {cfg.get('architecture')!r} SAE, not a transcoder (one of {', '.join(TRANSCODER_ARCHS)})")
    return cfg


def load_transcoder(path: str | Path, device: str | torch.device = "cpu"):
    """A SAELens transcoder (float32, eval mode) from a directory."""
    from sae_lens import SAE

    register()
    read_cfg(path)
    tc = SAE.load_from_disk(str(path), device=str(device), dtype="float32")
    for k, v in tc.state_dict().items():
        if not torch.isfinite(v).all():
            raise InterpError(f"transcoder {path} has non-finite values in {k}")
    return tc.eval()


def transcoder_layer(tc) -> int:
    """The block a transcoder replaces, from its metadata (hook_layer, else the hook name)."""
    md = tc.cfg.metadata
    if md.get("hook_layer") is not None:
        return int(md.get("hook_layer"))
    m = re.match(r"^blocks\.(\d+)\.", str(md.get("hook_name") or ""))
    if m is None:
        raise InterpError(f"transcoder has no layer in its metadata (hook_name {md.get('hook_name')!r})")
    return int(m.group(1))


@dataclass
class TranscoderSet:
    """One transcoder per MLP layer of a model, as the attribution graph needs them."""

    transcoders: dict[int, object]  # layer -> SAELens transcoder
    paths: dict[int, str]  # layer -> directory it was loaded from
    model_name: str | None  # the model the set was trained on (metadata)
    l0: dict[int, float] = field(default_factory=dict)  # layer -> mean active features per token (metrics.json), if known

    def __getitem__(self, layer: int):
        return self.transcoders[layer]

    @property
    def layers(self) -> list[int]:
        return sorted(self.transcoders)


def find_transcoder_dirs(root: str | Path) -> list[Path]:
    """Transcoder directories at `root` (itself one, or its children, sorted by name)."""
    root = Path(root)
    if not root.exists():
        raise InterpError(f"transcoder directory {root} does not exist")
    if (root / CFG).is_file():
        return [root]
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and (d / CFG).is_file() and not d.name.startswith("."))
    if not dirs:
        raise InterpError(f"{root} holds no transcoder directories (none with {CFG})")
    return dirs


def load_transcoder_set(root: str | Path, device: str | torch.device = "cpu") -> TranscoderSet:
    """Every transcoder under `root`, keyed by layer; two for one layer is an error."""
    tcs, paths, names, l0 = {}, {}, set(), {}
    for d in find_transcoder_dirs(root):
        tc = load_transcoder(d, device)
        layer = transcoder_layer(tc)
        if layer in tcs:
            raise InterpError(f"two transcoders for layer {layer} under {root}: {paths[layer]} and {d}")
        tcs[layer], paths[layer] = tc, str(d)
        names.add(tc.cfg.metadata.get("model_name"))
        try:
            l0[layer] = float(json.loads((d / METRICS).read_text())["l0"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return TranscoderSet(tcs, paths, next(iter(names)) if len(names) == 1 else None, l0)


def check_set_fits(tset: TranscoderSet, model) -> None:
    """One-line `InterpError` unless `tset` has exactly one transcoder per MLP layer of `model`,
    each reading ``blocks.L.ln2.hook_normalized`` and writing ``blocks.L.hook_mlp_out`` of that
    layer with the model's width."""
    from interp.transcoders.config import IN_HOOK, OUT_HOOK

    n, d = model.cfg.n_layers, model.cfg.d_model
    missing = [i for i in range(n) if i not in tset.transcoders]
    extra = [i for i in tset.transcoders if not 0 <= i < n]
    if extra:
        raise InterpError(f"transcoder for layer {extra[0]} ({tset.paths.get(extra[0], '')}) but the model has {n} layers")
    if missing:
        raise InterpError(f"no transcoder for layer(s) {', '.join(map(str, missing))}: an attribution graph needs one per MLP "
                          f"layer ({n}); found layers {', '.join(map(str, tset.layers)) or 'none'}")
    for layer, tc in tset.transcoders.items():
        md = tc.cfg.metadata
        want_in, want_out = IN_HOOK.format(layer=layer), OUT_HOOK.format(layer=layer)
        if md.get("hook_name") != want_in or (md.get("hook_name_out") or want_out) != want_out:
            raise InterpError(f"transcoder {tset.paths.get(layer, f'of layer {layer}')} reads {md.get('hook_name')} -> {md.get('hook_name_out')}; "
                              f"expected {want_in} -> {want_out}")
        if int(tc.cfg.d_in) != d or int(tc.cfg.d_out) != d:
            raise InterpError(f"transcoder {tset.paths.get(layer, f'of layer {layer}')} has d_in={tc.cfg.d_in}, d_out={tc.cfg.d_out} but the model's "
                              f"d_model is {d}")
    name = getattr(model.cfg, "model_name", None)
    if tset.model_name and name and tset.model_name != name:
        log.warning("these transcoders were trained on model %r, applying them to %r", tset.model_name, name)


def save_transcoder(tc, out_dir: str | Path, metrics: dict | None = None, overwrite: bool = False,
                    allow_package: bool = False) -> Path:
    """Write a SAELens transcoder + metrics.json atomically (`interp.io.atomic_dir`; an existing
    transcoder directory is replaced only with `overwrite`)."""
    from interp.io import atomic_dir, json_safe

    for k, v in tc.state_dict().items():
        if not torch.isfinite(v).all():
            raise InterpError(f"refusing to save a transcoder with non-finite values in {k} to {out_dir}")
    with atomic_dir(out_dir, overwrite=overwrite, marker=CFG, allow_package=allow_package) as tmp:
        tc.save_model(str(tmp))
        if metrics is not None:
            (tmp / METRICS).write_text(json.dumps(json_safe(metrics), indent=2))
    return Path(out_dir)
