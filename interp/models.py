"""The only module that knows how a model is loaded.

`load_model(name, device=None, dtype=None, processing=None, trust_remote_code=None)` returns a
TransformerLens `TransformerBridge` (TransformerLens 3's model class, the one TransformerLens 4
keeps) for

* a shipped name (`SHIPPED`), loaded from safetensors with no network: ``"embedded"`` (the default,
  ``interp/embedded/``) and ``"embedded-attn"`` (``interp/embedded_attn/``), both Hugging Face GPT-2
  checkpoints booted with `TransformerBridge.boot_transformers` (converted once by
  ``benchmarks/convert_shipped.py``). The attention-only one is not TransformerLens' native model
  (`boot_native`, which has ``attn_only``): the native attention exposes no per-head result and no
  split q/k/v inputs, which the circuit methods need, and GPT-2's does; its MLP slot is inert
  (`build_from_config`);
* a local directory: a Hugging Face checkpoint (``config.json`` with ``architectures``) of any
  architecture the bridge has an adapter for (Llama, Qwen2/3, Gemma-2/3, Mistral, Phi-3, OLMo-2,
  GPT-NeoX, Mixtral, ...), or a directory written by `save_model`;
* a Hugging Face repository id or a TransformerLens alias (``gpt2``), from the local hub cache
  only (no download).

The tokenizer comes from the directory itself or its ``tokenizer/`` subdirectory.

Loading policy (`processing`): every path loads the raw checkpoint, then applies one explicit
processing choice. ``"none"`` (the default) keeps the checkpoint's own weights: activations equal
Hugging Face's hidden states, and the embedded model's shipped SAEs were trained on them.
``"tl-default"`` is what TransformerLens' compatibility mode does by default
(`TransformerBridge.enable_compatibility_mode`: fold_ln, center_writing_weights, center_unembed,
fold_value_biases), the processing TransformerLens' legacy model class applied and SAELens registry SAEs such as
gpt2-small-res-jb were trained on. A comma list picks flags one by one. `loading_info(model)`
returns what was applied, in the shape of SAELens' ``model_from_pretrained_kwargs``.

One deviation from a plain Hugging Face GPT-2: the embedded models were trained with an
unembedding bias ``b_U``, which `GPT2LMHeadModel` has no parameter for. The checkpoint stores it
as ``lm_head.bias``; TransformerLens' `UnembeddingBridge` gives every bias-less unembedding a zero
bias, and `load_model` copies the stored one into it.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformer_lens.model_bridge import TransformerBridge

from interp import io
from interp.device import dtype_of, resolve_device, resolve_dtype
from interp.errors import InterpError
from interp.shipped import SHIPPED, ShippedModel  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
DEFAULT_MODEL = "embedded"
# SHIPPED / ShippedModel live in interp.shipped (plain data: a model picker lists them without importing TransformerLens)
NATIVE = "TransformerLensNative"  # the bridge's name for its own (non-Hugging-Face) architecture
EMBEDDED_DIR = SHIPPED["embedded"].path

PROCESSING_FLAGS = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases")
PROCESSING_PRESETS = {
    "none": {},
    "tl-default": {f: True for f in PROCESSING_FLAGS},
}
DEFAULT_PROCESSING = "none"
# Architectures whose blocks normalise a sublayer's *output*: folding that norm into the next
# linear layer is not valid (TransformerLens' POST_NORM_ARCHITECTURES says the same).
_POST_NORM = ("Gemma2ForCausalLM", "Gemma3ForCausalLM", "Olmo2ForCausalLM")
# Short family names for the architectures the family tests run (others report the architecture).
FAMILIES = {"GPT2LMHeadModel": "gpt2", "GPTNeoXForCausalLM": "gpt_neox", "LlamaForCausalLM": "llama",
            "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3", "Qwen2ForCausalLM": "qwen2",
            "Qwen3ForCausalLM": "qwen3", "MistralForCausalLM": "mistral", "Phi3ForCausalLM": "phi3",
            "Olmo2ForCausalLM": "olmo2", "MixtralForCausalLM": "mixtral", "Qwen3MoeForCausalLM": "qwen3_moe",
            NATIVE: "interp"}


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


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines()[0] if s else type(e).__name__)[:200]


@contextlib.contextmanager
def _quiet_transformers():
    """Hugging Face's loader logs (not warns) about the embedded checkpoint's extra ``lm_head.bias``
    and prints progress bars; scoped to one load, restored after (no process-wide filter)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# --- architecture of a bridge -------------------------------------------------------------------

