"""Load, save and list SAEs in SAELens' own directory format.

An SAE directory holds ``cfg.json`` + ``sae_weights.safetensors`` (exactly what
``sae_lens.SAE.load_from_disk`` reads), plus our ``metrics.json`` (SAEBench core keys) and
``training_curve.json``. The hook it reads is ``sae.cfg.metadata.hook_name`` (and
``hook_head_index`` for a one-head SAE). Directories are written to a temp path and renamed.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from interp.errors import InterpError

log = logging.getLogger(__name__)

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
METRICS = "metrics.json"
CURVE = "training_curve.json"
REQUIRED_CFG = ("architecture", "d_in", "d_sae")


def _known_archs() -> list[str]:
    import sae_lens  # noqa: F401  (registers the architectures)
    from sae_lens.registry import SAE_CLASS_REGISTRY

    return sorted(SAE_CLASS_REGISTRY)


def read_cfg(path: str | Path) -> dict:
    """cfg.json of an SAE directory, checked: required fields present, architecture known."""
    p = Path(path)
    if not p.is_dir():
        raise InterpError(f"{p} is not a directory")
    f = p / CFG
    if not f.exists():
        raise InterpError(f"{p} is not an SAE directory (no {CFG})")
    try:
        cfg = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"{f} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise InterpError(f"{f} does not hold a JSON object")
    missing = [k for k in REQUIRED_CFG if k not in cfg]
    if missing:
        raise InterpError(f"{f} is missing field(s): {', '.join(missing)}")
    if cfg["architecture"] not in _known_archs():
        raise InterpError(f"{f} names unknown architecture {cfg['architecture']!r}; SAELens knows {', '.join(_known_archs())}")
    return cfg


def _check_weights(path: Path, cfg: dict) -> None:
    f = path / WEIGHTS
    if not f.exists():
        raise InterpError(f"{path} has no {WEIGHTS}")
    try:
        with safe_open(str(f), framework="pt") as sf:
            keys = set(sf.keys())
            shapes = {k: tuple(sf.get_slice(k).get_shape()) for k in ("W_enc", "W_dec") if k in keys}
    except (SafetensorError, OSError) as e:
        raise InterpError(f"{f} is corrupt or truncated: {e}") from None
    if "W_dec" in shapes and shapes["W_dec"] != (cfg["d_sae"], cfg["d_in"]):
        raise InterpError(f"{f}: W_dec is {shapes['W_dec']} but cfg.json says d_sae={cfg['d_sae']}, d_in={cfg['d_in']}")


def load_sae(path: str | Path, device: str = "cpu"):
    """An SAELens `SAE` from any SAELens-format directory; one-line `InterpError` if it is broken."""
    from sae_lens import SAE

    p = Path(path)
    cfg = read_cfg(p)
    _check_weights(p, cfg)
    try:
        sae = SAE.load_from_disk(str(p), device=device)
    except (SafetensorError, OSError, RuntimeError, KeyError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InterpError(f"could not load the SAE in {p}: {first}") from None
    sae.eval()
    return sae


def hook_spec_of(sae) -> str:
    """The hook spec string (NAME or NAME:HEAD) an SAE reads."""
    name = sae.cfg.metadata.hook_name
    if name is None:
        raise InterpError("this SAE's cfg.json names no hook (metadata.hook_name)")
    head = sae.cfg.metadata.hook_head_index
    return name if head is None else f"{name}:{head}"


def replace_dir(tmp: Path, out: Path) -> None:
    """Move a finished temp directory to `out`, replacing any old one (never half-written)."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old)


def save_sae(sae, out_dir: str | Path, metrics: dict | None = None, curve: list | None = None, extra: dict | None = None) -> Path:
    """Write an inference SAE (SAELens format) + metrics.json + training_curve.json, atomically.

    A SAELens *training* SAE is converted with its own `save_inference_model` (so BatchTopK
    becomes JumpReLU, as SAELens does)."""
    from sae_lens import TrainingSAE

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if isinstance(sae, TrainingSAE):
        sae.save_inference_model(str(tmp))
    else:
        sae.save_model(str(tmp))
    if metrics is not None:
        (tmp / METRICS).write_text(json.dumps({**metrics, **(extra or {})}, indent=2))
    if curve is not None:
        (tmp / CURVE).write_text(json.dumps(curve))
    replace_dir(tmp, out)
    return out


@dataclass
class SaeInfo:
    """One SAE directory found on disk."""

    path: str
    model: str | None
    hook_name: str | None
    hook_head_index: int | None
    arch: str
    d_in: int
    d_sae: int
    metrics: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def hook(self) -> str:
        return str(self.hook_name) if self.hook_head_index is None else f"{self.hook_name}:{self.hook_head_index}"


def list_saes(root: str | Path = "saes") -> list[SaeInfo]:
    """Every SAE directory under `root` (recursively), with its metrics; broken ones are skipped
    with a warning."""
    root = Path(root)
    if not root.exists():
        return []
    out = []
    for cfg_file in sorted(root.rglob(CFG)):
        d = cfg_file.parent
        if d.name.endswith((".tmp", ".old", ".partial")) or any(p.name.endswith(".partial") for p in d.parents):
            continue
        if not (d / WEIGHTS).exists():
            continue
        try:
            cfg = read_cfg(d)
        except InterpError as e:
            log.warning("skipping %s: %s", d, e)
            continue
        meta = cfg.get("metadata") or {}
        metrics = {}
        if (d / METRICS).exists():
            try:
                metrics = json.loads((d / METRICS).read_text())
            except json.JSONDecodeError:
                log.warning("%s/%s is not valid JSON", d, METRICS)
        out.append(SaeInfo(path=str(d), model=meta.get("model_name"), hook_name=meta.get("hook_name"),
                           hook_head_index=meta.get("hook_head_index"), arch=cfg["architecture"],
                           d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]), metrics=metrics))
    return out


def to_inference(training_sae):
    """The inference `SAE` of a SAELens training SAE, in memory (what `save_inference_model`
    would write, without the disk round trip)."""
    from sae_lens import SAE

    state = {k: v.detach().clone() for k, v in training_sae.state_dict().items()}
    training_sae.process_state_dict_for_saving_inference(state)
    sae = SAE.from_dict(training_sae.cfg.get_inference_sae_cfg_dict())
    sae.process_state_dict_for_loading(state)
    sae.load_state_dict(state)
    return sae.to(torch.float32).eval()
