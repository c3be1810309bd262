"""Feature-circuit benchmark: interp's attribution graphs against circuit-tracer 0.5.0's, on the embedded model.

Three prompts of the embedded model (a held-out IOI sentence with the logit difference IO - S as its
target, a greater-than year prompt with the salient logits, a fact-recall prompt with the salient
logits), with the shipped transcoders (transcoders/embedded). For each prompt:

* both graphs are built in fresh processes, interp's in the project venv and circuit-tracer's in its
  own (benchmarks/graphs/circuit_tracer_env.sh; `peer.py`), from the same token ids and targets, at
  batch size 256; wall time of the attribution call (median of `--repeats`) and the process's peak RSS;
* the equality check: the same active feature nodes; every edge weight within 1e-4 relative, with an
  absolute floor of 1e-6 of the largest edge (float32 rounding: the two sides sum in different orders,
  circuit-tracer on LayerNorm-folded weights), i.e. ``|a - b| <= 1e-4 |b| + 1e-6 max|B|``; the largest
  relative difference on the edges above 1e-3 and 1e-2 of the largest, and the largest absolute
  difference, are reported too; the same replacement / completeness scores (1e-4);
* graph size before and after pruning (node 0.8, edge 0.98);
* the intervention check: the top 1 and the `--top` feature nodes of highest influence ablated (set
  to 0); the change of the first logit node's value the graph predicts (`interp.graphs.predict`), beside
  the change measured in the local replacement model the graph describes (attention and LayerNorm
  scales frozen, MLPs = transcoders + frozen errors), and by rerunning the real model with attention
  patterns frozen (circuit-tracer's default) and with nothing frozen.

    python benchmarks/graphs/run.py [--repeats 3] [--top 5] [--out benchmarks/graphs/results.json]

writes the results JSON and the "graphs" section of benchmarks/README.md (with the transcoders' table).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEER_PY = Path(os.environ.get("CT_VENV") or Path(os.environ.get("INTERP_HOME") or Path.home() / ".cache" / "interp") / "venvs" / "circuit-tracer") / "bin" / "python"
TC_DIR = ROOT / "transcoders" / "embedded"
MODEL_DIR = ROOT / "interp" / "embedded"


def cases(model) -> list[dict]:
    """The three prompts: token ids (BOS first) and targets."""
    import random

    from interp.data import corpus as C
    from interp.graphs.targets import single_token

    ioi = C.ioi_sentence(random.Random(C.HELDOUT_SEED))
    year = C.year_sentence(random.Random(C.HELDOUT_SEED))
    fact = C.fact_prompt("animals", 0, 0)
    io, s = " " + ioi.meta["io"], " " + ioi.meta["s"]
    out = [
        {"name": "ioi", "prompt": ioi.text, "target": {"diff": [single_token(model, io), single_token(model, s)],
                                                       "label": f"logit({io})-logit({s})", "strs": [io, s]}},
        {"name": "greater-than", "prompt": year.text, "target": None},
        {"name": "fact-recall", "prompt": fact.text, "target": None},
    ]
    for c in out:
        c["tokens"] = model.to_tokens(c["prompt"])[0].tolist()
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(job_path: str, out_path: str, repeats: int) -> None:
    """One case on interp's side (in this process): time, RSS, the graph."""
    import torch

    from interp.graphs import AttributionConfig, attribute, graph_scores, prune_graph, save_graph
    from interp.models import load_model
    from interp.transcoders.io import load_transcoder_set

    job = json.loads(Path(job_path).read_text())
    model = load_model("embedded")
    tset = load_transcoder_set(TC_DIR)
    toks = torch.tensor(job["tokens"])
    t = job.get("target") or {}
    diff = tuple(t["strs"]) if "diff" in t else None
    cfg = AttributionConfig(batch_size=job["batch_size"], max_n_logits=job["max_n_logits"], desired_logit_prob=job["desired_logit_prob"])
    rss_before = _rss_mb()
    times = []
    for _ in range(repeats):
        t0 = time.time()
        g = attribute(model, toks, tset, diff=diff, config=cfg)
        times.append(time.time() - t0)
    sc = graph_scores(g)
    pr = prune_graph(g)
    g.info.update({"bench": {"seconds": times, "rss_before_mb": rss_before, "rss_peak_mb": _rss_mb(), "replacement": sc.replacement,
                             "completeness": sc.completeness, "pruned_nodes": int(pr.node_mask.sum()),
                             "pruned_features": int(pr.node_mask[: g.n_features].sum()), "pruned_edges": int(pr.edge_mask.sum())}})
    g.prompt = job["prompt"]
    save_graph(g, out_path)