def architecture(model) -> str:
    """The architecture a bridge runs (``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``TransformerLensNative``)."""
    return getattr(model.cfg, "architecture", None) or type(getattr(model, "original_model", model)).__name__


def family(model) -> str:
    """``interp`` for the workbench's own models (shipped, built by `build_from_config`, or saved by
    `save_model`), else the short family name (`FAMILIES`) of the architecture, else the architecture."""
    if getattr(model, "interp_own", False):
        return "interp"
    arch = architecture(model)
    return FAMILIES.get(arch, arch)


def n_params(model: TransformerBridge) -> int:
    """Number of weights, each counted once: the entries of the bridge's TransformerLens-format
    ``state_dict()`` (its ``parameters()`` lists GPT-2's q/k/v views beside the fused c_attn), without
    the inert MLP of an attention-only model (`build_from_config`)."""
    skip = (".mlp.", ".ln2.") if getattr(model.cfg, "attn_only", False) else ()
    return sum(v.numel() for k, v in model.state_dict().items() if not (skip and any(s in k for s in skip)))


def swap_mlp(model: TransformerBridge, layer: int, module: torch.nn.Module) -> None:
    """Put `module` in place of block `layer`'s MLP, in the wrapped model's own block (so its forward
    runs it) and in the bridge's block (so ``blocks.L.mlp`` is it), then rescan the hook points:
    `module`'s own HookPoints appear as ``blocks.L.mlp.<name>``; ``blocks.L.mlp.hook_in/hook_out``
    (and the block's ``hook_mlp_out``) fire on its input and output.

    The bridge has no public call for replacing a component; this sets the module where the block
    keeps it and rebuilds the hook registry as `enable_compatibility_mode` does
    (``clear_hook_registry`` + ``_initialize_hook_registry``, present in TransformerLens 3.9 and 4)."""
    from transformer_lens.hook_points import HookPoint

    blk = model.blocks[layer]
    old = blk.mlp
    orig = blk.original_component
    slot = next((k for k, v in orig._modules.items() if v is old), None)
    if slot is None:
        raise ModelLoadError(f"block {layer} of {architecture(model)} keeps its MLP where interp cannot replace it")
    if not isinstance(getattr(module, "hook_in", None), HookPoint):
        module.hook_in = HookPoint()
        module.hook_out = HookPoint()
        module.register_forward_pre_hook(lambda m, args: (m.hook_in(args[0]), *args[1:]))
        module.register_forward_hook(lambda m, args, out: m.hook_out(out))
    setattr(orig, slot, module)
    torch.nn.Module.__setattr__(blk, "mlp", module)
    model.clear_hook_registry()
    with warnings.catch_warnings():
        # the block's aliases blocks.L.mlp.hook_pre/hook_post name hooks an MoE-X layer does not have
        # (its hidden units are hook_moex_z); the bridge warns about each unresolved alias
        warnings.filterwarnings("ignore", message=r".*block hook alias\(es\) did not resolve.*")
        model._initialize_hook_registry()


def _swapped(model: TransformerBridge) -> list[int]:
    """Blocks whose MLP was replaced by `swap_mlp`."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    return [i for i, b in enumerate(model.blocks) if not isinstance(b.mlp, GeneralizedComponent)]


def full_state_dict(model: TransformerBridge) -> dict[str, torch.Tensor]:
    """The bridge's ``state_dict()`` plus the weights of MLPs put in by `swap_mlp` (which the bridge's
    own state dict, built from its components, leaves out) as ``blocks.L.mlp.<name>``."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for i in _swapped(model):
        sd.update({f"blocks.{i}.mlp.{k}": v.detach().contiguous() for k, v in model.blocks[i].mlp.state_dict().items()})
    return sd


