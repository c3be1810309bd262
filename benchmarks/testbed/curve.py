"""Print a testbed run's learning curve as a markdown table (from its `phase*_evals.jsonl` files).

    python benchmarks/testbed/curve.py $INTERP_HOME/testbed/work/embedded-attn

Steps of phase 2 are counted after phase 1's (`interp.build.learning_curve`); each cell is the
metric on the seen / held-out template families (IOI as accuracy / logit difference).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def table(work: Path) -> str:
    from interp.build import _read_points

    rows = ["| step | phase | IOI seen (acc / ld) | IOI held-out | GT seen | GT held-out | doc seen | doc held-out |",
            "|---|---|---|---|---|---|---|---|"]
    p1 = _read_points(work / "phase1_evals.jsonl")
    offset = json.loads((work / "phase1_ckpt.json").read_text())["config"]["steps"] if (work / "phase1_ckpt.json").exists() else 0
    for tag, pts, off in (("1", p1, 0), ("2", _read_points(work / "phase2_evals.jsonl"), offset)):
        for q in pts:
            s, h = q["seen"], q["heldout"]
            rows.append(f"| {q['step'] + off} | {tag} | {s['ioi_accuracy']:.2f} / {s['ioi_logit_diff']:.2f} | "
                        f"{h['ioi_accuracy']:.2f} / {h['ioi_logit_diff']:.2f} | {s['greater_than_prob_diff']:.2f} | "
                        f"{h['greater_than_prob_diff']:.2f} | {s['docstring_accuracy']:.2f} | {h['docstring_accuracy']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("work", type=Path, help="a model's work directory (ROOT/work/<model>)")
    print(table(p.parse_args(argv).work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
