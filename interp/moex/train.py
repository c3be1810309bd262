"""Train a character-level chess model with dense / Switch / MoE-X MLPs: one top-to-bottom loop.

    train_chess_model(TrainConfig(...), out_dir) -> TrainResult

Writes ``out_dir/checkpoint/`` (model + AdamW state as safetensors, step in JSON) every
`checkpoint_every` steps and resumes from it when `resume` is set; the finished model goes to
``out_dir`` itself (cfg.json + model.safetensors, loadable with `load_chess_model`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from interp.data.chess import STOI, ChessDataConfig, encode, load_or_generate, read_pgn_lines
from interp.errors import InterpError
from interp.moex.layer import MoEXConfig
from interp.moex.model import ChessModelConfig, build_chess_model, load_chess_model, read_cfg, save_chess_model

log = logging.getLogger(__name__)
PAD = STOI[" "]


@dataclass
class TrainConfig:
    mlp: MoEXConfig = field(default_factory=MoEXConfig)
    """the MLP of every block"""
    model: ChessModelConfig = field(default_factory=ChessModelConfig)
    """the transformer around it"""
    steps: int = 800
    """optimizer steps"""
    batch_size: int = 16
    """games per step"""
    lr: float = 1e-3
    """peak AdamW learning rate (linear warmup, cosine decay to 10%)"""
    warmup: int = 50
    """warmup steps"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    n_games: int = 4000
    """training games (the validation games come after them in the same generated set)"""
    n_val_games: int = 200
    """held-out games"""
    data_seed: int = 0
    """seed of the generated games"""
    engine: str = "random"
    """random or stockfish (see interp.data.chess)"""
    games_file: str | None = None
    """read games from this text file (one PGN string per line) instead of generating them"""
    seed: int = 0
    """seed of initialisation and batch order"""
    checkpoint_every: int = 200
    """steps between checkpoints (0 = only at the end)"""
    upcycle_from: str | None = None
    """a trained dense chess model directory to upcycle the MLPs from"""
    cache_dir: str = "runs/chess"
    """where generated games are cached"""

    def __post_init__(self):
        if isinstance(self.mlp, dict):
            self.mlp = MoEXConfig(**self.mlp)
        if isinstance(self.model, dict):
            self.model = ChessModelConfig(**self.model)
        if self.mlp.d_model != self.model.d_model:
            raise InterpError(f"MLP d_model {self.mlp.d_model} != model d_model {self.model.d_model}")
        if min(self.steps, self.batch_size, self.n_games, self.n_val_games) < 1:
            raise InterpError("steps, batch_size, n_games and n_val_games must be >= 1")
        if self.upcycle_from and not self.mlp.is_moe:
            raise InterpError("--upcycle-from needs a switch or moex architecture")

    def data_config(self) -> ChessDataConfig:
        return ChessDataConfig(n_games=self.n_games + self.n_val_games, seed=self.data_seed,
                               max_chars=self.model.n_ctx + 1, engine=self.engine)


