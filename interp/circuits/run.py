"""One call that runs circuit-discovery methods on a task and scores them: the Python API behind
``interp circuits`` and the Circuits page.

    from interp.circuits import run_circuits, CircuitConfig
    res = run_circuits("embedded", "ioi", methods=["discrete-sae", "acdc"], cfg=CircuitConfig(seeds=10))
    res.summary["discrete-sae"]["node_auc"]   # (mean, std) over seeds
    res.save("ioi.json")

For seed s, the discovery prompts of patching / EAP / EAP-IG / ACDC come from seed
``DISCOVERY_SEED_BASE + s``; discrete-sae reads its codes on one fixed prompt set per task
(seed ``DISCOVERY_SEED_BASE``) and seed s changes only its SAE initialisation and training subset,
as in the paper. The reference circuit uses held-out prompts no seed draws, and the reference-free
faithfulness curves (CPR / CMD, `interp.circuits.faithfulness`) a third held-out set
(seed ``EVAL_SEED``). Which heads form the *chosen* circuit (``threshold="auto"``) follows one
stated rule per method, written into every `MethodRun.rule`:

* the authors' threshold where their code has one: ACDC keeps the heads left after pruning at
  its ``tau`` (Conmy et al.'s code);
* otherwise MIB's reading of a ranking (Mueller et al. 2025): the smallest top-scoring set of heads
  whose faithfulness, the rest ablated with ``cfg.ablation``, reaches ``cfg.cut_keep`` (0.8) on
  held-out prompt pairs (seed ``CUT_SEED``, drawn by no discovery seed, reference or curve). This
  covers patching, EAP, EAP-IG and discrete-sae: the discrete-SAE authors' code
  (charlieoneill11/sae-circuits, ``src/main.py``, ``src/common_utils.py``) has no threshold; it
  scores a head by softmax-normalised positive-only code counts and reports ROC AUC and the best F1
  over all cuts, a cut chosen with the ground truth.

``threshold="positive"`` (score > 0, this package's earlier discrete-sae default, which picked all 32
heads on IOI and greater-than) and ``threshold="faithful"`` (the MIB cut for ACDC too) can be
asked for. A chosen circuit that is the whole model gets `MethodRun.warning` and a logged warning.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits import metrics as M
from interp.circuits.acdc import ACDCConfig, acdc
from interp.circuits.discrete_sae import DiscreteSAEConfig, discrete_sae_scores
from interp.circuits import faithfulness as F
from interp.circuits.eap import eap_ig_scores, eap_scores
from interp.circuits.patching import ABLATIONS, ablation_source, full_metric, metric_with_ablation, patching_scores
from interp.circuits.reference import ReferenceCircuit, find_reference
from interp.circuits.tasks import DISCOVERY_SEED_BASE, CircuitTask, check_separates, make_task, task_separation
from interp.errors import InterpError

log = logging.getLogger(__name__)

METHODS = ("discrete-sae", "patching", "eap", "eap-ig", "acdc")
SUMMARY_KEYS = ("cpr", "cmd", "cpr_mean", "cmd_mean", "edge_cpr", "edge_cmd", "node_auc", "edge_auc", "precision",
                "recall", "f1", "f1_tpr_tnr", "best_f1_tpr_tnr", "faithfulness", "size", "seconds", "peak_mb")
EVAL_SEED = 30_000  # held-out prompts of the faithfulness curves (no discovery seed or reference draws them)
CUT_SEED = 40_000  # held-out prompts on which the faithful cut chooses a circuit (no other set draws them)
CUT_KEY = "faithful-cut prompts"  # where `run_method` keeps them in its caller-owned cache
REFERENCE_MODES = ("stored", "build", "none")


@dataclass
class CircuitConfig:
    """What `run_circuits` does beyond the method's own settings."""

    n_prompts: int = 20  # prompt pairs for patching, EAP, EAP-IG and ACDC
    seeds: int = 1  # independent repeats (prompt draw; discrete-sae: SAE init + training subset)
    n_eval: int = 40  # held-out prompt pairs of the faithfulness curves (CPR / CMD); 0 = skip the curves
    ablation: str = "resample"  # how faithfulness, the faithful cut and a built reference ablate a head
    ig_steps: int = 5  # EAP-IG interpolation steps (MIB: 5)
    edge_curves: bool = True  # also the edge-level curves for methods with edge scores
    threshold: str = "auto"  # "auto" (per-method default, see module doc), "positive" (score > 0) or "faithful"
    keep: float = 0.9  # faithfulness a reference built by the run (``--reference build``) must keep
    cut_keep: float = 0.8  # faithfulness the chosen circuit must reach on the held-out cut prompts (MIB: 0.8)
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
        if not 0 < self.cut_keep <= 1:
            raise InterpError("cut_keep must be in (0, 1]")
        if self.ablation not in ABLATIONS:
            raise InterpError(f"ablation must be one of {', '.join(ABLATIONS)}, not {self.ablation!r}")
        if self.n_eval < 0 or self.ig_steps < 1:
            raise InterpError("n_eval must be >= 0 and ig_steps >= 1")