def load_full_state_dict(model: TransformerBridge, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Load a `full_state_dict`; -> (missing keys, unexpected keys)."""
    swapped = {f"blocks.{i}.mlp.": i for i in _swapped(model)}
    rest, missing, unexpected = {}, [], []
    per_mlp: dict[int, dict] = {i: {} for i in swapped.values()}
    for k, v in state.items():
        pre = next((p for p in swapped if k.startswith(p)), None)
        if pre is None:
            rest[k] = v
        else:
            per_mlp[swapped[pre]][k[len(pre):]] = v
    for i, sd in per_mlp.items():
        r = model.blocks[i].mlp.load_state_dict(sd, strict=False)
        missing += [f"blocks.{i}.mlp.{k}" for k in r.missing_keys]
        unexpected += [f"blocks.{i}.mlp.{k}" for k in r.unexpected_keys]
    r = model.load_state_dict(rest, strict=False)
    return missing + list(r.missing_keys), unexpected + list(r.unexpected_keys)


def fresh_copy(model: TransformerBridge) -> TransformerBridge:
    """An independent copy of `model`. A bridge over Hugging Face GPT-2 cannot be deep-copied (its
    q/k/v views are not graph leaves), so a model made by `load_model` is loaded again the same way."""
    info = getattr(model, "interp_loading", None)
    if info is None:
        import copy

        return copy.deepcopy(model)
    return load_model(info["name"], device=info["device"], dtype=info["dtype"], processing=info["processing"])


# --- native models (built from a config, or attention-only) -------------------------------------

_NATIVE_FIELDS = (
    "n_layers", "d_model", "n_ctx", "d_head", "n_heads", "d_mlp", "d_vocab", "act_fn", "normalization_type",
    "positional_embedding_type", "attn_only", "gated_mlp", "n_key_value_heads", "rotary_dim", "rotary_base",
    "final_rms", "eps", "seed", "model_name", "default_prepend_bos", "tokenizer_prepends_bos",
)


def build_from_config(cfg_dict: dict, tokenizer=None, device: str | torch.device = "cpu") -> TransformerBridge:
    """A randomly initialised model from a config dict with TransformerLens field names (n_layers,
    d_model, n_heads, d_head, d_mlp, n_ctx, d_vocab, act_fn, normalization_type, attn_only, seed, ...).

    A GPT-2-shaped config (learned positions, LayerNorm, GELU/ReLU MLP or attention-only) becomes a
    Hugging Face `GPT2LMHeadModel` booted by `TransformerBridge.boot_transformers`; anything else
    (rotary, RMS norm, gated MLP, grouped-query attention) TransformerLens' native model
    (`TransformerBridge.boot_native`), as does a model without a tokenizer (the chess models: the
    Hugging Face boot insists on loading one). Why GPT-2 first: the bridge's GPT-2 attention exposes per-head
    ``hook_result`` and split q/k/v inputs, which the circuits code needs, and its native attention
    does not. An attention-only model gets an inert MLP of width 1 (zero weights and biases, frozen):
    it adds exactly zero, and ``cfg.attn_only`` is set so nothing reads it (`gpt2_config`)."""
    cfg = {k: v for k, v in cfg_dict.items() if k not in ("architecture", "device")}
    name = cfg.get("model_name") or "native"
    with torch.random.fork_rng(devices=[]):
        if cfg.get("seed") is not None:
            torch.manual_seed(int(cfg["seed"]))
        if gpt2_unsupported(_Cfg(cfg)) is None and tokenizer is not None:
            from transformers import GPT2LMHeadModel

            hf = GPT2LMHeadModel(gpt2_config(_Cfg(cfg), tokenizer)).eval()
            model = _boot_gpt2(hf, name, tokenizer, device)
        else:
            model = _boot_native(cfg, tokenizer, device)
            model.interp_own = True
    return model.eval()


def _boot_native(cfg_dict: dict, tokenizer, device) -> TransformerBridge:
    cfg = {k: v for k, v in cfg_dict.items() if k not in ("architecture", "device")}
    return TransformerBridge.boot_native(cfg, tokenizer=tokenizer, device=str(device),
                                         model_name=cfg.get("model_name") or "native").eval()


class _Cfg:
    """Attribute access to a plain config dict, with TransformerLens' defaults."""

    _DEFAULTS = {"positional_embedding_type": "standard", "normalization_type": "LN", "act_fn": "gelu",
                 "attn_only": False, "gated_mlp": False, "n_key_value_heads": None, "eps": 1e-5, "d_mlp": None,
                 "model_name": "native", "default_prepend_bos": True, "seed": None}

    def __init__(self, d: dict):
        self.__dict__.update({**self._DEFAULTS, **d})
        if self.d_mlp is None and not self.attn_only:
            self.d_mlp = 4 * self.d_model


def gpt2_config(c, tokenizer=None):
    """The Hugging Face `GPT2Config` of a GPT-2-shaped config `c` (attribute access). Attention-only:
    ``n_inner=1`` (the inert MLP of `build_from_config`) and ``interp.attn_only`` recorded."""
    from transformers import GPT2Config

    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    hf = GPT2Config(
        vocab_size=c.d_vocab, n_positions=c.n_ctx, n_embd=c.d_model, n_layer=c.n_layers, n_head=c.n_heads,
        n_inner=1 if c.attn_only else c.d_mlp, activation_function=c.act_fn, layer_norm_epsilon=c.eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        bos_token_id=bos if bos is not None else 0, eos_token_id=eos if eos is not None else 0,
        # TransformerLens' default init scale, so a random model is as far from uniform attention as
        # one built by the legacy class (Hugging Face's GPT-2 default, 0.02, is 7x smaller at d_model 32)
        initializer_range=getattr(c, "initializer_range", None) or 0.8 / c.d_model ** 0.5,
        architectures=["GPT2LMHeadModel"])
    hf.interp = {"model_name": c.model_name, "attn_only": bool(c.attn_only), "default_prepend_bos": bool(c.default_prepend_bos)}
    return hf


def _boot_gpt2(hf, name: str, tokenizer, device) -> TransformerBridge:
    """Boot an in-memory GPT2LMHeadModel; an attention-only one gets its inert MLP zeroed and frozen."""
    extra = getattr(hf.config, "interp", None) or {}
    if extra.get("attn_only"):
        with torch.no_grad():
            for blk in hf.transformer.h:
                for p in blk.mlp.parameters():
                    p.zero_()
                    p.requires_grad_(False)
    with _quiet_transformers():
        model = TransformerBridge.boot_transformers(name, hf_model=hf.to(device), tokenizer=tokenizer, device=str(device))
    _mark(model, extra)
    return model


def _mark(model: TransformerBridge, extra: dict) -> None:
    """Apply the ``interp`` section of a checkpoint's config (attention-only, model name, BOS)."""
    if extra:
        model.interp_own = True
    if extra.get("attn_only"):
        model.cfg.attn_only = True
    if extra.get("model_name"):
        model.cfg.model_name = extra["model_name"]
    if "default_prepend_bos" in extra:
        model.cfg.default_prepend_bos = bool(extra["default_prepend_bos"])


def _native_config(model) -> dict:
    c = model.cfg
    out = {"architecture": NATIVE}
    for k in _NATIVE_FIELDS:
        v = getattr(c, k, None)
        if v is not None:
            out[k] = v
    return out


def hooked_state_to_native(state: dict[str, torch.Tensor], n_heads: int, keep_mlp: bool = False) -> dict[str, torch.Tensor]:
    """A legacy TransformerLens state dict (interp's format before the bridge) -> the native bridge's
    state dict (`TransformerBridge.state_dict()` keys). Used once to convert the shipped models and
    to read directories saved by earlier versions.

    W_Q/W_K/W_V [H, d_model, d_head] -> ``q/k/v.weight`` [H * d_head, d_model] (nn.Linear is out x in);
    W_O [H, d_head, d_model] -> ``o.weight`` [d_model, H * d_head]; W_in [d_model, d_mlp] -> ``in.weight``
    = W_in^T; W_out -> ``out.weight`` = W_out^T; W_U [d_model, d_vocab] -> ``unembed.weight`` = W_U^T.
    `keep_mlp`: ``blocks.L.mlp.*`` keys pass unchanged (MLPs put in by `swap_mlp`, see `full_state_dict`)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.endswith((".IGNORE", ".mask")):
            continue
        if keep_mlp and ".mlp." in k:
            out[k] = v
            continue
        parts = k.split(".")
        leaf = parts[-1]
        pre = ".".join(parts[:-1])
        if k == "embed.W_E":
            out["embed.weight"] = v
        elif k == "pos_embed.W_pos":
            out["pos_embed.weight"] = v
        elif k == "unembed.W_U":
            out["unembed.weight"] = v.T.contiguous()
        elif k == "unembed.b_U":
            out["unembed.bias"] = v
        elif leaf in ("w", "b") and parts[-2] in ("ln1", "ln2", "ln_final"):
            out[f"{pre}.{'weight' if leaf == 'w' else 'bias'}"] = v
        elif leaf in ("W_Q", "W_K", "W_V"):
            out[f"{pre}.{leaf[-1].lower()}.weight"] = v.permute(0, 2, 1).reshape(-1, v.shape[1]).contiguous()
        elif leaf in ("b_Q", "b_K", "b_V"):
            out[f"{pre}.{leaf[-1].lower()}.bias"] = v.reshape(-1)
        elif leaf == "W_O":
            out[f"{pre}.o.weight"] = v.reshape(-1, v.shape[-1]).T.contiguous()
        elif leaf == "b_O":
            out[f"{pre}.o.bias"] = v
        elif leaf == "W_in":
            out[f"{pre}.in.weight"] = v.T.contiguous()
        elif leaf == "b_in":
            out[f"{pre}.in.bias"] = v
        elif leaf == "W_out":
            out[f"{pre}.out.weight"] = v.T.contiguous()
        elif leaf == "b_out":
            out[f"{pre}.out.bias"] = v
        else:
            raise ModelLoadError(f"cannot convert legacy TransformerLens weight {k!r} to the bridge")
    return out


# --- GPT-2 export -------------------------------------------------------------------------------

def gpt2_unsupported(cfg) -> str | None:
    """Why a native config cannot be written as a Hugging Face GPT-2 checkpoint (None if it can)."""
    checks = [
        ((getattr(cfg, "positional_embedding_type", "standard") or "standard") == "standard", "rotary positions"),
        (getattr(cfg, "normalization_type", "LN") == "LN", f"normalization {getattr(cfg, 'normalization_type', None)!r}"),
        (getattr(cfg, "act_fn", "gelu") in ("gelu", "gelu_new", "relu"), f"activation {getattr(cfg, 'act_fn', None)!r}"),
        (not getattr(cfg, "gated_mlp", False), "gated MLP"),
        (getattr(cfg, "n_key_value_heads", None) in (None, cfg.n_heads), "grouped-query attention"),
        (cfg.d_head * cfg.n_heads == cfg.d_model, "d_head * n_heads != d_model"),
    ]
    bad = [why for ok, why in checks if not ok]
    return ", ".join(bad) if bad else None


def native_to_gpt2(model) -> tuple[dict, dict[str, torch.Tensor]]:
    """(Hugging Face GPT2Config dict, GPT2LMHeadModel state dict) with the weights of a GPT-2-shaped
    native bridge. Conv1D stores [in, out], nn.Linear [out, in]: c_attn = [q | k | v]^T,
    c_proj = o^T, c_fc = in^T, mlp.c_proj = out^T. ``lm_head.bias`` carries b_U (module docstring).
    An attention-only model gets the inert width-1 MLP of `build_from_config` (all zeros)."""
    c = model.cfg
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    d = gpt2_config(c, model.tokenizer).to_dict()
    out = {"transformer.wte.weight": sd["embed.weight"], "transformer.wpe.weight": sd["pos_embed.weight"],
           "transformer.ln_f.weight": sd["ln_final.weight"], "transformer.ln_f.bias": sd["ln_final.bias"],
           "lm_head.weight": sd["unembed.weight"]}
    if "unembed.bias" in sd:
        out["lm_head.bias"] = sd["unembed.bias"]
    D = c.d_model
    for i in range(c.n_layers):
        b, h = f"blocks.{i}", f"transformer.h.{i}"
        out[f"{h}.ln_1.weight"], out[f"{h}.ln_1.bias"] = sd[f"{b}.ln1.weight"], sd[f"{b}.ln1.bias"]
        out[f"{h}.attn.c_attn.weight"] = torch.cat([sd[f"{b}.attn.{x}.weight"].T for x in "qkv"], dim=1)
        out[f"{h}.attn.c_attn.bias"] = torch.cat([sd[f"{b}.attn.{x}.bias"] for x in "qkv"])
        out[f"{h}.attn.c_proj.weight"] = sd[f"{b}.attn.o.weight"].T
        out[f"{h}.attn.c_proj.bias"] = sd[f"{b}.attn.o.bias"]
        if c.attn_only:
            out[f"{h}.ln_2.weight"], out[f"{h}.ln_2.bias"] = torch.ones(D), torch.zeros(D)
            out[f"{h}.mlp.c_fc.weight"], out[f"{h}.mlp.c_fc.bias"] = torch.zeros(D, 1), torch.zeros(1)
            out[f"{h}.mlp.c_proj.weight"], out[f"{h}.mlp.c_proj.bias"] = torch.zeros(1, D), torch.zeros(D)
            continue
        out[f"{h}.ln_2.weight"], out[f"{h}.ln_2.bias"] = sd[f"{b}.ln2.weight"], sd[f"{b}.ln2.bias"]
        out[f"{h}.mlp.c_fc.weight"] = sd[f"{b}.mlp.in.weight"].T
        out[f"{h}.mlp.c_fc.bias"] = sd[f"{b}.mlp.in.bias"]
        out[f"{h}.mlp.c_proj.weight"] = sd[f"{b}.mlp.out.weight"].T
        out[f"{h}.mlp.c_proj.bias"] = sd[f"{b}.mlp.out.bias"]
    return d, {k: v.contiguous().float() for k, v in out.items()}


def save_model(model: TransformerBridge, out_dir: str | Path, overwrite: bool = True) -> Path:
    """Write `model` atomically (`io.atomic_dir`) in the most standard format that holds it:

    * a GPT-2-shaped native model -> a Hugging Face GPT-2 checkpoint (`native_to_gpt2`);
    * another native model (rotary, RMS norm, gated MLP, ...) -> ``config.json`` naming
      ``TransformerLensNative`` + the bridge's ``state_dict()``;
    * a Hugging Face-backed bridge -> its own config and weights.

    The tokenizer goes to ``tokenizer/``. Only a directory that already holds a saved model
    (``model.safetensors``) is replaced."""
    out = Path(out_dir)
    arch = architecture(model)
    with io.atomic_dir(out, overwrite=overwrite, marker="model.safetensors", allow_package=True) as tmp:
        if arch == NATIVE and gpt2_unsupported(model.cfg) is None:
            cfg, state = native_to_gpt2(model)
        elif arch == NATIVE:
            cfg, state = _native_config(model), {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        else:
            cfg, state = _hf_checkpoint(model)
        io.atomic_write_json(tmp / "config.json", cfg)
        io.atomic_save_safetensors(state, tmp / "model.safetensors")
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    return out


def _hf_checkpoint(model: TransformerBridge) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config dict, state dict with Hugging Face's own keys) of a Hugging Face-backed bridge.

    The bridge wraps Hugging Face modules in place (``h.0._original_component.ln_1._original_component
    .weight``) and adds its own views (``h.0.ln1...``); a key is kept when dropping every
    ``._original_component`` gives a key of the bare class (built on the meta device to list them),
    plus ``lm_head.bias`` (module docstring)."""
    hf = model.original_model
    with torch.device("meta"):
        bare = set(type(hf)(hf.config).state_dict())
    if getattr(hf.config, "tie_word_embeddings", False):
        bare.discard("lm_head.weight")
    bare.add("lm_head.bias")
    state = {}
    for k, v in hf.state_dict().items():
        clean = k.replace("._original_component", "")
        if clean in bare and clean not in state:
            state[clean] = v.detach().contiguous()
    cfg = hf.config.to_dict()
    cfg["interp"] = {**(cfg.get("interp") or {}), "attn_only": bool(model.cfg.attn_only),
                     "model_name": model.cfg.model_name, "default_prepend_bos": bool(model.cfg.default_prepend_bos)}
    return cfg, state


# --- loading ------------------------------------------------------------------------------------

def _tokenizer(path: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    for where in (path / "tokenizer", path):
        if (where / "tokenizer.json").exists() or (where / "tokenizer_config.json").exists() or (where / "vocab.json").exists():
            try:
                return AutoTokenizer.from_pretrained(str(where), local_files_only=True, trust_remote_code=trust_remote_code)
            except (OSError, ValueError, TypeError) as e:
                raise ModelLoadError(f"the tokenizer in {where} is unreadable: {_first_line(e)}") from None
    log.warning("no tokenizer in %s; token-level helpers will be unavailable", path)
    return None


def _read_config(path: Path) -> dict:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path / 'config.json'} is unreadable: {_first_line(e)}") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path / 'config.json'} is not a JSON object")
    return cfg


