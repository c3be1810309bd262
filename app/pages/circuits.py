"""Circuits page: find a task's circuit (discretized SAE codes, patching, EAP, EAP-IG, ACDC), score it
by MIB's reference-free faithfulness curves (CPR / CMD) and against a reference circuit where one
exists, and send a head to the Prompt lab for ablation."""

from pathlib import Path

import altair as alt
import streamlit as st

from app.common import cached_chart, current_model_name, load_model_cached, show_error, show_spec
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
st.caption("Circuit discovery from discretized SAE codes (O'Neill & Bui, 2024; the authors' protocol by default) against "
           "activation patching, attribution patching (EAP, EAP-IG) and ACDC. Every method is scored without a reference "
           "by MIB's faithfulness curves: keep the top fraction of heads, ablate the rest on held-out prompts; CPR = area "
           "under the curve (higher is better), CMD = area between it and 1 (lower is better). Where a reference circuit "
           "is stored (greedy resample-ablation search keeping 90% of the metric) node AUC and F1 are shown too; it is a "
           "yardstick, not ground truth.")

from interp.circuits.discrete_sae import preset  # noqa: E402
from interp.circuits.run import METHODS, CircuitConfig, CircuitResult, run_circuits  # noqa: E402
from interp.circuits.views import (circuit_dot, comparison_frame, curves_frame, mean_edge_scores, results_dir,  # noqa: E402
                                   roc_frame, saved_results, scores_frame)

REPO_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "circuits" / "results"  # the app may show them; the library never reads them


def _pick_file():
    """Copy the chosen saved file into the path box (the box is what Load reads)."""
    st.session_state["circ_path"] = st.session_state.get("circ_file") or ""


mode = st.radio("Result", ["Run now", "Load saved result"], index=_i("circ_mode", ["Run now", "Load saved result"], "Run now"),
                horizontal=True, key="circ_mode")
if mode == "Run now":
    c1, c2, c3 = st.columns([2, 3, 1])
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
        o1, o2, o3 = st.columns(3)
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
    if st.button("Run", type="primary", key="circ_run"):
        try:
            if not task:
                raise InterpError("give the path of a JSONL task file")
            if not methods:
                raise InterpError("choose at least one method")
            from interp.circuits.tasks import check_task_source

            check_task_source(task)
            try:
                arch_kw = {"arch": arch} if which == "paper" or arch != "paper" else {}
                sae_cfg = preset(which, n_train=int(n_train), position=position, top_k_codes=int(top_k_codes),
                                 per_layer=per_layer, unit_norm=unit_norm, qkv_edges=qkv_edges, **arch_kw)
            except ValueError as e:
                raise InterpError(str(e)) from None
            bar = st.progress(0.0, text="loading the model...")
            model = load_model_cached(current_model_name())

            def tick(done, total, text):
                bar.progress(done / total, text=f"{text} done ({done}/{total})")

            bar.progress(0.0, text="reference and held-out prompts..." + (" (building the reference: slow)" if ref_mode == "build" else ""))
            res = run_circuits(current_model_name(), task, methods, CircuitConfig(seeds=int(seeds), sae=sae_cfg), model=model,
                               reference=ref_mode, progress=tick)
            bar.empty()
            st.session_state["circuit_result"] = res
            try:
                saved = res.save(results_dir() / f"{Path(res.task).stem}.json")
                st.caption(f"saved to {saved}")
            except (InterpError, OSError) as e:
                show_error(e)
        except Exception as e:  # shown as one line, never a trace
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
        except Exception as e:
            show_error(e)

res: CircuitResult | None = st.session_state.get("circuit_result")
if res is None:
    st.session_state["circ_persist"] = {k: st.session_state[k] for k in PERSIST if k in st.session_state}
    st.stop()

# the charts below are cached per result (this key) and choice: a rerun that changed nothing builds none of them
rkey = repr((res.model, res.task, res.n_layers, res.full_metric, res.negative_metric, res.summary))


@cached_chart
def _curves_chart(rkey: str, kind: str, _res):
    mean_cf = curves_frame(_res, kind).groupby(["method", "fraction"], as_index=False)["f"].mean()
    x = alt.X("fraction:Q", title="fraction of units kept", scale=alt.Scale(type="symlog", constant=0.001) if kind == "edge" else alt.Undefined)
    line = alt.Chart(mean_cf).mark_line(point=True).encode(
        x=x, y=alt.Y("f:Q", title="f = (m(C) − m(∅)) / (m(full) − m(∅))"), color="method:N",
        tooltip=["method", alt.Tooltip("fraction:Q", format=".3f"), alt.Tooltip("f:Q", format=".3f")])
    one = alt.Chart(mean_cf).mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(1.0))
    return (line + one).properties(height=320)


