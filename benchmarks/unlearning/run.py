"""Unlearning benchmark: the default command on every embedded concept, SAUCE's checks, and the
Pareto fronts of clamp, zero, direction and fine-tuning.

Per concept (same model, SAE, splits and data for every method):

* the default command (`interp unlearn --sae saes/embedded/resid_post_L3_topk --concept C`): the
  setting chosen on the validation split, every number on held-out test prompts: forget,
  paraphrase and adversarial drop, in-domain retain (other concepts), cross-domain retain
  (next-token accuracy on corpus text), corpus-loss change, wall and CPU time;
* each method swept over a small grid on the validation split; its Pareto front (lower forget,
  higher in-domain retain); whether clamp's front dominates direction's (every direction front
  point weakly dominated by a clamp point);
* transfer: the default spec carried to a second SAE of the same hook trained with another seed
  (`saes/embedded/resid_post_L3_topk_seed1`), by matching decoder directions, and the same setting
  re-selected on that SAE.

Then two and three concepts at once with the default command.

The work is split so that it can run as several processes on a shared machine; each part writes
runs/bench_unlearn/<part>.json, and `--report` gathers them into benchmarks/unlearning/results.json
and the "unlearning" section of benchmarks/README.md:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/run.py --concepts colors animals
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/run.py --multi
    .venv/bin/python benchmarks/unlearning/run.py --concepts colors animals --time-cli   # the command as a fresh process
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/run.py --report
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402
CATEGORIES = ("colors", "animals", "sports", "emotions", "materials", "foods")  # interp.data.corpus.CATEGORIES
# interp.unlearn (TransformerLens) is imported only when measuring, so `--report` starts fast

OUT = Path(__file__).parent / "results.json"
PARTS = ROOT / "runs" / "bench_unlearn"
SAE = "saes/embedded/resid_post_L3_topk"  # repo-relative: the default command's SAE
SAE_SEED1 = "saes/embedded/resid_post_L3_topk_seed1"  # same hook and config, training seed 1
MULTI = (("colors", "animals"), ("sports", "foods", "materials"))
FRONTS = {  # each method's grid for the Pareto fronts (every setting measured on the test split); clamp's and
    # direction's are the grids the default search walks (interp.unlearn.pipeline N_FEATURES_GRID x VALUE_GRID; run_concept
    # checks they still agree), so the default command's own setting is on clamp's front and both get their full grid
    "clamp": dict(n_features_grid=(5, 10, 20, 40), value_grid=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0)),
    "zero": dict(n_features_grid=(5, 10, 20, 40)),
    "direction": dict(value_grid=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)),
    "finetune": dict(value_grid=(10.0, 20.0, 30.0)),
}


def _drop(after: float, base: float) -> float:
    return 1 - after / base if base and base == base else float("nan")


def default_row(name: str, rep, wall: float, cpu: float, load: tuple[float, float]) -> dict:
    """The default command's numbers; `load` = the 1-minute load average before and after it ran."""
    b, t = rep.base, rep.test
    return {
        "concept": name, "setting": f"n={rep.best.n_features} v={rep.best.value:g}", "settings_tried": len(rep.rows),
        "forget_base": b.forget_acc, "forget": t.forget_acc, "forget_drop": _drop(t.forget_acc, b.forget_acc),
        "paraphrase_drop": _drop(t.paraphrase_acc, b.paraphrase_acc), "adversarial_base": b.adversarial_acc,
        "adversarial_drop": _drop(t.adversarial_acc, b.adversarial_acc),
        "retain_in": t.retain_acc / b.retain_acc if b.retain_acc else float("nan"),
        "retain_cross": t.corpus_acc / b.corpus_acc if b.corpus_acc else float("nan"),
        "loss_change": t.loss_change, "meets_bar": rep.meets_bar,
        "target_met": bool(rep.meets_bar and _drop(t.forget_acc, b.forget_acc) >= 0.8), "wall_s": wall, "cpu_s": cpu,
        "load_before": load[0], "load_after": load[1],
    }


def dominated_share(a_rows, b_rows) -> float:
    """Share of b's Pareto points that some point of a weakly dominates (<= forget, >= retain)."""
    from interp.unlearn.evaluation import pareto

    fb = pareto(b_rows)
    hit = sum(any(x.result.forget_acc <= y.result.forget_acc and x.result.retain_acc >= y.result.retain_acc for x in a_rows) for y in fb)
    return hit / max(len(fb), 1)


