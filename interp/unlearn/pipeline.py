"""One call from concept(s) + SAEs to a forget/retain report.

Each concept is split three ways (`concepts.split_concept`, by prompt or by fact): features are selected on the
*selection* part, the setting (features per SAE, strength) is chosen on the *validation* part, and
every reported number comes from the held-out *test* part (plus the held-out paraphrase and
adversarial prompts). The setting is chosen by an early-stopping search (`search`), not a full grid:

    for n in n_features_grid (ascending):
        raise the strength through value_grid until the validation bar breaks (stronger only
        hurts more) or the answers' mean probability falls below 1%;
    stop when more features no longer make the best setting forget more
    (`evaluation.forget_key`: forget accuracy, then the answers' mean probability).

The validation bar is a little stricter than the reported one (retain >= 0.97 x base, loss +<= 4%,
`UnlearnConfig.val_retain_bar` / `val_loss_bar`) so that the chosen setting keeps a margin on the
test part. `n_features` / `value` fix either knob by hand; `sweep` runs the whole grid (Pareto
fronts), still choosing on validation.

    report = run_unlearning(model, [builtin_concept("colors")], ["saes/embedded/resid_post_L3_topk"])
    report.test.forget_acc, report.meets_bar, report.spec.save("colors.json")
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from transformer_lens.model_bridge import TransformerBridge

from interp.data.corpus import HELDOUT_SEED
from interp.errors import InterpError
from interp.io import atomic_write_json, check_parent_writable, json_safe
from interp.progress import Progress, ProgressFn
from interp.sae.io import sae_hook
from interp.unlearn import evaluation as E
from interp.unlearn import saes as S
from interp.unlearn.baselines import FinetuneConfig, finetune_unlearn, mean_difference_direction, project_out
from interp.unlearn.concepts import SPLIT_BY, Concept, Splits, merge_concepts, retain_corpus, split_concept, thin_retain
from interp.unlearn.edit import FeatureEdit, UnlearnSpec, apply_spec, merge_specs
from interp.unlearn.select import SelectConfig, Selection, detector_features, feature_stats, select_features

log = logging.getLogger(__name__)

ALL_METHODS = ("clamp", "zero", "scale", "direction", "finetune")
SAE_METHODS = ("clamp", "zero", "scale")
FIT_SEED = HELDOUT_SEED + 2  # corpus documents methods fit on (selection, direction, fine-tuning)
VAL_SEED = HELDOUT_SEED + 3  # corpus documents the setting is chosen on; the test part uses retain_corpus' default seed
N_FEATURES_GRID = (5, 10, 20, 40)
VALUE_GRID = {  # ascending strength: the search stops at the first value that breaks the bar
    "clamp": (1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    "zero": (0.0,),
    "scale": (0.0, -1.0, -2.0, -4.0),
    "direction": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0),
    "finetune": (5.0, 10.0, 20.0, 30.0, 40.0),
}



@dataclass
class UnlearnConfig:
    """What `run_unlearning` does (module docstring)."""

    method: str = "clamp"  # clamp | zero | scale (SAE features) | direction | finetune (baselines)
    n_features: int | None = None  # features per SAE and concept; None: chosen on the validation split
    value: float | None = None  # clamp multiplier / scale factor / direction alpha / finetune steps; None: chosen
    sweep: bool = False  # evaluate every grid setting instead of the early-stopping search
    test_every_setting: bool = True  # sweep: also measure every setting on the test part (for test-split Pareto fronts)
    n_features_grid: tuple[int, ...] = N_FEATURES_GRID  # candidate features per SAE (ascending)
    value_grid: tuple[float, ...] | None = None  # candidate strengths (ascending); None: VALUE_GRID[method]
    retain_threshold: float = 0.2  # feature selection: max firing frequency on retain tokens
    score: str = "contrast"  # feature selection ranking (see interp.unlearn.select)
    positions: str = "last"  # forget-prompt tokens counted in selection: "last" or "all"
    condition: bool = False  # edit only at positions where the concept's detector features fire
    n_detectors: int = 10  # conditional edits: detector features per SAE and concept
    n_corpus_docs: int = 32  # held-out corpus documents for the test part's retain loss, KL and corpus accuracy
    n_val_docs: int = 32  # corpus documents for the validation part (fewer made the loss bar too noisy to hold on test)
    n_retain: int = 0  # retain prompts per part (an even spread; 0: all)
    n_samples: int = 3  # forget prompts shown with greedy completions before/after (plus 2 retain)
    finetune_lr: float = 2e-4  # finetune baseline: Adam learning rate
    split_seed: int = 0  # which prompts go to selection / validation / test
    split_by: str = "prompt"  # "prompt" or "fact" (test asks only about facts never seen; see concepts.split_concept)
    val_retain_bar: float = 0.97  # validation: retain accuracy >= this x base (reported bar: 0.95)
    val_loss_bar: float = 0.04  # validation: retain loss up by <= this (reported bar: 0.05)
    min_base_acc: float = 0.5  # refuse a concept the model answers less often than this (nothing to forget)

    def __post_init__(self):
        if self.method not in ALL_METHODS:
            raise InterpError(f"unknown method {self.method!r}; use one of {', '.join(ALL_METHODS)}")
        if self.n_features is not None and self.n_features < 1:
            raise InterpError("n_features must be at least 1")
        SelectConfig(self.n_features or 1, self.retain_threshold, self.score, self.positions)  # same checks
        if self.method == "finetune" and self.value is not None and self.value < 1:
            raise InterpError("finetune: value is a number of steps, at least 1")
        if self.value is not None and self.value != self.value:
            raise InterpError("value must be a number, not nan")
        if not self.n_features_grid or any(n < 1 for n in self.n_features_grid):
            raise InterpError("n_features_grid needs at least one positive number of features")
        if self.value_grid is not None and not self.value_grid:
            raise InterpError("value_grid is empty")
        if self.n_detectors < 1 or self.n_corpus_docs < 1 or self.n_val_docs < 1 or self.n_retain < 0:
            raise InterpError("n_detectors, n_corpus_docs and n_val_docs must be >= 1, n_retain >= 0")
        if not 0 < self.val_retain_bar <= 1 or not 0 <= self.val_loss_bar:
            raise InterpError("val_retain_bar must lie in (0, 1] and val_loss_bar be >= 0")
        if self.split_by not in SPLIT_BY:
            raise InterpError(f"unknown split {self.split_by!r}; use one of {', '.join(SPLIT_BY)}")
        if not 0 <= self.min_base_acc <= 1:  # an accuracy: checked here, before any model is evaluated
            raise InterpError(f"min_base_acc {self.min_base_acc:g}: must lie in [0, 1] (it is an accuracy)")
        if self.condition and self.method not in SAE_METHODS:
            raise InterpError(f"condition applies to SAE methods ({', '.join(SAE_METHODS)}), not {self.method!r}")

    @property
    def sae_method(self) -> bool:
        return self.method in SAE_METHODS

    @property
    def search(self) -> str:
        """"fixed" (one setting), "sweep" (whole grid) or "auto" (early-stopping search)."""
        if self.sweep:
            return "sweep"
        fixed_n = self.n_features is not None or not self.sae_method
        fixed_v = self.value is not None or self.method == "zero"
        return "fixed" if fixed_n and fixed_v else "auto"

    def ns(self) -> tuple[int, ...]:
        if not self.sae_method:
            return (0,)
        return (self.n_features,) if self.n_features is not None and not self.sweep else tuple(self.n_features_grid)

    def values(self) -> tuple[float, ...]:
        if self.value is not None and not self.sweep:
            return (float(self.value),)
        return tuple(self.value_grid or VALUE_GRID[self.method])


@dataclass
class UnlearnReport:
    """Everything one unlearning run measured. `best.result` holds validation numbers; `test`
    (the same setting on the held-out test part) is what to report."""

    concept: str  # e.g. "colors" or "colors+animals"
    method: str
    search: str  # auto | fixed | sweep
    base: E.EvalResult  # the unmodified model on the test part
    test: E.EvalResult  # the chosen setting on the test part
    meets_bar: bool  # on test: retain accuracy >= 0.95 x base and retain loss +<= 5%
    val_base: E.EvalResult  # the unmodified model on the validation part
    rows: list[E.SweepRow]  # every setting tried (validation numbers; `.test` too when swept)
    best: E.SweepRow  # the chosen setting
    val_meets_bar: bool  # the chosen setting met the (stricter) validation bar
    score: float  # SAEBench-style unlearning score over `rows` (test numbers where present)
    pareto: list[E.SweepRow]
    split_sizes: dict = field(default_factory=dict)  # prompts per part: selection / validation / test / paraphrase / adversarial
    selections: list[Selection] = field(default_factory=list)  # chosen features (SAE methods), per concept and SAE
    samples: list[dict] = field(default_factory=list)  # greedy completions before/after at `best`
    spec: UnlearnSpec | None = None  # the chosen setting as a re-usable spec (SAE methods)
    seconds: float = 0.0

    @property
    def best_meets_bar(self) -> bool:
        return self.meets_bar

    def to_dict(self) -> dict:
        return {
            "concept": self.concept, "method": self.method, "search": self.search, "base": asdict(self.base),
            "test": asdict(self.test), "meets_bar": self.meets_bar, "best": self.best.flat(), "val_base": asdict(self.val_base),
            "val_meets_bar": self.val_meets_bar, "score": self.score,
            "rows": [{**r.flat(), "pareto": any(r is p for p in self.pareto)} for r in self.rows],
            "pareto": [r.flat() for r in self.pareto], "split_sizes": self.split_sizes,
            "features": [row for s in self.selections for row in s.rows()], "samples": self.samples,
            "spec": asdict(self.spec) if self.spec else None, "seconds": self.seconds,
        }


def spec_from_selections(selections: list[Selection], n: int, method: str, value: float, concepts: list[str], model_name: str,
                         condition: bool = False) -> UnlearnSpec:
    """The top-`n` features of each selection as one spec (several concepts are merged)."""
    specs = []
    for s in selections:
        t = s.top(n)
        specs.append(UnlearnSpec([FeatureEdit(t.sae_dir, t.hook, t.features, t.typical, t.labels, t.detectors if condition else [])],
                                 method, value, [], model_name))
    spec = merge_specs(specs)
    spec.concepts = list(concepts)
    return spec


def load_saes(model: TransformerBridge, sae_dirs: list[str], saes: dict | None = None) -> dict:
    """Every SAE loaded on the model's device and checked against it and against each other."""
    saes = {} if saes is None else saes
    for d in sae_dirs:
        if d not in saes:
            saes[d] = S.load(d, model)
    S.check_same_model(model, {d: saes[d] for d in sae_dirs})
    return saes


