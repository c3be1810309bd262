"""Reference circuits: what the discovery methods are scored against.

"Reference" here means: the smallest set of heads we could find, by an exhaustive greedy search,
that keeps >= 90% of the full model's task metric when every other head is resample-ablated
(overwritten by its output on the paired negative prompt). Concretely, backward elimination:

    A = {}                                            # ablated heads
    repeat: for every head h not in A, m_h = metric(ablate A + {h})
            h* = argmax_h m_h;  if m_h* >= keep * metric(full): A += {h*} else stop
    reference = all heads - A

Every candidate is evaluated at every step (O(heads^2) forward passes, each started at the
candidate's layer from the cached residual stream, on a held-out prompt set that no discovery
run uses). It is NOT ground truth: it depends on the ablation (resample), the
metric, the 90% cut, the prompts, and greedy order; heads that *hurt* the metric (e.g. negative
name movers) are pruned first and so are never in it. Reference *edges* are simply all pairs of
reference heads u -> v with layer(u) < layer(v); no edge-level search is run.

Stored as JSON in ``interp/circuits/reference/<model>__<task>.json`` with a fingerprint of the
model's weights, its faithfulness and size; `interp circuits --task T --build-reference` rebuilds it.
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
from transformer_lens import HookedTransformer

from interp.circuits.patching import ablate_heads, ablation_source, full_metric
from interp.hooks import capture
from interp.circuits.tasks import CircuitTask
from interp.errors import InterpError

log = logging.getLogger(__name__)

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_PROMPTS = 24  # held-out pairs the reference is built on


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


def fingerprint(model: HookedTransformer) -> str:
    """A short hash of the model's weights (detects a reference built for another model)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        if k.endswith(("W_Q", "W_K", "W_V", "W_O", "W_E")):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def build_reference(model: HookedTransformer, task: CircuitTask, model_name: str = "embedded", keep: float = 0.9, progress: bool = True) -> ReferenceCircuit:
    """Greedy exhaustive backward elimination (see module docstring)."""
    if not 0 < keep <= 1:
        raise InterpError(f"keep must be in (0, 1], not {keep}")
    t0 = time.perf_counter()
    L, H = model.cfg.n_layers, model.cfg.n_heads
    src = ablation_source(model, task, "resample")
    full = full_metric(model, task)
    if full <= 0:
        raise InterpError(f"task {task.name!r}: the full model's metric is {full:.3f} <= 0; there is no behaviour to find a circuit for")
    ablated = torch.zeros(L, H, dtype=torch.bool)
    current = full
    n_fwd = 1
    bar = tqdm(total=L * H, desc=f"reference {task.name}", disable=not progress)
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
                logits = model(resid[resid_names[l]], start_at_layer=l)
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
    heads = (~ablated).nonzero().tolist()
    return ReferenceCircuit(model_name, task.name, fingerprint(model), heads, L, H, keep, full, current,
                            current / full, len(task), n_fwd, time.perf_counter() - t0)


def reference_path(model_name: str, task_name: str, root: Path = REFERENCE_DIR) -> Path:
    from interp.models import model_id

    return root / f"{model_id(model_name)}__{task_name}.json"


def save_reference(ref: ReferenceCircuit, root: Path = REFERENCE_DIR) -> Path:
    """Write atomically (temp file, rename)."""
    path = reference_path(ref.model, ref.task, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(ref), indent=1))
    tmp.replace(path)
    return path


def load_reference(model: HookedTransformer, model_name: str, task_name: str, root: Path = REFERENCE_DIR) -> ReferenceCircuit | None:
    """The stored reference for this model and task, or None when absent or built for other weights."""
    path = reference_path(model_name, task_name, root)
    if not path.exists():
        return None
    ref = ReferenceCircuit(**json.loads(path.read_text()))
    if ref.fingerprint != fingerprint(model):
        log.warning("stored reference %s was built for other weights; ignoring it", path)
        return None
    return ref
