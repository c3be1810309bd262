"""Train a character-level chess model with dense / Switch / MoE-X MLPs: one top-to-bottom loop.

    train_chess_model(TrainConfig(...), out_dir, resume=False, overwrite=False, device=None) -> TrainResult

Output directory rules (checked before any work starts):

* ``out_dir`` that is a file, or a non-empty directory that is not a chess model directory
  (no cfg.json of ours, no checkpoint manifest of ours): refused;
* a directory holding a checkpoint: needs ``resume`` (continue) or ``overwrite`` (start over);
  a finished model: needs ``overwrite``;
* ``resume`` with nothing to resume, or with a config that differs from the checkpoint's: one line
  naming what differs.

Checkpoints (every `checkpoint_every` steps) go to ``out_dir/checkpoint/step-NNNNNN/`` (model and
AdamW state as safetensors), listed with their sha256 in ``out_dir/checkpoint/manifest.json``;
the last `KEEP` are kept and a resume takes the newest one whose files verify, so a checkpoint
truncated by a crash is skipped. Batch order is a function of (seed, step) and the model has no
dropout, so a resumed run is bit-identical to an uninterrupted one. The finished model replaces
``out_dir`` atomically (cfg.json + model.safetensors, loadable with `load_chess_model`); cfg.json
also records the learning curve (validation loss and legal-move rate every `eval_every` steps).
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
from safetensors.torch import load_file
from tqdm import tqdm

from interp.data.chess import STOI, ChessDataConfig, encode, load_or_generate, read_pgn_lines
from interp.errors import InterpError
from interp.models import full_state_dict, load_full_state_dict
from interp.moex.layer import MoEXConfig
from interp.moex.model import MARKER, ChessModelConfig, build_chess_model, load_chess_model, read_cfg, save_chess_model

log = logging.getLogger(__name__)
PAD = STOI[" "]
KEEP = 2
"""checkpoints kept on disk (the newest that verifies is resumed)"""
CKPT_KIND = "interp-chess-checkpoint"


def _default_mlp() -> MoEXConfig:
    return MoEXConfig("moex", d_model=256, d_mlp=512, n_experts=8, top_k=2)


@dataclass
class TrainConfig:
    mlp: MoEXConfig = field(default_factory=_default_mlp)
    """the MLP of every block"""
    model: ChessModelConfig = field(default_factory=ChessModelConfig)
    """the transformer around it"""
    steps: int = 3000
    """optimizer steps"""
    batch_size: int = 16
    """games per step"""
    lr: float = 1e-3
    """peak AdamW learning rate (linear warmup, cosine decay to 10%)"""
    warmup: int = 100
    """warmup steps"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    n_games: int = 10000
    """training games (they follow the held-out games in the generated sequence)"""
    n_val_games: int = 200
    """held-out games: the first n_val_games of the sequence, the same for every n_games"""
    data_seed: int = 0
    """seed of the generated games"""
    engine: str = "stockfish"
    """stockfish (self-play) or random (weighted-random legal moves); see interp.data.chess"""
    stockfish_nodes: int = 300
    """node limit per Stockfish move"""
    games_file: str | None = None
    """read games from this text file (one PGN string per line) instead of the game store"""
    seed: int = 0
    """seed of initialisation and batch order"""
    checkpoint_every: int = 200
    """steps between checkpoints (0 = only when stopped early)"""
    eval_every: int = 0
    """steps between learning-curve points (val loss + legal-move rate; 0 = only at the end)"""
    upcycle_from: str | None = None
    """a trained dense chess model directory to upcycle the MLPs from"""
    store: str | None = None
    """root of the game stores (default: $INTERP_HOME/chess)"""

    def __post_init__(self):
        from interp.fields import check_types

        if isinstance(self.mlp, dict):
            self.mlp = MoEXConfig(**self.mlp)
        if isinstance(self.model, dict):
            self.model = ChessModelConfig(**self.model)
        check_types(self, "of the training config")
        if self.mlp.d_model != self.model.d_model:
            raise InterpError(f"MLP d_model {self.mlp.d_model} != model d_model {self.model.d_model}")
        if min(self.steps, self.batch_size, self.n_games, self.n_val_games) < 1:
            raise InterpError("steps, batch_size, n_games and n_val_games must be >= 1")
        if min(self.checkpoint_every, self.eval_every, self.warmup) < 0:
            raise InterpError("checkpoint_every, eval_every and warmup must be >= 0")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InterpError(f"lr must be a positive number, got {self.lr}")
        if self.upcycle_from and not self.mlp.is_moe:
            raise InterpError("--upcycle-from needs a switch or moex architecture")

    def data_config(self) -> ChessDataConfig:
        return ChessDataConfig(n_games=self.n_games + self.n_val_games, seed=self.data_seed,
                               max_chars=self.model.n_ctx + 1, engine=self.engine, stockfish_nodes=self.stockfish_nodes)

    def to_dict(self) -> dict:
        return {k: (v.to_dict() if isinstance(v, MoEXConfig) else v) for k, v in asdict(self).items()}