def select_for(model: TransformerBridge, concepts: list[Concept], sae_dirs: list[str], cfg: UnlearnConfig,
               saes: dict | None = None, n_max: int | None = None, tick: Callable[[str], None] | None = None) -> list[Selection]:
    """Feature selections (up to `n_max` features, default the largest candidate) for each concept at each SAE."""
    saes = load_saes(model, sae_dirs, saes)
    n_max = n_max or max(cfg.ns())
    out = []
    for c in concepts:
        corpus = retain_corpus(c, cfg.n_val_docs, seed=FIT_SEED)
        for d in sae_dirs:
            if tick:
                tick(f"selecting {c.name} features in {Path(d).name}")
            st = feature_stats(model, saes[d], d, c, corpus, positions=cfg.positions)
            sel = select_features(st, SelectConfig(n_max, cfg.retain_threshold, cfg.score, cfg.positions), model)
            if cfg.condition:
                sel.detectors = detector_features(st, cfg.n_detectors, cfg.retain_threshold) or sel.features[:1]
            out.append(sel)
    return out


@contextlib.contextmanager
def _nested(model, makers: list[Callable]):
    with contextlib.ExitStack() as stack:
        for mk in makers:
            stack.enter_context(mk(model))
        yield model


def search(ns: tuple[int, ...], values: tuple[float, ...], run: Callable[[int, float], E.SweepRow], base: E.EvalResult,
           retain_bar: float, loss_bar: float, exhaustive: bool = False) -> list[E.SweepRow]:
    """Rows tried by the early-stopping search over features `ns` x strengths `values` (module
    docstring); `exhaustive` tries every pair."""
    rows: list[E.SweepRow] = []
    best = None
    for n in ns:
        best_n = None
        for v in values:
            row = run(n, v)
            rows.append(row)
            if exhaustive:
                continue
            if not E.meets_bar(row, base, retain_bar, loss_bar):
                break  # stronger values only move the model further
            if best_n is None or E.forget_key(row) < E.forget_key(best_n):
                best_n = row
            if _done(row):
                break
        if exhaustive or best_n is None:
            continue
        if best is not None and E.forget_key(best_n)[:2] >= E.forget_key(best)[:2]:
            break  # more features did not forget more
        best = best_n
        if _done(best):
            break
    return rows


