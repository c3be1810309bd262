"""Tables, curves and graph descriptions of a `CircuitResult` for the dashboard and reports (no
Streamlit). The library never reads the repository's benchmarks/: the page passes the folders
to list saved results from."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from interp.circuits.run import SUMMARY_KEYS, CircuitResult



def results_dir() -> Path:
    """Where results run from the dashboard are saved (under the user data dir)."""
    from interp.io import user_data_dir

    return user_data_dir("circuits", "results")


def scores_frame(res: CircuitResult, method: str) -> pd.DataFrame:
    """Long table (layer, head, score, in_circuit, in_reference) of one method's seed-mean scores."""
    s = res.mean_scores(method)
    chosen = {tuple(h) for r in res.runs if r.method == method and r.seed == 0 for h in r.circuit}
    ref = {tuple(h) for h in (res.reference or {}).get("heads", [])}
    return pd.DataFrame([{"layer": l, "head": h, "score": float(s[l, h]), "in_circuit": (l, h) in chosen,
                          "in_reference": (l, h) in ref} for l in range(res.n_layers) for h in range(res.n_heads)])


def roc_frame(res: CircuitResult) -> pd.DataFrame:
    """ROC points (method, fpr, tpr) of each method's seed-0 run."""
    rows = []
    for r in res.runs:
        if r.seed == 0:
            rows += [{"method": r.method, "fpr": f, "tpr": t} for f, t in r.roc]
    return pd.DataFrame(rows, columns=["method", "fpr", "tpr"])


def comparison_frame(res: CircuitResult) -> pd.DataFrame:
    """One row per method: mean ± std of every summary key over its seeds (the mean alone for one
    seed: a std of one value is no spread)."""
    rows = []
    for m, s in res.summary.items():
        n = sum(r.method == m for r in res.runs)
        row = {"method": m, "seeds": n}
        for k in SUMMARY_KEYS:
            mu, sd = s[k]
            if isinstance(mu, float) and math.isnan(mu):
                row[k] = "n/a"
            else:
                row[k] = f"{mu:.3f}" if n < 2 else f"{mu:.3f} ± {sd:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def circuit_warnings(res: CircuitResult) -> list[str]:
    """Warnings to show beside a result: those the result carries (``res.warnings``, written by
    interp.circuits.run where it has them), and, for results saved before that, one per method whose
    seed-0 circuit is every head of the model (precision = the base rate: no circuit was found)."""
    out = [str(w) for w in (getattr(res, "warnings", None) or [])]
    n_all = res.n_layers * res.n_heads
    for r in res.runs:
        if r.seed == 0 and len(r.circuit) >= n_all and not any(r.method in w and "whole model" in w for w in out):
            out.append(f"{r.method}: the circuit is the whole model ({len(r.circuit)} of {n_all} heads), so it says "
                       "nothing about which heads matter")
    return out


def curves_frame(res: CircuitResult, which: str = "node") -> pd.DataFrame:
    """Faithfulness curves (method, seed, fraction, f) of every run that has curve `which`
    ("node", "node_mean" or "edge")."""
    rows = []
    for r in res.runs:
        c = (r.curves or {}).get(which)
        if c:
            rows += [{"method": r.method, "seed": r.seed, "fraction": x, "f": f} for x, f in zip(c["x"], c["f"])]
    return pd.DataFrame(rows, columns=["method", "seed", "fraction", "f"])


def mean_edge_scores(res: CircuitResult, method: str):
    """Seed-mean head -> head edge scores of `method` as a nested list, or None if it has none."""
    import torch

    es = [torch.tensor(r.edge_scores) for r in res.runs if r.method == method and r.edge_scores is not None]
    return torch.stack(es).mean(0) if es else None


