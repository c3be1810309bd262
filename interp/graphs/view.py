"""What the graph page draws, computed here (the page only lays it out): the pruned graph as node and
edge tables placed on a (token position, layer) grid, hover cards, supernodes, and the head-level
view of the same prompt.

Layout: x = token position, y = row (0 = token embeddings, 1 + L = layer L's features and error,
n_layers + 1 = logits); nodes sharing a cell are spread along x within +-0.35 of their position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.graphs.export import node_id
from interp.graphs.graph import Graph
from interp.graphs.prune import prune_graph


@dataclass
class GraphView:
    """Rows for the page's chart and tables."""

    nodes: list[dict]  # {id, index, kind, label, layer, pos, x, y, influence, activation, token}
    edges: list[dict]  # {source, target, weight, x, y, x2, y2}
    n_features_kept: int
    n_edges_kept: int


def layout(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98, max_edges: int = 400) -> GraphView:
    """The pruned graph on the grid of the module docstring (at most `max_edges` edges, largest |weight| first)."""
    pr = prune_graph(graph, node_threshold, edge_threshold)
    keep = pr.node_mask.nonzero().flatten().tolist()
    rows, cells = {}, {}
    for i in keep:
        kind = graph.node_kind(i)
        if kind == "feature":
            layer, pos, feat = graph.feature_key(i)
            y, act = layer + 1, float(graph.activation_values[graph.selected_features[i]])
        elif kind == "error":
            layer, pos = divmod(i - graph.error_start, graph.n_pos)
            y, act = layer + 1, None
        elif kind == "token":
            layer, pos, y, act = None, i - graph.token_start, 0, None
        else:
            layer, pos, y, act = None, graph.n_pos - 1, graph.n_layers + 1, None
        cells.setdefault((pos, y), []).append(i)
        rows[i] = {"id": node_id(graph, i), "index": i, "kind": kind, "label": graph.node_label(i), "layer": layer, "pos": pos,
                   "x": float(pos), "y": y, "influence": float(pr.cumulative_scores[i]), "activation": act,
                   "token": graph.token_strs[pos]}
    for members in cells.values():  # spread the nodes of one (position, layer) cell over [pos - 0.35, pos + 0.35]
        if len(members) > 1:
            for k, i in enumerate(members):
                rows[i]["x"] += 0.7 * k / (len(members) - 1) - 0.35
    dst, src = pr.edge_mask.nonzero(as_tuple=True)
    w = graph.adjacency[dst, src]
    order = torch.argsort(w.abs(), descending=True)[:max_edges].tolist()
    edges = []
    for j in order:
        s, d = int(src[j]), int(dst[j])
        if s in rows and d in rows:
            edges.append({"source": rows[s]["id"], "target": rows[d]["id"], "weight": float(w[j]), "x": rows[s]["x"], "y": rows[s]["y"],
                          "x2": rows[d]["x"], "y2": rows[d]["y"], "sign": "positive" if w[j] >= 0 else "negative"})
    connected = {e["source"] for e in edges} | {e["target"] for e in edges}
    nodes = [r for r in rows.values() if r["id"] in connected or r["kind"] in ("token", "logit")]
    return GraphView(nodes, edges, sum(r["kind"] == "feature" for r in nodes), len(edges))


@torch.no_grad()
def top_tokens(model, transcoders, layer: int, feature: int, k: int = 5) -> list[str]:
    """The tokens a feature's decoder direction promotes most directly: top of ``W_dec[f] W_U``
    (through the final norm's weight, scales frozen)."""
    from interp.graphs.targets import unembed_directions

    tc = transcoders[layer]
    logits = tc.W_dec[feature].float() @ unembed_directions(model).to(tc.W_dec.device)
    return [model.tokenizer.decode([int(i)]) for i in torch.topk(logits, k).indices]


@torch.no_grad()
def promoted_tokens(model, transcoders, keys: list[tuple[int, int]], k: int = 3) -> list[str]:
    """`top_tokens` of many (layer, feature) pairs at once, each as one short string (hover cards)."""
    from interp.graphs.targets import unembed_directions

    U = unembed_directions(model)
    out = []
    for layer, feat in keys:
        W = transcoders[layer].W_dec
        ids = torch.topk(W[feat].float() @ U.to(W.device), k).indices
        out.append(", ".join(repr(model.tokenizer.decode([int(i)])) for i in ids))
    return out