@dataclass
class MethodRun:
    """One method on one seed."""

    method: str  # one of METHODS
    seed: int  # repeat index
    node_scores: list[list[float]]  # [layer][head] ranking score (higher = more in the circuit)
    circuit: list[list[int]]  # chosen heads, [layer, head]
    seconds: float  # wall time of discovery (scores + choosing the circuit)
    peak_mb: float  # peak extra memory during discovery (MB)
    node_auc: float  # node ROC AUC against the reference (NaN without one)
    edge_auc: float  # edge ROC AUC against the reference edges (NaN if the method has no edge scores)
    precision: float  # of the chosen circuit against the reference heads
    recall: float
    f1: float  # harmonic mean of precision and recall
    faithfulness: float  # metric with only the circuit (rest ablated, cfg.ablation) / full metric
    size: int  # heads in the chosen circuit
    roc: list[tuple[float, float]]  # node ROC curve points (fpr, tpr)
    f1_tpr_tnr: float = float("nan")  # the paper's "F1": harmonic mean of TPR and TNR of the chosen circuit
    best_f1_tpr_tnr: float = float("nan")  # its best value over all cuts of the ranking (what the paper reports)
    cpr: float = float("nan")  # node CPR, resample ablation, held-out prompts (higher is better)
    cmd: float = float("nan")  # node CMD, resample ablation (lower is better)
    cpr_mean: float = float("nan")  # node CPR, mean ablation
    cmd_mean: float = float("nan")  # node CMD, mean ablation
    edge_cpr: float = float("nan")  # edge-level CPR at MIB's fractions (NaN without edge scores)
    edge_cmd: float = float("nan")
    curves: dict = field(default_factory=dict)  # name ("node", "node_mean", "edge") -> {"x": [...], "f": [...]}
    edge_scores: list | None = None  # [L][H][L][H] head -> head scores (None if the method has none)
    rule: str = ""  # how the chosen circuit was cut from the scores (`circuit_rule`)
    warning: str = ""  # set when the chosen circuit is the whole model


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
    reference: dict | None  # the ReferenceCircuit as a dict (None: reference-free run)
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
        from interp.io import atomic_write_text, check_parent_writable

        path = Path(path)
        if path.is_dir():
            raise InterpError(f"{path} is a directory; give a file name for the result")
        check_parent_writable(path, "result file")
        return atomic_write_text(path, json.dumps(asdict(self), default=_nan_safe))

    @classmethod
    def load(cls, path: str | Path) -> "CircuitResult":
        try:
            d = json.loads(Path(path).read_text())
            d["runs"] = [MethodRun(**r) for r in d["runs"]]
            return cls(**d)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as e:
            raise InterpError(f"{path} is not a circuits result file ({type(e).__name__})") from None


