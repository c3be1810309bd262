"""Circuits page: find a task's circuit (discretized SAE codes, patching, EAP, ACDC), compare it with
the reference circuit, and send a head to the Prompt lab for ablation."""

import altair as alt
import streamlit as st

from app.common import current_model_name, load_model_cached, show_error
from interp.errors import InterpError

st.title("Circuits")
st.caption("Circuit discovery from discretized SAE codes (O'Neill & Bui, 2024) against activation patching, "
           "attribution patching (EAP) and ACDC. The reference circuit is the smallest head set an exhaustive greedy "
           "resample-ablation search found that keeps 90% of the task metric; it is a yardstick, not ground truth.")

from interp.circuits.discrete_sae import DiscreteSAEConfig  # noqa: E402
from interp.circuits.run import METHODS, CircuitConfig, CircuitResult, run_circuits  # noqa: E402
from interp.circuits.views import circuit_dot, comparison_frame, roc_frame, saved_results, scores_frame  # noqa: E402

mode = st.radio("Result", ["Run now", "Load saved result"], horizontal=True, key="circ_mode")
if mode == "Run now":
    c1, c2, c3 = st.columns([2, 3, 1])
    task = c1.selectbox("Task", ["ioi", "greater-than", "docstring", "custom JSONL file"], key="circ_task")
    if task == "custom JSONL file":
        task = c1.text_input("Path to a JSONL task (positive, negative, answer, wrong_answer)", key="circ_task_file")
    methods = c2.multiselect("Methods", list(METHODS), default=["discrete-sae", "patching", "eap"], key="circ_methods",
                             help="ACDC tests every edge with a forward pass: 10 s to 2 min per seed on the embedded model")
    seeds = c3.number_input("Seeds", 1, 20, 1, key="circ_seeds")
    with st.expander("discrete-sae options (defaults follow the paper)"):
        o1, o2, o3 = st.columns(3)
        position = o1.selectbox("Head output", ["mean", "last"], key="circ_pos",
                                help="averaged over positions (paper) or at the last position")
        arch = o1.selectbox("SAE architecture", ["standard", "topk"], key="circ_arch", help="standard = ReLU + L1 (paper)")
        top_k_codes = o2.number_input("Codes per (prompt, head)", 1, 8, 1, key="circ_topk", help="1 = argmax latent (paper)")
        n_train = o2.number_input("SAE training pairs", 2, 250, 10, key="circ_ntrain")
        per_layer = o3.checkbox("One SAE per layer", key="circ_perlayer")
        unit_norm = o3.checkbox("Unit-norm head vectors", key="circ_unit")
        qkv_edges = o3.checkbox("q/k/v-specific edges", key="circ_qkv",
                                help="score edges into each head's query, key and value input separately")
    if st.button("Run", type="primary", key="circ_run"):
        try:
            if not task:
                raise InterpError("give the path of a JSONL task file")
            if not methods:
                raise InterpError("choose at least one method")
            with st.spinner("Finding circuits (a missing reference circuit is built first)..."):
                model = load_model_cached(current_model_name())
                sae_cfg = DiscreteSAEConfig(n_train=int(n_train), position=position, arch=arch, top_k_codes=int(top_k_codes),
                                            per_layer=per_layer, unit_norm=unit_norm, qkv_edges=qkv_edges)
                st.session_state["circuit_result"] = run_circuits(current_model_name(), task, methods,
                                                                  CircuitConfig(seeds=int(seeds), sae=sae_cfg), model=model)
        except Exception as e:  # shown as one line, never a trace
            show_error(e)
else:
    files = saved_results()
    if not files:
        st.info("No saved results yet: run `python benchmarks/circuits/run.py` or `interp circuits ... --json FILE`.")
    choice = st.selectbox("Saved result", [str(p) for p in files], key="circ_file") if files else None
    path = st.text_input("...or a result JSON path", value=choice or "", key="circ_path")
    if path and st.button("Load", key="circ_load"):
        try:
            st.session_state["circuit_result"] = CircuitResult.load(path)
        except Exception as e:
            show_error(e)

res: CircuitResult | None = st.session_state.get("circuit_result")
if res is None:
    st.stop()

ref = res.reference
st.subheader(f"{res.task} on {res.model}")
st.write(f"Task metric: {res.full_metric:.3f} on positive prompts vs {res.negative_metric:.3f} on negative ones. "
         f"Reference: {len(ref['heads'])} heads, faithfulness {ref['faithfulness']:.2f}.")
if not res.separates:
    st.warning("The metric does not separate positive from negative prompts on this model: there is no circuit to find.")

st.markdown("**Methods compared** (mean ± std over seeds)")
st.dataframe(comparison_frame(res), hide_index=True, width="stretch")

methods_run = list(res.summary)
method = st.selectbox("Method to inspect", methods_run, key="circ_inspect")
df = scores_frame(res, method)
left, right = st.columns(2)
with left:
    st.markdown(f"**{method}: head scores** (outlined: reference heads)")
    base = alt.Chart(df).encode(x=alt.X("head:O", title="head"), y=alt.Y("layer:O", title="layer", sort="descending"))
    pick = alt.selection_point(fields=["layer", "head"], name="pick")
    heat = base.mark_rect().encode(color=alt.Color("score:Q", scale=alt.Scale(scheme="viridis")),
                                   tooltip=["layer", "head", alt.Tooltip("score:Q", format=".3f"), "in_circuit", "in_reference"]).add_params(pick)
    outline = base.transform_filter(alt.datum.in_reference).mark_rect(fill=None, stroke="red", strokeWidth=2)
    event = st.altair_chart(heat + outline, width="stretch", on_select="rerun", key="circ_heat")
with right:
    st.markdown("**ROC curves** against the reference heads (seed 0)")
    roc = roc_frame(res)
    st.altair_chart(alt.Chart(roc).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("fpr:Q", title="false positive rate"), y=alt.Y("tpr:Q", title="true positive rate"), color="method:N"),
        width="stretch")

g1, g2 = st.columns(2)
chosen = [r.circuit for r in res.runs if r.method == method and r.seed == 0][0]
g1.markdown(f"**Circuit found by {method}** (seed 0, {len(chosen)} heads)")
g1.graphviz_chart(circuit_dot(chosen, res.n_layers))
g2.markdown(f"**Reference circuit** ({len(ref['heads'])} heads)")
g2.graphviz_chart(circuit_dot(ref["heads"], res.n_layers))

st.markdown("**Ablate a head in the Prompt lab**")
labels = [f"{l}.{h}" for l in range(res.n_layers) for h in range(res.n_heads)]
sel = (event or {}).get("selection", {}).get("pick") if isinstance(event, dict) or hasattr(event, "get") else None
default = 0
if sel:
    default = labels.index(f"{sel[0]['layer']}.{sel[0]['head']}")
elif chosen:
    default = labels.index(f"{chosen[0][0]}.{chosen[0][1]}")
head = st.selectbox("Head (layer.head)", labels, index=default, key="circ_head")
if st.button("Send to Prompt lab", key="circ_send"):
    l, h = map(int, head.split("."))
    st.session_state["ablate_heads"] = [(l, h)]
    st.switch_page("pages/prompt_lab.py")