def _peer(job_path: str, out_path: str, repeats: int) -> dict:
    """circuit-tracer's side, `repeats` fresh processes (its attribution call timed in each)."""
    from safetensors import safe_open

    runs = []
    for _ in range(repeats):
        r = subprocess.run([str(PEER_PY), str(Path(__file__).with_name("peer.py")), job_path, out_path],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        if r.returncode != 0:
            raise SystemExit(f"circuit-tracer peer failed: {r.stderr[-800:]}")
        with safe_open(out_path, "pt") as f:
            runs.append(json.loads(f.metadata()["peer"]))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta = runs[-1]
    meta["seconds"] = [x["seconds"] for x in runs]
    meta["rss_peak_mb"] = max(x["rss_peak_mb"] for x in runs)
    meta["rss_before_mb"] = max(x["rss_before_mb"] for x in runs)
    return {"meta": meta, **tensors}


def compare(g, peer: dict) -> dict:
    """The equality check of the module docstring."""
    A, B = g.adjacency, peer["adjacency"]
    same_nodes = bool(g.active_features.shape == peer["active_features"].shape and (g.active_features == peer["active_features"]).all())
    same_shape = tuple(A.shape) == tuple(B.shape)
    out = {"same_active_nodes": same_nodes, "n_active": int(len(g.active_features)), "adjacency_shape": list(A.shape),
           "same_shape": same_shape}
    if same_shape:
        top = B.abs().max()
        rel = {}
        for frac in (1e-3, 1e-2):
            big = B.abs() > frac * top
            rel[frac] = ((A - B).abs()[big] / B.abs()[big]).max().item()
        # torch.allclose with rtol 1e-4 and an absolute floor at float32's resolution of the largest edge
        close = bool(((A - B).abs() <= 1e-4 * B.abs() + 1e-6 * top).all())
        out.update({"max_abs_diff": (A - B).abs().max().item(), "max_abs_edge": top.item(), "n_edges": int((B != 0).sum()),
                    "max_rel_diff_edges_over_1e-3": rel[1e-3], "max_rel_diff_edges_over_1e-2": rel[1e-2],
                    "allclose_rtol_1e-4_atol_1e-6_max": close})
    b = g.info["bench"]
    out["replacement"] = [b["replacement"], peer["meta"]["replacement"]]
    out["completeness"] = [b["completeness"], peer["meta"]["completeness"]]
    out["same_scores"] = abs(out["replacement"][0] - out["replacement"][1]) < 1e-4 and abs(out["completeness"][0] - out["completeness"][1]) < 1e-4
    out["same_logits"] = [int(i) for i in g.logit_ids] == [int(i) for i in peer["meta"]["logit_ids"]] or (
        len(g.logit_ids) == 1 and g.logit_ids[0] >= g.vocab_size)
    out["passed"] = bool(same_nodes and same_shape and out.get("allclose_rtol_1e-4_atol_1e-6_max") and out["same_scores"] and out["same_logits"])
    return out


def intervention(g, top: int) -> dict:
    """Ablate the top 1 and the `top` most influential feature nodes; predicted vs measured change of logit node 0."""
    import torch

    from interp.graphs import FeatureEdit, check_intervention, node_influence
    from interp.models import load_model
    from interp.transcoders.io import load_transcoder_set

    model, tset = load_model("embedded"), load_transcoder_set(TC_DIR)
    infl = node_influence(g)[: g.n_features]
    out = {"logit": g.logit_tokens[0]}
    for k in (1, top):
        idx = torch.argsort(infl, descending=True)[:k].tolist()
        edits = [FeatureEdit(*g.feature_key(i), 0.0) for i in idx]
        res = {"features": [list(g.feature_key(i)) for i in idx]}
        for freeze in ("replacement", "attention", "none"):
            r = check_intervention(g, model, tset, edits, freeze=freeze)
            res[freeze] = r.measured[0]
            res["predicted"], res["clean"] = r.predicted[0], r.clean[0]
        out[f"top{k}"] = res
    return out


def transcoder_rows() -> list[dict]:
    rows = []
    for d in sorted(TC_DIR.iterdir()):
        if (d / "metrics.json").is_file():
            m = json.loads((d / "metrics.json").read_text())
            rows.append({"layer": d.name, "l0": m["l0"], "fvu": m["fvu"], "ce_loss_score": m["ce_loss_score"],
                         "kl_div_score": m["kl_div_score"]})
    s = json.loads((TC_DIR / "set_metrics.json").read_text())["all_mlps_replaced"]
    rows.append({"layer": "all", "l0": None, "fvu": None, "ce_loss_score": s["ce_loss_score"], "kl_div_score": s["kl_div_score"]})
    return rows


def table(res: dict) -> str:
    lines = ["## Feature circuits: attribution graphs vs circuit-tracer (`benchmarks/graphs/run.py`)", "",
             f"Embedded model, shipped transcoders (`transcoders/embedded`), batch size 256, {res['repeats']} runs per side "
             f"(median wall time of the attribution call; peak RSS of the whole process). circuit-tracer {res['peer_version']} "
             f"runs in its own venv on the same weights (LayerNorms folded) and transcoders. Load average "
             f"{res['load'][0]:.1f} before, {res['load'][1]:.1f} after (2 cores).", "",
             "| prompt | target | feature nodes | nodes / edges | after pruning: features / nodes / edges | replacement | completeness | "
             "interp s | circuit-tracer s | interp peak MB | circuit-tracer peak MB | equal to circuit-tracer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        k, p = c["compare"], c["peer"]
        o = c["ours"]
        lines.append(f"| {c['name']} | {c['target']} | {k['n_active']} | {c['n_nodes']} / {c['n_edges']} | "
                     f"{o['pruned_features']} / {o['pruned_nodes']} / {o['pruned_edges']} | {o['replacement']:.3f} | {o['completeness']:.3f} | "
                     f"{statistics.median(o['seconds']):.2f} | {statistics.median(p['seconds']):.2f} | {o['rss_peak_mb']:.0f} | "
                     f"{p['rss_peak_mb']:.0f} | {'yes' if k['passed'] else 'NO'} |")
    lines += ["", "Equality check (`equal to circuit-tracer`): the same active (layer, position, feature) nodes, the same logit "
              "nodes, every edge within `|a - b| <= 1e-4 |b| + 1e-6 max|B|` (1e-4 relative with an absolute floor at float32's "
              "resolution of the largest edge), replacement and completeness within 1e-4:", "",
              "| prompt | active nodes equal | edges | largest edge | max abs. diff | max rel. diff, edges > 1e-2 of largest | "
              "max rel. diff, edges > 1e-3 of largest | replacement (interp / circuit-tracer) | completeness (interp / circuit-tracer) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        k = c["compare"]
        lines.append(f"| {c['name']} | {k['same_active_nodes']} | {k.get('n_edges', 0)} | {k.get('max_abs_edge', float('nan')):.3f} | "
                     f"{k.get('max_abs_diff', float('nan')):.1e} | {k.get('max_rel_diff_edges_over_1e-2', float('nan')):.1e} | "
                     f"{k.get('max_rel_diff_edges_over_1e-3', float('nan')):.1e} | {k['replacement'][0]:.6f} / {k['replacement'][1]:.6f} | "
                     f"{k['completeness'][0]:.6f} / {k['completeness'][1]:.6f} |")
    lines += ["",
              f"Intervention check: the top 1 and top {res['top']} feature nodes by influence ablated (set to 0); change of the "
              "first logit node (demeaned logit, or the logit difference) predicted by the graph (linear, through downstream "
              "features) vs measured in the local replacement model the graph describes (attention and LayerNorm scales "
              "frozen, MLPs = transcoders + frozen errors: differs from the prediction only where features cross their "
              "thresholds) and in the real model (attention frozen, circuit-tracer's default; nothing frozen).", "",
              "| prompt | logit node | clean value | ablated | predicted change | measured: replacement model | "
              "measured: model, attention frozen | measured: model |",
              "|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        iv = c["intervention"]
        for k in ("top1", f"top{res['top']}"):
            r = iv[k]
            lines.append(f"| {c['name']} | {iv['logit']!s} | {r['clean']:.3f} | {k.replace('top', 'top ')} | {r['predicted']:+.3f} | "
                         f"{r['replacement']:+.3f} | {r['attention']:+.3f} | {r['none']:+.3f} |")
    lines += ["", "Transcoders (per layer: that MLP replaced; `all`: every MLP replaced at once; CE / KL score 1 = as good as the "
              "MLP, 0 = as bad as zeroing it):", "", "| layer | L0 | FVU | CE score | KL score |", "|---|---|---|---|---|"]
    for r in res["transcoders"]:
        l0 = "" if r["l0"] is None else f"{r['l0']:.1f}"
        fvu = "" if r["fvu"] is None else f"{r['fvu']:.3f}"
        lines.append(f"| {r['layer']} | {l0} | {fvu} | {r['ce_loss_score']:.3f} | {r['kl_div_score']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    ap.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--graph-out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side == "ours":
        return ours(a.job, a.graph_out, a.repeats)
    sys.path.insert(0, str(ROOT))
    from interp.graphs import load_graph
    from interp.models import load_model

    load0 = os.getloadavg()[0]
    model = load_model("embedded")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in cases(model):
            job = {"model_dir": str(MODEL_DIR), "transcoders_dir": str(TC_DIR), "tokens": c["tokens"], "prompt": c["prompt"],
                   "target": c["target"], "batch_size": 256, "max_n_logits": 10, "desired_logit_prob": 0.95}
            jp = Path(tmp) / f"{c['name']}.json"
            jp.write_text(json.dumps(job))
            gp, pp = Path(tmp) / f"{c['name']}.graph.safetensors", Path(tmp) / f"{c['name']}.peer.safetensors"
            r = subprocess.run([sys.executable, __file__, "--side", "ours", "--job", str(jp), "--graph-out", str(gp),
                                "--repeats", str(a.repeats)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
            if r.returncode != 0:
                raise SystemExit(f"interp side failed: {r.stderr[-800:]}")
            g = load_graph(gp)
            peer = _peer(str(jp), str(pp), a.repeats)
            results.append({"name": c["name"], "prompt": c["prompt"], "target": c["target"]["label"] if c["target"] else "salient logits",
                            "n_nodes": g.n_nodes, "n_edges": int((g.adjacency != 0).sum()), "ours": g.info["bench"],
                            "peer": peer["meta"], "compare": compare(g, peer), "intervention": intervention(g, a.top)})
            print(c["name"], results[-1]["compare"], flush=True)
    res = {"repeats": a.repeats, "top": a.top, "peer_version": results[0]["peer"]["circuit_tracer"], "load": [load0, os.getloadavg()[0]],
           "cases": results, "transcoders": transcoder_rows()}
    from benchmarks._readme import update_section
    from interp.io import atomic_write_json

    atomic_write_json(a.out, res)
    update_section("graphs", table(res))
    print(table(res))


if __name__ == "__main__":
    main()