def _nan_safe(o):
    return str(o)


def _edge_auc(edge_scores: torch.Tensor | None, ref: ReferenceCircuit | None) -> float:
    if edge_scores is None or ref is None:
        return float("nan")
    L = ref.n_layers
    valid = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)[:, None, :, None].expand_as(edge_scores)
    return M.roc_auc(edge_scores[valid], ref.edge_mask[valid])


def load_named_model(name: str, device: str | None = None) -> TransformerBridge:
    """`interp.models.load_model`, plus "embedded-attn" (the attention-only model in
    ``interp/embedded_attn/``) until the model registry knows it."""
    from interp.models import ModelLoadError, load_model

    kw = {"device": device} if device else {}
    try:
        return load_model(name, **kw)
    except ModelLoadError:
        if name != "embedded-attn":
            raise
        from interp.build_attn import EMBEDDED_ATTN_DIR

        if not (EMBEDDED_ATTN_DIR / "model.safetensors").exists():
            raise InterpError("the attention-only model is missing; build it with `interp build-default --attn-only`") from None
        return load_model(str(EMBEDDED_ATTN_DIR), **kw)


def faithful_cut(model: TransformerBridge, task: CircuitTask, scores: torch.Tensor, keep: float, source) -> torch.Tensor:
    """The smallest top-`scores` prefix of heads whose faithfulness reaches `keep` (all heads if none)."""
    order = scores.flatten().argsort(descending=True, stable=True)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    full = full_metric(model, task)
    for i in order.tolist():
        mask[i] = True
        if full != 0 and metric_with_ablation(model, task, ~mask.view_as(scores), source) / full >= keep:
            break
    return mask.view_as(scores)


def rule_of(method: str, cfg: CircuitConfig) -> str:
    """Which rule cuts `method`'s circuit under `cfg.threshold`: "acdc", "faithful" or "positive"."""
    if cfg.threshold != "auto":
        return cfg.threshold
    return "acdc" if method == "acdc" else "faithful"


def circuit_rule(method: str, cfg: CircuitConfig, n_cut: int | None = None) -> str:
    """The stated rule of `method`'s chosen circuit, in words (goes into every `MethodRun`)."""
    rule = rule_of(method, cfg)
    if rule == "acdc":
        return f"ACDC's own threshold: the heads kept after pruning at tau {cfg.acdc.tau} ({cfg.acdc.objective} objective)"
    if rule == "positive":
        return "score > 0 (every head with a positive score)"
    where = f"{n_cut} held-out prompt pairs (seed {CUT_SEED})" if n_cut else f"held-out prompt pairs (seed {CUT_SEED})"
    return (f"smallest top-k set by score whose faithfulness reaches {cfg.cut_keep} on {where}, "
            f"the rest {cfg.ablation}-ablated (MIB)")


def cut_prompts(model: TransformerBridge, task: CircuitTask, cfg: CircuitConfig) -> tuple[CircuitTask, list]:
    """The held-out prompts of the faithful cut (seed `CUT_SEED`, `cfg.n_prompts` pairs) and their
    ablation source; a JSONL task has no held-out set, so its own prompts are used."""
    if task.name in ("ioi", "greater-than", "docstring"):
        t = make_task(model, task.name, n=cfg.n_prompts, seed=CUT_SEED, equal_length=cfg.equal_length)
    else:
        t = task.subset(slice(0, min(cfg.n_prompts, len(task))))
    return t, ablation_source(model, t, cfg.ablation)


def whole_model_warning(chosen: torch.Tensor, method: str) -> str:
    """A warning when `chosen` covers every head ("" otherwise)."""
    n = chosen.numel()
    if int(chosen.sum()) < n:
        return ""
    return (f"{method}'s chosen circuit is the whole model ({n} of {n} heads): it localises nothing, and its "
            "faithfulness is 1 only because nothing is ablated")


