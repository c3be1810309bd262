"""Feature-selection options for unlearning, measured against the default on the same splits.

Each variant runs the default command's search (setting chosen on validation, numbers on the
held-out test split) with one thing changed: the SAEs features are selected from (residual
stream after layers 1, 2, 3 alone or together, the layer-3 residual plus layer-2 MLP-out), the
forget positions scored ("last" vs "all"), conditional clamping, and the ranking score. Parts run
as separate processes (runs/bench_unlearn_options/<concept>.json); `--report` writes the
"unlearning-options" section of benchmarks/README.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/options.py --concepts emotions
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/options.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402
CATEGORIES = ("colors", "animals", "sports", "emotions", "materials", "foods")  # interp.data.corpus.CATEGORIES
# interp.unlearn (TransformerLens) is imported only when measuring, so `--report` starts fast

PARTS = ROOT / "runs" / "bench_unlearn_options"
S = "saes/embedded/"
DEFAULT = "default (L3 resid, last, contrast)"
VARIANTS = {  # name -> (SAEs, config changes)
    DEFAULT: ([S + "resid_post_L3_topk"], {}),
    "score dir (the old default)": ([S + "resid_post_L3_topk"], {"score": "dir"}),
    "score freq": ([S + "resid_post_L3_topk"], {"score": "freq"}),
    "all positions": ([S + "resid_post_L3_topk"], {"positions": "all"}),
    "conditional": ([S + "resid_post_L3_topk"], {"condition": True}),
    "L2 resid": ([S + "resid_post_L2_topk"], {}),
    "L1+L2+L3 resid": ([S + "resid_post_L1_topk", S + "resid_post_L2_topk", S + "resid_post_L3_topk"], {}),
    "L3 resid + L2 MLP-out": ([S + "resid_post_L3_topk", S + "mlp_out_L2_topk"], {}),
}


def _drop(a: float, b: float) -> float:
    return 1 - a / b if b else float("nan")


def run(concepts: list[str], variants: list[str]) -> None:
    import torch

    from interp.models import load_model
    from interp.unlearn import UnlearnConfig, builtin_concept, run_unlearning

    os.chdir(ROOT)
    torch.set_num_threads(1)
    PARTS.mkdir(parents=True, exist_ok=True)
    model = load_model("embedded")
    saes: dict = {}
    for c in concepts:
        part = PARTS / f"{c}.json"  # rows of other variants from earlier runs are kept
        rows = [r for r in (json.loads(part.read_text()) if part.is_file() else []) if r["variant"] not in variants]
        for name in variants:
            dirs, kw = VARIANTS[name]
            load0, t, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
            rep = run_unlearning(model, [builtin_concept(c)], dirs, UnlearnConfig(**kw), saes=saes)
            b, r = rep.base, rep.test
            rows.append({"concept": c, "variant": name, "setting": f"n={rep.best.n_features} v={rep.best.value:g}",
                         "forget_drop": _drop(r.forget_acc, b.forget_acc), "paraphrase_drop": _drop(r.paraphrase_acc, b.paraphrase_acc),
                         "adversarial_drop": _drop(r.adversarial_acc, b.adversarial_acc), "retain_in": r.retain_acc / b.retain_acc,
                         "loss_change": r.loss_change, "meets_bar": rep.meets_bar,
                         "target_met": bool(rep.meets_bar and _drop(r.forget_acc, b.forget_acc) >= 0.8),
                         "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - cpu,
                         "load": f"{load0:.1f}-{os.getloadavg()[0]:.1f}"})
            print(json.dumps(rows[-1]), flush=True)
            part.write_text(json.dumps(rows, default=float))


def report() -> None:
    rows = [r for p in sorted(PARTS.glob("*.json")) for r in json.loads(p.read_text()) if r["variant"] in VARIANTS]
    main_parts = ROOT / "runs" / "bench_unlearn"  # benchmarks/unlearning/run.py's default rows: the same command
    for c in sorted({r["concept"] for r in rows}):
        f = main_parts / f"{c}.json"
        if f.is_file() and not any(r["concept"] == c and r["variant"] == DEFAULT for r in rows):
            d = json.loads(f.read_text())["default"]
            rows.append({"concept": c, "variant": DEFAULT, "setting": d["setting"], "forget_drop": d["forget_drop"],
                         "paraphrase_drop": d["paraphrase_drop"], "adversarial_drop": d["adversarial_drop"], "retain_in": d["retain_in"],
                         "loss_change": d["loss_change"], "meets_bar": d["meets_bar"], "target_met": d["target_met"],
                         "wall_s": d["wall_s"], "cpu_s": d["cpu_s"],
                         "load": f"{d.get('load_before', float('nan')):.1f}-{d.get('load_after', float('nan')):.1f}"})
    rows.sort(key=lambda r: (r["concept"], list(VARIANTS).index(r["variant"])))
    means = []
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if rs:
            means.append({"variant": v, "concepts": len(rs), "mean forget_drop": sum(r["forget_drop"] for r in rs) / len(rs),
                          "mean adversarial_drop": sum(r["adversarial_drop"] for r in rs) / len(rs),
                          "target met": sum(r["target_met"] for r in rs), "mean cpu_s": sum(r["cpu_s"] for r in rs) / len(rs)})
    body = ("`benchmarks/unlearning/options.py` (then `--report`), on the shared 2-core machine (`load`: the 1-minute load "
            "average before-after each run). Each variant is the default command with one change; setting chosen on validation, "
            "numbers on the held-out test split. Per concept:\n\n"
            + markdown_table(rows) + "\n\nMeans over the concepts run:\n\n" + markdown_table(means))
    update_section("unlearning-options", body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concepts", nargs="+", default=[], choices=list(CATEGORIES))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        report()
    else:
        run(args.concepts, args.variants)
    return 0


if __name__ == "__main__":
    sys.exit(main())