@cached_chart
def _heatmap_chart(rkey: str, method: str, _res):
    base = alt.Chart(scores_frame(_res, method)).encode(x=alt.X("head:O", title="head"), y=alt.Y("layer:O", title="layer", sort="descending"))
    pick = alt.selection_point(fields=["layer", "head"], name="pick")
    heat = base.mark_rect().encode(color=alt.Color("score:Q", scale=alt.Scale(scheme="viridis")),
                                   tooltip=["layer", "head", alt.Tooltip("score:Q", format=".3f"), "in_circuit", "in_reference"]).add_params(pick)
    outline = base.transform_filter(alt.datum.in_reference).mark_rect(fill=None, stroke="red", strokeWidth=2)
    return (heat + outline).properties(height=max(260, 44 * _res.n_layers))


@cached_chart
def _roc_chart(rkey: str, _roc):
    return alt.Chart(_roc).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("fpr:Q", title="false positive rate"), y=alt.Y("tpr:Q", title="true positive rate"), color="method:N")


ref = res.reference
st.subheader(f"{res.task} on {res.model}")
ref_txt = (f"Reference: {len(ref['heads'])} heads, faithfulness {ref['faithfulness']:.2f}"
           + (f", stability (mean Jaccard of {len(ref['stability']['variants'])} search variants) {ref['stability']['jaccard_mean']:.2f}."
              if ref.get("stability") else ".")) if ref else "No reference circuit for this model and task: node AUC and F1 are n/a."
st.write(f"Task metric: {res.full_metric:.3f} on positive prompts vs {res.negative_metric:.3f} on negative ones. {ref_txt}")
if not res.separates:
    st.warning("The metric does not separate positive from negative prompts on this model: there is no circuit to find.")

st.markdown("**Methods compared** (mean ± std over seeds)")
st.dataframe(comparison_frame(res), hide_index=True, width="stretch")

curve_kind = st.radio("Faithfulness curves", ["node", "node_mean", "edge"], index=_i("circ_curve", ["node", "node_mean", "edge"], "node"),
                      horizontal=True, key="circ_curve",
                      format_func={"node": "heads, resample ablation", "node_mean": "heads, mean ablation",
                                   "edge": "head → head edges (MIB fractions)"}.get)
cf = curves_frame(res, curve_kind)
if cf.empty:
    st.info("No curves of this kind in this result (edge curves need a method with edge scores).")
else:
    show_spec(_curves_chart(rkey, curve_kind, res), width="stretch", key="circ_curves_chart")

methods_run = list(res.summary)
if st.session_state.get("circ_inspect") not in methods_run:
    st.session_state.pop("circ_inspect", None)
method = st.selectbox("Method to inspect", methods_run, key="circ_inspect")
labels = [f"{l}.{h}" for l in range(res.n_layers) for h in range(res.n_heads)]
left, right = st.columns(2)
with left:
    st.markdown(f"**{method}: head scores** (outlined: reference heads; click a cell to pick the head)")
    event = st.vega_lite_chart(_heatmap_chart(rkey, method, res), width="stretch", on_select="rerun", key="circ_heat")
with right:
    roc = roc_frame(res)
    if roc.empty:
        st.markdown("**ROC curves**: no reference circuit, so none (the curves above need none).")
    else:
        st.markdown("**ROC curves** against the reference heads (seed 0)")
        show_spec(_roc_chart(rkey, roc), width="stretch")

# A heatmap click selects the head in the picker (once per new click, so a manual pick afterwards sticks).
sel = None
try:
    sel = (event or {}).get("selection", {}).get("pick")
except AttributeError:
    sel = None
if sel:
    lab = f"{sel[0]['layer']}.{sel[0]['head']}"
    if lab in labels and st.session_state.get("circ_heat_applied") != lab:
        st.session_state["circ_head"] = lab
        st.session_state["circ_heat_applied"] = lab
chosen = [r.circuit for r in res.runs if r.method == method and r.seed == 0][0]
if st.session_state.get("circ_head") not in labels:
    st.session_state["circ_head"] = f"{chosen[0][0]}.{chosen[0][1]}" if chosen else labels[0]

g1, g2 = st.columns(2)
edges = mean_edge_scores(res, method)
g1.markdown(f"**Circuit found by {method}** (seed 0, {len(chosen)} heads; node size = score"
            + ("; edges = its strongest scored edges)" if edges is not None else "; this method scores no edges)"))
g1.graphviz_chart(circuit_dot(chosen, res.n_layers, scores=res.mean_scores(method).tolist(),
                              edge_scores=edges.tolist() if edges is not None else None))
if ref:
    g2.markdown(f"**Reference circuit** ({len(ref['heads'])} heads)")
    g2.graphviz_chart(circuit_dot(ref["heads"], res.n_layers))

st.markdown("**Ablate a head in the Prompt lab**")
head = st.selectbox("Head (layer.head)", labels, key="circ_head")
st.session_state["circ_persist"] = {k: st.session_state[k] for k in PERSIST if k in st.session_state}
if st.button("Send to Prompt lab", key="circ_send"):
    l, h = map(int, head.split("."))
    st.session_state["ablate_heads"] = [(l, h)]
    st.switch_page("pages/prompt_lab.py")