def _done(row: E.SweepRow, prob: float = 0.01) -> bool:
    """Nothing left to forget: accuracy 0 and the answers' mean probability below `prob`."""
    r = row.result
    return r.forget_acc <= 0 and not r.forget_prob > prob


class _Ticker:
    """Steps of a run on an `interp.progress.Progress` bar (tqdm, plus the caller's callback); the
    total is an estimate because the search stops early."""

    def __init__(self, total: int, desc: str, progress: ProgressFn | None):
        self.desc = desc
        self.bar = Progress(total=max(total, 1), desc=desc, callback=progress, disable=None, leave=False)

    def __call__(self, msg: str) -> None:
        if self.bar.n >= self.bar.total:  # the estimate was short: keep the bar below 100% until the end
            self.bar.total = self.bar.bar.total = self.bar.n + 1
        self.bar.set_description(f"{self.desc}: {msg}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.update(max(self.bar.total - self.bar.n, 0))
        self.bar.close()


def _parts(concepts: list[Concept], cfg: UnlearnConfig) -> tuple[list[Splits], Concept, Concept]:
    """Each concept's split, and the validation / test parts of all of them merged; retain prompts
    that any of the concepts forgets (in any part) are dropped everywhere."""
    splits = [split_concept(c, seed=cfg.split_seed, by=cfg.split_by) for c in concepts]
    gone = {p.text for c in concepts for p in (*c.forget, *c.paraphrase, *c.adversarial)}
    splits = [Splits(*[replace(s[k], retain=tuple(p for p in s[k].retain if p.text not in gone)) for k in ("selection", "validation", "test")])
              for s in splits]
    val = thin_retain(merge_concepts([s.validation for s in splits]), cfg.n_retain)
    test = thin_retain(merge_concepts([s.test for s in splits]), cfg.n_retain)
    return splits, val, test


def run_unlearning(model: TransformerBridge, concepts: list[Concept], sae_dirs: list[str], cfg: UnlearnConfig = UnlearnConfig(),
                   model_name: str = "embedded", hooks: list[str] | None = None, saes: dict | None = None,
                   progress: ProgressFn | None = None) -> UnlearnReport:
    """Unlearn `concepts` (all at once) with `cfg.method` and measure it (module docstring).

    SAE methods use the features of `sae_dirs`; the direction baseline works at `hooks` (default:
    the SAEs' hooks); fine-tuning needs neither. `progress(done, total, message)` is called as work
    proceeds (`interp.progress`; the dashboard's progress bar); the CLI sees a tqdm bar."""
    t0 = time.perf_counter()
    if not concepts:
        raise InterpError("give at least one concept")
    if cfg.sae_method and not sae_dirs:
        raise InterpError(f"method {cfg.method!r} needs at least one SAE (--sae DIR)")
    saes = load_saes(model, list(sae_dirs), saes)  # every SAE checked before any work
    merged = merge_concepts(concepts)
    splits, val_c, test_c = _parts(concepts, cfg)
    ns, vs = cfg.ns(), cfg.values()
    est = 4 + len(concepts) * max(len(sae_dirs), 1) + (len(ns) * len(vs) * (2 if cfg.search == "sweep" else 1) if cfg.search != "auto"
                                                     else min(len(ns) * len(vs), 2 * len(vs)))
    tick = _Ticker(est, f"unlearn {merged.name} ({cfg.method})", progress)
    try:
        tick("measuring the unmodified model")
        es_test = E.prepare(model, test_c, retain_corpus(merged, cfg.n_corpus_docs))
        _check_known(merged.name, es_test.base, cfg.min_base_acc)
        es_val = E.prepare(model, val_c, retain_corpus(merged, cfg.n_val_docs, seed=VAL_SEED))
        sel_concepts = [s.selection for s in splits]
        selections: list[Selection] = []
        makers: dict[tuple[int, float], Callable] = {}
        start = 0  # first block any edit touches: runs reuse the unmodified residual stream before it
        if cfg.sae_method:
            selections = select_for(model, sel_concepts, list(sae_dirs), cfg, saes, tick=tick)
            start = min(_block(s.hook) for s in selections)

            def maker(n, v):
                spec = spec_from_selections(selections, n, cfg.method, v, [c.name for c in concepts], model_name, cfg.condition)
                return lambda m: apply_spec(m, spec, saes)
        elif cfg.method == "direction":
            hook_list = hooks or [sae_hook(saes[d], d) for d in sae_dirs]
            if not hook_list:
                raise InterpError("the direction baseline needs a hook (--hook NAME) or an SAE whose hook it uses")
            tick("fitting the direction")
            dirs = [mean_difference_direction(model, h, c, retain_corpus(c, cfg.n_val_docs, seed=FIT_SEED), cfg.positions)
                    for c in sel_concepts for h in hook_list]
            start = min(_block(d.hook) for d in dirs)

            def maker(n, a):
                return lambda m: _nested(m, [lambda mm, d=d: project_out(mm, d, a) for d in dirs])
        if cfg.method == "finetune":
            rows, best_edit = _finetune_rows(model, splits, merged, cfg, es_val, es_test, tick)
        else:
            def run(n, v):
                tick(f"{cfg.method} n={n} value={v:g} (validation)")
                makers[(n, v)] = maker(n, v)
                t = time.perf_counter()
                return E.SweepRow(cfg.method, n, v, E.evaluate(model, es_val, makers[(n, v)], start_layer=start), time.perf_counter() - t)

            rows = search(ns, vs, run, es_val.base, cfg.val_retain_bar, cfg.val_loss_bar, exhaustive=cfg.search == "sweep")
            best = E.best_row(rows, es_val.base, cfg.val_retain_bar, cfg.val_loss_bar)[0]
            for r in rows if cfg.search == "sweep" and cfg.test_every_setting else [best]:
                tick(f"{cfg.method} n={r.n_features} value={r.value:g} (test)")
                r.test = E.evaluate(model, es_test, makers[(r.n_features, r.value)], start_layer=start)
            best_edit = makers[(best.n_features, best.value)]
        best, val_ok = E.best_row(rows, es_val.base, cfg.val_retain_bar, cfg.val_loss_bar)
        tick("greedy completions")
        prompts = [p.text for p in test_c.forget[: cfg.n_samples]] + _retain_examples(test_c, 2)
        samples = E.samples(model, prompts, best_edit)
    finally:
        tick.close()
    spec = None
    if cfg.sae_method:
        spec = spec_from_selections(selections, best.n_features, cfg.method, best.value, [c.name for c in concepts], model_name, cfg.condition)
    tested = [r for r in rows if r.test is not None]
    front_rows = [replace(r, result=r.test) for r in tested] if cfg.search == "sweep" and cfg.test_every_setting else rows
    front_ids = {(r.n_features, r.value) for r in E.pareto(front_rows)}
    sizes = {"selection": sum(len(s.selection.forget) for s in splits), "validation": len(val_c.forget), "test": len(test_c.forget),
             "paraphrase": len(test_c.paraphrase), "adversarial": len(test_c.adversarial), "retain_test": len(test_c.retain)}
    return UnlearnReport(
        merged.name, cfg.method, cfg.search, es_test.base, best.test, E.meets_bar(replace(best, result=best.test), es_test.base),
        es_val.base, rows, best, val_ok,
        E.unlearning_score(front_rows, es_test.base if front_rows is not rows else es_val.base),
        [r for r in rows if (r.n_features, r.value) in front_ids], sizes, selections, samples, spec, time.perf_counter() - t0)


def _finetune_rows(model, splits, merged, cfg, es_val, es_test, tick):
    """Fine-tuning checkpoints as rows (validation; test too when sweeping) and the chosen copy."""
    steps = sorted({int(v) for v in cfg.values()})
    fit = merge_concepts([s.selection for s in splits])
    ft_cfg = FinetuneConfig(steps=max(steps), lr=cfg.finetune_lr, checkpoints=tuple(steps))
    rows, best_model = [], None
    tick("fine-tuning a copy of the model")
    for step, ft in finetune_unlearn(model, fit, retain_corpus(merged, cfg.n_val_docs, seed=FIT_SEED), ft_cfg):
        tick(f"finetune step {step} (validation)")
        t = time.perf_counter()
        row = E.SweepRow("finetune", 0, float(step), E.evaluate(ft, es_val), time.perf_counter() - t)
        rows.append(row)
        if cfg.search == "sweep" and cfg.test_every_setting:
            row.test = E.evaluate(ft, es_test)
        if best_model is None or E.best_row(rows, es_val.base, cfg.val_retain_bar, cfg.val_loss_bar)[0] is row:
            best_model = _frozen_copy(ft)
        elif cfg.search == "auto" and not E.meets_bar(row, es_val.base, cfg.val_retain_bar, cfg.val_loss_bar):
            break  # more steps only move the model further
    best = E.best_row(rows, es_val.base, cfg.val_retain_bar, cfg.val_loss_bar)[0]
    if best.test is None:
        tick("finetune (test)")
        best.test = E.evaluate(best_model, es_test)
    return rows, (lambda m: contextlib.nullcontext(best_model))


def _check_known(name: str, base: E.EvalResult, min_acc: float) -> None:
    if base.forget_acc < min_acc:
        raise InterpError(f"concept {name!r}: the model answers only {100 * base.forget_acc:.0f}% of its held-out forget prompts "
                          f"(< {100 * min_acc:.0f}%), so there is nothing to forget; check the answers or lower --min-base-acc")


def _block(hook: str) -> int:
    """The block a hook lives in (0 for hooks before the first block)."""
    parts = hook.split(".")
    return int(parts[1]) if parts[0] == "blocks" and parts[1].isdigit() else 0


def _frozen_copy(model: TransformerBridge) -> TransformerBridge:
    import copy

    return copy.deepcopy(model).eval()  # deepcopy keeps the parameters on the model's device


def _retain_examples(concept: Concept, n: int) -> list[str]:
    """`n` retain prompts from different categories where known."""
    out, seen = [], set()
    for p in concept.retain:
        cat = p.meta.get("category", p.text)
        if cat not in seen:
            seen.add(cat)
            out.append(p.text)
        if len(out) == n:
            break
    return out


def save_report_json(report: UnlearnReport, path: str | Path) -> Path:
    """Write the report as JSON atomically; refuses a directory path."""
    p = check_output_file(path, "report file")
    return atomic_write_json(p, json_safe(report.to_dict()))


def check_output_file(path: str | Path, what: str, overwrite: bool = True, inputs=()) -> Path:
    """One-line error unless `path` can be written as a file (`interp.io.check_output_file`: not a
    directory, device, FIFO, socket or symlink, not an input, parent writable); the CLI passes
    its --overwrite, library callers replace their own files."""
    from interp.io import check_output_file as _check

    return _check(path, overwrite=overwrite, inputs=inputs, what=what)


def evaluate_spec(model: TransformerBridge, concepts: list[Concept], spec: UnlearnSpec, n_corpus_docs: int = 32,
                  n_samples: int = 3, saes: dict | None = None, split_seed: int = 0) -> UnlearnReport:
    """Measure a saved spec on the test part of `concepts` (split with `split_seed`, as
    `run_unlearning` does): one row, the spec's own setting."""
    t0 = time.perf_counter()
    saes = load_saes(model, [e.sae_dir for e in spec.edits], saes)
    cfg = UnlearnConfig(split_seed=split_seed, n_corpus_docs=n_corpus_docs, n_samples=n_samples)
    merged = merge_concepts(concepts)
    _, _, test_c = _parts(concepts, cfg)
    es = E.prepare(model, test_c, retain_corpus(merged, n_corpus_docs))

    def edit(m):
        return apply_spec(m, spec, saes)

    n = max(len(e.features) for e in spec.edits)
    res = E.evaluate(model, es, edit, start_layer=min(_block(e.hook) for e in spec.edits))
    row = E.SweepRow(spec.method, n, spec.value, res, time.perf_counter() - t0, test=res)
    prompts = [p.text for p in test_c.forget[:n_samples]] + _retain_examples(test_c, 2)
    return UnlearnReport(merged.name, spec.method, "fixed", es.base, res, E.meets_bar(row, es.base), es.base, [row], row,
                         E.meets_bar(row, es.base), E.unlearning_score([row], es.base), [row],
                         {"test": len(test_c.forget), "paraphrase": len(test_c.paraphrase), "adversarial": len(test_c.adversarial)},
                         [], E.samples(model, prompts, edit), spec, time.perf_counter() - t0)


@dataclass
class Transfer:
    """A spec carried over to another SAE of the same hook by matching decoder directions."""

    spec: UnlearnSpec  # the same setting with each feature replaced by its best match in the new SAE
    cosines: list[float]  # decoder cosine of each feature with its match


def transfer_spec(model: TransformerBridge, spec: UnlearnSpec, new_sae_dir: str, concepts: list[Concept],
                  split_seed: int = 0, saes: dict | None = None) -> Transfer:
    """Carry `spec` to `new_sae_dir` (an SAE of the same hook, e.g. trained with another seed):
    feature i becomes argmax_j cos(W_dec_old[i], W_dec_new[j]); its typical activation is re-measured
    on the concepts' selection split, as `run_unlearning` measures it."""
    saes = load_saes(model, [e.sae_dir for e in spec.edits] + [new_sae_dir], saes)
    new = saes[new_sae_dir]
    hook = str(S.check_fits(model, new, path=new_sae_dir))
    edits = [e for e in spec.edits if e.hook == hook]
    if not edits:
        raise InterpError(f"the spec edits no SAE at {hook}, the hook of {new_sae_dir}")
    import torch

    w_new = torch.nn.functional.normalize(new.W_dec.detach().float().cpu(), dim=1)
    sel = [split_concept(c, seed=split_seed).selection for c in concepts]
    merged_sel = merge_concepts(sel)
    st = feature_stats(model, new, new_sae_dir, merged_sel, retain_corpus(merged_sel, 32, seed=FIT_SEED))
    out, cosines = [], []
    for e in edits:
        w_old = torch.nn.functional.normalize(saes[e.sae_dir].W_dec.detach().float().cpu()[e.features], dim=1)
        cos, idx = (w_old @ w_new.T).max(dim=1)
        feats = idx.tolist()
        cosines += cos.tolist()
        typical = [float(st.mean_forget[f]) if st.freq_forget[f] > 0 else t for f, t in zip(feats, e.typical)]
        out.append(FeatureEdit(new_sae_dir, hook, feats, typical, [f"match of #{f}" for f in e.features]))
    # duplicates (two old features matching one new one) are merged, keeping the larger typical activation
    merged = merge_specs([UnlearnSpec([ed], spec.method, spec.value, list(spec.concepts), spec.model) for ed in out])
    return Transfer(merged, cosines)