# fields that do not change the trained weights (a resume may change them)
_RESUMABLE = ("checkpoint_every", "eval_every", "store")


def config_diff(ours: dict, theirs: dict) -> list[str]:
    """'field: theirs -> ours' for every field that differs (nested configs flattened)."""
    def flat(d, pre=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{pre}{k}.")
            else:
                out[pre + k] = v
        return out

    a, b = flat(ours), flat(theirs)
    return [f"{k}: {b.get(k, '<absent>')} -> {a.get(k, '<absent>')}" for k in sorted(set(a) | set(b))
            if k not in _RESUMABLE and a.get(k) != b.get(k)]


def split_games(cfg: TrainConfig, workers: int = 1) -> tuple[list[str], list[str]]:
    """(training games, held-out games) for a config: from the game store (generated where missing)
    or from `games_file` (illegal lines skipped and counted; the first `n_val_games` are held out)."""
    if cfg.games_file:
        clean = read_pgn_lines(cfg.games_file)
        games = clean.games
        if len(games) <= cfg.n_val_games:
            raise InterpError(f"{cfg.games_file} has {len(games)} legal games; need more than n_val_games={cfg.n_val_games}")
        return games[cfg.n_val_games:][: cfg.n_games], games[: cfg.n_val_games]
    games = load_or_generate(cfg.data_config(), cfg.store, workers=workers)
    return games[cfg.n_val_games:], games[: cfg.n_val_games]


def games_to_tensor(games: list[str], n_ctx: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[G, n_ctx + 1] token ids, games cut or padded with spaces (padding is masked from the loss)."""
    out = torch.full((len(games), n_ctx + 1), PAD, dtype=torch.long)
    for i, g in enumerate(games):
        ids = encode(g[: n_ctx + 1])
        out[i, : len(ids)] = torch.tensor(ids)
    return out.to(device)


def game_lengths(games: list[str], n_ctx: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.tensor([min(len(g), n_ctx + 1) for g in games], device=device)


def lm_loss(model, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy over real (non-padding) targets."""
    logits = model(tokens[:, :-1])
    target = tokens[:, 1:]
    mask = torch.arange(target.shape[1], device=target.device)[None, :] < (lengths[:, None] - 1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), reduction="none")
    return (ce * mask.reshape(-1)).sum() / mask.sum()


@torch.no_grad()
def validation_loss(model, games: list[str], n_ctx: int, batch_size: int = 32) -> float:
    from interp.device import device_of

    was_training = model.training
    model.eval()
    dev = device_of(model)
    toks = games_to_tensor(games, n_ctx, dev)
    lens = game_lengths(games, n_ctx, dev)
    tot, n = 0.0, 0
    for i in range(0, len(games), batch_size):
        m = (lens[i:i + batch_size] - 1).clamp(min=0).sum().item()
        tot += lm_loss(model, toks[i:i + batch_size], lens[i:i + batch_size]).item() * m
        n += m
    model.train(was_training)
    return tot / max(n, 1)


def _aux_loss(model) -> torch.Tensor:
    return sum(b.mlp.aux_loss for b in model.blocks)


# ---------------------------------------------------------------------------------------------
# checkpoints

def _ckpt_manifest(ckpt: Path) -> dict | None:
    p = ckpt / "manifest.json"
    if not p.is_file():
        return None
    try:
        man = json.loads(p.read_text())
    except (OSError, ValueError):
        raise InterpError(f"{p} is not valid JSON; the checkpoint is damaged (use --overwrite to start over)") from None
    if not isinstance(man, dict) or man.get("kind") != CKPT_KIND:
        raise InterpError(f"{p} is not an interp chess checkpoint manifest")
    _check_manifest(man, p)
    return man


def _check_manifest(man: dict, p: Path) -> None:
    """Every field `train_chess_model` reads, by type: one line naming the field and the file."""
    fix = "the checkpoint is damaged: pass --overwrite to start over"

    def bad(field: str, want: str):
        raise InterpError(f"{p}: field {field} must be {want}; {fix}")

    if not isinstance(man.get("train"), dict):
        bad("train", "an object (the training config)")
    cks = man.get("checkpoints")
    if not isinstance(cks, dict):
        bad("checkpoints", "an object (step -> record)")
    for step, rec in cks.items():
        if not (isinstance(step, str) and step.isdigit()):
            bad(f"checkpoints.{str(step)[:20]}", "keyed by a step number")
        if not isinstance(rec, dict):
            bad(f"checkpoints.{step}", "an object")
        files = rec.get("files")
        if not isinstance(files, dict) or not files or not all(
                isinstance(f, str) and "/" not in f and isinstance(h, str) for f, h in files.items()):
            bad(f"checkpoints.{step}.files", "an object of file name -> sha256")
        if not isinstance(rec.get("curve", []), list):
            bad(f"checkpoints.{step}.curve", "a list")
        secs = rec.get("train_seconds", 0.0)
        if isinstance(secs, bool) or not isinstance(secs, (int, float)):
            bad(f"checkpoints.{step}.train_seconds", "a number")


def _save_checkpoint(model, opt, step: int, cfg: TrainConfig, ckpt: Path, curve: list[dict], seconds: float = 0.0) -> None:
    """`seconds`: training-step wall time up to `step` over all calls (a resume adds to it)."""
    from interp.io import atomic_save_safetensors, atomic_write_json, sha256_file

    d = ckpt / f"step-{step:06d}"
    d.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(full_state_dict(model), d / "model.safetensors")
    st = opt.state_dict()
    flat = {f"{i}.{k}": v.reshape(-1) if v.dim() == 0 else v for i, s in st["state"].items() for k, v in s.items()}
    atomic_save_safetensors(flat, d / "optimizer.safetensors")
    man = _ckpt_manifest(ckpt) or {"kind": CKPT_KIND, "train": cfg.to_dict(), "checkpoints": {}}
    man["train"] = cfg.to_dict()
    man["checkpoints"][str(step)] = {"files": {f: sha256_file(d / f) for f in ("model.safetensors", "optimizer.safetensors")},
                                     "curve": curve, "train_seconds": seconds}
    for old in sorted(man["checkpoints"], key=int)[:-KEEP]:
        del man["checkpoints"][old]
    atomic_write_json(ckpt / "manifest.json", man)  # the manifest lands after the files it lists
    keep = {f"step-{int(s):06d}" for s in man["checkpoints"]}
    for p in ckpt.glob("step-*"):
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def _good_checkpoints(ckpt: Path, man: dict):
    """(step, directory, curve, training seconds so far) of each checkpoint whose files match their
    sha256, newest first."""
    from interp.io import sha256_file

    for step in sorted(man["checkpoints"], key=int, reverse=True):
        rec = man["checkpoints"][step]
        d = ckpt / f"step-{int(step):06d}"
        bad = [f for f, h in rec["files"].items() if not (d / f).is_file() or sha256_file(d / f) != h]
        if not bad:
            yield int(step), d, rec.get("curve", []), rec.get("train_seconds", 0.0)
            continue
        log.warning("checkpoint %s is damaged (%s); trying an older one", d, ", ".join(bad))



def _load_optimizer(opt, path: Path) -> None:
    flat = load_file(str(path))
    st = opt.state_dict()
    state: dict = {}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
    st["state"] = state
    opt.load_state_dict(st)


def check_train_output(out: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> dict | None:
    """Validate `out` before any work (see module docstring); -> the checkpoint manifest to resume, or None."""
    from interp.io import check_output_dir

    if resume and overwrite:
        raise InterpError("--resume and --overwrite exclude each other: continue the checkpoint or start over")
    check_output_dir(out, marker=None, overwrite=True, what="--out")  # file, parent and package checks
    if not out.exists() or not any(out.iterdir()):
        if resume:
            raise InterpError(f"--resume: {out} holds no checkpoint to resume; drop --resume to start a new run")
        return None
    ckpt = out / "checkpoint"
    if overwrite and (ckpt / "manifest.json").is_file():
        return None  # ours, and the user starts over: a damaged manifest never wedges --overwrite
    man = _ckpt_manifest(ckpt)
    finished = (out / MARKER).is_file()
    if finished:
        read_cfg(out)  # one line if cfg.json is damaged or of another kind
    if man is None and not finished:
        raise InterpError(f"--out {out} exists and is not a chess model directory; choose another path (nothing was changed)")
    if overwrite:
        return None
    if man is None:
        what = "--resume: nothing to resume" if resume else "it holds a trained model"
        raise InterpError(f"--out {out}: {what}; pass --overwrite to replace it or choose another path (nothing was changed)")
    steps = sorted(int(s) for s in man["checkpoints"])
    if not resume:
        raise InterpError(f"--out {out} holds a checkpoint at step {steps[-1] if steps else '?'}; pass --resume to continue "
                          "it or --overwrite to start over (nothing was changed)")
    diff = config_diff(cfg.to_dict(), man["train"])
    if diff:
        raise InterpError(f"--resume: the checkpoint in {ckpt} was trained with another config ({'; '.join(diff[:4])}"
                          f"{'; ...' if len(diff) > 4 else ''}); use the same settings or --overwrite")
    return man


class TrainResult(NamedTuple):
    out_dir: Path
    val_loss: float
    steps: int
    resumed_from: int
    train_seconds: float
    """wall time of the training steps of this call (not of the evaluations)"""
    tokens_per_second: float
    tokens: int
    """training tokens seen over the whole run (all calls)"""
    curve: list
    """[{step, val_loss, legal_move_rate, tokens}] learning-curve points"""


def train_chess_model(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False,
                      stop_at: int | None = None, device: str | torch.device | None = None, workers: int = 1,
                      progress=None) -> TrainResult | None:
    """Train, checkpoint, resume; save the final model to `out_dir` (see module docstring).

    `stop_at`: leave after that many steps with a checkpoint (for a later `resume`) and return None.
    `workers`: game-generation processes if the store lacks games. `progress(step, steps)` after each step.
    """
    from interp.device import resolve_device
    from interp.moex.evaluate import legal_move_rate

    out = Path(out_dir)
    man = check_train_output(out, cfg, resume, overwrite)
    dev = resolve_device(device)
    train_games, val_games = split_games(cfg, workers=workers)
    n_ctx = cfg.model.n_ctx
    toks = games_to_tensor(train_games, n_ctx, dev)
    lens = game_lengths(train_games, n_ctx, dev)

    # the model: fresh, upcycled from a dense model, or resumed
    torch.manual_seed(cfg.seed)
    if cfg.upcycle_from:
        from interp.moex.upcycle import upcycle_model

        dense, dense_mcfg, dense_mlp, _ = load_chess_model(cfg.upcycle_from, device="cpu")
        if dense_mlp.is_moe:
            raise InterpError(f"{cfg.upcycle_from} is a {dense_mlp.arch} model; upcycling needs a dense one")
        if asdict(dense_mcfg) | {"seed": 0} != asdict(cfg.model) | {"seed": 0}:
            raise InterpError(f"{cfg.upcycle_from} has model config {asdict(dense_mcfg)}, not {asdict(cfg.model)}")
        model = upcycle_model(dense, cfg.mlp, seed=cfg.seed).to(dev).train()
        model.cfg.device = dev
    else:
        model = build_chess_model(cfg.model, cfg.mlp, device=dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    start, curve, ckpt, secs_before = 0, [], out / "checkpoint", 0.0
    if man is not None:
        for found in _good_checkpoints(ckpt, man):
            start, d, curve, secs_before = found
            try:
                load_full_state_dict(model, load_file(str(d / "model.safetensors"), device=str(dev)))
                _load_optimizer(opt, d / "optimizer.safetensors")
            except Exception as e:  # noqa: BLE001 - files that match their checksums but do not load: the previous one
                log.warning("checkpoint %s does not load (%s); trying an older one", d, str(e).splitlines()[0][:160] if str(e) else type(e).__name__)
                continue
            log.info("resumed from %s at step %d", d, start)
            break
        else:
            raise InterpError(f"--resume: no checkpoint in {ckpt} is intact and loads; use --overwrite to start over")
    elif overwrite and ckpt.exists():
        shutil.rmtree(ckpt)  # the user asked to start over; the finished model (if any) stays until replaced

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    tok_per_step = lambda s: int((lens[_batch(cfg, s, len(train_games))] - 1).sum())  # noqa: E731
    n_tok_before = sum(tok_per_step(s) for s in range(start))
    t0, n_tok, secs = time.perf_counter(), 0, 0.0
    bar = tqdm(range(start, cfg.steps), desc=f"train {cfg.mlp.arch}", initial=start, total=cfg.steps, leave=False)
    for step in bar:
        idx = _batch(cfg, step, len(train_games)).to(dev)
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
        if progress is not None:
            progress(step + 1, cfg.steps)
        done = step + 1
        if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
            secs += time.perf_counter() - t0
            curve.append(_curve_point(model, val_games, n_ctx, done, n_tok_before + n_tok, legal_move_rate))
            log.info("step %d: %s", done, curve[-1])
            t0 = time.perf_counter()
        if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps) or \
                (stop_at is not None and done >= stop_at and done < cfg.steps):
            _save_checkpoint(model, opt, done, cfg, ckpt, curve, secs_before + secs + time.perf_counter() - t0)
        if stop_at is not None and done >= stop_at and done < cfg.steps:
            return None
    secs += time.perf_counter() - t0
    curve.append(_curve_point(model, val_games, n_ctx, cfg.steps, n_tok_before + n_tok, legal_move_rate, final=True))
    val = curve[-1]["val_loss"]
    tps = n_tok / max(secs, 1e-9)
    extra = {"train": cfg.to_dict(), "val_loss": val, "steps": cfg.steps, "tokens": n_tok_before + n_tok,
             "tokens_per_second": tps, "train_seconds": secs_before + secs, "device": str(dev), "curve": curve,
             "active_mlp_params_per_layer": cfg.mlp.active_params()}
    save_chess_model(model, cfg.model, cfg.mlp, out, extra=extra, checked=True)  # replaces out/, checkpoint included
    log.info("%s: val loss %.4f after %d steps (%.0f tokens/s)", cfg.mlp.arch, val, cfg.steps, tps)
    return TrainResult(out, val, cfg.steps, start, secs, tps, n_tok_before + n_tok, curve)


def _batch(cfg: TrainConfig, step: int, n: int) -> torch.Tensor:
    """Game indices of step `step`: a function of (seed, step) only, so a resume replays the same batches."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    return torch.randint(n, (cfg.batch_size,), generator=g)


CURVE_GAMES = 64
"""held-out games per intermediate learning-curve point (the final point uses all of them)"""
CURVE_LEGAL = 100
"""legal-move samples per learning-curve point (at most one per game)"""


def _curve_point(model, val_games, n_ctx, step, tokens, legal_move_rate, final: bool = False) -> dict:
    """Validation loss and legal-move rate (greedy continuation after a random 'N.', one per game)."""
    model.eval()
    games = val_games if final else val_games[:CURVE_GAMES]
    point = {"step": step, "tokens": tokens, "val_loss": validation_loss(model, games, n_ctx),
             "legal_move_rate": legal_move_rate(model, games, n_ctx, n_samples=min(CURVE_LEGAL, len(games))),
             "n_val_games": len(games)}
    model.train()
    return point