def _timed(fn):
    """fn(), its wall and CPU seconds, and the 1-minute load average before and after."""
    load0, t, c = os.getloadavg()[0], time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c, (load0, os.getloadavg()[0])


def _on_test(rows):
    """Sweep rows with their test-split numbers as `result` (the fronts are drawn on the test split)."""
    from dataclasses import replace

    return [replace(r, result=r.test) for r in rows]


def run_concept(model, name: str, saes: dict, save, done: dict | None = None) -> dict:
    """Stages in order of importance, saved after each (`save(out)`), so a partial run still reports;
    stages already in `done` (an earlier run's part file) are kept, not rerun."""
    from interp.unlearn import UnlearnConfig, UnlearnSpec, builtin_concept, evaluate_spec, run_unlearning
    from interp.unlearn.evaluation import pareto
    from interp.unlearn.pipeline import transfer_spec

    concept = builtin_concept(name)
    out = done or {}
    if "default" not in out:
        rep, wall, cpu, load = _timed(lambda: run_unlearning(model, [concept], [SAE], UnlearnConfig(), saes=saes))
        out = {"default": default_row(name, rep, wall, cpu, load), "default_report": rep.to_dict(), "fronts": {}}
        print(json.dumps(out["default"]), flush=True)
        save(out)
    from interp.unlearn.pipeline import N_FEATURES_GRID, VALUE_GRID

    grids = {m: FRONTS[m] for m in ("clamp", "direction")}
    if grids != {"clamp": dict(n_features_grid=N_FEATURES_GRID, value_grid=VALUE_GRID["clamp"]),
                 "direction": dict(value_grid=VALUE_GRID["direction"])}:
        raise SystemExit("error: FRONTS' clamp / direction grids differ from interp.unlearn.pipeline's; update FRONTS")
    if out.get("front_grids") != json.loads(json.dumps(grids)):  # fronts measured on another grid are measured again
        out.pop("clamp_dominates_direction", None)
    if "clamp_dominates_direction" not in out:
        out["front_grids"] = grids
        rows = {}
        for method in ("clamp", "direction"):
            r = run_unlearning(model, [concept], [SAE], UnlearnConfig(method=method, sweep=True, **FRONTS[method]), saes=saes)
            rows[method] = _on_test(r.rows)
            out["fronts"][method] = [x.flat() for x in pareto(rows[method])]
        out["clamp_dominates_direction"] = dominated_share(rows["clamp"], rows["direction"])
        save(out)
    if "transfer" not in out:  # the default spec carried to the seed-1 SAE
        d = out["default_report"]
        n, v, b = d["best"]["n_features"], d["best"]["value"], d["base"]
        tr = transfer_spec(model, UnlearnSpec(**d["spec"]), SAE_SEED1, [concept], saes=saes)
        matched = evaluate_spec(model, [concept], tr.spec, saes=saes)
        again = run_unlearning(model, [concept], [SAE_SEED1], UnlearnConfig(n_features=n, value=v), saes=saes)
        out["transfer"] = {
            "concept": name, "setting": out["default"]["setting"], "forget_drop_seed0": out["default"]["forget_drop"],
            "matched_cos_mean": sum(tr.cosines) / len(tr.cosines), "matched_forget_drop": _drop(matched.test.forget_acc, b["forget_acc"]),
            "matched_retain_in": matched.test.retain_acc / b["retain_acc"], "matched_loss_change": matched.test.loss_change,
            "reselected_forget_drop": _drop(again.test.forget_acc, again.base.forget_acc),
            "reselected_retain_in": again.test.retain_acc / again.base.retain_acc, "reselected_loss_change": again.test.loss_change,
        }
        print(json.dumps(out["transfer"]), flush=True)
        save(out)
    for method in ("zero", "finetune"):
        if method not in out["fronts"]:
            r = run_unlearning(model, [concept], [SAE], UnlearnConfig(method=method, sweep=True, **FRONTS[method]), saes=saes)
            out["fronts"][method] = [x.flat() for x in pareto(_on_test(r.rows))]
            save(out)
    return out


