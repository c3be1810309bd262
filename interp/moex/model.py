"""A character-level chess transformer (TransformerLens' native model behind a `TransformerBridge`)
whose MLPs are dense, Switch or MoE-X layers (`interp.models.swap_mlp`).

A model directory holds ``cfg.json`` ({"model": transformer config, "mlp": `MoEXConfig`, ...}) and
``model.safetensors``; `load_chess_model(dir)` rebuilds it offline from those two files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from interp.data.chess import VOCAB
from interp.errors import InterpError
from interp.models import full_state_dict, hooked_state_to_native, load_full_state_dict
from interp.moex.layer import MoEXConfig, replace_mlps

SHIPPED_DIR = Path(__file__).parent / "shipped"
MARKER = "cfg.json"
"""the file that makes a directory a chess model directory"""


@dataclass
class ChessModelConfig:
    n_layers: int = 4
    """transformer blocks"""
    d_model: int = 256
    """residual width"""
    n_heads: int = 8
    """attention heads (d_head = d_model / n_heads)"""
    n_ctx: int = 256
    """context length in characters"""
    seed: int = 0
    """initialisation seed"""

    def __post_init__(self):
        from interp.fields import check_types

        check_types(self, "of the chess model config")
        if min(self.n_layers, self.d_model, self.n_heads, self.n_ctx) < 1:
            raise InterpError("n_layers, d_model, n_heads, n_ctx must be >= 1")
        if self.d_model % self.n_heads:
            raise InterpError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        for name, hi in (("n_layers", 4096), ("d_model", 1 << 16), ("n_ctx", 1 << 16)):
            if getattr(self, name) > hi:
                raise InterpError(f"field {name} = {getattr(self, name):,} of the chess model config is above {hi:,}")
        need = 4 * 12 * self.n_layers * self.d_model**2  # float32 weights of attention + a 4x MLP per block
        have = physical_memory()
        if have and need > have:
            raise InterpError(f"a chess model with n_layers {self.n_layers:,} and d_model {self.d_model:,} needs about "
                              f"{need / 2**30:,.0f} GiB for its weights alone; this machine has {have / 2**30:,.0f} GiB")


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def build_chess_model(mcfg: ChessModelConfig, mlp: MoEXConfig, device: str | torch.device | None = None):
    """A fresh model over the chess character vocabulary (`interp.models.build_from_config`: the native
    model, as there is no tokenizer), with `mlp` layers in every block.

    Initialisation happens on the CPU (so a seed gives the same weights on every device), then
    the model moves to `device` (`interp.device.resolve_device`: None = $INTERP_DEVICE or auto)."""
    from interp.device import resolve_device

    from interp.models import build_from_config

    if mlp.d_model != mcfg.d_model:
        raise InterpError(f"MLP d_model {mlp.d_model} != model d_model {mcfg.d_model}")
    torch.manual_seed(mcfg.seed)
    model = build_from_config(dict(
        n_layers=mcfg.n_layers, d_model=mcfg.d_model, n_heads=mcfg.n_heads, d_head=mcfg.d_model // mcfg.n_heads,
        d_mlp=4 * mcfg.d_model, n_ctx=mcfg.n_ctx, d_vocab=len(VOCAB), act_fn="gelu", normalization_type="LN",
        seed=mcfg.seed, model_name="chess-char", default_prepend_bos=False,
    ), tokenizer=None, device="cpu")
    torch.manual_seed(mcfg.seed + 1)
    model = replace_mlps(model, mlp)
    dev = resolve_device(device)
    if dev.type != "cpu":
        model = model.to(dev)
        model.cfg.device = dev
    return model


def save_chess_model(model, mcfg: ChessModelConfig, mlp: MoEXConfig, out_dir: str | Path, extra: dict | None = None,
                     checked: bool = False) -> Path:
    """Write cfg.json + model.safetensors as one directory, atomically (`interp.io.atomic_dir`).

    An existing `out_dir` is replaced only if it is a chess model directory (cfg.json there), or
    if `checked` (the training loop, which validated `out_dir` before it started)."""
    from interp.io import atomic_dir, atomic_save_safetensors, atomic_write_json

    cfg = {"kind": "interp-chess-model", "model": asdict(mcfg), "mlp": mlp.to_dict(), **(extra or {})}
    with atomic_dir(out_dir, overwrite=True, marker=None if checked else MARKER) as tmp:
        atomic_write_json(tmp / "cfg.json", cfg)
        atomic_save_safetensors(full_state_dict(model), tmp / "model.safetensors")
    return Path(out_dir)


def read_cfg(model_dir: str | Path) -> dict:
    """cfg.json of a chess model directory; one-line `InterpError` if it is missing, not JSON or another kind."""
    p = Path(model_dir) / "cfg.json"
    if not p.is_file():
        raise InterpError(f"{model_dir} is not a chess model directory (no cfg.json)")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise InterpError(f"{p} is not valid JSON ({e.__class__.__name__}); the model directory is damaged") from None
    if not isinstance(cfg, dict) or cfg.get("kind") != "interp-chess-model":
        kind = cfg.get("kind") if isinstance(cfg, dict) else type(cfg).__name__
        raise InterpError(f"{model_dir} is not a chess model directory (cfg.json kind is {kind!r})")
    return cfg


def configs_from(cfg: dict, where) -> tuple[ChessModelConfig, MoEXConfig]:
    """(ChessModelConfig, MoEXConfig) from a cfg dict; one line naming `where` if a field is wrong."""
    try:
        if not isinstance(cfg.get("model"), dict) or not isinstance(cfg.get("mlp"), dict):
            raise InterpError("fields model and mlp must be objects")
        return ChessModelConfig(**cfg["model"]), MoEXConfig(**cfg["mlp"])
    except (KeyError, TypeError) as e:
        raise InterpError(f"{where}: cfg.json has no valid model/mlp config ({e})") from None
    except InterpError as e:
        raise InterpError(f"{where}/cfg.json: {e}") from None


def load_chess_model(model_dir: str | Path, device: str | torch.device | None = None):
    """-> (model in eval mode on `device`, ChessModelConfig, MoEXConfig, the full cfg dict)."""
    cfg = read_cfg(model_dir)
    mcfg, mlp = configs_from(cfg, model_dir)
    weights = Path(model_dir) / "model.safetensors"
    if not weights.is_file():
        raise InterpError(f"{model_dir} has no model.safetensors")
    model = build_chess_model(mcfg, mlp, device=device)
    try:
        state = load_file(str(weights), device=str(next(model.parameters()).device))
    except (SafetensorError, OSError, ValueError) as e:
        raise InterpError(f"{weights} is not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    if "blocks.0.attn.W_Q" in state:  # written before the bridge (legacy TransformerLens names): map once on load
        state = hooked_state_to_native(state, mcfg.n_heads, keep_mlp=True)
    try:
        missing, unexpected = load_full_state_dict(model, state)
    except RuntimeError as e:  # shape mismatch: weights of another architecture or size
        raise InterpError(f"weights in {model_dir} do not match its cfg.json ({str(e).splitlines()[-1].strip()[:160]})") from None
    missing = [k for k in missing if not k.endswith(("IGNORE", ".mask"))]
    if missing or unexpected:
        raise InterpError(f"weights in {model_dir} do not match its cfg.json (missing {missing[:2]}, unexpected {unexpected[:2]})")
    return model.eval(), mcfg, mlp, cfg


def shipped_models() -> dict[str, Path]:
    """name -> directory of every shipped chess model."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED_DIR.iterdir()) if (p / "cfg.json").is_file()}
