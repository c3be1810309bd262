"""Rebuild everything downstream of the embedded models once new weights are shipped (issue 25).

    python benchmarks/testbed/ship.py --root $INTERP_HOME/testbed          # first: the new weights into interp/
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/testbed/rebuild.py --log $INTERP_HOME/testbed/rebuild
    python benchmarks/testbed/rebuild.py --list                          # the steps and their commands

Steps, in order (each is the repository's own command for that artefact; nothing is re-implemented):

1. ``references``: the shipped reference circuits of both models, every task with a behaviour
   (``python -m interp.circuits.reference``; a task without one is logged and skipped), then their
   layers and layer-only AUC into both model cards (``card_refs.py``);
2. ``saes``: the shipped SAEs of ``embedded`` and their README (``python -m interp.sae.build``);
3. ``sae-seed1``: the unlearning transfer check's second SAE (``benchmarks/unlearning/build_seed1.py``);
4. ``features``: feature statistics and labels next to every shipped SAE (``interp features``);
5. ``circuits``: the circuits benchmark, 10 seeds of every method (ACDC included), both models, then
   the auto-circuit peer (when its venv exists, ``$AC_VENV``) and the table in benchmarks/README.md;
   the earlier models' result files are moved to LOG/old-circuits-results/ first;
6. ``unlearning``: the unlearning benchmark on the 6 concepts, multi-concept, report (``--fresh``);
7. ``moex-lm``: the MoE-X language-model rows (``benchmarks/moex/run.py --lm-only``; re-rendering the
   moex table also needs the chess models of that benchmark's root, see the note printed).

Every step logs to LOG/<step>.log and, when it finishes, writes LOG/<step>.done holding the shipped
weights' hashes: a rerun skips steps done for the same weights, so the same command resumes.
`--quick` runs every step at toy size (`train.py --quick`'s models) and is meant for a scratch
copy of the repository (`--repo`), which is how it is tested; `--steps` picks steps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("references", "saes", "sae-seed1", "features", "circuits", "unlearning", "moex-lm")
CONCEPTS = ("colors", "animals", "sports", "emotions", "materials", "foods")
QUICK_SAES = """
from dataclasses import replace
from interp.models import load_model
from interp.sae.build import ShippedSpec, build_default_saes, shipped_configs
from interp.sae.train import train_saes
spec = ShippedSpec(tokens=8192, act_tokens=16384, longer={})
build_default_saes(spec=spec, only=['resid_post_L3_topk', 'resid_post_L1_topk'])
m = load_model('embedded')
c = replace(shipped_configs(m.cfg.n_layers, m.cfg.d_model, 'embedded', spec)['resid_post_L3_topk'], seed=1)
train_saes([c], ['saes/embedded/resid_post_L3_topk_seed1'], acts_dir='runs/acts/seed1-quick', act_tokens=spec.act_tokens,
           eval_tokens=spec.eval_tokens, model=m, overwrite=True)
