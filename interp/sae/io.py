"""Load, save and list SAEs in SAELens' own directory format.

An SAE directory holds ``cfg.json`` + ``sae_weights.safetensors`` (exactly what
``sae_lens.SAE.load_from_disk`` reads), plus our ``metrics.json`` (SAEBench core keys) and
``training_curve.json``. The hook it reads is `sae_hook(sae)` (``metadata.hook_name`` and
``hook_head_index`` for a one-head SAE). Directories are written through `interp.io.atomic_dir`.
``sae-lens:RELEASE/SAE_ID`` loads from the SAELens registry instead of a directory.
"""

from __future__ import annotations

import difflib
import json
import logging
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


# The inference architectures SAELens 6 registers. Checked first so that listing SAEs (the dashboard's
# first page) does not import SAELens, and with it TransformerLens (~10 s of CPU); an architecture not
# in this list is looked up in SAELens' own registry, so newer SAELens versions still work.
COMMON_ARCHS = frozenset({"standard", "gated", "jumprelu", "topk", "abstopk", "transcoder", "skip_transcoder",
                          "jumprelu_transcoder", "jumprelu_skip_transcoder", "temporal", "matching_pursuit"})


def _known_archs() -> list[str]:
    import sae_lens  # noqa: F401  (registers the architectures)
    from sae_lens.registry import SAE_CLASS_REGISTRY

    return sorted(SAE_CLASS_REGISTRY)


def read_cfg(path: str | Path) -> dict:
    """cfg.json of an SAE directory, checked: required fields present, architecture known."""
    p = Path(path)
    if not p.is_dir():
        raise InterpError(f"{p} is not a directory")
    check_utf8_path(p)
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
    check_cfg_fields(cfg, f)
    if cfg["architecture"] not in COMMON_ARCHS and cfg["architecture"] not in _known_archs():
        raise InterpError(f"{f} names unknown architecture {cfg['architecture']!r}; SAELens knows {', '.join(_known_archs())}")
    return cfg


MAX_DIM = 1 << 24  # d_in / d_sae above 16.7M latents are not an SAE this package can hold in memory
CFG_DTYPES = ("float32", "float16", "bfloat16", "float64")


def _int_field(cfg: dict, key: str, f: Path, lo: int = 1, hi: int = MAX_DIM, optional: bool = False) -> None:
    v = cfg.get(key)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise InterpError(f"{f}: field {key} must be an integer, not {type(v).__name__} {str(v)[:40]!r}")
    if not lo <= v <= hi:
        raise InterpError(f"{f}: field {key} = {v} is outside [{lo}, {hi}]")


