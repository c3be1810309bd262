"""Circuit-discovery benchmark: discrete-sae (the authors' protocol, and this package's earlier
default) vs activation patching, EAP, EAP-IG and ACDC, on IOI, greater-than and docstring, on the
embedded model and the attention-only embedded-attn, scored by MIB's reference-free CPR / CMD and
by node ROC AUC against the stored reference circuits.

    python benchmarks/circuits/run.py run --model embedded       # results/<model>__<task>.json
    python benchmarks/circuits/run.py run --model embedded-attn
    python benchmarks/circuits/run.py table                      # the "circuits" section of benchmarks/README.md
    python benchmarks/circuits/run.py run --model embedded --quick --results /tmp/x   # a smoke run (1 seed, 8 eval pairs, no ACDC)

Seeds: discrete-sae (paper protocol) `--seeds` (10, as the paper); its legacy setup, patching, EAP and
EAP-IG `--other-seeds`; ACDC `--acdc-seeds`. auto-circuit's EAP and ACDC run in their own venv (built by
`autocircuit_env.sh`) and are added afterwards:

    python benchmarks/circuits/run.py peer --model embedded --peer-python /tmp/ac-venv/bin/python

`run` saves the result file after every method run and skips the method / seed pairs it already holds, so the same
command resumes a stopped run (delete the file, or give another --results, for a fresh one). The load average at the
start and end of each run (and of a resumed run) goes to results/<model>__<task>.load.json; the table prints it.

`run` scores no reference (the runs keep every method's node scores); `table` computes node AUC
afterwards against the reference found by content key (`interp.circuits.reference`), beside the
layer-only ranking and the standard deviation of a random ranking's AUC. Paths are relative to
the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import update_section  # noqa: E402
from interp.circuits import metrics as M  # noqa: E402
from interp.circuits.acdc import ACDCConfig  # noqa: E402
from interp.circuits.discrete_sae import DiscreteSAEConfig  # noqa: E402
from interp.circuits.reference import ReferenceCircuit  # noqa: E402
from interp import io  # noqa: E402
from interp.build_attn import EMBEDDED_ATTN_DIR  # noqa: E402
from interp.circuits.run import (CircuitConfig, CircuitResult, MethodRun, add_curves, discovery_pairs, eval_prompts,  # noqa: E402
                                 get_reference, load_named_model, run_circuits)
from interp.circuits.tasks import DISCOVERY_SEED_BASE, check_separates, make_task, task_separation  # noqa: E402
from interp.models import EMBEDDED_DIR  # noqa: E402

log = logging.getLogger("bench.circuits")
RESULTS = Path(__file__).parent / "results"
TASKS = ("ioi", "greater-than", "docstring")
MODELS = ("embedded", "embedded-attn")
CARD_KEY = {"ioi": "ioi_accuracy", "greater-than": "greater_than_prob_diff", "docstring": "docstring_accuracy"}
PAPER = {"ioi": 0.868, "greater-than": 0.855, "docstring": 0.869}  # O'Neill & Bui 2024, node ROC AUC (main_results.json)
ORDER = ("discrete-sae", "discrete-sae-legacy", "patching", "eap", "eap-ig", "acdc", "auto-circuit eap", "auto-circuit acdc")


def result_path(model: str, task: str, root: Path | None = None) -> Path:
    return (root or RESULTS) / f"{model}__{task}.json"


def _save_load(root: Path, model_name: str, task: str, stage: str, load0: float) -> None:
    """Record the load average at the start and end of a stage (results/<model>__<task>.load.json)."""
    path = root / f"{model_name}__{task}.load.json"
    loads = json.loads(path.read_text()) if path.exists() else {}
    loads[stage] = [round(load0, 1), round(os.getloadavg()[0], 1)]
    io.atomic_write_json(path, loads)


def run(model_name: str, seeds: int, other_seeds: int, acdc_seeds: int, n_eval: int, quick: bool, tasks=TASKS,
        root: Path = RESULTS) -> None:
    """discrete-sae (paper protocol) on `seeds` seeds; its legacy setup, patching, EAP and EAP-IG on
    `other_seeds`; our ACDC on `acdc_seeds`. The result file is saved after every method run and a
    method / seed it already holds is not run again, so a stopped run resumes where it stopped."""
    model = load_named_model(model_name)
    for task in tasks:
        load0 = os.getloadavg()[0]
        path = result_path(model_name, task, root)
        cfg = CircuitConfig(seeds=seeds, n_eval=n_eval)
        other = replace(cfg, seeds=max(other_seeds, 1))
        stages = [(m, cfg, m) for m in ["discrete-sae"]]
        if other_seeds:
            stages += [(m, other, m) for m in ("patching", "eap", "eap-ig")]
            stages.append(("discrete-sae", replace(other, sae=DiscreteSAEConfig.legacy()), "discrete-sae-legacy"))
        if acdc_seeds and not quick:
            stages.append(("acdc", replace(cfg, seeds=acdc_seeds, acdc=ACDCConfig(tau=0.01)), "acdc"))
        ran = False
        for method, c, name in stages:
            todo = missing_seeds(path, name, c.seeds)
            if not todo:
                log.info("%s / %s: %s has its %d seeds already", model_name, task, name, c.seeds)
                continue
            ran = True
            if not path.exists():
                empty_result(model, model_name, task, cfg).save(path)

            def save(r: MethodRun, name=name) -> None:
                r.method = name
                res = CircuitResult.load(path)
                res.runs.append(r)
                res.summarize().save(path)

            run_circuits(model_name, task, [method], c, model=model, reference=None, seeds=todo, on_run=save)
        if ran:
            loads = path.with_suffix(".load.json")
            resumed = loads.exists() and "run" in json.loads(loads.read_text())
            _save_load(root, model_name, task, "resumed run" if resumed else "run", load0)
            log.info("wrote %s (load average %.1f -> %.1f)", path, load0, os.getloadavg()[0])


def empty_result(model, model_name: str, task: str, cfg: CircuitConfig) -> CircuitResult:
    """A result file with no runs yet, its header as `run_circuits` makes it (from discrete-sae's fixed prompts)."""
    first = make_task(model, task, n=discovery_pairs("discrete-sae", cfg), seed=DISCOVERY_SEED_BASE, equal_length=cfg.equal_length)
    mp, mn = task_separation(model, first)
    return CircuitResult(model_name, first.name, model.cfg.n_layers, model.cfg.n_heads, mp, mn, check_separates(model, first), None, [])


def missing_seeds(path: Path, method: str, n: int) -> list[int]:
    """Seeds 0..n-1 of `method` the result file at `path` does not hold yet (all if there is no file)."""
    have = {r.seed for r in CircuitResult.load(path).runs if r.method == method} if path.exists() else set()
    return [s for s in range(n) if s not in have]


def peer(model_name: str, python: str, seeds: int, acdc_seeds: int, n_eval: int, tasks=TASKS, root: Path = RESULTS,
         n_prompts: int = 20) -> None:
    """Replace the auto-circuit rows of each task's result file by a fresh peer run on `n_prompts`
    discovery pairs (ours use 20; fewer is recorded in the load file's stage name, which the table prints)."""
    model = load_named_model(model_name)
    for task in tasks:
        load0 = os.getloadavg()[0]
        path = result_path(model_name, task, root)
        res = CircuitResult.load(path)
        rows = peer_runs(model, model_name, task, python, seeds, acdc_seeds, CircuitConfig(n_eval=n_eval, n_prompts=n_prompts))
        if not rows:
            continue
        res.runs = [r for r in res.runs if not r.method.startswith("auto-circuit")] + rows
        res.summarize().save(path)
        _save_load(root, model_name, task, "peer" if n_prompts == 20 else f"peer ({n_prompts} prompt pairs)", load0)


def peer_runs(model, model_name: str, task: str, python: str, seeds: int, acdc_seeds: int, cfg: CircuitConfig) -> list[MethodRun]:
    """auto-circuit's EAP and ACDC (`autocircuit_run.py`, in its own venv) on the same weights and
    discovery prompts (seed DISCOVERY_SEED_BASE + s, equal token counts as auto-circuit batches them),
    as MethodRuns with our CPR / CMD curves of their head scores; [] (with a log line) if it cannot run."""
    if not Path(python).exists():
        log.warning("auto-circuit venv %s missing (build it with benchmarks/circuits/autocircuit_env.sh); peer rows skipped", python)
        return []
    model_dir = EMBEDDED_DIR if model_name == "embedded" else EMBEDDED_ATTN_DIR
    spec = {"model_dir": str(model_dir), "tasks": [], "tau_exps": [-2], "tau_bases": [1]}  # tau = 0.01, as our ACDC
    for s in range(seeds):
        t = make_task(model, task, n=cfg.n_prompts, seed=DISCOVERY_SEED_BASE + s, equal_length=True)
        with torch.no_grad():
            check = model(t.pos_tokens[:1])[0, -1].tolist()
        spec["tasks"].append({"task": task, "seed": s, "reference": [], "clean": t.pos_tokens.tolist(), "corrupt": t.neg_tokens.tolist(),
                              "answers": t.good, "wrong": t.bad, "check_logits": check, "acdc": s < acdc_seeds})
    with tempfile.TemporaryDirectory(prefix="autocircuit_") as work:
        inp, out = Path(work) / "in.json", Path(work) / "out.json"
        inp.write_text(json.dumps(spec))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        # its output (a line per method run, auto-circuit's progress bars) goes straight to ours, so a slow run shows where it is
        proc = subprocess.run([python, str(Path(__file__).parent / "autocircuit_run.py"), str(inp), str(out)], env=env)
        if proc.returncode != 0 or not out.exists():
            log.warning("auto-circuit run failed (exit %d; its output is above)", proc.returncode)
            return []
        rows = json.loads(out.read_text())
    eval_task, eval_src = eval_prompts(model, task, cfg.n_eval)
    nan = float("nan")
    runs = []
    for r in rows:
        run_ = MethodRun(r["method"], r["seed"], r["node_scores"], [], r["seconds"], nan, nan, nan, nan, nan, nan, nan, 0, [])
        runs.append(add_curves(run_, model, eval_task, eval_src, torch.tensor(r["node_scores"])))
        log.info("%s seed %d: CPR %.3f, %.2fs", r["method"], r["seed"], runs[-1].cpr, r["seconds"])
    return runs


def keep_earlier(model_name: str, earlier: Path, label: str, tasks=TASKS, root: Path = RESULTS) -> None:
    """Add to each task's result file the runs of every method it lacks, from an earlier result file
    of the same model and task in `earlier` (same code, prompts and seeds: only the timings were
    measured under another load), and record which methods came from where (`label`)."""
    for task in tasks:
        path, old_path = result_path(model_name, task, root), result_path(model_name, task, earlier)
        if not (path.exists() and old_path.exists()):
            continue
        res, old = CircuitResult.load(path), CircuitResult.load(old_path)
        have = {r.method for r in res.runs}
        added = [r for r in old.runs if r.method not in have]
        if not added:
            continue
        res.runs += added
        res.summarize().save(path)
        load_path = path.with_suffix(".load.json")
        loads = json.loads(load_path.read_text()) if load_path.exists() else {}
        loads["earlier"] = {"methods": sorted({r.method for r in added}), "from": label}
        io.atomic_write_json(load_path, loads)
        log.info("%s / %s: kept %s from %s", model_name, task, loads["earlier"]["methods"], label)


def random_auc_std(n_pos: int, n_neg: int) -> float:
    """Standard deviation of a random ranking's ROC AUC (Mann-Whitney U under H0, no ties)."""
    return math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg)) if n_pos and n_neg else float("nan")


