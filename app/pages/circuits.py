"""Circuits page: find a task's circuit (discretized SAE codes, patching, EAP, EAP-IG, ACDC), score it
by MIB's reference-free faithfulness curves (CPR / CMD) and against a reference circuit where one
exists, and send a head to the Prompt lab for ablation."""

from pathlib import Path

import altair as alt
import streamlit as st

from app.common import cached_chart, selection, show_error, show_spec
from app.jobs_panel import start_job, take_opened
from app.style import PALETTE, SEQUENTIAL, result_header
from interp import jobs
from interp.errors import InterpError

# Widget state Streamlit drops when the user visits another page; restored from this copy.
PERSIST = ("circ_mode", "circ_task", "circ_task_file", "circ_methods", "circ_seeds", "circ_preset", "circ_pos", "circ_arch",
           "circ_topk", "circ_ntrain", "circ_perlayer", "circ_unit", "circ_qkv", "circ_ref", "circ_path", "circ_inspect",
           "circ_head", "circ_curve")
_saved = st.session_state.setdefault("circ_persist", {})
for _k in ("circ_path", "circ_inspect", "circ_head"):  # widgets without an explicit default: restored directly
    if _k not in st.session_state and _k in _saved:
        st.session_state[_k] = _saved[_k]


def _v(key, default):
    """A widget's default: its value before the user left the page, else `default` (passing it as the
    default instead of writing Session State avoids Streamlit's default-vs-state warning)."""
    return _saved.get(key, default)


def _i(key, options, default):
    v = _v(key, default)
    return options.index(v) if v in options else options.index(default)

st.title("Circuits")
sel = selection()
controls, main = st.columns([1, 2.6], gap="medium")
controls.caption("Circuit discovery from discretized SAE codes (O'Neill & Bui, 2024; the authors' protocol by default) against "
           "activation patching, attribution patching (EAP, EAP-IG) and ACDC. Every method is scored without a reference "
           "by MIB's faithfulness curves: keep the top fraction of heads, ablate the rest on held-out prompts; CPR = area "
           "under the curve (higher is better), CMD = area between it and 1 (lower is better). Where a reference circuit "
           "is stored (greedy resample-ablation search keeping 90% of the metric) node AUC and F1 are shown too; it is a "
           "yardstick, not ground truth.")

from interp.circuits.discrete_sae import preset  # noqa: E402
from interp.circuits.run import METHODS, CircuitResult  # noqa: E402
from interp.circuits.views import (circuit_warnings, comparison_frame, curves_frame, graph_frames, results_dir,  # noqa: E402
                                   roc_frame, saved_results, scores_frame)

REPO_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "circuits" / "results"  # the app may show them; the library never reads them


def _pick_file():
    """Copy the chosen saved file into the path box (the box is what Load reads)."""
    st.session_state["circ_path"] = st.session_state.get("circ_file") or ""