def time_cli(name: str) -> dict:
    """The default command as a user types it (a fresh `interp unlearn` process: imports, model and SAE
    loading included): wall seconds, the child's CPU seconds, and the load average before and after."""
    import resource
    import subprocess

    cmd = [sys.executable, "-m", "interp", "unlearn", "--sae", SAE, "--concept", name]
    load0, c0 = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall, c1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"command": f"interp unlearn --sae {SAE} --concept {name}", "wall_s": wall,
            "cpu_s": (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime), "load_before": load0, "load_after": os.getloadavg()[0]}


def run_multi(model, saes: dict) -> list[dict]:
    from interp.unlearn import UnlearnConfig, builtin_concept, run_unlearning

    rows = []
    for names in MULTI:
        rep, wall, cpu, load = _timed(lambda: run_unlearning(model, [builtin_concept(n) for n in names], [SAE], UnlearnConfig(), saes=saes))
        rows.append(default_row("+".join(names), rep, wall, cpu, load))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _grids() -> str:
    """FRONTS as words, e.g. "clamp n in {5, 10, 20} x value in {1, 2, 3}"."""
    out, word = [], {"clamp": "multiplier", "direction": "alpha", "finetune": "steps"}
    for m, g in FRONTS.items():
        parts = [f"{'features' if k.startswith('n_') else word[m]} in {{{', '.join(f'{v:g}' for v in vs)}}}" for k, vs in g.items()]
        out.append(f"{m} " + " x ".join(parts))
    return "; ".join(out)


