"""Unlearning benchmark: every embedded concept x {clamp, zero, direction, finetune}, at their best settings.

For each concept the script sweeps each method (same model, same data, same hook), keeps the
setting with the lowest forget accuracy that still keeps retain accuracy >= 0.95 x baseline and
retain loss +<= 5% (`interp.unlearn.evaluation.best_row`), and reports forget / paraphrase /
retain accuracy, retain loss change, KL and wall time. It then checks the issue's targets for
clamp: forget accuracy down >= 80% relative with the retain bars met in every concept, clamp
beating the direction baseline on the Pareto front, two concepts at once, and the held-out
paraphrase check. Results: benchmarks/unlearning/results.json and the "unlearning" section of
benchmarks/README.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/run.py [--sae DIR ...] [--quick]
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
from interp.data.corpus import CATEGORIES  # noqa: E402
from interp.models import load_model  # noqa: E402
from interp.unlearn import UnlearnConfig, builtin_concept, run_unlearning  # noqa: E402
from interp.unlearn.evaluation import pareto  # noqa: E402

OUT = Path(__file__).parent / "results.json"
METHODS = ("clamp", "zero", "direction", "finetune")
PAIRS = (("colors", "animals"), ("sports", "foods"))


def default_saes(model_name: str) -> list[str]:
    """The shipped residual SAE after the last layer (see --sae)."""
    from interp.sae.io import list_saes

    from interp.models import model_id

    infos = [s for s in list_saes(ROOT / "saes") if s.model in (model_id(model_name), model_name) and s.hook_name
             and s.hook_name.endswith("hook_resid_post") and s.hook_head_index is None]
    if not infos:
        raise SystemExit("no residual-stream SAE for this model under saes/; pass --sae DIR")
    # the last residual stream: the concept's answer is formed there (the direction baseline works at
    # the same hook)
    want = max(int(s.hook_name.split(".")[1]) for s in infos)
    topk = [s for s in infos if int(s.hook_name.split(".")[1]) == want]
    return [next((s.path for s in topk if s.arch == "topk"), topk[0].path)]


def configs(quick: bool) -> dict[str, UnlearnConfig]:
    """Each method's sweep. Evaluation uses 120 retain prompts and 16 held-out documents per setting
    (the library defaults are 240 / 32) so the whole benchmark fits in about ten minutes on one core."""
    small = dict(sweep=True, n_retain=120, n_corpus_docs=16)
    if quick:
        return {
            "clamp": UnlearnConfig(method="clamp", n_features_grid=(5, 20), value_grid=(1.0, 2.0), **small),
            "zero": UnlearnConfig(method="zero", n_features_grid=(5, 20), **small),
            "direction": UnlearnConfig(method="direction", value_grid=(1.5, 2.0), **small),
            "finetune": UnlearnConfig(method="finetune", value_grid=(10.0,), **small),
        }
    return {
        "clamp": UnlearnConfig(method="clamp", n_features_grid=(5, 10, 15, 20, 30), value_grid=(1.5, 2.0, 2.5, 3.0, 4.0), **small),
        "zero": UnlearnConfig(method="zero", n_features_grid=(5, 10, 20, 30), **small),
        "direction": UnlearnConfig(method="direction", value_grid=(1.0, 1.5, 2.0, 2.5, 3.0), **small),
        "finetune": UnlearnConfig(method="finetune", value_grid=(10.0, 20.0, 30.0), **small),
    }


def _sae_line(path: str, saes: dict) -> str:
    sae = saes.get(path)
    where = "shipped" if Path(path).resolve().is_relative_to(ROOT / "saes") else "not shipped: trained for this run with interp.sae.train"
    if sae is None:
        return where
    return f"{where}; {sae.cfg.architecture()} d_sae {sae.cfg.d_sae} at {sae.cfg.metadata.hook_name}"


def dominated_share(a_rows, b_rows) -> float:
    """Share of b's Pareto points that some point of a weakly dominates (<= forget, >= retain)."""
    fb = pareto(b_rows)
    hit = sum(any(x.result.forget_acc <= y.result.forget_acc and x.result.retain_acc >= y.result.retain_acc for x in a_rows) for y in fb)
    return hit / max(len(fb), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--sae", nargs="+", help="SAE directories (default: the shipped residual SAE after layer n_layers-2)")
    ap.add_argument("--concepts", nargs="+", default=list(CATEGORIES))
    ap.add_argument("--quick", action="store_true", help="smaller sweeps")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite benchmarks/README.md")
    ap.add_argument("--out", default=str(OUT), help="results JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    t_all = time.perf_counter()
    model = load_model(args.model)
    sae_dirs = args.sae or default_saes(args.model)
    saes: dict = {}
    cfgs = configs(args.quick)
    results, rows_out, reports = {}, [], {}
    for c in args.concepts:
        concept = builtin_concept(c)
        for method in METHODS:
            rep = run_unlearning(model, [concept], sae_dirs, cfgs[method], model_name=args.model, saes=saes)
            reports[(c, method)] = rep
            b, r = rep.base, rep.best.result
            row = {
                "concept": c, "method": method, "setting": f"n={rep.best.n_features} v={rep.best.value:g}" if rep.best.n_features else f"v={rep.best.value:g}",
                "forget_base": b.forget_acc, "forget": r.forget_acc, "forget_drop": 1 - r.forget_acc / b.forget_acc if b.forget_acc else 0.0,
                "paraphrase_base": b.paraphrase_acc, "paraphrase": r.paraphrase_acc,
                "retain_base": b.retain_acc, "retain": r.retain_acc, "retain_ratio": r.retain_acc / b.retain_acc if b.retain_acc else float("nan"),
                "loss_change": r.loss_change, "kl": r.kl, "meets_bar": rep.best_meets_bar, "score": rep.score,
                "seconds": rep.seconds, "n_settings": len(rep.rows),
            }
            rows_out.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        results[c] = {m: reports[(c, m)].to_dict() for m in METHODS}
        for m in METHODS:
            results[c][m].pop("samples", None)

    # targets for clamp
    clamp = [r for r in rows_out if r["method"] == "clamp"]
    target_rows = []
    for r in clamp:
        d = next(x for x in rows_out if x["concept"] == r["concept"] and x["method"] == "direction")
        cr, dr = reports[(r["concept"], "clamp")].rows, reports[(r["concept"], "direction")].rows
        target_rows.append({
            "concept": r["concept"], "forget_drop": r["forget_drop"], "retain_ratio": r["retain_ratio"], "loss_change": r["loss_change"],
            "paraphrase_drop": 1 - r["paraphrase"] / r["paraphrase_base"] if r["paraphrase_base"] else 0.0,
            "met (drop>=0.8, retain>=0.95, loss<=5%)": bool(r["forget_drop"] >= 0.8 and r["meets_bar"]),
            "clamp vs direction forget at bar": f"{r['forget']:.3f} vs {d['forget']:.3f}" + ("" if d["meets_bar"] else " (direction misses bar)"),
            "direction front dominated by clamp": dominated_share(cr, dr),
        })
    pair_rows = []
    for pair in PAIRS:
        if not all(p in args.concepts for p in pair):
            continue
        rep = run_unlearning(model, [builtin_concept(p) for p in pair], sae_dirs, cfgs["clamp"], model_name=args.model, saes=saes)
        b, r = rep.base, rep.best.result
        pair_rows.append({"concepts": "+".join(pair), "setting": f"n={rep.best.n_features} v={rep.best.value:g}", "forget_base": b.forget_acc,
                          "forget": r.forget_acc, "paraphrase": r.paraphrase_acc, "retain_base": b.retain_acc, "retain": r.retain_acc,
                          "retain_ratio": r.retain_acc / b.retain_acc, "loss_change": r.loss_change, "meets_bar": rep.best_meets_bar,
                          "seconds": rep.seconds})
        results["+".join(pair)] = rep.to_dict()
        print(json.dumps(pair_rows[-1]), flush=True)
    wall = time.perf_counter() - t_all

    Path(args.out).write_text(json.dumps({"model": args.model, "saes": sae_dirs, "quick": args.quick, "rows": rows_out, "targets": target_rows,
                               "pairs": pair_rows, "wall_s": wall, "results": results}, indent=1, default=float))
    cols = ["concept", "method", "setting", "forget_base", "forget", "forget_drop", "paraphrase", "retain_base", "retain",
            "retain_ratio", "loss_change", "kl", "meets_bar", "score", "seconds"]
    body = (
        f"`benchmarks/unlearning/run.py{' --quick' if args.quick else ''}`: model `{args.model}`, SAE(s) "
        + ", ".join(f"`{s}` ({_sae_line(s, saes)})" for s in sae_dirs)
        + f". Each method is swept on the same model, data and hook; shown is its best setting (lowest forget accuracy with "
        "retain accuracy >= 0.95 x baseline and retain loss +<= 5%; if none qualifies, the mildest, `meets_bar` False). "
        "Accuracies are argmax next-token on the fact prompts: forget = the concept's templates 0-1 (used for feature "
        "selection), paraphrase = its held-out last template, retain = the other five categories. `loss_change` is the relative "
        "change of next-token loss on held-out corpus text stating none of the forgotten facts; `score` is the SAEBench-style "
        "unlearning score over the method's sweep; `seconds` is wall time of the whole sweep (selection + every setting).\n\n"
        + markdown_table(rows_out, cols)
        + "\n\nTargets for clamp (forget accuracy down >= 80% relative, retain >= 0.95 x baseline, retain loss +<= 5%; "
        "paraphrase check; clamp vs the direction baseline):\n\n" + markdown_table(target_rows)
        + ("\n\nSeveral concepts at once (clamp):\n\n" + markdown_table(pair_rows) if pair_rows else "")
        + f"\n\nTotal wall time {wall:.0f} s."
    )
    if not args.no_readme:
        update_section("unlearning", body)
    print(f"wall {wall:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
