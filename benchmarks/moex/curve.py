"""The learning curve of one chess-model training run, from its checkpoints: how the legal-move
rate and validation loss move with steps (for a run that has not finished, or a CPU run cut short).

    OMP_NUM_THREADS=1 python benchmarks/moex/curve.py runs/moex-cpu/dense-gelu [--legal 100] [--no-readme]
    python benchmarks/moex/curve.py runs/moex-long/dense-gelu --recorded   # the points its training recorded (--eval-every)

The `moex-curve` table comes from the second form, after (the cpu-short dense-GELU, 10x the steps, on 8,000 games):

    interp moex train --data chess --arch dense-gelu --d-mlp 512 --layers 4 --d-model 256 --heads 8 --n-ctx 256 \
        --steps 600 --batch-size 8 --lr 2e-3 --warmup 3 --games 8000 --val-games 200 --eval-every 150 \
        --checkpoint-every 50 --seed 0 --out runs/moex-long/dense-gelu

Scores every checkpoint kept in RUN/checkpoint/ (and the finished model, if there) on the run's own
held-out games (the first n_val_games of its game store), writes benchmarks/moex/curve.json and the
"moex-curve" section of benchmarks/README.md. Random play's legal-move rate for comparison: a random
character string is almost never a legal move; a model that only learned the move-text format
reaches about 0.05-0.2 (the shipped 2-layer models: 0.2).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402
from benchmarks.moex.run import curve_points  # noqa: E402
from interp.errors import InterpError  # noqa: E402
from interp.moex.evaluate import legal_move_rate  # noqa: E402
from interp.moex.model import build_chess_model, configs_from, read_cfg  # noqa: E402
from interp.moex.train import TrainConfig, split_games, validation_loss  # noqa: E402


def checkpoints(run: Path) -> list[tuple[int, Path, dict]]:
    """(step, weights file or None for the initialisation, train config dict): step 0, every checkpoint, the finished model."""
    out = []
    man = run / "checkpoint" / "manifest.json"
    if man.is_file():
        m = json.loads(man.read_text())
        for step in sorted(m["checkpoints"], key=int):
            out.append((int(step), run / "checkpoint" / f"step-{int(step):06d}" / "model.safetensors", m["train"]))
    if (run / "cfg.json").is_file():
        cfg = read_cfg(run)
        out.append((int(cfg["steps"]), run / "model.safetensors", cfg["train"]))
    if not out:
        raise InterpError(f"{run} has no checkpoint and no finished model")
    return [(0, None, out[0][2])] + out  # step 0: the initialisation, rebuilt from the run's seeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a `interp moex train --out` directory")
    ap.add_argument("--legal", type=int, default=100, help="held-out games sampled for the legal-move rate")
    ap.add_argument("--recorded", action="store_true",
                    help="table the learning-curve points the training recorded (`--eval-every`) instead of re-scoring checkpoints")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    from safetensors.torch import load_file

    run = Path(args.run)
    rows = []
    if args.recorded:
        if not (run / "cfg.json").is_file():
            raise SystemExit(f"error: {run} has not finished training (no cfg.json); leave out --recorded to score its checkpoints")
        cfg = read_cfg(run)
        rows = curve_points(cfg, legal="legal-move rate")
        tcfg = TrainConfig(**{k: v for k, v in cfg["train"].items() if k in TrainConfig.__dataclass_fields__})
        mcfg, _ = configs_from({"model": cfg["train"]["model"], "mlp": cfg["train"]["mlp"]}, run)
    for step, weights, train in [] if args.recorded else checkpoints(run):
        tcfg = TrainConfig(**{k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__})
        mcfg, mlp = configs_from({"model": train["model"], "mlp": train["mlp"]}, run)
        model = build_chess_model(mcfg, mlp, device="cpu")
        if weights is not None:
            model.load_state_dict(load_file(str(weights)), strict=False)
        model.eval()
        _, val = split_games(tcfg)
        t0 = time.perf_counter()
        rows.append({"step": step, "tokens": step * tcfg.batch_size * mcfg.n_ctx,
                     "val loss": validation_loss(model, val[: args.legal], mcfg.n_ctx),
                     "legal-move rate": legal_move_rate(model, val, mcfg.n_ctx, n_samples=args.legal),
                     "held-out games": min(args.legal, len(val)), "eval s": time.perf_counter() - t0})
        logging.info("%s", rows[-1])
    note = (f"`{run.as_posix()}`: {tcfg.mlp.arch}, {mcfg.n_layers} layers, d_model {mcfg.d_model}, n_ctx {mcfg.n_ctx}, "
            f"{tcfg.n_games} {tcfg.engine} training games, batch {tcfg.batch_size}, lr {tcfg.lr}, planned {tcfg.steps} steps. "
            + ("tokens: as the training counted them (padding excluded). " if args.recorded else
               "tokens = steps x batch x n_ctx (an upper bound: padding is masked). ") + "Legal-move rate: the greedy continuation "
            "after a random move number of each held-out game parses as a legal move."
            + (f" Points recorded during training (train time {cfg.get('train_seconds', 0):.0f} s on {cfg.get('device')})." if args.recorded else ""))
    body = "\n\n".join(["### MoE-X chess: learning curve of one run", note, markdown_table(rows)])
    from interp.io import atomic_write_json

    atomic_write_json(ROOT / "benchmarks" / "moex" / "curve.json", {"run": run.as_posix(), "rows": rows, "note": note})
    if not args.no_readme:
        update_section("moex-curve", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
