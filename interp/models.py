"""The only module that knows how a model is loaded.

`load_model(name)` returns a hookable TransformerLens `HookedTransformer` for

* ``"embedded"`` (the default): the small GPT-2-style model shipped inside this package
  (``interp/embedded/``), loaded from safetensors with no network;
* a local directory: either one written by `save_model` (``config.json`` + ``model.safetensors``
  + ``tokenizer/``) or a Hugging Face checkpoint (``config.json`` with ``model_type``), converted
  by TransformerLens;
* a TransformerLens official name (``gpt2``, ``pythia-70m``, ...), loaded through the hub cache.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.errors import InterpError

log = logging.getLogger(__name__)

EMBEDDED_DIR = Path(__file__).parent / "embedded"
DEFAULT_MODEL = "embedded"


class ModelLoadError(InterpError):
    """A model could not be loaded; the message is one line meant for the user."""


def _quiet_tl() -> None:
    # HookedTransformer warns on every construction that it is deprecated in favour of
    # TransformerBridge; the warning is noise for users of this workbench.
    import warnings

    warnings.filterwarnings("ignore", message=".*HookedTransformer.*deprecated.*")
    warnings.filterwarnings("ignore", message=".*TransformerBridge.*")
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)


def _config_fields(cfg: HookedTransformerConfig) -> dict:
    keep = (
        "n_layers", "d_model", "n_ctx", "d_head", "n_heads", "d_mlp", "d_vocab", "act_fn",
        "normalization_type", "positional_embedding_type", "attn_only", "seed", "model_name",
        "default_prepend_bos", "tokenizer_prepends_bos",
    )
    d = asdict(cfg) if hasattr(cfg, "__dataclass_fields__") else cfg.to_dict()
    return {k: d[k] for k in keep if k in d}


def save_model(model: HookedTransformer, out_dir: str | Path) -> Path:
    """Write `model` as config.json + model.safetensors + tokenizer/ (atomically: temp dir, rename)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(_config_fields(model.cfg), indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    _replace_dir(tmp, out)
    return out


def _replace_dir(tmp: Path, out: Path) -> None:
    import shutil

    old = out.with_name(out.name + ".old")
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old)


def build_from_config(cfg_dict: dict, tokenizer=None, device: str = "cpu") -> HookedTransformer:
    """A randomly initialised HookedTransformer from a plain config dict."""
    _quiet_tl()
    cfg = HookedTransformerConfig(**cfg_dict, device=device)
    return HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")


def _load_saved(path: Path, device: str) -> HookedTransformer:
    from transformers import AutoTokenizer

    cfg_dict = json.loads((path / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(path / "tokenizer")) if (path / "tokenizer").exists() else None
    model = build_from_config(cfg_dict, tokenizer=tok, device=device)
    model.load_state_dict(load_file(str(path / "model.safetensors"), device=device), strict=False)
    model.eval()
    return model


def _load_hf_dir(path: Path, device: str) -> HookedTransformer:
    """A Hugging Face checkpoint directory, converted by TransformerLens with no network.

    TransformerLens' `from_pretrained` resolves names against its official list first, so for a
    local directory we call its two loading steps (config conversion, weight conversion) directly."""
    from transformer_lens import loading_from_pretrained as loading
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_tl()
    try:
        cfg = loading.get_pretrained_model_config(str(path), fold_ln=False, device=device)
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        state = loading.get_pretrained_state_dict(str(path), cfg, hf_model)
    except (OSError, ValueError, KeyError, AttributeError, NotImplementedError) as e:
        raise ModelLoadError(f"could not load the Hugging Face checkpoint in {path}: {str(e).splitlines()[0][:200]}") from None
    tok = None
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError):
        log.warning("no tokenizer in %s; token-level helpers will be unavailable", path)
    model = HookedTransformer(cfg, tokenizer=tok)
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                      fold_value_biases=False)
    return model.eval()


def load_model(name: str = DEFAULT_MODEL, device: str = "cpu") -> HookedTransformer:
    """Load a model by name (see module docstring). Raises `ModelLoadError` with a one-line message."""
    if name in ("", DEFAULT_MODEL):
        if not (EMBEDDED_DIR / "model.safetensors").exists():
            raise ModelLoadError("the embedded model is missing; build it with `interp build-default`")
        return _load_saved(EMBEDDED_DIR, device)
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "model.safetensors").exists() and (path / "tokenizer").exists():
            return _load_saved(path, device)
        if (path / "config.json").exists():
            return _load_hf_dir(path, device)
        raise ModelLoadError(f"{path} holds no model (no config.json)")
    if path.suffix or os.sep in name:
        raise ModelLoadError(f"model path {name!r} does not exist")
    from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES, get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        import difflib

        close = difflib.get_close_matches(name, ["embedded", *OFFICIAL_MODEL_NAMES], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"unknown model {name!r}: not 'embedded', a local directory, or a TransformerLens model name{hint}") from None
    _quiet_tl()
    try:
        return HookedTransformer.from_pretrained(official, device=device).eval()
    except Exception as e:  # network / cache failures come in many exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"could not load {official!r} from the Hugging Face hub cache (offline and not cached?): {first[:200]}"
        ) from None


def model_id(name: str) -> str:
    """The directory name used under saes/ for a model name."""
    return Path(name).name if Path(name).is_dir() else name.replace("/", "__")