with controls:
    mode = st.radio("Result", ["Run now", "Load saved result"], index=_i("circ_mode", ["Run now", "Load saved result"], "Run now"),
                    horizontal=True, key="circ_mode")
    if mode == "Run now":
        c1 = c2 = c3 = st
        tasks = ["ioi", "greater-than", "docstring", "custom JSONL file"]
        task = c1.selectbox("Task", tasks, index=_i("circ_task", tasks, "ioi"), key="circ_task")
        if task == "custom JSONL file":
            task = c1.text_input("Path to a JSONL task (positive, negative, answer, wrong_answer)", value=_v("circ_task_file", ""),
                                 key="circ_task_file")
        methods = c2.multiselect("Methods", list(METHODS), default=_v("circ_methods", ["discrete-sae", "patching", "eap"]), key="circ_methods",
                                 help="ACDC tests every edge with a forward pass: 10 s to 2 min per seed on the embedded model")
        seeds = c3.number_input("Seeds", 1, 20, _v("circ_seeds", 1), key="circ_seeds")
        ref_mode = c3.selectbox("Reference", ["stored", "none", "build"], index=_i("circ_ref", ["stored", "none", "build"], "stored"), key="circ_ref",
                                help="stored: use a reference whose content matches (else reference-free metrics only); "
                                     "build: run the greedy search now (slow)")
        with st.expander("discrete-sae options (default: the authors' protocol)"):
            o1, o2 = st.columns(2)
            o3 = o1
            which = o1.selectbox("Preset", ["paper", "legacy"], index=_i("circ_preset", ["paper", "legacy"], "paper"), key="circ_preset",
                                 help="paper: their SAE, 10 training prompts, codes on 250 + 250; legacy: this package's earlier default")
            position = o1.selectbox("Head output", ["mean", "last"], index=_i("circ_pos", ["mean", "last"], "mean"), key="circ_pos",
                                    help="averaged over positions incl. BOS (paper) or at the last position")
            arch = o2.selectbox("SAE", ["paper", "standard", "topk"], index=_i("circ_arch", ["paper", "standard", "topk"], "paper"), key="circ_arch",
                                help="paper = the authors' SAE; standard / topk = SAELens architectures")
            top_k_codes = o2.number_input("Codes per (prompt, head)", 1, 8, _v("circ_topk", 1), key="circ_topk", help="1 = argmax latent (paper)")
            n_train = o3.number_input("SAE training prompts", 2, 500, _v("circ_ntrain", 10), key="circ_ntrain")
            per_layer = o3.checkbox("One SAE per layer", value=_v("circ_perlayer", False), key="circ_perlayer")
            unit_norm = o3.checkbox("Unit-norm head vectors", value=_v("circ_unit", False), key="circ_unit")
            qkv_edges = o3.checkbox("q/k/v-specific edges", value=_v("circ_qkv", False), key="circ_qkv",
                                    help="score edges into each head's query, key and value input separately")
        if st.button("Run (background job)", type="primary", key="circ_run"):
            try:
                if not task:
                    raise InterpError("give the path of a JSONL task file")
                if not methods:
                    raise InterpError("choose at least one method")
                from interp.circuits.tasks import check_task_source

                check_task_source(task)
                if task not in tasks:  # a JSONL file: every line checked here (one error line) before the job starts
                    from app.common import load_model_cached
                    from interp.circuits.tasks import load_jsonl_task

                    load_jsonl_task(load_model_cached(sel.model), task)
                arch_kw = {"arch": arch} if which == "paper" or arch != "paper" else {}
                params = {"model": sel.model, "device": sel.device, "task": task, "methods": list(methods), "seeds": int(seeds),
                          "reference": ref_mode,
                          "sae": dict(which=which, n_train=int(n_train), position=position, top_k_codes=int(top_k_codes),
                                      per_layer=bool(per_layer), unit_norm=bool(unit_norm), qkv_edges=bool(qkv_edges), **arch_kw)}
                jobs.circuit_config(params)  # a bad combination is one line here, before the job starts
                header = sel.header(f"Circuits: {Path(task).name}", {"methods": ", ".join(methods), "seeds": int(seeds),
                                                                     "reference": ref_mode, "discrete-sae preset": which}, sae=False)
                start_job("circuits", params, title=f"Circuits: {Path(task).name} ({', '.join(methods)})", header=header, key="circ_job")
            except InterpError as e:
                show_error(e)
    else:
        files = saved_results([results_dir(), REPO_RESULTS])
        if not files:
            st.info("No saved results yet: run one here, `python benchmarks/circuits/run.py`, or `interp circuits ... --json FILE`.")
        else:
            st.selectbox("Saved result", [str(p) for p in files], index=None, placeholder="choose a saved result",
                         key="circ_file", on_change=_pick_file)
        path = st.text_input("Result JSON path", key="circ_path")
        if st.button("Load", key="circ_load", disabled=not path):
            try:
                st.session_state["circuit_result"] = CircuitResult.load(path)
                st.session_state["circuit_header"] = f"loaded from {path}"
                st.session_state.pop("circ_job", None)
            except Exception as e:
                show_error(e)

# a finished job's result (opened from the history, or this session's latest circuits job) replaces the shown one
opened = take_opened("circuits")
if opened is not None:
    st.session_state["circ_job"] = opened.id
    st.session_state.pop("circ_job_loaded", None)
job = None
if st.session_state.get("circ_job"):
    try:
        job = jobs.get(st.session_state["circ_job"])
    except InterpError:
        job = None