def _load_weights(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path / "model.safetensors"), device=str(device))
    except Exception as e:  # safetensors raises its own error type for truncated files
        raise ModelLoadError(f"{path / 'model.safetensors'} is corrupt or truncated: {_first_line(e)}") from None


def _load_native(path: Path, cfg: dict, device: torch.device, hooked: bool = False) -> TransformerBridge:
    tok = _tokenizer(path)
    try:
        model = _boot_native(cfg, tok, device)
        model.interp_own = True
    except (ValueError, TypeError, KeyError) as e:
        raise ModelLoadError(f"{path / 'config.json'} is not a model config the bridge can build: {_first_line(e)}") from None
    state = _load_weights(path, device)
    if hooked:
        state = hooked_state_to_native(state, int(cfg["n_heads"]))
    try:
        res = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ModelLoadError(f"weights in {path} do not match its config.json: {_first_line(e)}") from None
    if res.missing_keys or res.unexpected_keys:
        raise ModelLoadError(f"weights in {path} do not match its config.json "
                             f"(missing {res.missing_keys[:2]}, unexpected {res.unexpected_keys[:2]})")
    return model.eval()


def supported_architectures() -> list[str]:
    """Every Hugging Face architecture TransformerLens' bridge has an adapter for."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    return sorted(SUPPORTED_ARCHITECTURES)


def check_hf_config(path: Path, cfg: dict, trust_remote_code: bool = False) -> str:
    """The architecture of a Hugging Face checkpoint directory, after the checks that need no weights:
    remote code is refused unless `trust_remote_code`; an architecture without a bridge adapter is
    refused by name. Raises `ModelLoadError` (one line)."""
    archs = cfg.get("architectures") or []
    if not archs:
        raise ModelLoadError(f"{path / 'config.json'} names no architecture (no 'architectures' field)")
    arch = archs[0]
    if cfg.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(f"{path} needs remote code ({arch} via auto_map); interp runs it only with --trust-remote-code")
    known = supported_architectures()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3, cutoff=0.6)
        hint = f"; close: {', '.join(close)}" if close else ""
        raise ModelLoadError(f"TransformerLens' bridge cannot run {arch} (no architecture adapter{hint})")
    return arch


def _load_hf_dir(path: Path, cfg: dict, device: torch.device, dtype: torch.dtype, trust_remote_code: bool) -> TransformerBridge:
    """A Hugging Face checkpoint directory through `TransformerBridge.boot_transformers`, offline."""
    check_hf_config(path, cfg, trust_remote_code)
    tok = _tokenizer(path, trust_remote_code)
    try:
        with _quiet_transformers():
            model = TransformerBridge.boot_transformers(str(path), device=str(device), dtype=torch.float32,
                                                        tokenizer=tok, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError, AttributeError, TypeError) as e:
        raise ModelLoadError(f"could not load the Hugging Face checkpoint in {path}: {_first_line(e)}") from None
    _load_unembed_bias(model, path, device)
    # interp prepends BOS for every family (as before the bridge): the bridge's GPT-NeoX adapter turns
    # it off, which would shift every position of a Pythia model relative to the other families
    model.cfg.default_prepend_bos = True
    _mark(model, cfg.get("interp") or {})
    return model.eval()


def _load_unembed_bias(model: TransformerBridge, path: Path, device: torch.device) -> None:
    """Copy a stored ``lm_head.bias`` that the Hugging Face class has no parameter for (module docstring)."""
    f = path / "model.safetensors"
    if not f.exists():
        return
    with safe_open(str(f), framework="pt", device="cpu") as st:
        if "lm_head.bias" not in st.keys():
            return
        bias = st.get_tensor("lm_head.bias")
    target = getattr(model.unembed, "original_component", None)
    target = getattr(target, "bias", None)
    if target is None or target.shape != bias.shape:
        raise ModelLoadError(f"{f}: lm_head.bias does not fit the model's unembedding")
    with torch.no_grad():
        target.copy_(bias.to(device=target.device, dtype=target.dtype))


def _load_dir(path: Path, device: torch.device, dtype: torch.dtype, trust_remote_code: bool) -> TransformerBridge:
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path} holds no model (no config.json)")
    cfg = _read_config(path)
    if cfg.get("architecture") == NATIVE:
        return _load_native(path, cfg, device)
    if "architectures" in cfg or "model_type" in cfg:
        return _load_hf_dir(path, cfg, device, dtype, trust_remote_code)
    if {"n_layers", "d_model", "n_heads"} <= set(cfg):  # written by interp before the bridge (legacy TransformerLens format)
        return _load_native(path, cfg, device, hooked=True)
    raise ModelLoadError(f"{path / 'config.json'} names no architecture (no 'architectures' field)")


def _hub_path(name: str) -> Path:
    """The local hub-cache snapshot of a repository id or TransformerLens alias; never downloads."""
    from huggingface_hub import snapshot_download

    repo = name
    try:
        from transformer_lens.supported_models import MODEL_ALIASES

        for official, aliases in MODEL_ALIASES.items():
            if name in aliases:
                repo = official
                break
        known = list(MODEL_ALIASES)
    except ImportError:  # the alias table moved; repository ids still work
        known = []
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # huggingface_hub raises several types for "not cached"
        close = difflib.get_close_matches(name, [*SHIPPED, *known], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(
            f"unknown model {name!r}: not {', '.join(repr(s) for s in SHIPPED)}, a local directory, "
            f"or a Hugging Face model in the local hub cache{hint}") from None


def _apply_processing(model: TransformerBridge, processing: dict) -> dict:
    """Apply the processing flags through the bridge's compatibility mode; return what was applied."""
    if not any(processing.values()):
        return processing
    arch = architecture(model)
    if processing["fold_ln"] and arch in _POST_NORM:
        log.warning("fold_ln is not valid for %s's post-norm blocks; skipped", arch)
        processing = {**processing, "fold_ln": False}
    model.enable_compatibility_mode(disable_warnings=True, **processing)
    return processing


