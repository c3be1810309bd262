"""One call that runs circuit-discovery methods on a task and scores them: the Python API behind
``interp circuits`` and the Circuits page.

    from interp.circuits import run_circuits, CircuitConfig
    res = run_circuits("embedded", "ioi", methods=["discrete-sae", "acdc"], cfg=CircuitConfig(seeds=10))
    res.summary["discrete-sae"]["node_auc"]   # (mean, std) over seeds
    res.save("ioi.json")

For seed s, the discovery prompts come from seed ``DISCOVERY_SEED_BASE + s`` (the reference
circuit uses held-out prompts no seed draws), and the SAE is initialised with seed s.
Which heads form the *chosen* circuit:

* discrete-sae: heads with score > 0 (any positive-only code, the paper's rule);
* patching, EAP: ``threshold="faithful"`` (default for them): the smallest top-scoring set whose
  faithfulness (rest mean-ablated, on the discovery prompts) reaches ``keep``;
* ACDC: the heads it keeps.

``threshold="faithful"`` can be asked for every score-based method (discrete-sae included).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from interp.circuits import metrics as M
from interp.circuits.acdc import ACDCConfig, acdc
from interp.circuits.discrete_sae import DiscreteSAEConfig, discrete_sae_scores
from interp.circuits.eap import eap_scores
from interp.circuits.patching import ablation_source, full_metric, metric_with_ablation, patching_scores
from interp.circuits.reference import REFERENCE_PROMPTS, ReferenceCircuit, build_reference, load_reference
from interp.circuits.tasks import DISCOVERY_SEED_BASE, CircuitTask, check_separates, make_task, task_separation
from interp.errors import InterpError

log = logging.getLogger(__name__)

METHODS = ("discrete-sae", "patching", "eap", "acdc")
SUMMARY_KEYS = ("node_auc", "edge_auc", "precision", "recall", "f1", "faithfulness", "size", "seconds", "peak_mb")


@dataclass
class CircuitConfig:
    """What `run_circuits` does beyond the method's own settings."""

    n_prompts: int = 20  # prompt pairs for patching, EAP and ACDC
    seeds: int = 1  # independent repeats (prompt draw + SAE init)
    threshold: str = "auto"  # "auto" (per-method default, see module doc), "positive" (score > 0) or "faithful"
    keep: float = 0.9  # faithfulness the "faithful" threshold must reach
    equal_length: bool = False  # built-in tasks: all pairs the same token count (as the auto-circuit peer needs)
    sae: DiscreteSAEConfig = field(default_factory=DiscreteSAEConfig)  # discrete-sae settings
    acdc: ACDCConfig = field(default_factory=ACDCConfig)  # ACDC settings

    def __post_init__(self):
        if self.n_prompts < 1 or self.seeds < 1:
            raise InterpError("n_prompts and seeds must be >= 1")
        if self.threshold not in ("auto", "positive", "faithful"):
            raise InterpError(f"threshold must be auto, positive or faithful, not {self.threshold!r}")
        if not 0 < self.keep <= 1:
            raise InterpError("keep must be in (0, 1]")


@dataclass
class MethodRun:
    """One method on one seed."""

    method: str  # "discrete-sae", "patching", "eap" or "acdc"
    seed: int  # repeat index
    node_scores: list[list[float]]  # [layer][head] ranking score (higher = more in the circuit)
    circuit: list[list[int]]  # chosen heads, [layer, head]
    seconds: float  # wall time of discovery (scores + choosing the circuit)
    peak_mb: float  # peak extra memory during discovery (MB)
    node_auc: float  # node ROC AUC against the reference
    edge_auc: float  # edge ROC AUC against the reference edges (NaN if the method has no edge scores)
    precision: float  # of the chosen circuit against the reference heads
    recall: float
    f1: float
    faithfulness: float  # metric with only the circuit (rest mean-ablated) / full metric
    size: int  # heads in the chosen circuit
    roc: list[tuple[float, float]]  # node ROC curve points (fpr, tpr)