if job is not None and job.state == "done" and st.session_state.get("circ_job_loaded") != job.id:
    try:
        st.session_state["circuit_result"] = CircuitResult.load(Path(job.dir) / job.result()["circuit_result"])
        st.session_state["circuit_header"] = job.header
        st.session_state["circ_job_loaded"] = job.id
    except Exception as e:  # noqa: BLE001 - shown as one line
        show_error(e)
if job is not None and job.state != "done":
    with main:
        result_header(job.header)
        if job.state == "running":
            st.info(f"Running as a background job ({100 * job.progress.fraction:.0f}%): its progress, time left and cancel "
                    "are in the sidebar; every page stays usable meanwhile. The result opens here when it ends.")
        else:
            st.error(f"The job was {job.state}: {job.reason}", icon=":material/error:")

res: CircuitResult | None = st.session_state.get("circuit_result")
if res is None:
    st.session_state["circ_persist"] = {k: st.session_state[k] for k in PERSIST if k in st.session_state}
    st.stop()

# the charts below are cached per result (this key) and choice: a rerun that changed nothing builds none of them
rkey = repr((res.model, res.task, res.n_layers, res.full_metric, res.negative_metric, res.summary))


@cached_chart
def _curves_chart(rkey: str, kind: str, _res):
    mean_cf = curves_frame(_res, kind).groupby(["method", "fraction"], as_index=False)["f"].mean()
    x = alt.X("fraction:Q", title="fraction of units kept", axis=alt.Axis(format=".2f", tickCount=10),
              scale=alt.Scale(type="symlog", constant=0.001) if kind == "edge" else alt.Undefined)
    line = alt.Chart(mean_cf).mark_line(point=True).encode(
        x=x, y=alt.Y("f:Q", title="f = (m(C) − m(∅)) / (m(full) − m(∅))"), color="method:N",
        tooltip=["method", alt.Tooltip("fraction:Q", format=".3f"), alt.Tooltip("f:Q", format=".3f")])
    one = alt.Chart(mean_cf).mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(1.0))
    return (line + one).properties(height=320)


@cached_chart
def _heatmap_chart(rkey: str, method: str, _res):
    base = alt.Chart(scores_frame(_res, method)).encode(x=alt.X("head:O", title="head"), y=alt.Y("layer:O", title="layer", sort="descending"))
    pick = alt.selection_point(fields=["layer", "head"], name="pick")
    heat = base.mark_rect().encode(color=alt.Color("score:Q", scale=alt.Scale(scheme=SEQUENTIAL), legend=alt.Legend(orient="right")),
                                   tooltip=["layer", "head", alt.Tooltip("score:Q", format=".3f"), "in_circuit", "in_reference"]).add_params(pick)
    outline = base.transform_filter(alt.datum.in_reference).mark_rect(fill=None, stroke=PALETTE[5], strokeWidth=2.5)
    picked = base.transform_filter(pick).mark_rect(fill=None, stroke="#000000", strokeWidth=3)  # the clicked cell
    return (heat + outline + picked).properties(height=max(220, 40 * _res.n_layers))


@cached_chart
def _roc_chart(rkey: str, _roc):
    return alt.Chart(_roc).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("fpr:Q", title="false positive rate"), y=alt.Y("tpr:Q", title="true positive rate"), color="method:N")