def discovery_pairs(method: str, cfg: CircuitConfig) -> int:
    """Prompt pairs `method` draws for one seed."""
    return cfg.sae.n_pairs() if method == "discrete-sae" else cfg.n_prompts


def run_method(model: TransformerBridge, task: CircuitTask, method: str, cfg: CircuitConfig, seed: int = 0,
               cache: dict | None = None):
    """Scores, edge scores (or None) and chosen circuit of one method; timed by the caller.
    `task` holds the method's discovery prompts (`discovery_pairs`); `cache` (caller-owned) keeps
    discrete-sae's head outputs between seeds, and under CUT_KEY the faithful cut's held-out prompts
    (`cut_prompts`, built here when absent). The circuit follows `rule_of(method, cfg)`."""
    small = task.subset(slice(0, min(cfg.n_prompts, len(task))))
    rule = rule_of(method, cfg)
    if method == "discrete-sae":
        sae_cfg = DiscreteSAEConfig(**{**asdict(cfg.sae), "seed": seed})
        r = discrete_sae_scores(model, task, sae_cfg, cache)
        scores, edges = r.node_scores, (r.edge_scores if sae_cfg.edges or sae_cfg.qkv_edges else None)
    elif method == "patching":
        scores, edges = patching_scores(model, small).abs(), None
    elif method == "eap":
        r = eap_scores(model, small)
        scores, edges = r.node_scores, r.edge_scores
    elif method == "eap-ig":
        r = eap_ig_scores(model, small, steps=cfg.ig_steps)
        scores, edges = r.node_scores, r.edge_scores
    elif method == "acdc":
        r = acdc(model, small, cfg.acdc)
        scores = r.node_scores
        edges = r.edge_scores if cfg.acdc.level == "edge" else None
        if rule == "acdc":
            return scores, edges, r.kept_nodes
    else:
        raise InterpError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if rule == "faithful":
        cache = {} if cache is None else cache
        if CUT_KEY not in cache:  # once per run: every method and seed cuts on the same held-out pairs
            cache[CUT_KEY] = cut_prompts(model, task, cfg)
        cut_task, src = cache[CUT_KEY]
        return scores, edges, faithful_cut(model, cut_task, scores, cfg.cut_keep, src)
    return scores, edges, scores > 0


def tpr_tnr_f1(chosen: torch.Tensor, reference: torch.Tensor) -> float:
    """The discrete-SAE paper's "F1" (``common_utils.evaluate_circuit``): 2 TPR TNR / (TPR + TNR)."""
    c, r = chosen.flatten().bool(), reference.flatten().bool()
    tpr = float((c & r).sum()) / max(int(r.sum()), 1)
    tnr = float((~c & ~r).sum()) / max(int((~r).sum()), 1)
    return 2 * tpr * tnr / (tpr + tnr) if tpr + tnr > 0 else 0.0


def best_tpr_tnr_f1(roc: list[tuple[float, float]]) -> float:
    """Its best value over the cuts of a ranking (the number the paper reports), from ROC points."""
    vals = [2 * t * (1 - f) / (t + 1 - f) for f, t in roc if t + 1 - f > 0]
    return max(vals) if vals else float("nan")


def get_reference(model: TransformerBridge, model_name: str, task_name: str, mode: str = "stored",
                  root: str | Path | None = None, keep: float = 0.9, ablation: str = "resample") -> ReferenceCircuit | None:
    """The reference circuit by `mode`:

    * ``stored``: the one whose content key (weights fingerprint + the reference prompts + ablation)
      matches, from the package's shipped references or `root` / the user data dir; None (with a
      warning: the run reports only reference-free metrics) when there is none;
    * ``build``: build it now (greedy search, shown with a progress bar) and store it under `root`
      (default ``user_data_dir("circuits", "references")``), never in the package;
    * ``none``: no reference."""
    from interp.circuits.reference import REFERENCE_PROMPTS, build_reference, reference_key, save_reference

    if mode not in REFERENCE_MODES:
        raise InterpError(f"reference must be one of {', '.join(REFERENCE_MODES)}, not {mode!r}")
    if mode == "none":
        return None
    ref_task = make_task(model, task_name, n=REFERENCE_PROMPTS)
    key = reference_key(model, ref_task, ablation, keep)
    ref = find_reference(key, root)
    if ref is not None or mode == "stored":
        if ref is None:
            log.warning("no stored reference circuit for %s / %s: reporting reference-free metrics only "
                        "(use --reference build to build one)", model_name, ref_task.name)
        return ref
    ref = build_reference(model, ref_task, model_name, keep=keep, ablation=ablation)
    save_reference(ref, root)
    return ref