@dataclass
class CircuitResult:
    """Everything one `run_circuits` call found; `save()` writes it as JSON, `load()` reads it back."""

    model: str  # model name
    task: str  # task name
    n_layers: int
    n_heads: int
    full_metric: float  # mean metric of the full model on positive discovery prompts (seed 0)
    negative_metric: float  # the same on negative prompts
    separates: bool  # False: the metric does not separate positives from negatives
    reference: dict  # the ReferenceCircuit as a dict
    runs: list[MethodRun]  # every method x seed
    summary: dict = field(default_factory=dict)  # method -> key -> [mean, std] over seeds

    def summarize(self) -> "CircuitResult":
        self.summary = {}
        for m in dict.fromkeys(r.method for r in self.runs):
            rs = [r for r in self.runs if r.method == m]
            self.summary[m] = {k: list(M.mean_std([float(getattr(r, k)) for r in rs])) for k in SUMMARY_KEYS}
        return self

    def mean_scores(self, method: str) -> torch.Tensor:
        """Node scores of `method` averaged over seeds, [layer, head]."""
        rs = [torch.tensor(r.node_scores) for r in self.runs if r.method == method]
        if not rs:
            raise InterpError(f"no runs of method {method!r} in this result")
        return torch.stack(rs).mean(0)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, default=_nan_safe))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CircuitResult":
        try:
            d = json.loads(Path(path).read_text())
            d["runs"] = [MethodRun(**r) for r in d["runs"]]
            return cls(**d)
        except (OSError, json.JSONDecodeError, TypeError, KeyError) as e:
            raise InterpError(f"{path} is not a circuits result file ({type(e).__name__})") from None


def _nan_safe(o):
    return str(o)


def _edge_auc(edge_scores: torch.Tensor | None, ref: ReferenceCircuit) -> float:
    if edge_scores is None:
        return float("nan")
    L = ref.n_layers
    valid = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)[:, None, :, None].expand_as(edge_scores)
    return M.roc_auc(edge_scores[valid], ref.edge_mask[valid])


def faithful_cut(model: HookedTransformer, task: CircuitTask, scores: torch.Tensor, keep: float, source) -> torch.Tensor:
    """The smallest top-`scores` prefix of heads whose faithfulness reaches `keep` (all heads if none)."""
    order = scores.flatten().argsort(descending=True)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    full = full_metric(model, task)
    for i in order.tolist():
        mask[i] = True
        if full != 0 and metric_with_ablation(model, task, ~mask.view_as(scores), source) / full >= keep:
            break
    return mask.view_as(scores)


def run_method(model: HookedTransformer, task: CircuitTask, method: str, cfg: CircuitConfig, seed: int = 0):
    """Scores, edge scores (or None) and chosen circuit of one method; timed by the caller."""
    small = task.subset(slice(0, min(cfg.n_prompts, len(task))))
    mean_src = None
    threshold = cfg.threshold
    if method == "discrete-sae":
        sae_cfg = DiscreteSAEConfig(**{**asdict(cfg.sae), "seed": seed})
        r = discrete_sae_scores(model, task, sae_cfg)
        scores, edges = r.node_scores, (r.edge_scores if sae_cfg.edges or sae_cfg.qkv_edges else None)
        threshold = "positive" if threshold == "auto" else threshold
    elif method == "patching":
        scores, edges = patching_scores(model, small).abs(), None
    elif method == "eap":
        r = eap_scores(model, small)
        scores, edges = r.node_scores, r.edge_scores
    elif method == "acdc":
        r = acdc(model, small, cfg.acdc)
        scores = r.node_scores
        edges = r.edge_scores if cfg.acdc.level == "edge" else None
        if threshold == "auto":
            return scores, edges, r.kept_nodes
    else:
        raise InterpError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if threshold in ("auto", "faithful"):
        mean_src = ablation_source(model, small, "mean")
        return scores, edges, faithful_cut(model, small, scores, cfg.keep, mean_src)
    return scores, edges, scores > 0


