"""A character-level chess transformer (TransformerLens) whose MLPs are dense, Switch or MoE-X layers.

A model directory holds ``cfg.json`` ({"model": transformer config, "mlp": `MoEXConfig`, ...}) and
``model.safetensors``; `load_chess_model(dir)` rebuilds it offline from those two files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from interp.data.chess import VOCAB
from interp.errors import InterpError
from interp.moex.layer import MoEXConfig, replace_mlps

SHIPPED_DIR = Path(__file__).parent / "shipped"


@dataclass
class ChessModelConfig:
    n_layers: int = 2
    """transformer blocks"""
    d_model: int = 128
    """residual width"""
    n_heads: int = 4
    """attention heads (d_head = d_model / n_heads)"""
    n_ctx: int = 256
    """context length in characters"""
    seed: int = 0
    """initialisation seed"""

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise InterpError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if min(self.n_layers, self.d_model, self.n_heads, self.n_ctx) < 1:
            raise InterpError("n_layers, d_model, n_heads, n_ctx must be >= 1")


def build_chess_model(mcfg: ChessModelConfig, mlp: MoEXConfig):
    """A fresh HookedTransformer over the chess character vocabulary, with `mlp` layers in every block."""
    import warnings

    from transformer_lens import HookedTransformer, HookedTransformerConfig

    if mlp.d_model != mcfg.d_model:
        raise InterpError(f"MLP d_model {mlp.d_model} != model d_model {mcfg.d_model}")
    warnings.filterwarnings("ignore", message=".*HookedTransformer.*deprecated.*")
    torch.manual_seed(mcfg.seed)
    cfg = HookedTransformerConfig(
        n_layers=mcfg.n_layers, d_model=mcfg.d_model, n_heads=mcfg.n_heads, d_head=mcfg.d_model // mcfg.n_heads,
        d_mlp=4 * mcfg.d_model, n_ctx=mcfg.n_ctx, d_vocab=len(VOCAB), act_fn="gelu", normalization_type="LN",
        seed=mcfg.seed, model_name="chess-char", device="cpu", default_prepend_bos=False,
    )
    model = HookedTransformer(cfg)
    torch.manual_seed(mcfg.seed + 1)
    return replace_mlps(model, mlp)


def save_chess_model(model, mcfg: ChessModelConfig, mlp: MoEXConfig, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write cfg.json + model.safetensors atomically (temp directory, then rename)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    cfg = {"kind": "interp-chess-model", "model": asdict(mcfg), "mlp": mlp.to_dict(), **(extra or {})}
    (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2))
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def read_cfg(model_dir: str | Path) -> dict:
    p = Path(model_dir) / "cfg.json"
    if not p.is_file():
        raise InterpError(f"{model_dir} is not a chess model directory (no cfg.json)")
    cfg = json.loads(p.read_text())
    if cfg.get("kind") != "interp-chess-model":
        raise InterpError(f"{model_dir} is not a chess model directory (cfg.json kind is {cfg.get('kind')!r})")
    return cfg


def load_chess_model(model_dir: str | Path):
    """-> (model in eval mode, ChessModelConfig, MoEXConfig, the full cfg dict)."""
    cfg = read_cfg(model_dir)
    mcfg, mlp = ChessModelConfig(**cfg["model"]), MoEXConfig(**cfg["mlp"])
    model = build_chess_model(mcfg, mlp)
    weights = Path(model_dir) / "model.safetensors"
    if not weights.is_file():
        raise InterpError(f"{model_dir} has no model.safetensors")
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("IGNORE", ".mask"))]
    if missing or unexpected:
        raise InterpError(f"weights in {model_dir} do not match its cfg.json (missing {missing[:2]}, unexpected {unexpected[:2]})")
    return model.eval(), mcfg, mlp, cfg


def shipped_models() -> dict[str, Path]:
    """name -> directory of every shipped chess model."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED_DIR.iterdir()) if (p / "cfg.json").is_file()}