def eval_prompts(model: TransformerBridge, task: str, n_eval: int) -> tuple[CircuitTask, dict]:
    """The held-out prompts of the faithfulness curves (seed `EVAL_SEED`) and their ablation sources."""
    eval_task = make_task(model, task, n=n_eval, seed=EVAL_SEED)
    return eval_task, {a: ablation_source(model, eval_task, a) for a in ABLATIONS}


def add_curves(run: MethodRun, model: TransformerBridge, eval_task: CircuitTask, eval_src: dict, scores: torch.Tensor,
               edges: torch.Tensor | None = None) -> MethodRun:
    """Fill `run`'s CPR / CMD (node: resample and mean ablation; edge: when `edges` is given) and curves."""
    c = F.node_curve(model, eval_task, scores, "resample", eval_src["resample"])
    cm = F.node_curve(model, eval_task, scores, "mean", eval_src["mean"])
    run.cpr, run.cmd, run.cpr_mean, run.cmd_mean = c.cpr, c.cmd, cm.cpr, cm.cmd
    run.curves = {"node": {"x": c.fractions, "f": c.f}, "node_mean": {"x": cm.fractions, "f": cm.f}}
    if edges is not None:
        ce = F.edge_curve(model, eval_task, edges)
        run.edge_cpr, run.edge_cmd = ce.cpr, ce.cmd
        run.curves["edge"] = {"x": ce.fractions, "f": ce.f}
    return run


