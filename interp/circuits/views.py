"""Tables and graph descriptions of a `CircuitResult` for the dashboard and reports (no Streamlit)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from interp.circuits.run import SUMMARY_KEYS, CircuitResult

RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "circuits" / "results"


def scores_frame(res: CircuitResult, method: str) -> pd.DataFrame:
    """Long table (layer, head, score, in_circuit, in_reference) of one method's seed-mean scores."""
    s = res.mean_scores(method)
    chosen = {tuple(h) for r in res.runs if r.method == method and r.seed == 0 for h in r.circuit}
    ref = {tuple(h) for h in res.reference["heads"]}
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
    """One row per method: mean +/- std of every summary key."""
    rows = []
    for m, s in res.summary.items():
        row = {"method": m, "seeds": sum(r.method == m for r in res.runs)}
        for k in SUMMARY_KEYS:
            mu, sd = s[k]
            row[k] = "n/a" if isinstance(mu, float) and math.isnan(mu) else f"{mu:.3f} ± {sd:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def circuit_dot(heads: list[list[int]] | list[tuple[int, int]], n_layers: int, title: str = "") -> str:
    """Graphviz DOT of a head-level circuit: input -> heads by layer -> logits, edges between
    circuit heads of consecutive populated layers (a sketch of the residual-stream paths)."""
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(int(l), []).append(int(h))
    lines = ["digraph circuit {", "  rankdir=BT; node [shape=box, style=rounded, fontsize=10];"]
    if title:
        lines.append(f'  label="{title}"; labelloc=t;')
    lines.append('  input [label="input", shape=ellipse]; logits [label="logits", shape=ellipse];')
    prev = ["input"]
    for l in range(n_layers):
        if l not in by_layer:
            continue
        names = [f"h{l}_{h}" for h in sorted(by_layer[l])]
        lines.append("  { rank=same; " + " ".join(f'{n} [label="{l}.{n.split("_")[1]}"];' for n in names) + " }")
        lines += [f"  {a} -> {b};" for a in prev for b in names]
        prev = names
    lines += [f"  {a} -> logits;" for a in prev]
    lines.append("}")
    return "\n".join(lines)


def saved_results(root: Path = RESULTS_DIR) -> list[Path]:
    """Result JSON files written by the benchmark (newest first)."""
    return sorted(root.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if root.exists() else []
