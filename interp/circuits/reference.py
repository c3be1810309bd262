"""Reference circuits: what the discovery methods are scored against.

"Reference" here means: the smallest set of heads we could find, by an exhaustive greedy search,
that keeps >= 90% of the full model's task metric when every other head is ablated with the SAME
ablation the faithfulness metric uses (default ``resample``: overwritten by its output on the
paired negative prompt). Concretely, backward elimination:

    A = {}                                            # ablated heads
    repeat: for every head h not in A, m_h = metric(ablate A + {h})
            h* = argmax_h m_h;  if m_h* >= keep * metric(full): A += {h*} else stop
    reference = all heads - A

Every candidate is evaluated at every step (O(heads^2) forward passes, each started at the
candidate's layer from the cached residual stream, on a held-out prompt set that no discovery
run uses). It is NOT ground truth: it depends on the ablation, the metric, the 90% cut, the
prompts, and the greedy order; heads that *hurt* the metric (e.g. negative name movers) are pruned
first and so are never in it. To say how much it depends on them, the search is repeated on
`STABILITY_SETS` - 1 further held-out prompt sets and, on the main set, as a single pass in
`STABILITY_ORDERS` random head orders (drop a head when the metric stays >= keep * full); the
reference stores every variant's head set, how often each head is in one, and the mean pairwise
Jaccard similarity of the sets (1 = always the same heads). Reference *edges* are all pairs of
reference heads u -> v with layer(u) < layer(v); no edge-level search is run.

A reference is found by its content key: sha256 of the model's weights fingerprint, the task's
reference prompts and answers, the metric, the ablation and the cut, never by a file name, so a
custom task file named like a built-in task is never scored against the built-in's reference.
The two embedded models' references ship in ``interp/circuits/reference/`` (rebuilt by the
developer command ``python -m interp.circuits.reference``); references built by users go to
``user_data_dir("circuits", "references")`` or a directory they name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from jaxtyping import Bool
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.patching import ablate_heads, ablation_source, full_metric, metric_with_ablation
from interp.data.corpus import HELDOUT_SEED as C_HELDOUT_SEED
from interp.hooks import capture, run_from
from interp.circuits.tasks import CircuitTask
from interp.errors import InterpError

log = logging.getLogger(__name__)

REFERENCE_DIR = Path(__file__).parent / "reference"  # shipped references (read-only for the library)
REFERENCE_PROMPTS = 24  # held-out pairs the reference is built on
STABILITY_SETS = 3  # prompt sets the greedy search runs on (the first is the reference)
STABILITY_ORDERS = 3  # random orders of the single-pass variant


def user_reference_dir() -> Path:
    from interp.io import user_data_dir

    return user_data_dir("circuits", "references")


@dataclass
class ReferenceCircuit:
    """A reference circuit and how it was made."""

    model: str  # model name it was built for
    task: str  # task name
    fingerprint: str  # sha256 prefix of the model's weights
    heads: list[list[int]]  # [layer, head] of every reference head
    n_layers: int  # model shape, for the mask
    n_heads: int
    keep: float  # fraction of the full metric the circuit must keep
    full_metric: float  # task metric of the full model on the reference prompts
    circuit_metric: float  # with every other head resample-ablated
    faithfulness: float  # circuit_metric / full_metric
    n_prompts: int  # prompt pairs used
    n_forward: int  # forward passes spent
    seconds: float  # wall time of the search
    key: str = ""  # content key (see module docstring)
    ablation: str = "resample"  # how pruned heads were ablated
    stability: dict | None = None  # {"variants": [{"how", "heads"}], "head_frequency": [[l, h, freq]], "jaccard_mean"}

    @property
    def mask(self) -> Bool[torch.Tensor, "layer head"]:
        m = torch.zeros(self.n_layers, self.n_heads, dtype=torch.bool)
        for l, h in self.heads:
            m[l, h] = True
        return m

    @property
    def edge_mask(self) -> Bool[torch.Tensor, "layer head layer head"]:
        m = self.mask
        e = m[:, :, None, None] & m[None, None, :, :]
        return e & torch.triu(torch.ones(self.n_layers, self.n_layers, dtype=torch.bool), 1)[:, None, :, None]

    @property
    def size(self) -> int:
        return len(self.heads)


def fingerprint(model: TransformerBridge) -> str:
    """A short hash of the model's weights (detects a reference built for another model).

    It hashes the attention weights and the embedding in TransformerLens' layout (``W_Q/W_K/W_V``
    [H, d_model, d_head], ``W_O`` [H, d_head, d_model], ``W_E``) under TransformerLens' names, not the
    checkpoint's own tensors: the same weights stored another way (the shipped models became Hugging
    Face checkpoints) keep their fingerprint, so references stay found. A model whose attention has no
    such view is hashed from its state dict."""
    h = hashlib.sha256()
    try:
        ws = {f"blocks.{i}.attn.{w}": getattr(b.attn, w) for i, b in enumerate(model.blocks) for w in ("W_Q", "W_K", "W_V", "W_O")}
        ws["embed.W_E"] = model.W_E
    except (AttributeError, NotImplementedError, RuntimeError):
        ws = dict(model.state_dict())
    for k, v in sorted(ws.items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def reference_key(model: TransformerBridge, task: CircuitTask, ablation: str = "resample", keep: float = 0.9) -> str:
    """Content key of a reference: weights fingerprint + prompts + answers + metric + ablation + cut."""
    h = hashlib.sha256()
    h.update(json.dumps([fingerprint(model), task.metric, task.positive, task.negative, task.good, task.bad,
                         ablation, keep]).encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def greedy_prune(model: TransformerBridge, task: CircuitTask, keep: float, ablation: str, progress: bool = False,
                 desc: str = "reference") -> tuple[torch.Tensor, float, float, int]:
    """Exhaustive greedy backward elimination (module docstring). -> (ablated mask, full, circuit metric, forwards)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    src = ablation_source(model, task, ablation)
    full = full_metric(model, task)
    if full <= 0:
        raise InterpError(f"task {task.name!r}: the full model's metric is {full:.3f} <= 0; there is no behaviour to find a circuit for")
    ablated = torch.zeros(L, H, dtype=torch.bool)
    current = full
    n_fwd = 1
    bar = tqdm(total=L * H, desc=desc, disable=not progress)
    resid_names = [f"blocks.{l}.hook_resid_pre" for l in range(L)]
    while not ablated.all():
        # Ablating one more head in layer l leaves the residual stream before layer l unchanged, so
        # each candidate runs from the cached blocks.l.hook_resid_pre of the current ablation.
        with ablate_heads(model, ablated, src), capture(model, resid_names) as resid:
            model(task.pos_tokens)
        n_fwd += 1
        best, best_m = None, -float("inf")
        for l, h in (~ablated).nonzero().tolist():
            trial = ablated.clone()
            trial[l, h] = True
            with ablate_heads(model, trial, src):
                logits = run_from(model, resid[resid_names[l]], l)
            m = float(task.metric_from_logits(logits).mean())
            n_fwd += 1
            if m > best_m:
                best, best_m = (l, h), m
        if best_m < keep * full:
            break
        ablated[best] = True
        current = best_m
        bar.update(1)
    bar.close()
    return ablated, full, current, n_fwd


