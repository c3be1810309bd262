"""discrete-sae speed, this code vs the code before its speed-up (git commit BEFORE), side by side
in one process on the same head outputs (the forward pass is shared and not timed): the paper SAE's
500 full-batch epochs, codes on 250 + 250 prompts, node and edge scores. Interleaved rounds; the
load average is printed beside the times.

    python benchmarks/circuits/speed.py [--model embedded] [--task ioi] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from interp.circuits import discrete_sae as new  # noqa: E402
from interp.circuits.run import load_named_model  # noqa: E402
from interp.circuits.tasks import DISCOVERY_SEED_BASE, make_task  # noqa: E402

BEFORE = "ddbad8f"  # the last commit before the hand-written gradients and vectorised code scores


def old_modules() -> types.ModuleType:
    """discrete_sae and paper_sae as of BEFORE, loaded under other names."""
    def load(name: str, path: str, replace: tuple[str, str] | None = None) -> types.ModuleType:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:{path}"], capture_output=True, text=True, check=True).stdout
        if replace:
            src = src.replace(*replace)
        mod = types.ModuleType(name)
        mod.__file__ = path
        sys.modules[name] = mod
        exec(compile(src, f"{BEFORE}:{path}", "exec"), mod.__dict__)
        return mod

    load("old_paper_sae", "interp/circuits/paper_sae.py")
    return load("old_discrete_sae", "interp/circuits/discrete_sae.py",
                ("from interp.circuits.paper_sae import train_paper_sae", "from old_paper_sae import train_paper_sae"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded")
    p.add_argument("--task", default="ioi")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(1)
    old = old_modules()
    model = load_named_model(a.model)
    task = make_task(model, a.task, n=250, seed=DISCOVERY_SEED_BASE)
    cache: dict = {}
    new.discrete_sae_scores(model, task, new.DiscreteSAEConfig(steps=1), cache)  # head outputs, shared by both
    out = {"before": [], "now": []}
    for r in range(a.rounds):
        for name, mod in (("before", old), ("now", new)):
            load = os.getloadavg()[0]
            t, c = time.perf_counter(), time.process_time()
            res = mod.discrete_sae_scores(model, task, mod.DiscreteSAEConfig(seed=r), cache)
            out[name].append((time.perf_counter() - t, time.process_time() - c, load))
            print(f"round {r} {name:>6}: wall {out[name][-1][0]:.2f} s, cpu {out[name][-1][1]:.2f} s, load {load:.1f}, "
                  f"node score sum {float(res.node_scores.sum()):.0f}", flush=True)
    b, n = min(x[1] for x in out["before"]), min(x[1] for x in out["now"])
    print(f"{a.model} / {a.task}: best CPU time before {b:.2f} s, now {n:.2f} s: {b / n:.1f}x")


if __name__ == "__main__":
    main()