def node_card(graph: Graph, i: int, k: int = 5) -> dict:
    """Hover / click card of node i: label, activation, strongest inputs and outputs (by |edge|)."""
    A = graph.adjacency
    inc = torch.argsort(A[i].abs(), descending=True)[:k]
    out = torch.argsort(A[:, i].abs(), descending=True)[:k]
    card = {"label": graph.node_label(i), "kind": graph.node_kind(i),
            "inputs": [(graph.node_label(int(j)), float(A[i, j])) for j in inc if A[i, j] != 0],
            "outputs": [(graph.node_label(int(j)), float(A[j, i])) for j in out if A[j, i] != 0]}
    if card["kind"] == "feature":
        card["activation"] = float(graph.activation_values[graph.selected_features[i]])
    return card


def supernode_edges(graph: Graph, groups: dict[str, list[int]]) -> list[dict]:
    """Edges between named groups of nodes (and the logit nodes): the sum of the member edges."""
    A = graph.adjacency
    named = dict(groups)
    for k in range(graph.n_logits):
        named.setdefault(f"logit {graph.logit_tokens[k]}", [graph.logit_start + k])
    out = []
    for a, src in named.items():
        for b, dst in named.items():
            if a != b:
                w = float(A[dst][:, src].sum())
                if w != 0:
                    out.append({"source": a, "target": b, "weight": w})
    return out


@torch.no_grad()
def head_contributions(model, graph: Graph, logit: int = 0) -> list[dict]:
    """The head-level view of the same prompt: each attention head's direct contribution to logit node
    `logit` at the last position, ``z_h W_O^h . u`` with u the node's direction at the final
    normalised residual (LayerNorm scale frozen from the run), sorted by |contribution|."""
    from interp.graphs.targets import single_token, unembed_directions
    from interp.hooks import capture

    U = unembed_directions(model)
    vid = graph.logit_ids[logit]
    if vid < graph.vocab_size:
        u = U[:, vid] - U.mean(-1)
    else:
        a, b = graph.info.get("target", {}).get("diff") or (None, None)
        if a is None:
            return []
        u = U[:, single_token(model, a)] - U[:, single_token(model, b)]
    names = [f"blocks.{L}.attn.hook_z" for L in range(model.cfg.n_layers)] + ["ln_final.hook_scale"]
    toks = graph.input_tokens.to(next(model.parameters()).device)
    with capture(model, names) as acts:
        model(toks[None])
    scale = acts["ln_final.hook_scale"][0, -1].float()
    rows = []
    for L in range(model.cfg.n_layers):
        z = acts[f"blocks.{L}.attn.hook_z"][0, -1].float()  # [H, d_head]
        W_O = model.blocks[L].attn.W_O.float()  # [H, d_head, d_model]
        out = torch.einsum("hd,hdm->hm", z, W_O)
        out = out - out.mean(-1, keepdim=True)  # LayerNorm centring (linear)
        contrib = (out @ u.to(out.device)) / scale
        rows += [{"head": f"{L}.{h}", "layer": L, "contribution": float(c)} for h, c in enumerate(contrib)]
    return sorted(rows, key=lambda r: -abs(r["contribution"]))


@torch.no_grad()
def top_contexts(model, transcoders, layer: int, feature: int, n_tokens: int = 8192, k: int = 8, window: int = 8) -> list[dict]:
    """A transcoder feature's page: its `k` highest activations on held-out text of the embedded corpus
    (BOS left out), each with the `window` tokens before it: {activation, context, token}."""
    from interp.hooks import capture
    from interp.sae.eval import eval_tokens

    tc = transcoders[layer]
    toks = eval_tokens(model, n_tokens).to(next(model.parameters()).device)
    name = f"blocks.{layer}.ln2.hook_normalized"
    acts = []
    for i in range(0, len(toks), 16):
        with capture(model, [name]) as c:
            model(toks[i : i + 16], stop_at_layer=layer + 1)
        a = tc.encode(c[name].float())[..., feature]
        a[:, 0] = 0
        acts.append(a)
    A = torch.cat(acts)
    vals, flat = torch.topk(A.flatten(), min(k, A.numel()))
    out = []
    for v, f in zip(vals.tolist(), flat.tolist()):
        if v <= 0:
            break
        r, p = divmod(f, A.shape[1])
        ctx = toks[r, max(1, p - window) : p].tolist()
        out.append({"activation": v, "context": model.tokenizer.decode(ctx), "token": model.tokenizer.decode([int(toks[r, p])])})
    return out