def load_model(name: str = DEFAULT_MODEL, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
               processing: str | dict | None = None, trust_remote_code: bool | None = None) -> TransformerBridge:
    """Load a model by name (see module docstring) on `device` (`resolve_device`: None -> $INTERP_DEVICE
    or auto) in `dtype` (float32 default; weights are loaded in float32, processed, then cast), with
    `processing` (`parse_processing`). A checkpoint that needs its own code (``auto_map``) is refused
    unless `trust_remote_code` (None -> $INTERP_TRUST_REMOTE_CODE=1, set by ``--trust-remote-code``).
    Raises `ModelLoadError` with a one-line message."""
    if trust_remote_code is None:
        trust_remote_code = os.environ.get("INTERP_TRUST_REMOTE_CODE", "") == "1"
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    proc = parse_processing(processing)
    name = name or DEFAULT_MODEL
    if name in SHIPPED:
        shipped = SHIPPED[name]
        if not (shipped.path / "model.safetensors").exists():
            raise ModelLoadError(f"the shipped model {name!r} is missing; build it with `{shipped.build}`")
        model = _load_dir(shipped.path, dev, dt, False)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            model = _load_dir(path, dev, dt, trust_remote_code)
        elif path.exists():
            raise ModelLoadError(f"model path {name!r} is a file; give a model directory or name")
        elif name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise ModelLoadError(f"model path {name!r} does not exist")
        else:
            hub = _hub_path(name)
            model = _load_dir(hub, dev, dt, trust_remote_code)
    proc = _apply_processing(model, proc)
    if dt != torch.float32:
        model = model.to(dt, print_details=False)
    model.interp_loading = {"name": name, "family": family(model), "processing": proc,
                            "dtype": str(dt).removeprefix("torch."), "device": str(dev)}
    return model