"""


def weights_key(repo: Path) -> dict:
    """sha256 of each shipped embedded model's weights: the state every step is done for."""
    out = {}
    for d in ("interp/embedded", "interp/embedded_attn"):
        for f in sorted((repo / d).glob("*.safetensors")):
            out[f"{d}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return out


def commands(step: str, repo: Path, quick: bool, log_dir: Path) -> list[list[str]]:
    """The commands of one step, run in `repo` (computed when the step starts: `features` lists the SAEs then)."""
    py = sys.executable
    if step == "references":
        return [[py, "-m", "interp.circuits.reference"] + (["--sets", "1", "--orders", "1"] if quick else []),
                [py, "benchmarks/testbed/card_refs.py"]]
    if step == "saes":
        if quick:  # toy sizes, and only the SAEs the unlearning benchmark names (its seed-1 copy too)
            return [[py, "-c", QUICK_SAES]]
        return [[py, "-m", "interp.sae.build"]]
    if step == "sae-seed1":
        return [] if quick else [[py, "benchmarks/unlearning/build_seed1.py"]]  # full size only (no size flags)
    if step == "features":
        dirs = sorted(p.parent for p in (repo / "saes" / "embedded").glob("*/sae_weights.safetensors"))
        if quick:
            dirs = [repo / "saes" / "embedded" / "resid_post_L3_topk"]  # the one the quick `saes` step rebuilt
        tokens = "2048" if quick else "100000"
        return [[py, "-m", "interp", "features", "--sae", str(d.relative_to(repo)), "--tokens", tokens, "--threads", "1"]
                for d in dirs]
    if step == "circuits":
        bench = "benchmarks/circuits/run.py"
        if quick:
            res = str(log_dir / "quick-circuits")
            return [[py, bench, "run", "--model", m, "--quick", "--tasks", "ioi", "--results", res] for m in ("embedded", "embedded-attn")]
        runs = [[py, bench, "run", "--model", m, "--seeds", "10", "--other-seeds", "10", "--acdc-seeds", "10"]
                for m in ("embedded", "embedded-attn")]
        peer_py = os.environ.get("AC_VENV", "/tmp/ac-venv") + "/bin/python"
        peers = [[py, bench, "peer", "--model", m, "--peer-python", peer_py] for m in ("embedded", "embedded-attn")] \
            if Path(peer_py).exists() else []
        return runs + peers + [[py, bench, "table"]]
    if step == "unlearning":
        bench = "benchmarks/unlearning/run.py"
        if quick:  # a toy model recalls no facts, and the benchmark refuses a concept with nothing to forget
            return []
        return [[py, bench, "--concepts", *CONCEPTS, "--fresh"], [py, bench, "--multi"], [py, bench, "--report"]]
    if step == "moex-lm":
        if quick:
            return [[py, "benchmarks/moex/run.py", "--scale", "tiny", "--seeds", "1", "--lm-only", "--lm-steps", "2",
                     "--lm-sae-steps", "2", "--root", str(log_dir / "quick-moex")]]
        return [[py, "benchmarks/moex/run.py", "--scale", "cpu", "--seeds", "3", "--lm-only"]]
    raise ValueError(step)


def before(step: str, repo: Path, quick: bool, log_dir: Path) -> None:
    """Move the earlier models' circuits results aside (the benchmark resumes from any file it finds)."""
    if step == "circuits" and not quick:
        old = repo / "benchmarks" / "circuits" / "results"
        keep = log_dir / "old-circuits-results" / time.strftime("%Y%m%d-%H%M%S")
        files = [f for f in old.glob("*.json")] if old.is_dir() else []
        if files:
            keep.mkdir(parents=True)
            for f in files:
                shutil.move(str(f), str(keep / f.name))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", type=Path, default=ROOT, help="the checkout to rebuild (default: this one)")
    p.add_argument("--log", type=Path, default=Path(os.environ.get("INTERP_HOME") or Path.home() / ".cache" / "interp") / "testbed" / "rebuild", help="logs and done markers")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    p.add_argument("--quick", action="store_true", help="toy sizes, for a scratch copy of the repository")
    p.add_argument("--list", action="store_true", help="print the steps' commands and stop")
    a = p.parse_args(argv)
    repo, log_dir = a.repo.resolve(), a.log.resolve()
    if a.quick and (repo / ".git").exists():
        print("error: --quick writes toy artefacts; give --repo a scratch copy of the repository (not a git checkout)",
              file=sys.stderr)
        return 2
    key = weights_key(repo)
    if len(key) < 2:
        print(f"error: {repo} has no shipped embedded / embedded-attn weights", file=sys.stderr)
        return 2
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "TQDM_MININTERVAL": "60"}
    for step in a.steps:
        if a.list:
            for c in commands(step, repo, a.quick, log_dir):
                print(f"{step}: {' '.join(c)}")
            continue
        done = log_dir / f"{step}.done"
        if done.is_file() and json.loads(done.read_text()).get("weights") == key:
            print(f"{step}: done for these weights; skipping", flush=True)
            continue
        before(step, repo, a.quick, log_dir)
        t0 = time.time()
        with open(log_dir / f"{step}.log", "a") as log:
            for c in commands(step, repo, a.quick, log_dir):
                log.write(f"\n$ {' '.join(c)}\n")
                log.flush()
                rc = subprocess.run(c, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
                if rc != 0:
                    print(f"error: step {step} failed (exit {rc}) at: {' '.join(c)}; see {log_dir / (step + '.log')}",
                          file=sys.stderr)
                    return 1
        done.write_text(json.dumps({"weights": key, "seconds": round(time.time() - t0, 1)}))
        print(f"{step}: done in {time.time() - t0:.0f} s", flush=True)
    if not a.list and "moex-lm" in a.steps and not a.quick:
        print("moex-lm: the language-model rows are cached under runs/moex-bench-cpu/seed*/; re-render the moex table "
              "with `benchmarks/moex/run.py --scale cpu --no-train` where that root holds the chess models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
