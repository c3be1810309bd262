"""Attribution graphs over transcoder features, as circuit-tracer defines them.

    from interp.graphs import attribute, prune_graph, graph_scores, write_viewer_json
    graph = attribute(model, "When Mary and John went to the store, John gave a drink to", tset)
    pr = prune_graph(graph)                  # node influence 0.8, then edge influence 0.98
    scores = graph_scores(graph)             # replacement, completeness

Modules (one idea each): `graph` (the Graph and its file), `targets` (logit nodes),
`replacement` (the local replacement model as hooks), `attribution` (the edges), `prune`
(influence, pruning, scores), `export` (circuit-tracer / Neuronpedia viewer JSON),
`interventions` (ablate / steer features, measured vs predicted).
"""

from interp.graphs.attribution import AttributionConfig, attribute, estimate_bytes
from interp.graphs.export import to_viewer_json, write_viewer_json
from interp.graphs.graph import Graph, load_graph, save_graph
from interp.graphs.interventions import FeatureEdit, InterventionResult, check_intervention, predict, run_with_edits
from interp.graphs.prune import GraphScores, PruneResult, graph_scores, node_influence, prune_graph

__all__ = ["AttributionConfig", "attribute", "estimate_bytes", "to_viewer_json", "write_viewer_json", "Graph", "load_graph",
           "save_graph", "FeatureEdit", "InterventionResult", "check_intervention", "predict", "run_with_edits", "GraphScores",
           "PruneResult", "graph_scores", "node_influence", "prune_graph"]