@cached_chart
def _graph_chart(rkey: str, method: str, show_ref: bool, _res):
    """The circuit as a layered graph: one row per layer (input below, logits above), every head a node
    (filled: in the circuit; size: |score|), scored edges by width, reference heads ringed; hover for a card."""
    nodes, edges = graph_frames(_res, method)
    H = _res.n_heads
    x = alt.X("x:Q", title="head", scale=alt.Scale(domain=[-0.7, H - 0.3]), axis=alt.Axis(values=list(range(H)), tickMinStep=1, grid=False))
    y = alt.Y("y:Q", title="layer (input below, logits above)", scale=alt.Scale(domain=[-1.5, _res.n_layers + 0.5]),
              axis=alt.Axis(values=list(range(_res.n_layers)), tickMinStep=1, grid=True))
    layers = []
    if not edges.empty:
        sc = edges[edges.scored]
        st_ = edges[~edges.scored]
        if not st_.empty:
            layers.append(alt.Chart(st_).mark_rule(color="#999999", strokeDash=[3, 3], opacity=0.6).encode(
                x=x, y=y, x2="x2:Q", y2="y2:Q", tooltip=[alt.Tooltip("source:N", title="from"), alt.Tooltip("target:N", title="to")]))
        if not sc.empty:
            layers.append(alt.Chart(sc).mark_rule(color=PALETTE[0], opacity=0.75).encode(
                x=x, y=y, x2="x2:Q", y2="y2:Q", strokeWidth=alt.StrokeWidth("width:Q", legend=None, scale=None),
                tooltip=[alt.Tooltip("source:N", title="from"), alt.Tooltip("target:N", title="to"),
                         alt.Tooltip("score:Q", title="edge score", format=".3g")]))
    pick = alt.selection_point(fields=["layer", "head"], name="gpick", on="click")
    n_nodes = _res.n_layers * H
    size = max(40, min(420, 14000 // max(n_nodes, 1)))
    heads = nodes[nodes.kind == "head"]
    layers.append(alt.Chart(heads).mark_circle(stroke="#333333", strokeWidth=0.6).encode(
        x=x, y=y, size=alt.Size("rel_score:Q", scale=alt.Scale(range=[size * 0.25, size]), legend=None),
        color=alt.condition(alt.datum.in_circuit, alt.value(PALETTE[1]), alt.value("#e8e8e8")),
        tooltip=[alt.Tooltip("label:N", title="head (layer.head)"), alt.Tooltip("score:Q", title="score (seed mean)", format=".3g"),
                 alt.Tooltip("in_circuit:N", title="in the circuit"), alt.Tooltip("in_reference:N", title="in the reference")],
    ).add_params(pick))
    if show_ref:
        layers.append(alt.Chart(heads[heads.in_reference]).mark_point(shape="circle", filled=False, color=PALETTE[5], strokeWidth=2.2,
                                                                     size=size * 1.6).encode(x=x, y=y))
    ends = nodes[nodes.kind != "head"]
    layers.append(alt.Chart(ends).mark_square(size=size * 1.4, color=PALETTE[2]).encode(x=x, y=y, tooltip=[alt.Tooltip("label:N", title="node")]))
    layers.append(alt.Chart(ends).mark_text(dy=-14, fontSize=12).encode(x=x, y=y, text="label:N"))
    height = max(340, min(1000, 64 * (_res.n_layers + 2)))
    return alt.layer(*layers).properties(height=height)


with main:
    ref = res.reference
    st.subheader(f"{res.task} on {res.model}")
    result_header(st.session_state.get("circuit_header") or f"Circuits: {res.task} · model {res.model}")
    for w in circuit_warnings(res):
        st.warning(w, icon=":material/warning:")
    ref_txt = (f"Reference: {len(ref['heads'])} heads, faithfulness {ref['faithfulness']:.2f}"
               + (f", stability (mean Jaccard of {len(ref['stability']['variants'])} search variants) {ref['stability']['jaccard_mean']:.2f}."
                  if ref.get("stability") else ".")) if ref else "No reference circuit for this model and task: node AUC and F1 are n/a."
    st.write(f"Task metric: {res.full_metric:.3f} on positive prompts vs {res.negative_metric:.3f} on negative ones. {ref_txt}")
    if not res.separates:
        st.warning("The metric does not separate positive from negative prompts on this model: there is no circuit to find.")
    t_sum, t_graph, t_heads, t_curves = st.tabs(["Methods compared", "Circuit graph", "Head scores & ROC", "Faithfulness curves"])
    with t_sum:
        n_seeds = max((sum(r.method == m for r in res.runs) for m in res.summary), default=1)
        st.caption(f"Mean ± std over {n_seeds} seeds per method." if n_seeds > 1 else "One seed: the values themselves, no spread.")
        table = comparison_frame(res)
        names = {"cpr": "CPR ↑", "cmd": "CMD ↓", "cpr_mean": "CPR, mean abl. ↑", "cmd_mean": "CMD, mean abl. ↓", "edge_cpr": "edge CPR ↑",
                 "edge_cmd": "edge CMD ↓", "node_auc": "node ROC AUC", "edge_auc": "edge ROC AUC", "precision": "precision",
                 "recall": "recall", "f1": "F1", "f1_tpr_tnr": "F1 (TPR/TNR)", "best_f1_tpr_tnr": "best F1 (TPR/TNR)",
                 "faithfulness": "faithfulness", "size": "size (heads)", "seconds": "time (s)", "peak_mb": "peak memory (MB)"}
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={k: st.column_config.TextColumn(v, width="small") for k, v in names.items() if k in table.columns})

    methods_run = list(res.summary)
    if st.session_state.get("circ_inspect") not in methods_run:
        st.session_state.pop("circ_inspect", None)
    labels = [f"{l}.{h}" for l in range(res.n_layers) for h in range(res.n_heads)]
    with t_graph:
        g1, g2 = st.columns([2, 2])
        method = g1.selectbox("Method to inspect", methods_run, key="circ_inspect")
        show_ref = g2.toggle("Reference overlay", value=bool(ref), disabled=not ref, key="circ_ref_overlay")
        chosen = [r.circuit for r in res.runs if r.method == method and r.seed == 0][0]
        st.caption(f"{method}, seed 0: {len(chosen)} of {len(labels)} heads (orange; size = |score|). Blue lines: the method's "
                   "scored head → head edges (width = score); dashed grey: input / logits links of circuit heads. "
                   + ("Red rings: the reference's heads. " if ref and show_ref else "")
                   + "Hover a node for its card; click one to pick it for ablation.")
        gevent = st.vega_lite_chart(_graph_chart(rkey, method, bool(show_ref and ref), res), width="stretch", on_select="rerun",
                                    key="circ_graph")
    with t_heads:
        left, right = st.columns(2)
        with left:
            st.markdown(f"**{method}: head scores** (outlined: reference heads; click a cell to pick the head)")
            event = st.vega_lite_chart(_heatmap_chart(rkey, method, res), width="stretch", on_select="rerun", key="circ_heat")
        with right:
            roc = roc_frame(res)
            if roc.empty:
                st.markdown("**ROC curves**: no reference circuit, so none (the faithfulness curves need none).")
            else:
                st.markdown("**ROC curves** against the reference heads (seed 0)")
                show_spec(_roc_chart(rkey, roc), width="stretch")
    with t_curves:
        curve_kind = st.radio("Faithfulness curves", ["node", "node_mean", "edge"], index=_i("circ_curve", ["node", "node_mean", "edge"], "node"),
                              horizontal=True, key="circ_curve",
                              format_func={"node": "heads, resample ablation", "node_mean": "heads, mean ablation",
                                           "edge": "head → head edges (MIB fractions)"}.get)
        cf = curves_frame(res, curve_kind)
        if cf.empty:
            st.info("No curves of this kind in this result (edge curves need a method with edge scores).")
        else:
            show_spec(_curves_chart(rkey, curve_kind, res), width="stretch", key="circ_curves_chart")

    # A click on a graph node or a heatmap cell picks the head (once per new click, so a manual pick afterwards sticks).
    for ev, name in ((gevent, "gpick"), (event, "pick")):
        try:
            pts = (ev or {}).get("selection", {}).get(name)
        except AttributeError:
            pts = None
        if pts:
            lab = f"{pts[0]['layer']}.{pts[0]['head']}"
            if lab in labels and st.session_state.get(f"circ_{name}_applied") != lab:
                st.session_state["circ_head"] = lab
                st.session_state[f"circ_{name}_applied"] = lab
    if st.session_state.get("circ_head") not in labels:
        st.session_state["circ_head"] = f"{chosen[0][0]}.{chosen[0][1]}" if chosen else labels[0]
    a1, a2 = st.columns([2, 1])
    head = a1.selectbox("Head to ablate in the Prompt lab (layer.head)", labels, key="circ_head")
    st.session_state["circ_persist"] = {k: st.session_state[k] for k in PERSIST if k in st.session_state}
    if a2.button("Ablate it in the Prompt lab", key="circ_send", width="stretch"):
        l, h = map(int, head.split("."))
        st.session_state["ablate_heads"] = [(l, h)]
        st.switch_page("pages/prompt_lab.py")