def report() -> None:
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(PARTS.glob("*.json"))}
    concepts = [c for c in CATEGORIES if c in parts]
    default = [parts[c]["default"] for c in concepts]
    fronts = []
    for c in concepts:
        f = parts[c]["fronts"]
        if "clamp_dominates_direction" not in parts[c]:
            continue
        fronts.append({"concept": c, **{f"{m} front (forget, retain)": " ".join(f"({r['forget_acc']:.2f}, {r['retain_acc']:.2f})" for r in f[m])
                                       if m in f else "not run (time)" for m in FRONTS},
                       "clamp dominates direction (share of its front)": parts[c]["clamp_dominates_direction"]})
    transfer = [parts[c]["transfer"] for c in concepts if "transfer" in parts[c]]
    multi = parts.get("multi", {}).get("rows", [])
    cli = [{"concept": c, **parts[c]["cli_time"]} for c in concepts if "cli_time" in parts[c]]
    meta = next(iter(parts.values()))["meta"] if parts else {}
    missing = [c for c in CATEGORIES if c not in parts]
    if not default:
        OUT.write_text(json.dumps({"sae": SAE, "sae_seed1": SAE_SEED1, "status": "not finished", "raw": parts}, indent=1, default=float))
        update_section("unlearning", "`benchmarks/unlearning/run.py` has not finished a concept yet on this machine; no numbers "
                                     "are shown until they come from this script.")
        return
    OUT.write_text(json.dumps({"sae": SAE, "sae_seed1": SAE_SEED1, "meta": meta, "default": default, "cli_time": cli, "fronts": fronts,
                               "transfer": transfer, "multi": multi, "raw": parts}, indent=1, default=float))
    n_met = sum(r["target_met"] for r in default)
    n_dom = sum(r["clamp dominates direction (share of its front)"] >= 1.0 for r in fronts)
    loads = [x for r in default for x in (r.get("load_before"), r.get("load_after")) if x is not None]
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "not recorded"
    body = (
        f"`benchmarks/unlearning/run.py` (parts run as separate processes, then `--report`): model `embedded`, SAE `{SAE}`. "
        f"1-minute load average {load} while the default commands ran ({os.cpu_count()} cores; per row in "
        "`load_before`/`load_after`); where it exceeds the core count `wall_s` is inflated by the load, while `cpu_s` "
        "(process CPU time, one torch thread) is the load-independent cost.\n\n"
        "**The default command** (`interp unlearn --sae saes/embedded/resid_post_L3_topk --concept C`): features chosen on the "
        "selection split (50% of the forget prompts), number of features and clamp multiplier on the validation split (25%) by "
        "the early-stopping search, every number on the held-out test split (25%), the held-out paraphrase template and the "
        "adversarial set (new templates, synonyms, distracting context). Drops are relative to the unmodified model; "
        "`retain_in` = in-domain retain accuracy (other concepts' test prompts) / base, `retain_cross` = next-token accuracy "
        "on held-out corpus text / base; `target_met` = forget drop >= 0.8, retain_in >= 0.95 and corpus loss +<= 5%.\n\n"
        + markdown_table(default)
        + f"\n\nTarget met on {n_met} of {len(default)} concepts"
        + f"; inside one process the default run took {min(r['cpu_s'] for r in default):.0f}-{max(r['cpu_s'] for r in default):.0f} s "
        "of CPU per concept" + (f" (not finished in time: {', '.join(missing)})" if missing else "") + ".\n\n"
        + ("**The default command's time** as a user sees it (`--time-cli`: a fresh `interp unlearn` process per concept, "
           "imports and model/SAE loading included, one at a time; target < 60 s wall):\n\n" + markdown_table(cli)
           + f"\n\nUnder 60 s on {sum(r['wall_s'] < 60 for r in cli)} of {len(cli)} concepts.\n\n" if cli else
           "The default command has not been timed as a fresh process yet (`--time-cli`).\n\n")
        + f"**Pareto fronts** (each method swept over its grid, {_grids()}; every setting measured on the test split; points "
        "are (forget accuracy, in-domain retain accuracy) on the test split). The last column is the share of direction's "
        "front points that some clamp setting weakly dominates.\n\n"
        + (markdown_table(fronts) + f"\n\nClamp's front dominates direction's on {n_dom} of {len(fronts)} concepts.\n\n"
           if fronts else "Not finished in time on the shared machine (the sweeps run after the default command).\n\n")
        + "**Transfer to a second SAE** (`saes/embedded/resid_post_L3_topk_seed1`: the config and recipe of the shipped "
        "`resid_post_L3_topk` it is compared with, training seed 1; `benchmarks/unlearning/build_seed1.py` rebuilds it when "
        "the shipped one is retrained). "
        "`matched`: the default spec with each feature replaced by the seed-1 feature with the closest decoder direction "
        "(mean cosine shown), typical activations re-measured; `reselected`: the same setting (n, multiplier) with features "
        "selected afresh on the seed-1 SAE. Test split.\n\n"
        + (markdown_table(transfer) if transfer else "Not finished in time on the shared machine.")
        + "\n\n**Several concepts at once** (the default command with two and three `--concept`s):\n\n"
        + (markdown_table(multi) if multi else "Not finished in time on the shared machine.")
    )
    update_section("unlearning", body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concepts", nargs="+", default=[], choices=list(CATEGORIES))
    ap.add_argument("--multi", action="store_true", help="two and three concepts at once")
    ap.add_argument("--report", action="store_true", help="gather the parts into results.json and benchmarks/README.md")
    ap.add_argument("--time-cli", action="store_true", help="time the default command of --concepts as fresh processes "
                                                           "(one at a time; run it with nothing else on the machine)")
    ap.add_argument("--fresh", action="store_true", help="rerun every stage (default: keep the stages a concept's part file has)")
    args = ap.parse_args()
    if args.report:
        report()
        return 0
    if args.time_cli:
        PARTS.mkdir(parents=True, exist_ok=True)
        for c in args.concepts:
            part = PARTS / f"{c}.json"
            if not part.is_file():
                raise SystemExit(f"error: no part file for {c}; run --concepts {c} first")
            out = json.loads(part.read_text())
            out["cli_time"] = time_cli(c)
            print(json.dumps(out["cli_time"]), flush=True)
            part.write_text(json.dumps(out, default=float))
        return 0
    import torch

    from interp.models import load_model

    os.chdir(ROOT)  # the SAE paths are repo-relative
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    PARTS.mkdir(parents=True, exist_ok=True)
    meta = {"load_avg_start": os.getloadavg()[0], "torch_threads": torch.get_num_threads()}
    model = load_model("embedded")
    saes: dict = {}
    for c in args.concepts:
        def save(out, c=c):
            out["meta"] = {**meta, "load_avg_now": os.getloadavg()[0]}
            (PARTS / f"{c}.json").write_text(json.dumps(out, default=float))

        part = PARTS / f"{c}.json"
        run_concept(model, c, saes, save, json.loads(part.read_text()) if part.is_file() and not args.fresh else None)
    if args.multi:
        (PARTS / "multi.json").write_text(json.dumps({"rows": run_multi(model, saes), "meta": meta}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