def _fmt(mu: float, sd: float) -> str:
    return "n/a" if math.isnan(mu) else f"{mu:.3f} ± {sd:.3f}"


def table() -> str:
    parts = ["Node-level CPR / CMD: keep the top fraction k/32 of heads by each method's ranking, ablate the rest on held-out "
             "prompt pairs (seed 30000; 24 pairs in the run below), f = (m(C) − m(∅)) / (m(full) − m(∅)); CPR = area under f (higher is "
             "better), CMD = area under |1 − f| (lower is better), trapezoids over the tie-block boundaries (MIB, "
             "Mueller et al. 2025). Resample = negative-prompt activations, mean = mean over negative prompts. Edge CPR: "
             "MIB's edge fractions over the head→head edges a method scores. Node AUC: against the stored reference "
             "(content-keyed), with the layer-only ranking (earlier layers first / later first) and the std of a random "
             "ranking's AUC beside it. Time: discovery wall time per seed (mean ± std), one torch thread; each task's "
             "measured 1-minute load average at the start -> end of its run is printed with it (where it exceeds the core "
             "count, absolute times are inflated and only ratios within one task mean anything). `run` saves the result file after every "
             "method run and skips the method / seed pairs it already holds, so a stopped run resumes. "
             "discrete-sae reads its codes on one fixed prompt set per task (seed 20000): its std covers the SAE "
             "initialisation and the 10 training prompts only; its time after seed 0 reuses the head outputs (seed 0's time "
             "is printed beside it). Seeds differ by method (the `seeds` column): discrete-sae 10, as the paper; the "
             "other methods 10 too (patching, EAP, EAP-IG, the legacy setup); ACDC 3 (1 on docstring: 10 minutes a run); "
             "auto-circuit EAP 3 and ACDC 1. auto-circuit rows: auto-circuit 1.0.1 on transformer-lens 2.18 in its own "
             "venv, same weights (logits checked equal) and discovery prompts (equal token counts), ACDC with KL and "
             "tau 0.01; head score = sum of |EAP| edge scores out of the head, or ACDC's max over them; CPR / CMD are ours, "
             "computed from those head scores."]
    targets: list[str] = []
    for model_name in MODELS:
        model = None
        for task in TASKS:
            path = result_path(model_name, task)
            if not path.exists():
                why = ""
                card = EMBEDDED_ATTN_DIR / "model_card.json"
                if model_name == "embedded-attn" and card.exists():
                    c = json.loads(card.read_text())
                    key = CARD_KEY[task]
                    why = f" Model card: {key} {c[key]:.3f} (target {c['targets'][key]})."
                parts.append(f"\n**{model_name} / {task}**: not run (no {path.relative_to(ROOT)}).{why}")
                continue
            res = CircuitResult.load(path)
            if model is None:
                model = load_named_model(model_name)
            ref: ReferenceCircuit | None = get_reference(model, model_name, task, "stored")
            L, H = res.n_layers, res.n_heads
            layer = torch.arange(L).repeat_interleave(H).view(L, H).float()
            head = f"\n**{model_name} / {task}**: metric {res.full_metric:.3f} (positive) vs {res.negative_metric:.3f} (negative)"
            if ref is not None:
                n_ref = int(ref.mask.sum())
                head += (f"; reference {n_ref} heads (faithfulness {ref.faithfulness:.2f}, stability: mean Jaccard "
                         f"{ref.stability['jaccard_mean']:.2f} over {len(ref.stability['variants'])} search variants) "
                         if ref.stability else f"; reference {n_ref} heads ")
                head += (f"; layer-only AUC {M.roc_auc(-layer, ref.mask):.3f} / {M.roc_auc(layer, ref.mask):.3f}; "
                         f"random-ranking AUC std {random_auc_std(n_ref, L * H - n_ref):.3f}")
                if model_name == "embedded-attn":
                    head += f"; paper's discrete-sae AUC {PAPER[task]:.3f}"
            else:
                head += "; no stored reference (node AUC n/a)"
            load_path = path.with_suffix(".load.json")
            if load_path.exists():
                loads = json.loads(load_path.read_text())
                earlier = loads.pop("earlier", None)
                head += "; load average " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in loads.items())
                if earlier:
                    head += (f"; rows {', '.join(earlier['methods'])} kept from {earlier['from']} (same code, prompts and seeds; "
                             "their times were measured under that run's load)")
            ds0 = [r.seconds for r in res.runs if r.method == "discrete-sae" and r.seed == 0]
            if ds0:
                head += f"; discrete-sae seed-0 time (head outputs included) {ds0[0]:.1f} s"
            if not res.separates:
                head += (". **The metric does not separate positive from negative prompts on this model: there is no "
                         "circuit to find, and the numbers below measure noise.**")
            rows = ["| method | seeds | CPR (resample) | CMD (resample) | CPR (mean) | CMD (mean) | edge CPR | node AUC | time (s) |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for m in ORDER:
                rs = [r for r in res.runs if r.method == m]
                if not rs:
                    continue
                ms = lambda k: M.mean_std([float(getattr(r, k)) for r in rs])  # noqa: E731
                auc = M.mean_std([M.roc_auc(torch.tensor(r.node_scores), ref.mask) for r in rs]) if ref is not None else (math.nan, math.nan)
                rows.append(f"| {m} | {len(rs)} | {_fmt(*ms('cpr'))} | {_fmt(*ms('cmd'))} | {_fmt(*ms('cpr_mean'))} | "
                            f"{_fmt(*ms('cmd_mean'))} | {_fmt(*ms('edge_cpr'))} | {_fmt(*auc)} | {_fmt(*ms('seconds'))} |")
            parts.append(head + "\n\n" + "\n".join(rows))
            targets.append(_targets(model_name, task, res, ref))
    parts.append("\n**Targets** (issue 13): discrete-sae (paper protocol) node AUC >= the paper's on embedded-attn and >= 0.85 on "
                 "IOI and greater-than on embedded; its CPR within 0.05 of the best method's; >= 100x less time than ACDC.\n")
    parts.append("| model | task | dsae seeds | dsae AUC (mean ± std over seeds) | AUC target | dsae mean score per layer | dsae CPR | "
                 "best CPR (method) | CPR gap (target <= 0.05) | ACDC / dsae time (mean; seed 0 with head outputs) | "
                 f"layer-only AUC (target <= {M.LAYER_ONLY_AUC_TARGET}); reference layers |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(t for t in targets if t))
    parts.append(CLAIMS)
    return "\n".join(parts)


def _mean(res: CircuitResult, method: str, key: str) -> float:
    return M.mean_std([float(getattr(r, key)) for r in res.runs if r.method == method])[0]


def _targets(model_name: str, task: str, res: CircuitResult, ref) -> str:
    if not any(r.method == "discrete-sae" for r in res.runs):
        return ""
    ds = [r for r in res.runs if r.method == "discrete-sae"]
    auc, sd = M.mean_std([M.roc_auc(torch.tensor(r.node_scores), ref.mask) for r in ds]) if ref is not None else (math.nan, math.nan)
    goal = PAPER[task] if model_name == "embedded-attn" else (0.85 if task in ("ioi", "greater-than") else math.nan)
    if math.isnan(auc) or math.isnan(goal):
        auc_cell = "n/a (no reference)" if math.isnan(auc) else f"{auc:.3f} ± {sd:.3f}"
        goal_cell = "none" if math.isnan(goal) else f">= {goal:.3f}"
    else:
        auc_cell = f"{auc:.3f} ± {sd:.3f} ({'met' if auc >= goal else f'missed by {goal - auc:.3f}'})"
        goal_cell = f">= {goal:.3f}"
    mean_scores = res.mean_scores("discrete-sae")  # [layer, head], averaged over seeds
    if ref is not None:
        auc_cell += f"; {M.roc_auc(mean_scores, ref.mask):.3f} from the seed-mean scores"
    per_layer = " / ".join(f"{v:.1f}" for v in mean_scores.mean(1).tolist())
    cprs = {m: _mean(res, m, "cpr") for m in dict.fromkeys(r.method for r in res.runs)}
    best = max(cprs, key=lambda m: cprs[m] if not math.isnan(cprs[m]) else -1)
    gap = cprs[best] - cprs["discrete-sae"]
    t_acdc, t_dsae = _mean(res, "acdc", "seconds"), _mean(res, "discrete-sae", "seconds")
    t0 = next(r.seconds for r in res.runs if r.method == "discrete-sae" and r.seed == 0)
    ratio = (f"{t_acdc / t_dsae:.1f}x ({'met' if t_acdc / t_dsae >= 100 else 'missed'}); {t_acdc / t0:.1f}x vs seed 0"
             if not math.isnan(t_acdc) else "ACDC not run")
    t_peer = _mean(res, "auto-circuit acdc", "seconds")
    if not math.isnan(t_peer):
        ratio += f"; auto-circuit ACDC {t_peer / t_dsae:.1f}x"
    return (f"| {model_name} | {task} | {len(ds)} | {auc_cell} | {goal_cell} | {per_layer} | {cprs['discrete-sae']:.3f} | "
            f"{cprs[best]:.3f} ({best}) | {gap:.4f} ({'met' if gap <= 0.05 else f'missed by {gap - 0.05:.4f}'}) | {ratio} | "
            f"{layer_cell(ref)} |")


def layer_cell(ref) -> str:
    """The reference heads' layers and the layer-only ranking's AUC against its target (issue 25)."""
    if ref is None:
        return "n/a (no reference)"
    auc = M.layer_only_auc(ref.mask)
    layers = ", ".join(map(str, M.reference_layers(ref.mask)))
    verdict = "met" if auc <= M.LAYER_ONLY_AUC_TARGET else f"missed by {auc - M.LAYER_ONLY_AUC_TARGET:.3f}"
    return f"{auc:.3f} ({verdict}); layers {layers}"


CLAIMS = """
**What these results overturn, and what they do not.** An earlier version of this section (run of 2026-11-27)
measured discrete-sae with this package's earlier setup (row `discrete-sae-legacy`: codes read only on the 10
training pairs, SAELens' standard SAE with l1 1.0 on rescaled inputs) and argued, from the node AUC of the raw norm of
a head's output difference between positive and negative prompts (0.687 / 0.871 / 0.627 on IOI / greater-than /
docstring), that no discretisation of the head outputs could beat that raw difference. With the authors' protocol
(row `discrete-sae`) the codes beat it on IOI of the embedded model, so that general claim was wrong: read on
250 + 250 prompts, the code count measures how many distinct output patterns a head shows only on positive prompts
(how varied its outputs are there), not how far their mean moves. The legacy setup stays near chance on IOI and greater-than (node AUC 0.49-0.53) and reaches 0.687 on docstring,
where the paper protocol gets 0.676.

**Where the targets stand (10 seeds of discrete-sae, run at load average 2-5).**
- *Node AUC, embedded greater-than: met, barely* (0.857 ± 0.069 against 0.85; the standard error of the 10-seed mean
  is 0.022, so the margin is within noise).
- *Node AUC, embedded IOI: missed by 0.061* (0.789 ± 0.123). The miss is seed-to-seed spread, not a bad mean ranking:
  single seeds range from 0.63 to 0.96 (the SAE initialisation and its 10 training prompts decide which heads get
  positive-only codes), and the scores averaged over the 10 seeds rank the reference heads at 0.884 (the
  "seed-mean scores" figure in the target table). Averaging costs 10 runs, still less than one ACDC run here.
- *Node AUC, embedded-attn greater-than: missed by 0.572* (0.283 ± 0.053, below chance). 4 of the 6 reference heads
  are in layer 0, while discrete-sae's mean score per layer is lowest there (target table): the code count tracks
  how varied a head's outputs are, and this model's layer-0 heads are the least varied, so the method ranks the
  circuit last (ranking later layers first scores about as badly, the layer-only AUC in the header).
- *CPR within 0.05 of the best method: missed everywhere*, by less than 0.001 on embedded greater-than (0.894 vs
  ACDC's 0.944), by 0.097 on IOI (0.765 vs ACDC's 0.913), by 0.207 on docstring (0.388 vs EAP-IG's 0.645) and by
  0.624 on embedded-attn greater-than (0.195 vs ACDC's 0.869). On IOI and greater-than of the embedded model patching, EAP,
  EAP-IG, ACDC and auto-circuit's EAP and ACDC all land within 0.05 of each other.
- *Docstring* (no AUC target on the embedded model): 0.676 ± 0.069, as the quick check of the authors' protocol
  found (about 0.67), against 0.921 for EAP-IG and 0.913 for ACDC.
- *>= 100x less time than ACDC: met only on docstring.* discrete-sae takes 2-4 s per seed (its 500 full-batch
  epochs). Our ACDC takes 597 s on docstring (longer prompts, 14 reference heads: 170x), but 40-49 s on IOI and
  greater-than (12-13x, 3 seeds) and 10 s on embedded-attn (4.6x). auto-circuit's edge-level ACDC (1519 edges, a forward pass
  each) takes 280-324 s, 83-89x discrete-sae's time. On GPT-2 ACDC takes hours, which is where the paper's ratio
  comes from; on these 32-head models 100x against our ACDC would need discrete-sae under 0.5 s.

**Speed.** The old claim that the method takes under a second is overturned. The authors' protocol (500
full-batch epochs, codes on 500 prompts) costs seconds of CPU per run. `benchmarks/circuits/speed.py`
made it 2.4x cheaper in CPU time (7.12 s -> 3.02 s on embedded / IOI, same head outputs, load average 28) with
implementation changes only: hand-written gradients, fused Adam, and vectorised code scores. The protocol's numbers
(epochs, lambda, latents) are unchanged.

**auto-circuit agrees with our baselines.** On the same weights and prompts its EAP ranks the heads as ours does on
both greater-than tasks (node AUC within 0.01) and a little better on IOI (0.973 vs 0.926; 3 and 10 seeds); its ACDC
scores 1.000 on both greater-than tasks and 0.982 on IOI (ours 1.000 / 1.000 / 0.903 ± 0.129, 3 seeds). Its EAP's CPR is within 0.04
of ours everywhere; its ACDC's is lower on greater-than (0.911 vs 0.944 embedded, 0.723 vs 0.869 embedded-attn)
because one tau gives only two head scores (kept / pruned), and CPR's tie blocks then average over the order inside
each block. The earlier session's `peer` stage did not finish in 18 minutes at load
average 20-28; at load 3-5 it takes 1-6 minutes per task, nearly all of it auto-circuit's ACDC (no prompts cut).

**Not run.** The attention-only model has no IOI or docstring behaviour (model card: IOI accuracy 0.445 with a negative
logit difference, docstring 0.03), so those tasks have no circuit to find. Edge CPR can be negative: its empty graph
keeps the MLP and direct paths, and keeping a few head→head edges while resampling the rest can push the metric below
that baseline."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    q = sub.add_parser("peer", help="auto-circuit's EAP and ACDC rows, added to the result files `run` wrote")
    for x in (r, q):
        x.add_argument("--model", choices=MODELS, required=True)
        x.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
        x.add_argument("--n-eval", type=int, default=24)
        x.add_argument("--results", type=Path, default=RESULTS, help="where result files are (a --quick run: give a scratch dir)")
    r.add_argument("--seeds", type=int, default=10, help="seeds of discrete-sae (paper protocol)")
    r.add_argument("--other-seeds", type=int, default=3, help="seeds of discrete-sae-legacy, patching, EAP and EAP-IG (0: skip them; `keep-earlier` can add earlier runs)")
    r.add_argument("--acdc-seeds", type=int, default=1)
    r.add_argument("--quick", action="store_true")
    q.add_argument("--peer-python", default=os.environ.get("AC_VENV", "/tmp/ac-venv") + "/bin/python",
                   help="python of the auto-circuit venv (benchmarks/circuits/autocircuit_env.sh)")
    q.add_argument("--seeds", type=int, default=3, help="seeds of auto-circuit's EAP")
    q.add_argument("--acdc-seeds", type=int, default=1, help="seeds of auto-circuit's ACDC")
    q.add_argument("--n-prompts", type=int, default=20, help="discovery prompt pairs (20 as ours; fewer where its ACDC is too slow)")
    k = sub.add_parser("keep-earlier", help="add the methods a result file lacks from an earlier result file")
    k.add_argument("--model", choices=MODELS, required=True)
    k.add_argument("--earlier", type=Path, required=True, help="directory of the earlier result files")
    k.add_argument("--label", required=True, help="where they came from, e.g. 'the run of commit c93d7e7'")
    k.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    sub.add_parser("table")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    if a.cmd == "run":
        if a.quick:
            a.seeds, a.other_seeds, a.n_eval = 1, 1, 8
        run(a.model, a.seeds, a.other_seeds, a.acdc_seeds, a.n_eval, a.quick, a.tasks, a.results)
    elif a.cmd == "keep-earlier":
        keep_earlier(a.model, a.earlier, a.label, a.tasks)
    elif a.cmd == "peer":
        peer(a.model, a.peer_python, a.seeds, a.acdc_seeds, a.n_eval, a.tasks, a.results, a.n_prompts)
    else:
        body = table()
        update_section("circuits", "## Circuits\n\n" + body)
        print(body)


if __name__ == "__main__":
    main()
