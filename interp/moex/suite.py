"""The comparison suite: every architecture of the MoE-X comparison at equal active parameters.

Active parameters per MLP layer (`MoEXConfig.active_params`): the k chosen experts' W_enc, b_enc,
W_dec, plus b_dec and the router's weights. The dense MLPs have d_mlp = k * D hidden units, so
dense and MoE layers use the same number of hidden units (and the same W_in / W_out sizes) per
token; the MoE layers additionally hold E - k idle experts, and the router adds E * d_model
(softmax) or 2 * E * d_model (sparsity statistics, computed from W_enc, no extra weights).

`build_suite` trains the models of `suite_configs` one after another (the upcycled MoE-X continues
from the trained dense-ReLU model) into ``root/<name>/``; `SHIPPED` names those copied into the
package (``interp/moex/shipped/``) by `ship`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from interp.errors import InterpError
from interp.moex.layer import MoEXConfig
from interp.moex.model import SHIPPED_DIR, ChessModelConfig
from interp.moex.train import TrainConfig, TrainResult, train_chess_model

log = logging.getLogger(__name__)

SHIPPED = ("dense-gelu", "switch", "moex", "moex-upcycled")


@dataclass
class SuiteScale:
    d_model: int = 128
    """residual width"""
    n_layers: int = 2
    """transformer blocks"""
    n_ctx: int = 256
    """context in characters"""
    n_experts: int = 8
    """E"""
    top_k: int = 2
    """k"""
    expert_width: int = 256
    """D; the dense MLPs get k * D hidden units"""
    steps: int = 300
    """optimizer steps of each from-scratch model"""
    upcycle_steps: int = 150
    """extra steps of the upcycled MoE-X on top of the trained dense-ReLU model"""
    batch_size: int = 16
    """games per step"""
    n_games: int = 3000
    """training games"""
    n_val_games: int = 200
    """held-out games"""
    cache_dir: str = "runs/chess"
    """generated games cache"""

    def __post_init__(self):
        if self.top_k > self.n_experts:
            raise InterpError(f"top_k={self.top_k} is larger than the number of experts E={self.n_experts}")

    @staticmethod
    def tiny() -> "SuiteScale":
        return SuiteScale(d_model=32, n_layers=1, n_ctx=64, n_experts=4, top_k=2, expert_width=32, steps=6,
                          upcycle_steps=3, batch_size=4, n_games=24, n_val_games=8)


def suite_configs(s: SuiteScale) -> dict[str, TrainConfig]:
    """name -> TrainConfig, in training order (moex-upcycled needs dense-relu first)."""
    model = ChessModelConfig(n_layers=s.n_layers, d_model=s.d_model, n_heads=4, n_ctx=s.n_ctx)
    dense = dict(d_model=s.d_model, d_mlp=s.top_k * s.expert_width)
    moe = dict(d_model=s.d_model, d_mlp=s.expert_width, n_experts=s.n_experts, top_k=s.top_k)
    base = TrainConfig(mlp=MoEXConfig("dense-gelu", **dense), model=model, steps=s.steps, batch_size=s.batch_size, n_games=s.n_games,
                       n_val_games=s.n_val_games, cache_dir=s.cache_dir, checkpoint_every=100)
    mlps = {
        "dense-gelu": MoEXConfig("dense-gelu", **dense),
        "dense-relu": MoEXConfig("dense-relu", **dense),
        "switch": MoEXConfig("switch", **moe),  # GELU experts, softmax router
        "moex": MoEXConfig("moex", **moe),  # ReLU experts, sparsity router
        "relu-experts+softmax-router": MoEXConfig("switch", act="relu", **moe),
        "gelu-experts+sparsity-router": MoEXConfig("moex", act="gelu", **moe),
    }
    cfgs = {name: replace(base, mlp=m) for name, m in mlps.items()}
    cfgs["moex-upcycled"] = replace(base, mlp=mlps["moex"], steps=s.upcycle_steps, warmup=10, upcycle_from="dense-relu")
    return cfgs


def build_suite(root: str | Path, scale: SuiteScale | None = None, only: list[str] | None = None,
                resume: bool = True) -> dict[str, TrainResult]:
    """Train the suite's models into root/<name>/ (skipping those already finished)."""
    from interp.moex.model import read_cfg

    root = Path(root)
    results = {}
    for name, cfg in suite_configs(scale or SuiteScale()).items():
        if only and name not in only:
            continue
        if cfg.upcycle_from:
            cfg = replace(cfg, upcycle_from=str(root / cfg.upcycle_from))
        out = root / name
        if (out / "cfg.json").exists() and read_cfg(out).get("steps") == cfg.steps and not (out / "checkpoint").exists():
            log.info("%s already trained; skipping", name)
            results[name] = None
            continue
        log.info("training %s", name)
        results[name] = train_chess_model(cfg, out, resume=resume)
    return results


def ship(root: str | Path, dest: str | Path = SHIPPED_DIR, names=SHIPPED) -> list[Path]:
    """Copy the trained models `names` from root/ into the package's shipped directory."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        src = Path(root) / name
        if not (src / "cfg.json").is_file():
            raise InterpError(f"{src} has no trained model; run the suite first")
        tmp = dest / (name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for f in ("cfg.json", "model.safetensors"):
            shutil.copy2(src / f, tmp / f)
        if (dest / name).exists():
            shutil.rmtree(dest / name)
        tmp.rename(dest / name)
        out.append(dest / name)
    return out
