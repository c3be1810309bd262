"""The only module that knows how a model is loaded.

`load_model(name, device=None, dtype=None, processing=None)` returns a TransformerLens
`HookedTransformer` (the interface every other module uses: hook names such as
``blocks.L.attn.hook_z`` / ``hook_result`` / ``hook_resid_post``, ``run_with_cache``,
``run_with_hooks``, ``stop_at_layer``) for

* a shipped name (`SHIPPED`): ``"embedded"`` (the default, ``interp/embedded/``) and
  ``"embedded-attn"`` (the attention-only model, ``interp/embedded_attn/``), loaded from
  safetensors with no network;
* a local directory: one written by `save_model` (``config.json`` + ``model.safetensors`` +
  ``tokenizer/``) or a Hugging Face checkpoint (``config.json`` with ``architectures``). The
  families GPT-2, GPT-NeoX (Pythia), Llama, Gemma-2 and Qwen2 are converted here from the
  checkpoint's own config (TransformerLens' `convert_hf_model_config` picks Llama and Gemma-2
  settings by *model name*, which fails on a local path); other architectures go through
  TransformerLens' converter, and one it cannot run gives one line saying so;
* a TransformerLens official name (``gpt2``, ``pythia-70m``, ...), through the hub cache.

Why HookedTransformer and not TransformerBridge: TransformerBridge (TransformerLens 3) boots any
Hugging Face model and is about as fast as Hugging Face, but its hook points, `stop_at_layer`,
per-head `hook_result` and weight attributes (`W_O`, `W_U`, `ln_final`) are not the ones the
SAE, circuits, features and unlearning code read. One interface everywhere beats a faster one
in half the modules; the family tests check logits against Hugging Face's.

Loading policy (`processing`): the same named model gives the same weights whichever way it is
named, because every path loads the raw checkpoint and then applies one explicit processing
choice. ``"none"`` (the default) keeps the checkpoint's own weights: activations equal Hugging
Face's hidden states, and the embedded model's shipped SAEs were trained on them.
``"tl-default"`` is what `HookedTransformer.from_pretrained` does by default (fold_ln,
center_writing_weights, center_unembed, fold_value_biases); SAELens registry SAEs such as
gpt2-small-res-jb were trained on it. A comma list picks flags one by one. `loading_info(model)`
returns what was applied, in the shape of SAELens' ``model_from_pretrained_kwargs``.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp import io
from interp.device import dtype_of, resolve_device, resolve_dtype
from interp.errors import InterpError
from interp.shipped import SHIPPED, ShippedModel  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
DEFAULT_MODEL = "embedded"
# SHIPPED / ShippedModel live in interp.shipped (plain data: a model picker lists them without importing TransformerLens)
EMBEDDED_DIR = SHIPPED["embedded"].path

PROCESSING_FLAGS = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases")
PROCESSING_PRESETS = {
    "none": {},
    "tl-default": {f: True for f in PROCESSING_FLAGS},
}
DEFAULT_PROCESSING = "none"
# Architectures whose blocks normalise a sublayer's *output*: folding that norm into the next
# linear layer is not valid (TransformerLens' POST_NORM_ARCHITECTURES says the same).
_POST_NORM = ("Gemma2ForCausalLM", "Gemma3ForCausalLM")


class ModelLoadError(InterpError):
    """A model could not be loaded; the message is one line meant for the user."""


def parse_processing(spec: str | dict | None) -> dict[str, bool]:
    """``none`` | ``tl-default`` | a comma list of flags (``fold_ln,center_writing_weights``) | a
    dict -> all four flags as booleans (`$INTERP_PROCESSING` when `spec` is None)."""
    if isinstance(spec, dict):
        bad = set(spec) - set(PROCESSING_FLAGS)
        if bad:
            raise InterpError(f"unknown processing flag(s) {', '.join(sorted(bad))}; expected {', '.join(PROCESSING_FLAGS)}")
        return {f: bool(spec.get(f, False)) for f in PROCESSING_FLAGS}
    spec = (spec or os.environ.get("INTERP_PROCESSING") or DEFAULT_PROCESSING).strip()
    if spec in PROCESSING_PRESETS:
        chosen = PROCESSING_PRESETS[spec]
    else:
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        bad = [p for p in parts if p not in PROCESSING_FLAGS]
        if bad or not parts:
            raise InterpError(f"--processing {spec!r}: expected none, tl-default, or a comma list of {', '.join(PROCESSING_FLAGS)}")
        chosen = {p: True for p in parts}
    return {f: bool(chosen.get(f, False)) for f in PROCESSING_FLAGS}


def _quiet_tl() -> None:
    # HookedTransformer warns on every construction that it is deprecated in favour of
    # TransformerBridge; the warning is noise for users of this workbench (see module docstring).
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


def save_model(model: HookedTransformer, out_dir: str | Path, overwrite: bool = True) -> Path:
    """Write `model` as config.json + model.safetensors + tokenizer/, atomically (`io.atomic_dir`).

    Only a directory that already holds a saved model (``model.safetensors``) is replaced."""
    out = Path(out_dir)
    with io.atomic_dir(out, overwrite=overwrite, marker="model.safetensors", allow_package=True) as tmp:
        io.atomic_write_json(tmp / "config.json", _config_fields(model.cfg))
        io.atomic_save_safetensors(dict(model.state_dict()), tmp / "model.safetensors")
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    return out


def build_from_config(cfg_dict: dict, tokenizer=None, device: str | torch.device = "cpu") -> HookedTransformer:
    """A randomly initialised HookedTransformer from a plain config dict."""
    _quiet_tl()
    cfg = HookedTransformerConfig(**cfg_dict, device=str(device))
    return HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")


def _load_saved(path: Path, device: torch.device) -> HookedTransformer:
    from transformers import AutoTokenizer

    try:
        cfg_dict = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path / 'config.json'} is unreadable: {str(e).splitlines()[0][:160]}") from None
    tok = AutoTokenizer.from_pretrained(str(path / "tokenizer")) if (path / "tokenizer").exists() else None
    model = build_from_config(cfg_dict, tokenizer=tok, device=device)
    try:
        state = load_file(str(path / "model.safetensors"), device=str(device))
    except Exception as e:  # safetensors raises its own error type for truncated files
        raise ModelLoadError(f"{path / 'model.safetensors'} is corrupt or truncated: {str(e).splitlines()[0][:160]}") from None
    model.load_state_dict(state, strict=False)
    return model.eval()


# --- Hugging Face checkpoints -------------------------------------------------------------------

def _hf_cfg_dict(hf) -> dict | None:
    """HookedTransformerConfig fields for a Hugging Face config of a family converted here, else None.

    The field mapping follows TransformerLens' `convert_hf_model_config` branch for each
    architecture, reading every size from the checkpoint's config instead of from a model name."""
    arch = (hf.architectures or [""])[0]
    g = lambda k, d=None: getattr(hf, k, d)  # noqa: E731
    if arch == "GPT2LMHeadModel":
        d = dict(d_model=hf.n_embd, d_head=hf.n_embd // hf.n_head, n_heads=hf.n_head,
                 d_mlp=g("n_inner") or 4 * hf.n_embd, n_layers=hf.n_layer, n_ctx=g("n_ctx") or hf.n_positions,
                 eps=hf.layer_norm_epsilon, d_vocab=hf.vocab_size, act_fn=hf.activation_function,
                 use_attn_scale=g("scale_attn_weights", True), normalization_type="LN",
                 use_local_attn=False, scale_attn_by_inverse_layer_idx=g("scale_attn_by_inverse_layer_idx", False))
    elif arch == "GPTNeoXForCausalLM":
        d_head = hf.hidden_size // hf.num_attention_heads
        pct = g("rotary_pct") or (g("rope_parameters") or {}).get("partial_rotary_factor", 1.0)
        d = dict(d_model=hf.hidden_size, d_head=d_head, n_heads=hf.num_attention_heads, d_mlp=hf.intermediate_size,
                 n_layers=hf.num_hidden_layers, n_ctx=hf.max_position_embeddings, eps=hf.layer_norm_eps,
                 d_vocab=hf.vocab_size, act_fn=hf.hidden_act, use_attn_scale=True, use_local_attn=False,
                 positional_embedding_type="rotary", rotary_adjacent_pairs=False,
                 rotary_dim=round(pct * d_head), rotary_base=_rope_theta(hf),
                 parallel_attn_mlp=g("use_parallel_residual", True), normalization_type="LN")
    elif arch in ("LlamaForCausalLM", "Qwen2ForCausalLM"):
        d_head = g("head_dim") or hf.hidden_size // hf.num_attention_heads
        kv = hf.num_key_value_heads
        d = dict(d_model=hf.hidden_size, d_head=d_head, n_heads=hf.num_attention_heads, d_mlp=hf.intermediate_size,
                 n_layers=hf.num_hidden_layers, n_ctx=hf.max_position_embeddings, eps=hf.rms_norm_eps,
                 d_vocab=hf.vocab_size, act_fn=hf.hidden_act,
                 n_key_value_heads=kv if kv != hf.num_attention_heads else None,
                 normalization_type="RMS", positional_embedding_type="rotary", rotary_adjacent_pairs=False,
                 rotary_dim=d_head, rotary_base=_rope_theta(hf), final_rms=True, gated_mlp=True)
        if arch == "Qwen2ForCausalLM":
            d["n_key_value_heads"] = kv
            d["rotary_base"] = int(d["rotary_base"])
    elif arch == "Gemma2ForCausalLM":
        layer_types = g("layer_types") or ["sliding_attention" if i % 2 == 0 else "full_attention"
                                           for i in range(hf.num_hidden_layers)]
        d = dict(d_model=hf.hidden_size, d_head=hf.head_dim, n_heads=hf.num_attention_heads, d_mlp=hf.intermediate_size,
                 n_layers=hf.num_hidden_layers, n_ctx=hf.max_position_embeddings, eps=hf.rms_norm_eps,
                 d_vocab=hf.vocab_size, act_fn=g("hidden_activation") or "gelu_pytorch_tanh",
                 initializer_range=hf.initializer_range, normalization_type="RMS", rotary_base=_rope_theta(hf),
                 positional_embedding_type="rotary", use_attn_scale=True,
                 attn_scale=math.sqrt(g("query_pre_attn_scalar") or hf.head_dim),
                 n_key_value_heads=hf.num_key_value_heads, window_size=hf.sliding_window, use_local_attn=True,
                 attn_types=["local" if t == "sliding_attention" else "global" for t in layer_types],
                 attn_scores_soft_cap=g("attn_logit_softcapping") or -1.0,
                 output_logits_soft_cap=g("final_logit_softcapping") or -1.0,
                 gated_mlp=True, final_rms=True, use_normalization_before_and_after=True)
    else:
        return None
    d["original_architecture"] = arch
    return d


