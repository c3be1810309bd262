"""The graph as the JSON that circuit-tracer's local viewer and Neuronpedia's graph pages read
(circuit-tracer 0.5.0 `utils/create_graph_files.py` and `frontend/graph_models.py`, field for field):

    {"metadata": {slug, scan, transcoder_list, prompt_tokens, prompt, node_threshold, schema_version},
     "qParams": {pinnedIds, supernodes, linkType, clickedId, sg_pos},
     "nodes": [{node_id, feature, layer, ctx_idx, feature_type, token_prob, is_target_logit, run_idx,
                reverse_ctx_idx, jsNodeId, clerp, influence, activation}, ...],
     "links": [{source, target, weight}, ...]}

Node ids as circuit-tracer writes them: feature ``"{layer}_{feature}_{pos}"``, error
``"0_{layer}_{pos}"``, token ``"E_{token_id}_{pos}"``, logit ``"{n_layers + 1}_{vocab_id}_{pos}"``. The
graph is pruned first (`prune.prune_graph`); nodes that lost every kept edge are left out, except
tokens and logits. ``qParams.pinnedIds`` / ``supernodes`` carry the page's pinned nodes and named
groups (circuit-tracer writes them empty). Deviation: ``clerp`` of a feature node holds our label
when one is given (circuit-tracer leaves it empty for Neuronpedia to fill).
"""

from __future__ import annotations

from pathlib import Path

from interp.graphs.graph import Graph
from interp.graphs.prune import prune_graph


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def node_id(graph: Graph, i: int) -> str:
    """circuit-tracer's node_id of node i."""
    kind, layer, pos, idx = graph.node_parts(i)
    if kind == "feature":
        return f"{layer}_{idx}_{pos}"
    if kind == "error":
        return f"0_{layer}_{pos}"
    if kind == "token":
        return f"E_{idx}_{pos}"
    return f"{graph.n_layers + 1}_{graph.logit_ids[idx]}_{pos}"


def node_record(graph: Graph, i: int, influence: float | None, labels: dict[str, str] | None = None) -> dict:
    """The viewer's node object for node i (`frontend/graph_models.Node`)."""
    kind, nid = graph.node_kind(i), node_id(graph, i)
    base = {"node_id": nid, "token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0, "clerp": "",
            "influence": influence, "activation": None}
    if kind == "feature":
        layer, pos, feat = graph.feature_key(i)
        act = float(graph.activation_values[graph.selected_features[i]])
        return {**base, "feature": _cantor(layer, feat), "layer": str(layer), "ctx_idx": pos, "feature_type": "cross layer transcoder",
                "jsNodeId": f"{layer}_{feat}-0", "activation": act, "clerp": (labels or {}).get(nid, "")}
    if kind == "error":
        layer, pos = divmod(i - graph.error_start, graph.n_pos)
        return {**base, "feature": -1, "layer": str(layer), "ctx_idx": pos, "feature_type": "mlp reconstruction error",
                "jsNodeId": f"{layer}_{pos}-0"}
    if kind == "token":
        pos = i - graph.token_start
        tok = int(graph.input_tokens[pos])
        return {**base, "feature": pos, "layer": "E", "ctx_idx": pos, "feature_type": "embedding", "jsNodeId": f"E_{tok}-{pos}"}
    k = i - graph.logit_start
    prob = float(graph.logit_probabilities[k])
    vid = graph.logit_ids[k]
    return {**base, "feature": vid, "layer": str(graph.n_layers + 1), "ctx_idx": graph.n_pos - 1, "feature_type": "logit",
            "token_prob": prob, "is_target_logit": k == 0, "jsNodeId": f"L_{vid}-{graph.n_pos - 1}",
            "clerp": f'Output "{graph.logit_tokens[k]}" (p={prob:.3f})'}


def to_viewer_json(graph: Graph, slug: str = "graph", scan: str | None = None, node_threshold: float = 0.8,
                   edge_threshold: float = 0.98, pinned: list[str] | None = None, supernodes: list[list[str]] | None = None,
                   labels: dict[str, str] | None = None) -> dict:
    """The viewer JSON of the module docstring (pruned at the given thresholds)."""
    pr = prune_graph(graph, node_threshold, edge_threshold)
    keep = pr.node_mask.nonzero().flatten().tolist()
    nodes = {i: node_record(graph, i, float(pr.cumulative_scores[i]), labels) for i in keep}
    dsts, srcs = pr.edge_mask.nonzero(as_tuple=True)
    weights = graph.adjacency[dsts, srcs].tolist()
    links = [{"source": nodes[s]["node_id"], "target": nodes[d]["node_id"], "weight": w}
             for s, d, w in zip(srcs.tolist(), dsts.tolist(), weights) if s in nodes and d in nodes]
    connected = {x for link in links for x in (link["source"], link["target"])}
    used = [n for n in nodes.values() if n["node_id"] in connected or n["feature_type"] in ("embedding", "logit")]
    scan = scan or f"interp-{graph.model_name or 'model'}"
    meta = {"slug": slug, "scan": scan, "transcoder_list": [graph.transcoders[k] for k in sorted(graph.transcoders, key=int)],
            "prompt_tokens": list(graph.token_strs), "prompt": graph.prompt, "node_threshold": node_threshold,
            "schema_version": 1}
    q = {"pinnedIds": list(pinned or []), "supernodes": [list(s) for s in (supernodes or [])], "linkType": "both",
         "clickedId": "", "sg_pos": ""}
    return {"metadata": meta, "qParams": q, "nodes": used, "links": links}


def write_viewer_json(graph: Graph, path: str | Path, **kw) -> Path:
    """`to_viewer_json` written atomically to `path`."""
    from interp.io import atomic_write_json

    return atomic_write_json(path, to_viewer_json(graph, **kw))
