"""Task metrics of any model on corpus-v2 prompts from the seen and the held-out template families.

    OMP_NUM_THREADS=1 python benchmarks/testbed/generalisation.py embedded embedded-attn [--n 200]

How a model does on sentences in frames it was (for v2 builds) or was not trained on: the issue-25
diagnosis (the v1 models' IOI is template memory) and the check of a new build. Models by name
(`interp.circuits.run.load_named_model`) or directory. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--n", type=int, default=200, help="prompts per task and split (seed corpus.HELDOUT_SEED)")
    a = p.parse_args(argv)
    import torch

    from interp import model_card
    from interp.circuits.run import load_named_model
    from interp.data import corpus_v2 as V

    torch.set_num_threads(1)
    for name in a.models:
        m = load_named_model(name)
        out = {sp: {k: round(v, 3) for k, v in model_card.template_metrics(m, a.n, sp).items()} for sp in V.SPLITS}
        print(json.dumps({"model": name, "n": a.n, **out}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
