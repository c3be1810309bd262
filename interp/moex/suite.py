"""The comparison suite: every architecture of the MoE-X comparison at equal active parameters.

Active parameters per MLP layer (`MoEXConfig.active_params`): the k chosen experts' W_enc, b_enc,
W_dec, plus b_dec and the router's weights. The dense MLPs have d_mlp = k * D hidden units, so
dense and MoE layers use the same number of hidden units (and the same W_in / W_out sizes) per
token; the MoE layers additionally hold E - k idle experts, and the router adds E * d_model
(softmax) or 2 * E * d_model (sparsity statistics, computed from W_enc, no extra weights).

`build_suite` trains the models of `suite_configs` for each seed one after another (the upcycled
MoE-X continues from the same seed's trained dense-ReLU model) into ``root/seed<N>/<name>/``,
resuming checkpoints; `SHIPPED` names those copied into the package (``interp/moex/shipped/``) by
`ship` (a build step of the repository, run by benchmarks/moex/run.py --ship).
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
SCALES = ("tiny", "cpu-short", "cpu", "full")


@dataclass
class SuiteScale:
    d_model: int = 256
    """residual width"""
    n_layers: int = 4
    """transformer blocks"""
    n_heads: int = 8
    """attention heads"""
    n_ctx: int = 256
    """context in characters"""
    n_experts: int = 8
    """E"""
    top_k: int = 2
    """k"""
    expert_width: int = 512
    """D; the dense MLPs get k * D hidden units"""
    steps: int = 3000
    """optimizer steps of each from-scratch model"""
    upcycle_steps: int = 1000
    """extra steps of the upcycled MoE-X on top of the trained dense-ReLU model"""
    batch_size: int = 16
    """games per step"""
    lr: float = 1e-3
    """peak learning rate"""
    n_games: int = 10000
    """training games"""
    n_val_games: int = 200
    """held-out games"""
    engine: str = "stockfish"
    """game source (see interp.data.chess)"""
    store: str | None = None
    """root of the game stores (default $INTERP_HOME/chess)"""
    ablation: bool = False
    """also train the 2x2 ablation (ReLU experts + softmax router, GELU experts + sparsity router)"""
    curve_points: int = 10
    """learning-curve points per from-scratch model (each runs the legal-move test on 64 held-out games)"""
    n_metric_games: int = 300
    """training games whose positions select features for reconstruction (benchmark)"""
    sae_games: int = 1000
    """training games whose MLP activations train the dense+SAE baseline (benchmark)"""
    sae_steps: int = 2000
    """TopK SAE steps of the dense+SAE baseline (batches of 1024 activations)"""
    sae_k: int = 64
    """TopK SAE: active latents per position"""

    def __post_init__(self):
        if min(self.curve_points, self.n_metric_games, self.sae_games, self.sae_steps, self.sae_k) < 1:
            raise InterpError("curve_points, n_metric_games, sae_games, sae_steps and sae_k must be >= 1")
        if self.top_k > self.n_experts:
            raise InterpError(f"top_k={self.top_k} is larger than the number of experts E={self.n_experts}")

    @staticmethod
    def preset(name: str) -> "SuiteScale":
        """tiny: a seconds-long smoke run; cpu-short: the issue's minimum size (4 layers, d_model 256) with
        D = d_model and 60 steps x 8 games on 1,500 Stockfish games (what a shared 2-core CPU gave in an
        hour; far from trained); cpu:
        TrainConfig's defaults (hours per model on one CPU core); full: Karvonen et al.'s size (8 layers,
        d_model 512, 100k Stockfish games) for a GPU."""
        if name == "tiny":
            return SuiteScale(d_model=32, n_layers=1, n_heads=4, n_ctx=64, n_experts=4, top_k=2, expert_width=32, steps=6,
                              upcycle_steps=3, batch_size=4, n_games=24, n_val_games=8, engine="random", curve_points=2,
                              n_metric_games=24, sae_games=24, sae_steps=20, sae_k=4)
        if name == "cpu-short":
            return SuiteScale(expert_width=256, steps=60, upcycle_steps=20, batch_size=8, lr=2e-3, n_games=1500, curve_points=2,
                              n_metric_games=100, sae_games=100, sae_steps=200)
        if name == "cpu":
            return SuiteScale()
        if name == "full":
            return SuiteScale(d_model=512, n_layers=8, n_heads=8, n_ctx=512, n_experts=8, top_k=2, expert_width=1024,
                              steps=30000, upcycle_steps=5000, batch_size=64, lr=3e-4, n_games=100_000, n_val_games=500)
        raise InterpError(f"unknown scale {name!r}; use {', '.join(SCALES)}")

    @staticmethod
    def tiny() -> "SuiteScale":
        return SuiteScale.preset("tiny")


def suite_configs(s: SuiteScale, seed: int = 0) -> dict[str, TrainConfig]:
    """name -> TrainConfig for one seed, in training order (moex-upcycled needs dense-relu first)."""
    model = ChessModelConfig(n_layers=s.n_layers, d_model=s.d_model, n_heads=s.n_heads, n_ctx=s.n_ctx, seed=seed)
    dense = dict(d_model=s.d_model, d_mlp=s.top_k * s.expert_width)
    moe = dict(d_model=s.d_model, d_mlp=s.expert_width, n_experts=s.n_experts, top_k=s.top_k)
    base = TrainConfig(mlp=MoEXConfig("dense-gelu", **dense), model=model, steps=s.steps, batch_size=s.batch_size, lr=s.lr,
                       warmup=max(1, min(100, s.steps // 20)), n_games=s.n_games, n_val_games=s.n_val_games, engine=s.engine,
                       store=s.store, seed=seed, checkpoint_every=max(1, s.steps // 20), eval_every=max(1, s.steps // s.curve_points))
    mlps = {
        "dense-gelu": MoEXConfig("dense-gelu", **dense),
        "dense-relu": MoEXConfig("dense-relu", **dense),
        "switch": MoEXConfig("switch", **moe),  # GELU experts, softmax router
        "moex": MoEXConfig("moex", **moe),  # ReLU experts, sparsity router
    }
    if s.ablation:
        mlps["relu-experts+softmax-router"] = MoEXConfig("switch", act="relu", **moe)
        mlps["gelu-experts+sparsity-router"] = MoEXConfig("moex", act="gelu", **moe)
    cfgs = {name: replace(base, mlp=m) for name, m in mlps.items()}
    cfgs["moex-upcycled"] = replace(base, mlp=mlps["moex"], steps=s.upcycle_steps, warmup=max(1, min(50, s.upcycle_steps // 20)),
                                    checkpoint_every=max(1, s.upcycle_steps // 10), eval_every=max(1, s.upcycle_steps // max(1, s.curve_points // 2)),
                                    upcycle_from="dense-relu")
    return cfgs


def build_suite(root: str | Path, scale: SuiteScale | None = None, only: list[str] | None = None, seeds=(0,),
                device=None, workers: int = 1) -> dict[tuple[str, int], TrainResult | None]:
    """Train the suite's models into root/seed<N>/<name>/; a finished model is skipped, a checkpoint resumed."""
    from interp.moex.model import read_cfg

    root = Path(root)
    results = {}
    for seed in seeds:
        for name, cfg in suite_configs(scale or SuiteScale(), seed).items():
            if only and name not in only:
                continue
            if cfg.upcycle_from:
                cfg = replace(cfg, upcycle_from=str(root / f"seed{seed}" / cfg.upcycle_from))
            out = root / f"seed{seed}" / name
            if (out / "cfg.json").exists() and not (out / "checkpoint").exists():
                if read_cfg(out).get("train") == cfg.to_dict():
                    log.info("%s seed %d already trained; skipping", name, seed)
                    results[(name, seed)] = None
                    continue
                raise InterpError(f"{out} holds a model trained with other settings; remove it or use another --root")
            log.info("training %s seed %d", name, seed)
            results[(name, seed)] = train_chess_model(cfg, out, resume=(out / "checkpoint" / "manifest.json").is_file(),
                                                      device=device, workers=workers)
    return results


def ship(root: str | Path, dest: str | Path = SHIPPED_DIR, names=SHIPPED) -> list[Path]:
    """Copy the trained models `names` from root/ into the package's shipped directory, float32 weights
    stored as float16 (half the bytes, so the four models fit the 100 MB budget of all shipped weights;
    `load_chess_model` casts them back into the float32 model)."""
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file

    from interp.io import replace_dir

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        src = Path(root) / name
        if not (src / "cfg.json").is_file():
            raise InterpError(f"{src} has no trained model; run the suite first")
        if (dest / name).exists() and not (dest / name / "cfg.json").is_file():
            raise InterpError(f"{dest / name} exists and is not a chess model directory; not replacing it")
        # the package's own shipped/ directory is written here on purpose (the repository's build
        # step), so not through atomic_dir, which refuses package paths; same temp-and-rename scheme
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=dest))
        shutil.copy2(src / "cfg.json", tmp / "cfg.json")
        state = load_file(str(src / "model.safetensors"))
        save_file({k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}, str(tmp / "model.safetensors"))
        replace_dir(tmp, dest / name)
        out.append(dest / name)
    return out