def check_cfg_fields(cfg: dict, f: Path) -> None:
    """Each field SAELens and interp read from cfg.json, checked by type and range: one line naming
    the field and the file (SAELens would fail later with a TypeError, or allocate 10^18 latents)."""
    if not isinstance(cfg.get("architecture"), str):
        raise InterpError(f"{f}: field architecture must be a string")
    _int_field(cfg, "d_in", f)
    _int_field(cfg, "d_sae", f)
    _int_field(cfg, "k", f, hi=cfg["d_sae"], optional=True)
    dt = cfg.get("dtype", "float32")
    if not isinstance(dt, str) or dt.removeprefix("torch.") not in CFG_DTYPES:
        raise InterpError(f"{f}: field dtype = {str(dt)[:40]!r} is not one of {', '.join(CFG_DTYPES)}")
    meta = cfg.get("metadata", {})
    if meta is not None and not isinstance(meta, dict):
        raise InterpError(f"{f}: field metadata must be a JSON object, not {type(meta).__name__}")
    meta = meta or {}
    for key in ("model_name", "hook_name"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise InterpError(f"{f}: field metadata.{key} must be a string, not {type(meta[key]).__name__}")
    if meta.get("hook_head_index") is not None:
        _int_field(meta, "hook_head_index", f, lo=0, hi=1 << 16)
    if meta.get("context_size") is not None:
        _int_field(meta, "context_size", f, hi=1 << 24)
    for key in ("apply_b_dec_to_input", "rescale_acts_by_decoder_norm"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise InterpError(f"{f}: field {key} must be true or false, not {str(cfg[key])[:40]!r}")


def check_utf8_path(p: Path) -> None:
    """SAELens and safetensors take paths as UTF-8 text: a name that is not (bytes kept by Python
    as surrogates) is one line here instead of "corrupt or truncated" later."""
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        raise InterpError(f"{str(p).encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')}: the path is not UTF-8 "
                          "text, which SAELens cannot open; rename the folder") from None


def _check_weights(path: Path, cfg: dict) -> None:
    f = path / WEIGHTS
    if not f.exists():
        raise InterpError(f"{path} has no {WEIGHTS}")
    try:
        with safe_open(str(f), framework="pt") as sf:
            keys = set(sf.keys())
            shapes = {k: tuple(sf.get_slice(k).get_shape()) for k in ("W_enc", "W_dec") if k in keys}
            if "W_dec" in shapes and shapes["W_dec"] != (cfg["d_sae"], cfg["d_in"]):
                raise InterpError(f"{f}: W_dec is {shapes['W_dec']} but cfg.json says d_sae={cfg['d_sae']}, d_in={cfg['d_in']}")
            want = str(cfg.get("dtype", "float32")).removeprefix("torch.")
            for k in sorted(keys):
                t = sf.get_tensor(k)
                if not t.is_floating_point():  # int8 weights read as float32 gave l0 0 and exit 0
                    raise InterpError(f"{f}: {k} is {str(t.dtype).replace('torch.', '')} but cfg.json says dtype {want}; "
                                      "SAE weights must be floating point")
                _refuse_non_finite(t, f"{f} ({k})")
    except (SafetensorError, OSError) as e:
        raise InterpError(f"{f} is corrupt or truncated: {e}") from None


def _refuse_non_finite(t: torch.Tensor, where: str) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        n = int((~torch.isfinite(t)).sum())
        raise InterpError(f"{where} holds {n} NaN/Inf value(s); this SAE is broken (retrain it)")


REGISTRY_PREFIX = "sae-lens:"


def _from_registry(ref: str, device) -> object:
    """``sae-lens:RELEASE/SAE_ID`` through SAELens' `SAE.from_pretrained` (Hugging Face hub cache;
    with HF_HUB_OFFLINE=1 only what is cached)."""
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    body = ref[len(REGISTRY_PREFIX):]
    directory = get_pretrained_saes_directory()
    # SAE ids may contain '/', releases do not: the release is the longest known prefix.
    release = next((r for r in sorted(directory, key=len, reverse=True) if body.startswith(r + "/")), None)
    if release is None:
        rel = body.split("/")[0]
        close = difflib.get_close_matches(rel, list(directory), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see SAELens' pretrained_saes.yaml"
        raise InterpError(f"unknown SAELens release {rel!r} in {ref!r} (write sae-lens:RELEASE/SAE_ID){hint}")
    sae_id = body[len(release) + 1:]
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        close = difflib.get_close_matches(sae_id, ids, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {len(ids)} ids, e.g. {', '.join(ids[:3])}"
        raise InterpError(f"SAELens release {release!r} has no SAE id {sae_id!r}{hint}")
    try:
        sae = SAE.from_pretrained(release, sae_id, device=str(device))
    except Exception as e:  # huggingface_hub raises many types for offline / missing / auth
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InterpError(f"could not load {release}/{sae_id} from the SAELens registry (offline and not in the "
                          f"Hugging Face cache?): {first}") from None
    sae = sae[0] if isinstance(sae, tuple) else sae
    for k, v in sae.state_dict().items():
        _refuse_non_finite(v, f"{ref} ({k})")
    return sae.eval()


def load_sae(path: str | Path, device: str | torch.device | None = None):
    """An SAELens `SAE` (float32, eval mode) from any SAELens-format directory or from the SAELens
    registry (``sae-lens:RELEASE/SAE_ID``), on `device` (default `resolve_device(None)`:
    $INTERP_DEVICE, else cuda, mps, cpu; pass the model's device to follow it).
    One-line `InterpError` if it is missing, broken, or holds NaN/Inf weights."""
    from sae_lens import SAE

    from interp.device import SAE_DTYPE, resolve_device

    device = resolve_device(device) if device is None or isinstance(device, str) else device
    if str(path).startswith(REGISTRY_PREFIX):
        return _from_registry(str(path), device).to(SAE_DTYPE)
    p = Path(path)
    cfg = read_cfg(p)
    _check_weights(p, cfg)
    try:
        sae = SAE.load_from_disk(str(p), device=str(device))
    except (SafetensorError, OSError, RuntimeError, KeyError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InterpError(f"could not load the SAE in {p}: {first}") from None
    sae.eval()
    return sae.to(SAE_DTYPE)


def sae_hook(sae, path: str | Path | None = None) -> str:
    """THE answer to "which hook does this SAE read": the hook spec string (NAME or NAME:HEAD)
    from its cfg metadata (``hook_name``, ``hook_head_index``). `path` only names the SAE in the error."""
    md = getattr(sae.cfg, "metadata", None)
    name = getattr(md, "hook_name", None)
    if not name:
        where = f"SAE {path}" if path is not None else "this SAE"
        raise InterpError(f"{where}: its cfg.json names no hook (metadata.hook_name), so it cannot be placed in the model")
    head = getattr(md, "hook_head_index", None)
    return name if head is None else f"{name}:{head}"


def check_sae_fits(sae, model, hook: str | None = None) -> str:
    """Check that `sae` can read `hook` (default: its own hook) on `model`; returns the hook spec.

    d_in vs the hook's width, or an unknown hook: one-line `InterpError`. A different model name
    or loading policy (``model_from_pretrained_kwargs``, as SAELens records it) than the SAE was
    trained with: one warning line."""
    from interp.hooks import hook_dim, parse_hook

    spec = parse_hook(model, hook or sae_hook(sae))
    d = hook_dim(model, spec)
    if "hook_z" in spec.name and spec.head is None and int(sae.cfg.d_in) == d * model.cfg.n_heads:
        d = int(sae.cfg.d_in)  # an all-heads hook_z SAE reads the flattened [n_heads * d_head]
    if int(sae.cfg.d_in) != d:
        raise InterpError(f"SAE d_in={sae.cfg.d_in} does not match hook {spec} of this model (width {d})")
    md = getattr(sae.cfg, "metadata", None)
    trained = getattr(md, "model_from_pretrained_kwargs", None)
    here = model_loading_info(model)
    want_name, have_name = getattr(md, "model_name", None), here.get("name")
    if want_name and have_name and want_name != have_name:
        log.warning("this SAE was trained on model %r, applying it to %r", want_name, have_name)
    elif trained:
        try:
            from interp.models import processing_mismatch
        except ImportError:
            processing_mismatch = None
        if processing_mismatch is not None:
            why = processing_mismatch(model, trained)
            if why:
                log.warning("%s", why)
        elif here.get("processing") is not None and trained != here.get("processing"):
            log.warning("this SAE was trained on %s loaded with %s, but the model here was loaded with %s",
                        want_name, trained, here.get("processing"))
    return str(spec)


def model_loading_info(model) -> dict:
    """{name, processing, dtype} of a loaded model: `interp.models.loading_info` where the models
    helper provides it, else what the model itself shows (processing unknown: None)."""
    try:
        from interp.models import loading_info
    except ImportError:
        loading_info = None
    if loading_info is not None:
        return dict(loading_info(model))
    cfg = getattr(model, "cfg", None)
    p = next(model.parameters(), None) if hasattr(model, "parameters") else None
    return {"name": getattr(cfg, "model_name", None), "processing": None,
            "dtype": str(p.dtype).replace("torch.", "") if p is not None else None}


def save_sae(sae, out_dir: str | Path, metrics: dict | None = None, curve: list | None = None, extra: dict | None = None,
             overwrite: bool = True) -> Path:
    """Write an inference SAE (SAELens format) + metrics.json + training_curve.json, atomically
    (`interp.io.atomic_dir`: built beside, renamed into place; an existing directory is replaced
    only if it is an SAE directory and `overwrite`).

    A SAELens *training* SAE is converted with its own `save_inference_model` (so BatchTopK
    becomes JumpReLU, as SAELens does)."""
    from sae_lens import TrainingSAE

    from interp.io import atomic_dir

    for k, v in sae.state_dict().items():
        _refuse_non_finite(v, f"the SAE to be saved to {out_dir} ({k})")
    with atomic_dir(out_dir, overwrite=overwrite, marker=CFG) as tmp:
        if isinstance(sae, TrainingSAE):
            sae.save_inference_model(str(tmp))
        else:
            sae.save_model(str(tmp))
        if metrics is not None:
            from interp.io import json_safe

            (tmp / METRICS).write_text(json.dumps(json_safe({**metrics, **(extra or {})}), indent=2))  # NaN -> null
        if curve is not None:
            (tmp / CURVE).write_text(json.dumps(curve))
    return Path(out_dir)


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
        if (d.name.endswith((".tmp", ".old", ".partial")) or d.name.startswith(".")
                or any(p.name.endswith(".partial") or p.name.startswith(".") for p in d.relative_to(root).parents if p.name)):
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
