"""ACDC (Conmy et al., 2023): greedy pruning of a computational graph, against TransformerLens 3.

The graph, as in ACDC and auto-circuit: *source* nodes are every attention head (its output
``attn.hook_result``) and every MLP (``hook_mlp_out``); *destination* nodes are every head's q, k
and v input (TransformerLens' split-qkv hooks), every MLP's input (``hook_mlp_in``) and the
output (final residual stream). An edge joins a source to each destination downstream of it
(the embedding is always kept). Removing an edge replaces the source's contribution *along that
edge only* by its output on the paired negative prompt (resample ablation).

Walk the destinations from the output backwards (per layer: MLP input, then the heads' q/k/v);
for each incoming edge, tentatively remove it and measure the damage

    Δ = D(current graph without the edge) - D(current graph)

with D = KL(full model || patched model) on the last-token distribution (``objective="kl"``) or
``|m(full) - m(patched)|`` of the task metric (``objective="metric"``). Keep the edge if
Δ >= tau, otherwise remove it for good. A node with no remaining outgoing edge is skipped (all its
incoming edges go untested). ``level="node"`` runs the same loop over whole heads (resampling
the head's output everywhere), a cheap variant.

ACDC itself yields one subgraph per tau; its paper draws ROC curves by sweeping tau. To rank
heads from ONE run, we score an edge by the Δ measured when it was tested, and a head by the
largest score among its outgoing edges (a kept head always outranks a removed one).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
from jaxtyping import Bool, Float
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.circuits.eap import split_heads
from interp.circuits.patching import ablation_source, ablate_heads
from interp.circuits.tasks import CircuitTask
from interp.hooks import capture, intervene, run_from

log = logging.getLogger(__name__)


@dataclass
class ACDCConfig:
    """How ACDC prunes."""

    tau: float = 0.01  # keep an edge when removing it raises the objective by at least this much
    objective: str = "kl"  # "kl" (KL to the full model, the ACDC paper's default) or "metric"
    level: str = "edge"  # "edge" (ACDC proper) or "node" (whole heads)
    progress: bool = False  # show a tqdm bar

    def __post_init__(self):
        if self.objective not in ("kl", "metric"):
            raise ValueError(f"objective must be 'kl' or 'metric', not {self.objective!r}")
        if self.level not in ("edge", "node"):
            raise ValueError(f"level must be 'edge' or 'node', not {self.level!r}")
        if not self.tau >= 0 or self.tau == float("inf"):  # NaN compares false: it would keep every edge, slowly
            raise ValueError(f"tau must be a finite number >= 0, got {self.tau}")


class ACDCResult(NamedTuple):
    """What ACDC kept and how each node/edge ranked."""

    node_scores: Float[torch.Tensor, "layer head"]  # see module docstring
    edge_scores: Float[torch.Tensor, "layer head layer head"]  # head -> head: max over q/k/v of the Δ when tested
    kept_nodes: Bool[torch.Tensor, "layer head"]  # heads left in the circuit
    kept_edges: Bool[torch.Tensor, "layer head layer head"]  # head -> head edges kept (any of q/k/v)
    n_tested: int  # forward passes spent on tests


class EdgeMasks(NamedTuple):
    """Removed edges. Sources are indexed s = layer * (H + 1) + j, j < H a head, j = H the MLP."""

    qkv: Bool[torch.Tensor, "3 src layer head"]  # s -> head (layer, head) through its q, k or v input
    mlp: Bool[torch.Tensor, "src layer"]  # s -> the MLP of a layer
    out: Bool[torch.Tensor, " src"]  # s -> the output

    @staticmethod
    def empty(L: int, H: int) -> "EdgeMasks":
        S = L * (H + 1)
        return EdgeMasks(torch.zeros(3, S, L, H, dtype=torch.bool), torch.zeros(S, L, dtype=torch.bool), torch.zeros(S, dtype=torch.bool))


def _src_names(L: int) -> tuple[list[str], list[str]]:
    return [f"blocks.{l}.attn.hook_result" for l in range(L)], [f"blocks.{l}.hook_mlp_out" for l in range(L)]


@torch.no_grad()
def source_outputs(model: TransformerBridge, tokens: torch.Tensor) -> list[Float[torch.Tensor, "n pos src d_model"]]:
    """Per layer, the H head outputs and the MLP output stacked: [n, pos, H + 1, d_model]."""
    res, mlp = _src_names(model.cfg.n_layers)
    if model.cfg.attn_only:  # no MLPs: their source slot stays, always zero, so indices match
        with split_heads(model), capture(model, res) as a:
            model(tokens)
        return [torch.cat([a[r], torch.zeros_like(a[r][:, :, :1])], 2) for r in res]
    with split_heads(model), capture(model, res + mlp) as a:
        model(tokens)
    return [torch.cat([a[r], a[m][:, :, None]], 2) for r, m in zip(res, mlp)]


@contextlib.contextmanager
def removed_edges(model: TransformerBridge, neg_src: list[torch.Tensor], removed: EdgeMasks,
                  upstream: list[torch.Tensor] | None = None) -> Iterator[TransformerBridge]:
    """Forwards inside run with the edges marked in `removed` resampled from `neg_src` (the
    negative prompts' `source_outputs`). A forward that starts at layer s (`interp.hooks.run_from`)
    must pass `upstream`: the outputs of the sources below s on the same input, which that
    forward does not compute."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    cur: dict[int, torch.Tensor] = dict(enumerate(upstream or []))
    res_names, mlp_names = _src_names(L)

    attn_only = model.cfg.attn_only

    def keep_heads(layer):
        def fn(r, hook):
            cur[layer] = torch.cat([r, torch.zeros_like(r[:, :, :1])], 2) if attn_only else r
        return fn

    def keep_mlp(layer):
        def fn(m, hook):
            cur[layer] = torch.cat([cur[layer], m[:, :, None]], 2)
        return fn

    def diff(upto_layer: int, width: int, n: int) -> torch.Tensor:
        """(negative - current) outputs of the first `n` sources, from layers < upto_layer (+ its heads)."""
        parts = [neg_src[l][:, :width] - cur[l] for l in range(upto_layer)]
        if n > upto_layer * (H + 1):
            parts.append(neg_src[upto_layer][:, :width, :H] - cur[upto_layer][:, :, :H])
        return torch.cat(parts, 2)

    def fix_qkv(lv, x):
        def fn(a, hook):
            n = lv * (H + 1)
            m = removed.qkv[x, :n, lv]
            if m.shape[1] != a.shape[2]:
                # Grouped-query attention: one key/value input serves H / n_kv query heads, so an
                # edge into it is removed only when it is removed for every query head of the group.
                m = m.reshape(m.shape[0], a.shape[2], -1).all(-1)
            if not m.any():
                return a
            return a + torch.einsum("bpsd,sv->bpvd", diff(lv, a.shape[1], n), m.to(device=a.device, dtype=a.dtype))
        return fn

    def fix_mlp(lv):
        def fn(a, hook):
            n = lv * (H + 1) + H
            m = removed.mlp[:n, lv]
            if not m.any():
                return a
            return a + torch.einsum("bpsd,s->bpd", diff(lv, a.shape[1], n), m.to(device=a.device, dtype=a.dtype))
        return fn

    def fix_out(a, hook):
        if not removed.out.any():
            return a
        return a + torch.einsum("bpsd,s->bpd", diff(L, a.shape[1], L * (H + 1)), removed.out.to(device=a.device, dtype=a.dtype))

    edits = []
    # blocks below the start of a forward that starts later (`interp.hooks.run_from`) run on
    # placeholder tokens: their hooks would record the wrong sources, so none is registered there
    for l in range(len(upstream or []), L):
        edits += [(f"blocks.{l}.hook_{'qkv'[x]}_input", fix_qkv(l, x)) for x in range(3) if l > 0]
        edits.append((res_names[l], keep_heads(l)))
        if not attn_only:
            edits += [(f"blocks.{l}.hook_mlp_in", fix_mlp(l)), (mlp_names[l], keep_mlp(l))]
    edits.append((f"blocks.{L - 1}.hook_resid_post", fix_out))
    with split_heads(model), intervene(model, edits):
        yield model


def _objective(task: CircuitTask, full_logp: torch.Tensor, logits: torch.Tensor, full_m: float, objective: str) -> float:
    if objective == "kl":
        lp = logits[torch.arange(len(task)), task.lengths - 1].log_softmax(-1)
        return float((full_logp.exp() * (full_logp - lp)).sum(-1).mean())
    return abs(full_m - float(task.metric_from_logits(logits).mean()))


@torch.no_grad()
def acdc(model: TransformerBridge, task: CircuitTask, cfg: ACDCConfig | None = None, reuse_upstream: bool = True) -> ACDCResult:
    """Run ACDC on `task` (see module docstring). `reuse_upstream=False` runs every test as a full
    forward (slower, same result; kept for the test that proves it)."""
    cfg = cfg or ACDCConfig()
    L, H = model.cfg.n_layers, model.cfg.n_heads
    pre_names = [f"blocks.{l}.hook_resid_pre" for l in range(L)]
    with capture(model, pre_names) as pre:  # the residual stream each edge test starts from (below)
        full_logits = model(task.pos_tokens)
    full_logp = full_logits[torch.arange(len(task)), task.lengths - 1].log_softmax(-1)
    full_m = float(task.metric_from_logits(full_logits).mean())
    if cfg.level == "node":
        return _acdc_nodes(model, task, cfg, full_logp, full_m)
    neg_src = source_outputs(model, task.neg_tokens)
    # ACDC walks destinations from the output backwards, so while it tests edges into layer l every
    # removed edge ends at layer l or later and layers < l compute exactly as in the full model.
    # Each test therefore starts the forward at layer l from the cached residual stream (about
    # half the block compute of a full forward on this 4-layer model; same numbers, tested).
    pos_src = source_outputs(model, task.pos_tokens)
    resid_pre = [pre[n] for n in pre_names]
    S = L * (H + 1)
    src_layer = torch.arange(S) // (H + 1)
    is_head = torch.arange(S) % (H + 1) < H
    valid_qkv = src_layer[:, None] < torch.arange(L)[None, :]  # [S, L]
    valid_mlp = valid_qkv | ((src_layer[:, None] == torch.arange(L)[None, :]) & is_head[:, None])
    if model.cfg.attn_only:  # no MLP nodes: no edges into or out of them
        valid_mlp = torch.zeros_like(valid_mlp)
        valid_qkv = valid_qkv & is_head[:, None]
    rem = EdgeMasks.empty(L, H)
    score = EdgeMasks(torch.zeros(3, S, L, H), torch.zeros(S, L), torch.zeros(S))

    def run(start: int = 0) -> float:
        start = start if reuse_upstream else 0
        with removed_edges(model, neg_src, rem, upstream=pos_src[:start]):
            logits = run_from(model, resid_pre[start], start) if start else model(task.pos_tokens)
            return _objective(task, full_logp, logits, full_m, cfg.objective)

    def has_out(s: int) -> bool:
        return bool(~rem.out[s]) or bool(((~rem.qkv[:, s]) & valid_qkv[s][None, :, None]).any()) or bool(((~rem.mlp[s]) & valid_mlp[s]).any())

    state = {"current": run(), "n": 0}
    n_edges = S + int(valid_qkv.sum()) * 3 * H + int(valid_mlp.sum())
    bar = tqdm(total=n_edges, desc="ACDC edges", disable=not cfg.progress)

    def test(mask: torch.Tensor, sc: torch.Tensor, idx: tuple, live: bool, start: int) -> None:
        bar.update(1)
        mask[idx] = True
        if not live:
            return
        new = run(start)
        state["n"] += 1
        sc[idx] = new - state["current"]
        if new - state["current"] < cfg.tau:
            state["current"] = new
        else:
            mask[idx] = False

    for s in reversed(range(S)):
        if is_head[s] or not model.cfg.attn_only:
            test(rem.out, score.out, (s,), True, L - 1)
    for lv in reversed(range(L)):
        live = has_out(lv * (H + 1) + H)
        for s in reversed(range(S)):
            if valid_mlp[s, lv]:
                test(rem.mlp, score.mlp, (s, lv), live, lv)
        if not live:
            state["current"] = run(lv)
        for hv in range(H):
            live = has_out(lv * (H + 1) + hv)
            for x in range(3):
                for s in reversed(range(S)):
                    if valid_qkv[s, lv]:
                        test(rem.qkv, score.qkv, (x, s, lv, hv), live, lv)
            if not live:
                state["current"] = run(lv)
    bar.close()
    heads = is_head.nonzero().flatten()  # source index of every head, in (layer, head) order
    kept_nodes = torch.tensor([has_out(int(s)) for s in heads]).view(L, H)
    kept_qkv = (~rem.qkv) & valid_qkv[None, :, :, None]
    kept_edges = kept_qkv.any(0)[heads].view(L, H, L, H)
    edge_scores = score.qkv.amax(0)[heads].view(L, H, L, H)
    out_best = torch.stack([score.out[heads], score.mlp[heads].amax(-1), score.qkv.amax(0)[heads].flatten(1).amax(-1)]).amax(0).view(L, H)
    big = max(float(out_best.max()), cfg.tau) + 1.0
    node_scores = out_best.clamp_min(0) + big * kept_nodes
    return ACDCResult(node_scores, edge_scores, kept_nodes, kept_edges, state["n"])


def _acdc_nodes(model: TransformerBridge, task: CircuitTask, cfg: ACDCConfig, full_logp: torch.Tensor, full_m: float) -> ACDCResult:
    L, H = model.cfg.n_layers, model.cfg.n_heads
    src = ablation_source(model, task, "resample")
    ablated = torch.zeros(L, H, dtype=torch.bool)
    scores = torch.zeros(L, H)

    def run() -> float:
        with ablate_heads(model, ablated, src):
            return _objective(task, full_logp, model(task.pos_tokens), full_m, cfg.objective)

    current = run()
    for layer in reversed(range(L)):
        for head in range(H):
            ablated[layer, head] = True
            new = run()
            scores[layer, head] = new - current
            if new - current < cfg.tau:
                current = new
            else:
                ablated[layer, head] = False
    kept = ~ablated
    big = max(float(scores.max()), cfg.tau) + 1.0
    return ACDCResult(scores.clamp_min(0) + big * kept, torch.zeros(L, H, L, H), kept, torch.zeros(L, H, L, H, dtype=torch.bool), L * H)
