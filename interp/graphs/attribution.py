"""`attribute`: the attribution graph of one prompt, following circuit-tracer 0.5.0's `attribute`
(`circuit_tracer/attribution/attribute.py`, `context_transformerlens.py`) step by step.

0. Clean run: active transcoder features, error vectors, token vectors (`replacement.setup`).
1. One forward pass of the prompt repeated `B` times through the linearised model
   (`replacement.linearising_hooks`), graph kept for many backward passes.
2. Logit nodes (`targets`): salient logits, given tokens, or a logit difference.
3. Logit rows: for each logit node, inject its direction as the gradient at the last position of
   ``ln_final.hook_normalized``; contract the gradients at every MLP output with each active
   feature's ``activation * W_dec`` row (feature edges), with each error vector (error edges), and
   at the embedding with each token's embedding (token edges). That row is the node's direct
   effects ``A[target, source]``, because the linearised model is linear in the residual stream.
4. Feature rows: the same with each active feature's encoder column injected at its layer's MLP
   input and position, in batches of `B` rows (one per batch row); with `max_feature_nodes`, the
   features are visited in order of their influence on the logits, re-ranked every
   `update_interval` batches from the rows so far (circuit-tracer's `compute_partial_influences`).
5. The adjacency matrix, rows sorted into node order (`graph.Graph`).

Deviations from circuit-tracer (names only where the numbers could differ):

* Gradients are read with ``torch.autograd.grad`` on recorded tensors instead of TransformerLens
  backward hooks and a write buffer: the same contractions, and no parameter ``.grad`` is touched.
  The model is not rebuilt as a replacement model: the freezes are hooks, and the parameters'
  ``requires_grad`` is switched off only while the graph is built (`parameters_frozen`), then restored.
* Logit directions are injected at ``ln_final.hook_normalized`` (see `targets`), and the
  transcoders read ``blocks.L.ln2.hook_normalized`` (the MLP input before LayerNorm's affine
  weights) where circuit-tracer reads ``mlp.hook_in`` (after them): on a model whose LayerNorm
  weights are folded, the two are the same tensor.
* The batch size `B` of the repeated forward is min(`batch_size`, number of rows to compute);
  circuit-tracer always expands to `batch_size`.
* Bad input (a prompt longer than the context, a target that is not one token, transcoders that do
  not fit the model, a graph too large for memory) is refused in one line before any model run: the
  memory estimate uses the transcoders' recorded L0 (metrics.json) times the positions; it is checked
  again with the real number of active features after the single clean forward.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from interp.errors import InterpError
from interp.graphs.graph import Graph
from interp.graphs.replacement import StopForward, linearising_hooks, setup
from interp.graphs.targets import resolve_targets

log = logging.getLogger(__name__)


@dataclass
class AttributionConfig:
    """How one graph is built (circuit-tracer's `attribute` arguments)."""

    max_n_logits: int = 10  # at most this many salient logit nodes
    desired_logit_prob: float = 0.95  # salient logits until their probabilities sum to this
    batch_size: int = 256  # rows per backward pass (circuit-tracer's default is 512)
    max_feature_nodes: int | None = None  # cap on feature nodes (most influential first); None: all active features
    update_interval: int = 4  # batches between re-rankings when capped

    def __post_init__(self):
        if self.max_n_logits < 1 or self.batch_size < 1 or self.update_interval < 1:
            raise InterpError("max_n_logits, batch_size and update_interval must be >= 1")
        if not 0 < self.desired_logit_prob <= 1:
            raise InterpError(f"desired_logit_prob must lie in (0, 1], got {self.desired_logit_prob}")
        if self.max_feature_nodes is not None and self.max_feature_nodes < 1:
            raise InterpError(f"max_feature_nodes must be >= 1, got {self.max_feature_nodes}")


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on `device` (MemAvailable on Linux CPUs); None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def estimate_bytes(model, n_pos: int, n_features: int, n_logits: int, batch: int) -> int:
    """Peak memory of `attribute`, roughly (float32): the edge matrix and the dense adjacency, plus the
    activations the repeated forward keeps for its backward passes (per row and position: the
    residual stream and its normalised copies, q/k/v/z, the MLP hidden layer, the attention pattern;
    the repeated forward stops before the unembedding) and one gradient of every kept tensor."""
    c = model.cfg
    n_nodes = n_features + (c.n_layers + 1) * n_pos + n_logits
    graph = 4 * (n_nodes * n_nodes + (n_features + n_logits) * n_nodes)
    d_mlp = getattr(c, "d_mlp", None) or 4 * c.d_model
    per_pos = c.n_layers * (12 * c.d_model + 2 * d_mlp + 2 * c.n_heads * n_pos)
    return graph + 2 * 4 * batch * n_pos * per_pos


def check_fits_memory(model, n_pos: int, n_features: int, n_logits: int, batch: int, device: torch.device) -> int:
    """One-line `InterpError` when the estimate exceeds the free memory; returns the estimate."""
    need, have = estimate_bytes(model, n_pos, n_features, n_logits, batch), available_memory(device)
    if have is not None and need > have:
        raise InterpError(f"this graph ({n_features} active features, {n_pos} positions, {n_logits} logits) needs about "
                          f"{need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB free on {device.type}; "
                          "shorten the prompt, lower --batch-size or cap --max-feature-nodes")
    return need


def compute_partial_influences(edge_matrix: torch.Tensor, logit_p: torch.Tensor, row_to_node_index: torch.Tensor,
                               max_iter: int = 128) -> torch.Tensor:
    """circuit-tracer's influence of every node from the rows computed so far (power iteration)."""
    normalized = edge_matrix.abs()
    normalized = normalized / normalized.sum(dim=1, keepdim=True).clamp(min=1e-8)
    influences = torch.zeros(edge_matrix.shape[1])
    prod = torch.zeros(edge_matrix.shape[1])
    prod[-len(logit_p):] = logit_p
    for _ in range(max_iter):
        prod = prod[row_to_node_index] @ normalized
        if not prod.any():
            return influences
        influences += prod
    raise RuntimeError("partial influences failed to converge")


def _rows(model, S, targets, rec, B, cfg, edge_matrix, row_to_node, n_active, n_layers, n_pos, logit_offset, by_layer, device,
          progress):
    """Phases 3 and 4: the logit rows, then the feature rows, of the edge matrix (module docstring)."""
    n_logits = len(targets.ids)
    max_f = edge_matrix.shape[0] - n_logits
    leaves = [rec.embed[0]] + rec.mlp_grads

    def compute_batch(layers: torch.Tensor, positions: torch.Tensor, inject: torch.Tensor) -> torch.Tensor:
        """[len(layers), logit_offset] direct effects of every source on these targets."""
        n = len(layers)
        outs, grads_in = [], []
        for L in layers.unique().tolist():
            x = rec.inputs[L]
            g = torch.zeros_like(x)
            rows = (layers == L).nonzero(as_tuple=True)[0]
            g[rows, positions[rows]] = inject[rows].to(g.dtype)
            outs.append(x)
            grads_in.append(g)
        grads = torch.autograd.grad(outs, leaves, grads_in, retain_graph=True, allow_unused=True)
        row = torch.zeros(n, logit_offset)
        for L in range(n_layers):
            g = grads[1 + L]
            if g is None:
                continue
            g = g[:n].float()
            idx = by_layer[L]
            if len(idx):
                row[:, idx] = torch.einsum("bnd,nd->bn", g[:, S.active[idx, 1]], S.decoder_vecs[idx]).cpu()
            e0 = n_active + L * n_pos
            row[:, e0 : e0 + n_pos] = torch.einsum("bpd,pd->bp", g, S.error_vecs[L]).cpu()
        if grads[0] is not None:
            t0 = n_active + n_layers * n_pos
            row[:, t0 : t0 + n_pos] = torch.einsum("bpd,pd->bp", grads[0][:n].float(), S.token_vecs).cpu()
        return row

    # Phase 3: logit rows
    t_rows = time.time()
    total_rows = n_logits + max_f
    done = 0
    for i in range(0, n_logits, B):
        vec = targets.vectors[i : i + B].to(device)
        rows = compute_batch(torch.full((len(vec),), n_layers, device=device), torch.full((len(vec),), n_pos - 1, device=device), vec)
        edge_matrix[i : i + len(vec), :logit_offset] = rows
        row_to_node[i : i + len(vec)] = torch.arange(i, i + len(vec)) + logit_offset
        done += len(vec)
        if progress is not None:
            progress(done, total_rows)

    # Phase 4: feature rows
    st = n_logits
    visited = torch.zeros(n_active, dtype=torch.bool)
    n_visited = 0
    while n_visited < max_f:
        if max_f == n_active:
            pending = torch.arange(n_active)
        else:
            infl = compute_partial_influences(edge_matrix[:st], targets.probabilities.float(), row_to_node[:st])
            rank = torch.argsort(infl[:n_active], descending=True)
            pending = rank[~visited[rank]][: min(cfg.update_interval * B, max_f - n_visited)]
        for j in range(0, len(pending), B):
            idx = pending[j : j + B]
            n_visited += len(idx)
            rows = compute_batch(S.active[idx, 0].to(device), S.active[idx, 1].to(device), S.encoder_vecs[idx])
            edge_matrix[st : st + len(idx), :logit_offset] = rows
            row_to_node[st : st + len(idx)] = idx
            visited[idx] = True
            st += len(idx)
            done += len(idx)
            if progress is not None:
                progress(done, total_rows)
    return edge_matrix, row_to_node, visited, time.time() - t_rows


@contextlib.contextmanager
def parameters_frozen(model) -> Iterator[None]:
    """Parameters with ``requires_grad=False`` inside the block, each restored on exit (circuit-tracer
    freezes them for good): autograd then keeps no layer inputs for weight gradients, which were
    most of the memory of the repeated forward."""
    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, r in zip(params, before):
            p.requires_grad_(r)


def attribute(model, prompt: str | torch.Tensor, transcoders, target: list[str] | None = None,
              diff: tuple[str, str] | None = None, config: AttributionConfig | None = None,
              progress: Callable[[int, int], None] | None = None) -> Graph:
    """The attribution graph of `prompt` (text, or token ids with BOS) on `model` with one transcoder
    per MLP layer (`transcoders`: an `interp.transcoders.TranscoderSet` or {layer: transcoder});
    logit nodes from `target` tokens, a `diff` (a, b) logit difference, or the salient logits."""
    from interp.hooks import intervene, prompt_tokens
    from interp.transcoders.io import TranscoderSet, check_set_fits

    cfg = config or AttributionConfig()
    tset = transcoders if isinstance(transcoders, TranscoderSet) else TranscoderSet(dict(transcoders), {}, None)
    check_set_fits(tset, model)
    t_start = time.time()
    device = next(model.parameters()).device
    tokens = prompt_tokens(model, prompt)[0] if isinstance(prompt, str) else prompt.to(device).reshape(-1)
    if len(tokens) > model.cfg.n_ctx:
        raise InterpError(f"prompt is {len(tokens)} tokens, longer than the model's context of {model.cfg.n_ctx}")
    if len(tokens) < 2:
        raise InterpError("the prompt needs at least one token after BOS (position 0 is not attributed)")
    tcs = {L: tset[L].to(device).float() for L in tset.layers}
    # targets first: a target that is not one token is refused before the clean run
    if diff is not None or target:
        resolve_targets(model, torch.zeros(model.cfg.d_vocab, device=device), target, diff)

    # Before any model run: the graph expected from the transcoders' recorded L0 (when known) must fit
    if len(tset.l0) == len(tcs):
        expect_f = int(sum(tset.l0.values()) * (len(tokens) - 1))
        if cfg.max_feature_nodes is not None:
            expect_f = min(expect_f, cfg.max_feature_nodes)
        check_fits_memory(model, len(tokens), expect_f, cfg.max_n_logits, max(1, min(cfg.batch_size, expect_f)), device)

    # Phase 0: the clean run
    S = setup(model, tokens, tcs)
    targets = resolve_targets(model, S.logits[-1], target, diff, cfg.max_n_logits, cfg.desired_logit_prob)
    n_layers, n_pos = model.cfg.n_layers, len(tokens)
    n_active = len(S.active)
    n_logits = len(targets.ids)
    max_f = min(cfg.max_feature_nodes or n_active, n_active)
    B = max(1, min(cfg.batch_size, max(n_logits, max_f)))
    need = check_fits_memory(model, n_pos, max_f, n_logits, B, device)
    log.info("%d active features, %d logit nodes; about %.2f GiB", n_active, n_logits, need / 2**30)

    logit_offset = n_active + (n_layers + 1) * n_pos
    total_nodes = logit_offset + n_logits
    edge_matrix = torch.zeros(max_f + n_logits, total_nodes)
    row_to_node = torch.zeros(max_f + n_logits, dtype=torch.long)
    layer_of = S.active[:, 0]
    by_layer = [(layer_of == L).nonzero(as_tuple=True)[0] for L in range(n_layers)]

    # Phase 1: the repeated forward through the linearised model
    hooks, rec = linearising_hooks(model, tcs, B, n_pos)
    t_fwd = time.time()
    with parameters_frozen(model):  # until the last backward pass
        try:
            with torch.enable_grad(), intervene(model, hooks):
                model(tokens[None].expand(B, -1))
        except StopForward:
            pass
        fwd_s = time.time() - t_fwd
        edge_matrix, row_to_node, visited, rows_s = _rows(model, S, targets, rec, B, cfg, edge_matrix, row_to_node,
                                                         n_active, n_layers, n_pos, logit_offset, by_layer, device, progress)

    # Phase 5: the adjacency matrix in node order
    selected = torch.where(visited)[0]
    if max_f < n_active:
        edge_matrix = edge_matrix[:, torch.cat([selected, torch.arange(n_active, total_nodes)])]
    edge_matrix = edge_matrix[row_to_node.argsort()]
    n = edge_matrix.shape[1]
    adjacency = torch.zeros(n, n)
    adjacency[:max_f] = edge_matrix[:max_f]
    adjacency[-n_logits:] = edge_matrix[max_f:]
    del rec, hooks

    tok_strs = [model.tokenizer.decode([int(t)]) for t in tokens.tolist()]
    info = {"max_n_logits": cfg.max_n_logits, "desired_logit_prob": cfg.desired_logit_prob, "batch_size": B,
            "max_feature_nodes": cfg.max_feature_nodes, "n_active": n_active, "estimated_bytes": need,
            "target": {"tokens": target, "diff": list(diff) if diff else None},
            "seconds": {"total": round(time.time() - t_start, 3), "forward": round(fwd_s, 3), "rows": round(rows_s, 3)}}
    return Graph(prompt=prompt if isinstance(prompt, str) else "".join(tok_strs), input_tokens=tokens.cpu(), token_strs=tok_strs,
                 active_features=S.active.cpu(), activation_values=S.values.cpu(), selected_features=selected,
                 adjacency=adjacency, logit_tokens=targets.labels, logit_ids=targets.ids,
                 logit_probabilities=targets.probabilities.cpu().float(), n_layers=n_layers, vocab_size=model.cfg.d_vocab,
                 model_name=getattr(model.cfg, "model_name", None), transcoders={str(k): v for k, v in tset.paths.items()},
                 info=info)