def split_games(cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """(training games, held-out games) for a config: generated once and cached, or read from
    `games_file` (illegal lines skipped and counted; the last `n_val_games` are held out)."""
    if cfg.games_file:
        clean = read_pgn_lines(cfg.games_file)
        if clean.skipped:
            log.warning("%s: skipped %d illegal line(s), e.g. %s", cfg.games_file, clean.skipped, clean.reasons[0])
        games = clean.games
        if len(games) <= cfg.n_val_games:
            raise InterpError(f"{cfg.games_file} has {len(games)} legal games; need more than n_val_games={cfg.n_val_games}")
        return games[: -cfg.n_val_games][: cfg.n_games], games[-cfg.n_val_games:]
    games = load_or_generate(cfg.data_config(), cfg.cache_dir)
    return games[: cfg.n_games], games[cfg.n_games:]


def games_to_tensor(games: list[str], n_ctx: int) -> torch.Tensor:
    """[G, n_ctx + 1] token ids, games cut or padded with spaces (padding is masked from the loss)."""
    out = torch.full((len(games), n_ctx + 1), PAD, dtype=torch.long)
    for i, g in enumerate(games):
        ids = encode(g[: n_ctx + 1])
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def lm_loss(model, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy over real (non-padding) targets."""
    logits = model(tokens[:, :-1])
    target = tokens[:, 1:]
    mask = torch.arange(target.shape[1])[None, :] < (lengths[:, None] - 1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return (ce * mask.reshape(-1)).sum() / mask.sum()


@torch.no_grad()
def validation_loss(model, games: list[str], n_ctx: int, batch_size: int = 32) -> float:
    model.eval()
    toks = games_to_tensor(games, n_ctx)
    lens = torch.tensor([min(len(g), n_ctx + 1) for g in games])
    tot, n = 0.0, 0
    for i in range(0, len(games), batch_size):
        m = (lens[i:i + batch_size] - 1).clamp(min=0).sum().item()
        tot += lm_loss(model, toks[i:i + batch_size], lens[i:i + batch_size]).item() * m
        n += m
    return tot / max(n, 1)


def _aux_loss(model) -> torch.Tensor:
    return sum(b.mlp.aux_loss for b in model.blocks)


def _save_checkpoint(model, opt, step: int, cfg: TrainConfig, ckpt: Path) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    st = opt.state_dict()
    flat = {f"{i}.{k}": v.detach().reshape(-1).contiguous() if v.dim() == 0 else v.detach().contiguous()
            for i, s in st["state"].items() for k, v in s.items()}
    save_file(flat, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "train": _cfg_dict(cfg)}, indent=2))
    if ckpt.exists():
        shutil.rmtree(ckpt)
    tmp.rename(ckpt)


def _load_optimizer(opt, path: Path) -> None:
    flat = load_file(str(path))
    st = opt.state_dict()
    state: dict = {}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
    st["state"] = state
    opt.load_state_dict(st)


def _cfg_dict(cfg: TrainConfig) -> dict:
    return {k: (v.to_dict() if isinstance(v, MoEXConfig) else v) for k, v in asdict(cfg).items()}


class TrainResult(NamedTuple):
    out_dir: Path
    val_loss: float
    steps: int
    resumed_from: int
    train_seconds: float
    tokens_per_second: float


def train_chess_model(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, stop_at: int | None = None) -> TrainResult | None:
    """Train, checkpoint, resume; save the final model to `out_dir` (see module docstring).

    `stop_at`: leave after that many steps with a checkpoint (for a later `resume`) and return None.
    """
    torch.manual_seed(cfg.seed)
    out = Path(out_dir)
    ckpt = out / "checkpoint"
    train_games, val_games = split_games(cfg)
    n_ctx = cfg.model.n_ctx
    toks = games_to_tensor(train_games, n_ctx)
    lens = torch.tensor([min(len(g), n_ctx + 1) for g in train_games])

    # the model: fresh, upcycled from a dense model, or resumed
    if cfg.upcycle_from:
        from interp.moex.upcycle import upcycle_model

        dense, dense_mcfg, dense_mlp, _ = load_chess_model(cfg.upcycle_from)
        if dense_mlp.is_moe:
            raise InterpError(f"{cfg.upcycle_from} is a {dense_mlp.arch} model; upcycling needs a dense one")
        if asdict(dense_mcfg) | {"seed": 0} != asdict(cfg.model) | {"seed": 0}:
            raise InterpError(f"{cfg.upcycle_from} has model config {asdict(dense_mcfg)}, not {asdict(cfg.model)}")
        model = upcycle_model(dense, cfg.mlp, seed=cfg.seed).train()
    else:
        model = build_chess_model(cfg.model, cfg.mlp).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    start = 0
    if resume and ckpt.exists():
        state = json.loads((ckpt / "state.json").read_text())
        theirs = state["train"]["mlp"]
        if theirs != cfg.mlp.to_dict():
            raise InterpError(f"checkpoint in {ckpt} is a {theirs['arch']} model {theirs}, not the requested "
                              f"{cfg.mlp.arch} {cfg.mlp.to_dict()}; use another --out or drop --resume")
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        _load_optimizer(opt, ckpt / "optimizer.safetensors")
        start = int(state["step"])
        log.info("resumed from %s at step %d", ckpt, start)
    elif (out / "cfg.json").exists():
        other = read_cfg(out)
        if other["mlp"] != cfg.mlp.to_dict():
            raise InterpError(f"{out} holds a {other['mlp']['arch']} model; pick another --out")

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    t0, n_tok = time.perf_counter(), 0
    bar = tqdm(range(start, cfg.steps), desc=f"train {cfg.mlp.arch}", initial=start, total=cfg.steps, leave=False)
    for step in bar:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # batch order survives a resume
        idx = torch.randint(len(train_games), (cfg.batch_size,), generator=g)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = lm_loss(model, toks[idx], lens[idx])
        total = loss + _aux_loss(model)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        n_tok += int((lens[idx] - 1).sum())
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(model, opt, step + 1, cfg, ckpt)
        if stop_at is not None and step + 1 >= stop_at and step + 1 < cfg.steps:
            _save_checkpoint(model, opt, step + 1, cfg, ckpt)
            return None
    seconds = time.perf_counter() - t0
    val = validation_loss(model, val_games, n_ctx)
    extra = {"train": _cfg_dict(cfg), "val_loss": val, "steps": cfg.steps,
             "tokens_per_second": n_tok / max(seconds, 1e-9), "active_mlp_params_per_layer": cfg.mlp.active_params()}
    save_chess_model(model, cfg.model, cfg.mlp, out, extra=extra)  # replaces out/, checkpoint included
    log.info("%s: val loss %.4f after %d steps (%.0f tokens/s)", cfg.mlp.arch, val, cfg.steps, n_tok / max(seconds, 1e-9))
    return TrainResult(out, val, cfg.steps, start, seconds, n_tok / max(seconds, 1e-9))
