"""One call from concept(s) + SAEs to a forget/retain report: select features, apply a method at
one setting or over a sweep, evaluate, pick the best setting, and build the re-usable spec.

    report = run_unlearning(model, [builtin_concept("colors")], ["saes/embedded/resid_post_l2"],
                            UnlearnConfig(method="clamp", sweep=True))
    report.best.result.forget_acc, report.score, report.spec.save("colors.json")
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from transformer_lens import HookedTransformer

from interp.data.corpus import HELDOUT_SEED
from interp.errors import InterpError
from interp.unlearn import evaluation as E
from interp.unlearn import saes as S
from interp.unlearn.baselines import FinetuneConfig, finetune_unlearn, mean_difference_direction, project_out
from interp.unlearn.concepts import Concept, merge_concepts, retain_corpus, thin_retain
from interp.unlearn.edit import FeatureEdit, UnlearnSpec, apply_spec, merge_specs
from interp.unlearn.select import SelectConfig, Selection, feature_stats, select_features

log = logging.getLogger(__name__)

ALL_METHODS = ("clamp", "zero", "scale", "direction", "finetune")
FIT_SEED = HELDOUT_SEED + 2  # corpus documents methods fit on; evaluation uses retain_corpus' default seed
DEFAULT_VALUE = {"clamp": 2.0, "zero": 0.0, "scale": -1.0, "direction": 2.0, "finetune": 20.0}
SWEEP_VALUES = {
    "clamp": (1.0, 1.5, 2.0, 3.0, 5.0),
    "zero": (0.0,),
    "scale": (0.5, 0.0, -1.0, -3.0),
    "direction": (1.0, 1.5, 2.0, 3.0, 4.0),
    "finetune": (10.0, 20.0, 30.0),
}


@dataclass
class UnlearnConfig:
    """What `run_unlearning` does."""

    method: str = "clamp"  # clamp | zero | scale (SAE features) | direction | finetune (baselines)
    n_features: int = 20  # features per SAE and concept (SAE methods)
    value: float | None = None  # clamp multiplier / scale factor / direction alpha / finetune steps; None: method default
    sweep: bool = False  # try every n_features_grid x value_grid setting instead of one
    n_features_grid: tuple[int, ...] = (5, 10, 20)  # sweep: features per SAE
    value_grid: tuple[float, ...] | None = None  # sweep: method strengths; None: SWEEP_VALUES[method]
    retain_threshold: float = 0.2  # feature selection: max firing frequency on retain tokens
    score: str = "dir"  # feature selection ranking (see interp.unlearn.select)
    positions: str = "last"  # forget-prompt tokens counted in selection: "last" or "all"
    n_corpus_docs: int = 32  # held-out corpus documents for selection, retain loss and KL
    n_retain: int = 240  # retain prompts used for retain accuracy (an even spread; 0: all); selection uses all
    n_samples: int = 3  # forget prompts shown with greedy completions before/after (plus 2 retain)
    finetune_lr: float = 2e-4  # finetune baseline: Adam learning rate

    def __post_init__(self):
        if self.method not in ALL_METHODS:
            raise InterpError(f"unknown method {self.method!r}; use one of {', '.join(ALL_METHODS)}")
        SelectConfig(self.n_features, self.retain_threshold, self.score, self.positions)  # same checks
        if self.method == "finetune" and self.value is not None and self.value < 1:
            raise InterpError("finetune: value is a number of steps, at least 1")

    @property
    def sae_method(self) -> bool:
        return self.method in ("clamp", "zero", "scale")

    def grid(self) -> list[tuple[int, float]]:
        """(n_features, value) settings to run."""
        v0 = DEFAULT_VALUE[self.method] if self.value is None else self.value
        if not self.sweep:
            return [(self.n_features if self.sae_method else 0, v0)]
        values = self.value_grid or SWEEP_VALUES[self.method]
        ns = self.n_features_grid if self.sae_method else (0,)
        return [(n, v) for n in ns for v in values]


@dataclass
class UnlearnReport:
    """Everything one unlearning run measured."""

    concept: str  # e.g. "colors" or "colors+animals"
    method: str
    base: E.EvalResult  # the unmodified model
    rows: list[E.SweepRow]  # every setting tried
    best: E.SweepRow  # see evaluate.best_row
    best_meets_bar: bool  # retain accuracy >= 0.95 x base and retain loss +<= 5% at `best`
    score: float  # SAEBench-style unlearning score over `rows`
    pareto: list[E.SweepRow]
    selections: list[Selection] = field(default_factory=list)  # chosen features (SAE methods), per concept and SAE
    samples: list[dict] = field(default_factory=list)  # greedy completions before/after at `best`
    spec: UnlearnSpec | None = None  # the best setting as a re-usable spec (SAE methods)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "concept": self.concept, "method": self.method, "base": asdict(self.base),
            "best": self.best.flat(), "best_meets_bar": self.best_meets_bar, "score": self.score,
            "rows": [{**r.flat(), "pareto": any(r is p for p in self.pareto)} for r in self.rows],
            "pareto": [r.flat() for r in self.pareto],
            "features": [row for s in self.selections for row in s.rows()], "samples": self.samples,
            "spec": asdict(self.spec) if self.spec else None, "seconds": self.seconds,
        }


def spec_from_selections(selections: list[Selection], n: int, method: str, value: float, concepts: list[str], model_name: str) -> UnlearnSpec:
    """The top-`n` features of each selection as one spec (several concepts are merged)."""
    specs = []
    for s in selections:
        t = s.top(n)
        specs.append(UnlearnSpec([FeatureEdit(t.sae_dir, t.hook, t.features, t.typical, t.labels)], method, value, [], model_name))
    spec = merge_specs(specs)
    spec.concepts = list(concepts)
    return spec


def select_for(model: HookedTransformer, concepts: list[Concept], sae_dirs: list[str], cfg: UnlearnConfig,
               saes: dict | None = None, n_max: int | None = None) -> list[Selection]:
    """Feature selections (up to `n_max` features) for each concept at each SAE."""
    saes = {} if saes is None else saes
    n_max = n_max or max(cfg.n_features_grid if cfg.sweep else (cfg.n_features,))
    out = []
    for c in concepts:
        corpus = retain_corpus(c, cfg.n_corpus_docs, seed=FIT_SEED)
        for d in sae_dirs:
            st = feature_stats(model, _sae(saes, d), d, c, corpus, positions=cfg.positions)
            out.append(select_features(st, SelectConfig(n_max, cfg.retain_threshold, cfg.score, cfg.positions), model))
    return out


@contextlib.contextmanager
def _nested(model, makers: list[Callable]):
    with contextlib.ExitStack() as stack:
        for mk in makers:
            stack.enter_context(mk(model))
        yield model


def run_unlearning(model: HookedTransformer, concepts: list[Concept], sae_dirs: list[str], cfg: UnlearnConfig = UnlearnConfig(),
                   model_name: str = "embedded", hooks: list[str] | None = None, saes: dict | None = None) -> UnlearnReport:
    """Unlearn `concepts` (all at once) with `cfg.method` and measure it (module docstring).

    SAE methods use the features of `sae_dirs`; the direction baseline works at `hooks` (default:
    the SAEs' hooks); fine-tuning needs neither."""
    t0 = time.perf_counter()
    saes = {} if saes is None else saes
    if not concepts:
        raise InterpError("give at least one concept")
    merged = merge_concepts(concepts)
    es = E.prepare(model, thin_retain(merged, cfg.n_retain), retain_corpus(merged, cfg.n_corpus_docs))
    held = {p.text for p in es.concept.retain}  # evaluation-only retain prompts
    rows, selections, edits = [], [], {}
    start = 0  # first block any edit touches: runs reuse the unmodified residual stream before it
    if cfg.sae_method:
        if not sae_dirs:
            raise InterpError(f"method {cfg.method!r} needs at least one SAE (--sae DIR)")
        selections = select_for(model, [_fit(c, held) for c in concepts], sae_dirs, cfg, saes)
        start = min(_block(s.hook) for s in selections)
        for n, v in cfg.grid():
            spec = spec_from_selections(selections, n, cfg.method, v, [c.name for c in concepts], model_name)
            edits[(n, v)] = (lambda m, spec=spec: apply_spec(m, spec, saes))
    elif cfg.method == "direction":
        hook_list = hooks or [str(S.sae_hook(_sae(saes, d), d)) for d in sae_dirs]
        if not hook_list:
            raise InterpError("the direction baseline needs a hook (--hook NAME) or an SAE whose hook it uses")
        dirs = [mean_difference_direction(model, h, _fit(c, held), retain_corpus(c, cfg.n_corpus_docs, seed=FIT_SEED), cfg.positions)
                for c in concepts for h in hook_list]
        start = min(_block(d.hook) for d in dirs)
        for n, a in cfg.grid():
            edits[(n, a)] = (lambda m, a=a: _nested(m, [lambda mm, d=d: project_out(mm, d, a) for d in dirs]))
    if cfg.method == "finetune":
        steps = sorted({int(v) for _, v in cfg.grid()})
        ft_cfg = FinetuneConfig(steps=max(steps), lr=cfg.finetune_lr, checkpoints=tuple(steps))
        best_model = None
        for step, ft in finetune_unlearn(model, _fit(merged, held), retain_corpus(merged, cfg.n_corpus_docs, seed=FIT_SEED), ft_cfg):
            t = time.perf_counter()
            rows.append(E.SweepRow("finetune", 0, float(step), E.evaluate(ft, es), time.perf_counter() - t))
            if best_model is None or E.best_row(rows, es.base)[0] is rows[-1]:
                best_model = _frozen_copy(ft)
        edits[(0, E.best_row(rows, es.base)[0].value)] = lambda m: contextlib.nullcontext(best_model)
    else:
        for (n, v), edit in edits.items():
            t = time.perf_counter()
            rows.append(E.SweepRow(cfg.method, n, v, E.evaluate(model, es, edit, start_layer=start), time.perf_counter() - t))
    best, ok = E.best_row(rows, es.base)
    best_edit = edits[(best.n_features, best.value)]
    prompts = [p.text for p in merged.forget[: cfg.n_samples]] + _retain_examples(merged, 2)
    spec = None
    if cfg.sae_method:
        spec = spec_from_selections(selections, best.n_features, cfg.method, best.value, [c.name for c in concepts], model_name)
    return UnlearnReport(merged.name, cfg.method, es.base, rows, best, ok, E.unlearning_score(rows, es.base), E.pareto(rows),
                         selections, E.samples(model, prompts, best_edit), spec, time.perf_counter() - t0)


def _fit(c: Concept, held: set[str]) -> Concept:
    """What a method may look at: the forget prompts and the retain prompts that evaluation does
    not use (all of them if evaluation uses all)."""
    return Concept(c.name, c.forget, tuple(p for p in c.retain if p.text not in held) or c.retain)


def _block(hook: str) -> int:
    """The block a hook lives in (0 for hooks before the first block)."""
    parts = hook.split(".")
    return int(parts[1]) if parts[0] == "blocks" and parts[1].isdigit() else 0


def _sae(saes: dict, d: str):
    if d not in saes:
        saes[d] = S.load(d)
    return saes[d]


def _frozen_copy(model: HookedTransformer) -> HookedTransformer:
    import copy

    return copy.deepcopy(model).eval()


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
    import json
    import os

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2, default=float))
    os.replace(tmp, p)
    return p


def evaluate_spec(model: HookedTransformer, concepts: list[Concept], spec: UnlearnSpec, n_corpus_docs: int = 32,
                  n_retain: int = 240, n_samples: int = 3, saes: dict | None = None) -> UnlearnReport:
    """Measure a saved spec on `concepts` (one row: the spec's own setting)."""
    t0 = time.perf_counter()
    saes = {} if saes is None else saes
    merged = merge_concepts(concepts)
    es = E.prepare(model, thin_retain(merged, n_retain), retain_corpus(merged, n_corpus_docs))

    def edit(m):
        return apply_spec(m, spec, saes)

    n = max(len(e.features) for e in spec.edits)
    row = E.SweepRow(spec.method, n, spec.value, E.evaluate(model, es, edit, start_layer=min(_block(e.hook) for e in spec.edits)),
                     time.perf_counter() - t0)
    prompts = [p.text for p in merged.forget[:n_samples]] + _retain_examples(merged, 2)
    return UnlearnReport(merged.name, spec.method, es.base, [row], row, E.meets_bar(row, es.base),
                         E.unlearning_score([row], es.base), [row], [], E.samples(model, prompts, edit), spec,
                         time.perf_counter() - t0)