def _rope_theta(hf) -> float:
    theta = getattr(hf, "rope_theta", None)
    if theta is None:
        theta = (getattr(hf, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    return theta


_CONVERTERS = {
    "GPT2LMHeadModel": "convert_gpt2_weights",
    "GPTNeoXForCausalLM": "convert_neox_weights",
    "LlamaForCausalLM": "convert_llama_weights",
    "Qwen2ForCausalLM": "convert_qwen2_weights",
    "Gemma2ForCausalLM": "convert_gemma_weights",
}
FAMILIES = {"GPT2LMHeadModel": "gpt2", "GPTNeoXForCausalLM": "gpt_neox", "LlamaForCausalLM": "llama",
            "Gemma2ForCausalLM": "gemma2", "Qwen2ForCausalLM": "qwen2"}


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines()[0] if s else type(e).__name__)[:200]


def _load_hf_dir(path: Path, device: torch.device, processing: dict) -> HookedTransformer:
    """A Hugging Face checkpoint directory, converted to a HookedTransformer with no network."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    import transformer_lens.pretrained.weight_conversions as W

    _quiet_tl()
    try:
        hf_cfg = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{path / 'config.json'} is not a Hugging Face config: {_first_line(e)}") from None
    arch = (getattr(hf_cfg, "architectures", None) or ["?"])[0]
    cfg_dict = _hf_cfg_dict(hf_cfg)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelLoadError(f"could not load the Hugging Face checkpoint in {path}: {_first_line(e)}") from None
    if cfg_dict is not None:
        cfg_dict.update(device=str(device), tokenizer_prepends_bos=None, default_prepend_bos=True)
        cfg = HookedTransformerConfig(**cfg_dict)
        state = getattr(W, _CONVERTERS[arch])(hf_model, cfg)
    else:  # another architecture: TransformerLens' own converter, if it knows it
        from transformer_lens import loading_from_pretrained as loading

        try:
            cfg = loading.get_pretrained_model_config(str(path), fold_ln=False, device=str(device))
            state = loading.get_pretrained_state_dict(str(path), cfg, hf_model)
        except Exception as e:  # TransformerLens raises many types for architectures it lacks
            raise ModelLoadError(
                f"TransformerLens cannot run {arch} from a local directory ({_first_line(e)}); "
                f"families converted here: {', '.join(FAMILIES.values())}") from None
    del hf_model
    tok = None
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError):
        log.warning("no tokenizer in %s; token-level helpers will be unavailable", path)
    model = HookedTransformer(cfg, tokenizer=tok, default_padding_side="right")
    model.load_and_process_state_dict(state, fold_ln=processing["fold_ln"],
                                      center_writing_weights=processing["center_writing_weights"],
                                      center_unembed=processing["center_unembed"],
                                      fold_value_biases=processing["fold_value_biases"],
                                      refactor_factored_attn_matrices=False)
    return model.eval()


def _load_tl_name(name: str, device: torch.device, processing: dict) -> HookedTransformer:
    from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES, get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        close = difflib.get_close_matches(name, [*SHIPPED, *OFFICIAL_MODEL_NAMES], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(
            f"unknown model {name!r}: not {', '.join(repr(s) for s in SHIPPED)}, a local directory, "
            f"or a TransformerLens model name{hint}") from None
    _quiet_tl()
    try:
        return HookedTransformer.from_pretrained(official, device=str(device), refactor_factored_attn_matrices=False,
                                                 **processing).eval()
    except Exception as e:  # network / cache failures come in many exception types
        raise ModelLoadError(
            f"could not load {official!r} from the Hugging Face hub cache (offline and not cached?): {_first_line(e)}"
        ) from None


def _apply_processing(model: HookedTransformer, processing: dict) -> None:
    if any(processing.values()):
        model.load_and_process_state_dict(dict(model.state_dict()), refactor_factored_attn_matrices=False, **processing)


def load_model(name: str = DEFAULT_MODEL, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
               processing: str | dict | None = None) -> HookedTransformer:
    """Load a model by name (see module docstring) on `device` (`resolve_device`: None -> $INTERP_DEVICE
    or auto) in `dtype` (float32 default; weights are converted in float32 first, then cast), with
    `processing` (`parse_processing`). Raises `ModelLoadError` with a one-line message."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    proc = parse_processing(processing)
    name = name or DEFAULT_MODEL
    if name in SHIPPED:
        shipped = SHIPPED[name]
        if not (shipped.path / "model.safetensors").exists():
            raise ModelLoadError(f"the shipped model {name!r} is missing; build it with `{shipped.build}`")
        model, family = _load_saved(shipped.path, dev), "interp"
        _apply_processing(model, proc)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            if (path / "model.safetensors").exists() and (path / "tokenizer").exists():
                model, family = _load_saved(path, dev), "interp"
                _apply_processing(model, proc)
            elif (path / "config.json").exists():
                model = _load_hf_dir(path, dev, proc)
                family = FAMILIES.get(model.cfg.original_architecture or "", model.cfg.original_architecture)
            else:
                raise ModelLoadError(f"{path} holds no model (no config.json)")
        elif path.exists():
            raise ModelLoadError(f"model path {name!r} is a file; give a model directory or name")
        elif name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise ModelLoadError(f"model path {name!r} does not exist")
        else:
            model = _load_tl_name(name, dev, proc)
            family = FAMILIES.get(model.cfg.original_architecture or "", model.cfg.original_architecture)
    if proc["fold_ln"] and model.cfg.original_architecture in _POST_NORM:
        log.warning("fold_ln is not valid for %s's post-norm blocks; TransformerLens skipped it", model.cfg.original_architecture)
        proc = {**proc, "fold_ln": False}
    if dt != torch.float32:
        model = model.to(dt, print_details=False)
    model.interp_loading = {"name": name, "family": family, "processing": proc, "dtype": str(dt).removeprefix("torch."),
                            "device": str(dev)}
    return model


def loading_info(model: HookedTransformer) -> dict:
    """How `model` was loaded: ``{"name", "family", "processing": {flag: bool}, "dtype", "device"}``.

    ``processing`` has the shape of SAELens' ``model_from_pretrained_kwargs`` (record it in an
    SAE's cfg; compare it with `processing_mismatch`). A model not made by `load_model` reports
    its config name, no processing, and its current dtype/device."""
    info = getattr(model, "interp_loading", None)
    if info is not None:
        return {**info, "dtype": str(dtype_of(model)).removeprefix("torch."), "device": str(model.cfg.device)}
    return {"name": model.cfg.model_name, "family": model.cfg.original_architecture or "interp",
            "processing": {f: False for f in PROCESSING_FLAGS}, "dtype": str(dtype_of(model)).removeprefix("torch."),
            "device": str(model.cfg.device)}


def processing_mismatch(model: HookedTransformer, recorded: dict | None) -> str | None:
    """One line describing how `recorded` (an SAE's ``model_from_pretrained_kwargs``) differs from the
    processing `model` was loaded with, or None when they agree. Flags absent from `recorded` take
    HookedTransformer.from_pretrained's default (True), as SAELens does when it loads the model."""
    if recorded is None:
        return None
    have = loading_info(model)["processing"]
    want = {f: bool(recorded.get(f, True)) for f in PROCESSING_FLAGS}
    diff = [f"{f}={want[f]} (model has {have[f]})" for f in PROCESSING_FLAGS if want[f] != have[f]]
    if not diff:
        return None
    return "SAE expects " + ", ".join(diff) + "; load the model with --processing " + (
        "tl-default" if all(want.values()) else ",".join(f for f in PROCESSING_FLAGS if want[f]) or "none")


