"""Train the corpus-v2 testbed models of issue 25 (`embedded-attn`, then `embedded`), resumably.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/testbed/train.py --root $INTERP_HOME/testbed

runs both builds in one process on one torch thread: `AttnBuildConfig.testbed()` then
`BuildConfig.testbed()`. Work (checkpoints every 100 steps, learning-curve points in
`<work>/phase*_evals.jsonl`, tokenizer) goes to `ROOT/work/{embedded-attn,embedded}` and the
finished models (weights, tokenizer, model_card.json) to `ROOT/out/{embedded-attn,embedded}`.
Rerunning the same command resumes from the last checkpoint; a finished model is skipped.
It never writes into interp/ (the shipped models are replaced by `ship.py` once a run is judged).
`--quick` runs the tiny configs (a smoke test of the whole path, about a minute).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from interp.build import BuildConfig, train_embedded_model
from interp.build_attn import AttnBuildConfig, train_attn_model

log = logging.getLogger("testbed")
MODELS = ("embedded-attn", "embedded")


def configs(quick: bool) -> dict:
    if quick:
        # 4 layers, as the real models: the downstream benchmarks name layer-3 SAEs
        return {"embedded-attn": dataclasses.replace(AttnBuildConfig.quick(), corpus="v2", n_layers=4, eval_every=20, eval_curve_n=8),
                "embedded": dataclasses.replace(BuildConfig.quick(), corpus="v2", n_layers=4, eval_every=60, eval_curve_n=8)}
    return {"embedded-attn": AttnBuildConfig.testbed(), "embedded": BuildConfig.testbed()}


def take_lock(path: Path) -> bool:
    """Hold `path` (our pid in it) so two trainings never write the same checkpoints; a lock whose
    process is gone is taken over. False when a live process holds it."""
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        if pid != os.getpid():
            return False
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    except PermissionError:  # alive, another user's
        return False
    path.write_text(f"{os.getpid()}\n")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(Path(os.environ.get("INTERP_HOME") or Path.home() / ".cache" / "interp") / "testbed"), help="work and output root (outside the repo)")
    p.add_argument("--only", choices=MODELS, action="append", help="train only this model (repeatable)")
    p.add_argument("--quick", action="store_true", help="the tiny configs, for a smoke test")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(a.threads)
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    if not take_lock(root / "train.lock"):
        print(f"error: another train.py (pid {(root / 'train.lock').read_text().strip()}) is training in {root}", file=sys.stderr)
        return 2
    cfgs = configs(a.quick)
    for name in a.only or MODELS:
        out = root / "out" / name
        if (out / "model_card.json").exists() and json.loads((out / "model_card.json").read_text()).get("build") == dataclasses.asdict(cfgs[name]):
            log.info("%s: already built in %s; skipping", name, out)
            continue
        t0 = time.time()
        train = train_attn_model if name == "embedded-attn" else train_embedded_model
        _, card = train(cfgs[name], out_dir=out, work_dir=root / "work" / name)
        log.info("%s: built in %.0f s -> %s; %s", name, time.time() - t0, out, card["target_line"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