def get_reference(model: HookedTransformer, model_name: str, task_name: str, build_if_missing: bool = True,
                  save: bool = False) -> ReferenceCircuit:
    """The stored reference for a built-in task, else one built now (on held-out prompts for
    built-in tasks, on the file's prompts for a JSONL task)."""
    ref = load_reference(model, model_name, Path(task_name).stem if task_name.endswith(".jsonl") else task_name)
    if ref is not None:
        return ref
    if not build_if_missing:
        raise InterpError(f"no stored reference circuit for {model_name} / {task_name}; build one with "
                          f"`interp circuits --model {model_name} --task {task_name} --build-reference`")
    log.warning("no stored reference circuit for %s / %s: building one now (exhaustive, slow)", model_name, task_name)
    ref = build_reference(model, make_task(model, task_name, n=REFERENCE_PROMPTS), model_name)
    if save:
        from interp.circuits.reference import save_reference

        save_reference(ref)
    return ref


def run_circuits(model_name: str, task: str, methods: list[str] | tuple[str, ...] = METHODS, cfg: CircuitConfig | None = None,
                 model: HookedTransformer | None = None, reference: ReferenceCircuit | None = None) -> CircuitResult:
    """Run `methods` on `task` for `cfg.seeds` seeds and score each against the reference."""
    cfg = cfg or CircuitConfig()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InterpError(f"unknown method {unknown[0]!r}; known: {', '.join(METHODS)}, all")
    if model is None:
        from interp.models import load_model

        model = load_model(model_name)
    is_file = task.endswith(".jsonl")
    n_pairs = max(cfg.n_prompts, cfg.sae.n_train if "discrete-sae" in methods else 0)
    ref = reference or get_reference(model, model_name, task)
    runs: list[MethodRun] = []
    first = None
    for seed in range(cfg.seeds):
        t = make_task(model, task, n=n_pairs, seed=DISCOVERY_SEED_BASE + seed, equal_length=cfg.equal_length)
        if first is None:
            first = t
            separates = check_separates(model, t)
        mean_src = ablation_source(model, t.subset(slice(0, min(cfg.n_prompts, len(t)))), "mean")
        for method in methods:
            torch.manual_seed(seed)
            with M.measure() as meas:
                scores, edges, chosen = run_method(model, t, method, cfg, seed)
            prf = M.precision_recall_f1(chosen, ref.mask)
            small = t.subset(slice(0, min(cfg.n_prompts, len(t))))
            runs.append(MethodRun(
                method, seed, scores.tolist(), chosen.nonzero().tolist(), meas.seconds, meas.peak_mb,
                M.roc_auc(scores, ref.mask), _edge_auc(edges, ref), prf.precision, prf.recall, prf.f1,
                M.faithfulness(model, small, chosen, mean_src), int(chosen.sum()), M.roc_curve(scores, ref.mask)))
            log.info("%s seed %d: node AUC %.3f, F1 %.2f, %.2fs", method, seed, runs[-1].node_auc, prf.f1, meas.seconds)
        if is_file:
            log.debug("JSONL task: every seed uses the same prompts (only the SAE seed changes)")
    mp, mn = task_separation(model, first)
    return CircuitResult(model_name, first.name, model.cfg.n_layers, model.cfg.n_heads, mp, mn, separates,
                         asdict(ref), runs).summarize()


def format_table(res: CircuitResult) -> str:
    """A plain-text table of the summary (mean +/- std over seeds)."""
    cols = ("node_auc", "edge_auc", "f1", "faithfulness", "size", "seconds")
    lines = [f"{'method':<14}" + "".join(f"{c:>18}" for c in cols)]
    for m, s in res.summary.items():
        cells = []
        for c in cols:
            mu, sd = s[c]
            cells.append(f"{'n/a':>18}" if isinstance(mu, float) and math.isnan(mu) else f"{mu:>11.3f} ± {sd:<5.3f}")
        lines.append(f"{m:<14}" + "".join(cells))
    return "\n".join(lines)