def loading_info(model: TransformerBridge) -> dict:
    """How `model` was loaded: ``{"name", "family", "processing": {flag: bool}, "dtype", "device"}``.

    ``processing`` has the shape of SAELens' ``model_from_pretrained_kwargs`` (record it in an
    SAE's cfg; compare it with `processing_mismatch`). A model not made by `load_model` reports
    its config name, no processing, and its current dtype/device."""
    info = getattr(model, "interp_loading", None)
    if info is not None:
        return {**info, "dtype": str(dtype_of(model)).removeprefix("torch."), "device": str(model.cfg.device)}
    return {"name": model.cfg.model_name, "family": family(model),
            "processing": {f: False for f in PROCESSING_FLAGS}, "dtype": str(dtype_of(model)).removeprefix("torch."),
            "device": str(model.cfg.device)}


def processing_mismatch(model: TransformerBridge, recorded: dict | None) -> str | None:
    """One line describing how `recorded` (an SAE's ``model_from_pretrained_kwargs``) differs from the
    processing `model` was loaded with, or None when they agree. Flags absent from `recorded` take
    TransformerLens' from_pretrained default (True), as SAELens does when it loads the model."""
    if recorded is None:
        return None
    have = loading_info(model)["processing"]
    want = {f: bool(recorded.get(f, True)) for f in PROCESSING_FLAGS}
    diff = [f"{f}={want[f]} (model has {have[f]})" for f in PROCESSING_FLAGS if want[f] != have[f]]
    if not diff:
        return None
    return "SAE expects " + ", ".join(diff) + "; load the model with --processing " + (
        "tl-default" if all(want.values()) else ",".join(f for f in PROCESSING_FLAGS if want[f]) or "none")