@torch.no_grad()
def single_pass_prune(model: TransformerBridge, task: CircuitTask, keep: float, ablation: str, order: list[int]) -> torch.Tensor:
    """One pass over heads in `order`: ablate a head for good when the metric stays >= keep * full."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    src = ablation_source(model, task, ablation)
    full = full_metric(model, task)
    ablated = torch.zeros(L * H, dtype=torch.bool)
    for i in order:
        ablated[i] = True
        if metric_with_ablation(model, task, ablated.view(L, H), src) < keep * full:
            ablated[i] = False
    return ablated.view(L, H)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


@torch.no_grad()
def build_reference(model: TransformerBridge, task: CircuitTask, model_name: str = "embedded", keep: float = 0.9,
                    progress: bool = True, ablation: str = "resample", stability_sets: int = STABILITY_SETS,
                    stability_orders: int = STABILITY_ORDERS) -> ReferenceCircuit:
    """Greedy exhaustive backward elimination on `task`, plus the stability variants (module docstring)."""
    if not 0 < keep <= 1:
        raise InterpError(f"keep must be in (0, 1], not {keep}")
    from interp.circuits.tasks import make_task

    t0 = time.perf_counter()
    L, H = model.cfg.n_layers, model.cfg.n_heads
    ablated, full, current, n_fwd = greedy_prune(model, task, keep, ablation, progress, f"reference {task.name}")
    heads = (~ablated).nonzero().tolist()
    variants = [{"how": "greedy, reference prompts", "heads": heads}]
    builtin = task.name in ("ioi", "greater-than", "docstring")
    for i in range(1, stability_sets if builtin else 1):  # a JSONL task has one prompt set
        other = make_task(model, task.name, n=len(task), seed=C_HELDOUT_SEED + 1000 * i)
        a, *_ = greedy_prune(model, other, keep, ablation, progress, f"reference {task.name} set {i + 1}")
        variants.append({"how": f"greedy, prompt set {i + 1}", "heads": (~a).nonzero().tolist()})
    gen = torch.Generator().manual_seed(0)
    for i in range(stability_orders):
        a = single_pass_prune(model, task, keep, ablation, torch.randperm(L * H, generator=gen).tolist())
        variants.append({"how": f"single pass, random order {i + 1}", "heads": (~a).nonzero().tolist()})
    sets = [{tuple(h) for h in v["heads"]} for v in variants]
    freq = {}
    for st in sets:
        for h in st:
            freq[h] = freq.get(h, 0) + 1
    pairs = [_jaccard(a, b) for i, a in enumerate(sets) for b in sets[i + 1:]]
    stability = {"variants": variants, "head_frequency": [[l, h, c / len(sets)] for (l, h), c in sorted(freq.items())],
                 "jaccard_mean": sum(pairs) / len(pairs) if pairs else 1.0}
    return ReferenceCircuit(model_name, task.name, fingerprint(model), heads, L, H, keep, full, current,
                            current / full, len(task), n_fwd, time.perf_counter() - t0,
                            reference_key(model, task, ablation, keep), ablation, stability)


def save_reference(ref: ReferenceCircuit, root: str | Path | None = None) -> Path:
    """Write atomically under `root` (default: the user data dir; never the package unless asked
    for by the developer command)."""
    from interp.io import atomic_write_json
    from interp.io import model_id

    root = Path(root) if root is not None else user_reference_dir()
    return atomic_write_json(root / f"{model_id(ref.model)}__{ref.task}__{ref.key[:12]}.json", asdict(ref), indent=1)


def _read(path: Path) -> ReferenceCircuit | None:
    try:
        return ReferenceCircuit(**json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        log.warning("skipping unreadable reference file %s (%s)", path, type(e).__name__)
        return None


def find_reference(key: str, root: str | Path | None = None) -> ReferenceCircuit | None:
    """The reference with content key `key`: shipped ones first, then `root` (default: the user dir)."""
    for d in (REFERENCE_DIR, Path(root) if root is not None else user_reference_dir()):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            ref = _read(path)
            if ref is not None and ref.key == key:
                return ref
    return None


def main(argv: list[str] | None = None) -> int:
    """Developer command: rebuild the shipped references of the embedded models in the package.

        python -m interp.circuits.reference [--models embedded embedded-attn] [--tasks ...]"""
    import argparse

    from interp.circuits.tasks import BUILTIN_TASKS, make_task

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--models", nargs="+", default=["embedded", "embedded-attn"])
    p.add_argument("--tasks", nargs="+", default=list(BUILTIN_TASKS))
    p.add_argument("--keep", type=float, default=0.9)
    p.add_argument("--ablation", default="resample")
    p.add_argument("--sets", type=int, default=STABILITY_SETS, help="prompt sets of the greedy search (stability)")
    p.add_argument("--orders", type=int, default=STABILITY_ORDERS, help="random orders of the single pass (stability)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from interp.circuits.run import load_named_model

    for name in a.models:
        model = load_named_model(name)
        for task in a.tasks:
            try:
                ref = build_reference(model, make_task(model, task, n=REFERENCE_PROMPTS), name, keep=a.keep, ablation=a.ablation,
                                      stability_sets=a.sets, stability_orders=a.orders)
            except InterpError as e:  # e.g. the model has no behaviour on this task: no reference, said why
                log.warning("%s / %s: no reference: %s", name, task, e)
                continue
            for old in REFERENCE_DIR.glob(f"{name}__{task}*.json"):
                old.unlink()  # the developer command owns these shipped files
            path = save_reference(ref, REFERENCE_DIR)
            log.info("%s / %s: %d heads %s, faithfulness %.3f, stability (Jaccard) %.2f -> %s", name, task, ref.size,
                     ref.heads, ref.faithfulness, ref.stability["jaccard_mean"], path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