def _q(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def circuit_dot(heads: list[list[int]] | list[tuple[int, int]], n_layers: int, title: str = "",
                scores=None, edge_scores=None, max_edges: int = 30) -> str:
    """Graphviz DOT of a head-level circuit: heads by layer, sized by `scores` ([layer][head],
    optional). Edges are drawn only where the method scored them: the `max_edges` strongest
    positive head -> head edges of `edge_scores` ([L][H][L][H]) between circuit heads. Without edge
    scores no edges are drawn (the method says nothing about them)."""
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(int(l), []).append(int(h))
    lines = ["digraph circuit {", "  rankdir=BT; node [shape=box, style=rounded, fontsize=10];"]
    if title:
        lines.append(f'  label="{_q(title)}"; labelloc=t;')
    top = max((abs(float(scores[l][h])) for l, h in heads), default=0.0) if scores is not None else 0.0
    for l in range(n_layers):
        if l not in by_layer:
            continue
        cells = []
        for h in sorted(by_layer[l]):
            size = ""
            if scores is not None and top > 0:
                w = 0.45 + 0.9 * abs(float(scores[l][h])) / top
                size = f", width={w:.2f}, height={0.3 + 0.4 * abs(float(scores[l][h])) / top:.2f}, fixedsize=true"
            cells.append(f'h{l}_{h} [label="{l}.{h}"{size}];')
        lines.append("  { rank=same; " + " ".join(cells) + " }")
    if edge_scores is not None:
        inside = {(int(l), int(h)) for l, h in heads}
        cand = []
        for lu, hu in inside:
            for lv, hv in inside:
                if lu < lv:
                    v = float(edge_scores[lu][hu][lv][hv])
                    if v > 0:
                        cand.append((v, lu, hu, lv, hv))
        cand.sort(reverse=True)
        best = cand[0][0] if cand else 1.0
        for v, lu, hu, lv, hv in cand[:max_edges]:
            lines.append(f"  h{lu}_{hu} -> h{lv}_{hv} [penwidth={0.5 + 3 * v / best:.2f}];")
    lines.append("}")
    return "\n".join(lines)


def saved_results(roots: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """Result JSON files in `roots` (default: `results_dir()`), newest first."""
    roots = list(roots) or [results_dir()]
    files = [p for r in roots if Path(r).is_dir() for p in Path(r).glob("*.json")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def graph_frames(res: CircuitResult, method: str, max_edges: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The circuit graph of `method` (seed 0) as node and edge tables for a layered drawing.

    Nodes (one row per layer, heads left to right): every head of the model, with its seed-mean
    score, whether it is in the circuit / the reference, and two extra nodes: "input" below layer 0
    and "logits" above the last layer. Edges: the `max_edges` strongest positive scored head -> head
    edges between circuit heads (where the method scores edges; width = score / best), plus
    unscored structural links from the input to circuit heads with no scored edge in, and from
    circuit heads with no scored edge out to the logits (``scored`` False).

    -> nodes (id, label, layer, head, x, y, score, in_circuit, in_reference, kind),
       edges (source, target, x, y, x2, y2, score, width, scored)."""
    L, H = res.n_layers, res.n_heads
    scores = res.mean_scores(method)
    chosen = {tuple(map(int, h)) for r in res.runs if r.method == method and r.seed == 0 for h in r.circuit}
    ref = {tuple(map(int, h)) for h in (res.reference or {}).get("heads", [])}
    top = float(scores.abs().max()) or 1.0
    nodes = [{"id": f"{l}.{h}", "label": f"{l}.{h}", "layer": l, "head": h, "x": float(h), "y": float(l),
              "score": float(scores[l, h]), "rel_score": abs(float(scores[l, h])) / top, "in_circuit": (l, h) in chosen,
              "in_reference": (l, h) in ref, "kind": "head"} for l in range(L) for h in range(H)]
    mid = (H - 1) / 2
    nodes.append({"id": "input", "label": "input (embeddings)", "layer": -1, "head": -1, "x": mid, "y": -1.0, "score": float("nan"),
                  "rel_score": 1.0, "in_circuit": True, "in_reference": False, "kind": "input"})
    nodes.append({"id": "logits", "label": "logits", "layer": L, "head": -1, "x": mid, "y": float(L), "score": float("nan"),
                  "rel_score": 1.0, "in_circuit": True, "in_reference": False, "kind": "logits"})
    es = mean_edge_scores(res, method)
    edges = []
    if es is not None:
        cand = sorted(((float(es[lu][hu][lv][hv]), lu, hu, lv, hv) for lu, hu in chosen for lv, hv in chosen
                       if lu < lv and float(es[lu][hu][lv][hv]) > 0), reverse=True)[:max_edges]
        best = cand[0][0] if cand else 1.0
        edges += [{"source": f"{lu}.{hu}", "target": f"{lv}.{hv}", "x": float(hu), "y": float(lu), "x2": float(hv), "y2": float(lv),
                   "score": v, "width": 0.5 + 4.5 * v / best, "scored": True} for v, lu, hu, lv, hv in cand]
    has_in = {e["target"] for e in edges}
    has_out = {e["source"] for e in edges}
    for l, h in sorted(chosen):
        if f"{l}.{h}" not in has_in:
            edges.append({"source": "input", "target": f"{l}.{h}", "x": mid, "y": -1.0, "x2": float(h), "y2": float(l),
                          "score": float("nan"), "width": 0.6, "scored": False})
        if f"{l}.{h}" not in has_out:
            edges.append({"source": f"{l}.{h}", "target": "logits", "x": float(h), "y": float(l), "x2": mid, "y2": float(L),
                          "score": float("nan"), "width": 0.6, "scored": False})
    cols = ["source", "target", "x", "y", "x2", "y2", "score", "width", "scored"]
    return pd.DataFrame(nodes), pd.DataFrame(edges, columns=cols)