def run_circuits(model_name: str, task: str, methods: list[str] | tuple[str, ...] = METHODS, cfg: CircuitConfig | None = None,
                 model: TransformerBridge | None = None, reference: ReferenceCircuit | str | None = "stored",
                 reference_root: str | Path | None = None, progress=None, seeds=None, on_run=None) -> CircuitResult:
    """Run `methods` on `task` for `cfg.seeds` seeds (or the seed indices `seeds`, e.g. those a stopped
    run lacks); score each against the reference (a `ReferenceCircuit`, or a mode for `get_reference`)
    and by the reference-free curves. `progress(done, total, text)` and `on_run(run)`, when given, are
    called after every method run (`on_run` with its MethodRun, so a caller can save as it goes)."""
    cfg = cfg or CircuitConfig()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InterpError(f"unknown method {unknown[0]!r}; known: {', '.join(METHODS)}, all")
    if model is None:
        model = load_named_model(model_name)
    ref = reference if isinstance(reference, ReferenceCircuit) or reference is None else \
        get_reference(model, model_name, task, reference, reference_root, cfg.keep, cfg.ablation)
    is_file = not (task in ("ioi", "greater-than", "docstring"))
    eval_task, eval_src = eval_prompts(model, task, cfg.n_eval) if cfg.n_eval else (None, {})
    if eval_task is not None and is_file:
        log.info("JSONL task: the faithfulness curves use the file's own prompts (no held-out set)")
    runs: list[MethodRun] = []
    first = None
    seeds = list(range(cfg.seeds)) if seeds is None else list(seeds)
    total, done = len(seeds) * len(methods), 0
    fixed, cache = {}, {}
    for seed in seeds:
        for method in methods:
            n = discovery_pairs(method, cfg)
            if method == "discrete-sae":  # prompts fixed per task; the seed moves SAE init + training subset
                if n not in fixed:
                    fixed[n] = make_task(model, task, n=n, seed=DISCOVERY_SEED_BASE, equal_length=cfg.equal_length)
                t = fixed[n]
            else:
                t = make_task(model, task, n=n, seed=DISCOVERY_SEED_BASE + seed, equal_length=cfg.equal_length)
            if first is None:
                first = t
                separates = check_separates(model, t)
            torch.manual_seed(seed)
            with M.measure() as meas:
                scores, edges, chosen = run_method(model, t, method, cfg, seed, cache)
            scores, chosen = scores.detach().cpu().float(), chosen.cpu()
            edges = edges.detach().cpu().float() if edges is not None else None
            small = t.subset(slice(0, min(cfg.n_prompts, len(t))))
            src = ablation_source(model, small, cfg.ablation)
            full = full_metric(model, small)
            faith = metric_with_ablation(model, small, ~chosen.bool(), src) / full if full != 0 else float("nan")
            roc = M.roc_curve(scores, ref.mask) if ref is not None else []
            nan = float("nan")
            prf = M.precision_recall_f1(chosen, ref.mask) if ref is not None else M.PRF(nan, nan, nan)
            run = MethodRun(
                method, seed, scores.tolist(), chosen.nonzero().tolist(), meas.seconds, meas.peak_mb,
                M.roc_auc(scores, ref.mask) if ref is not None else nan, _edge_auc(edges, ref), prf.precision,
                prf.recall, prf.f1, faith, int(chosen.sum()), roc,
                f1_tpr_tnr=tpr_tnr_f1(chosen, ref.mask) if ref is not None else nan,
                best_f1_tpr_tnr=best_tpr_tnr_f1(roc) if ref is not None else nan,
                edge_scores=edges.tolist() if edges is not None else None,
                rule=circuit_rule(method, cfg, len(cache[CUT_KEY][0]) if CUT_KEY in cache else None),
                warning=whole_model_warning(chosen, method))
            if run.warning:
                log.warning("%s seed %d: %s", method, seed, run.warning)
            if eval_task is not None:
                add_curves(run, model, eval_task, eval_src, scores, edges if cfg.edge_curves else None)
            runs.append(run)
            if on_run is not None:
                on_run(run)
            done += 1
            log.info("%s seed %d: CPR %.3f, CMD %.3f, node AUC %.3f, %.2fs", method, seed, run.cpr, run.cmd, run.node_auc, meas.seconds)
            if progress is not None:
                progress(done, total, f"{method} seed {seed}")
    mp, mn = task_separation(model, first)
    return CircuitResult(model_name, first.name, model.cfg.n_layers, model.cfg.n_heads, mp, mn, separates,
                         asdict(ref) if ref is not None else None, runs).summarize()


def format_table(res: CircuitResult) -> str:
    """A plain-text table of the summary (mean +/- std over seeds)."""
    cols = ("cpr", "cmd", "node_auc", "edge_auc", "f1", "faithfulness", "size", "seconds")
    lines = [f"{'method':<14}" + "".join(f"{c:>18}" for c in cols)]
    for m, s in res.summary.items():
        cells = []
        for c in cols:
            mu, sd = s[c]
            cells.append(f"{'n/a':>18}" if isinstance(mu, float) and math.isnan(mu) else f"{mu:>11.3f} ± {sd:<5.3f}")
        lines.append(f"{m:<14}" + "".join(cells))
    for m in res.summary:
        rs = [r for r in res.runs if r.method == m]
        if rs and rs[0].rule:
            lines.append(f"{m} circuit rule: {rs[0].rule}")
        warned = [r.seed for r in rs if r.warning]
        if warned:
            lines.append(f"WARNING: {m}'s chosen circuit is the whole model on seed(s) {', '.join(map(str, warned))}")
    return "\n".join(lines)
