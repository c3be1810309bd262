"""Feature circuits page: build or load the attribution graph of one prompt (transcoder features x token
positions, circuit-tracer's definitions), prune it with sliders, inspect nodes, pin nodes and group
them into supernodes, ablate or steer features (measured vs predicted), and read the head-level view
of the same prompt beside it. Building runs as a background job (`interp.jobs` kind "graph"; progress and
cancel in the sidebar's jobs panel); the finished graph opens here, also from the jobs history. Besides
`interp.graphs` / `interp.transcoders` it uses only the dashboard's jobs panel, selection (device) and style."""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from interp.errors import InterpError  # noqa: E402

S = st.session_state


@st.cache_resource(show_spinner=False)
def _model(name: str):
    from interp.models import load_model

    return load_model(name)


@st.cache_resource(show_spinner=False)
def _transcoders(path: str):
    from interp.transcoders.io import load_transcoder_set

    return load_transcoder_set(path)


def _error(e: Exception) -> None:
    st.error(" ".join(str(e).split()) or type(e).__name__)


st.title("Feature circuits")
st.caption("Attribution graphs over transcoder features (circuit-tracer / Anthropic 2025): nodes are active transcoder "
           "features at (layer, position), MLP error nodes, token embeddings and logits; edges are direct effects in the "
           "local replacement model (attention patterns and LayerNorm scales frozen). Pruning keeps the nodes holding the "
           "node threshold of the influence on the logits, then the edges holding the edge threshold.")

from app.jobs_panel import start_job, take_opened  # noqa: E402
from app.state import selection  # noqa: E402
from app.style import result_header  # noqa: E402
from interp import jobs  # noqa: E402

# A finished graph job (opened from the jobs history, or this session's latest one) replaces the shown graph.
# The shown graph keeps the model and transcoders it was built with (g_src), whatever the boxes say later.
opened = take_opened("graph")
if opened is not None:
    S["g_job"] = opened.id
    S.pop("g_job_loaded", None)
job = None
if S.get("g_job"):
    try:
        job = jobs.get(S["g_job"])
    except InterpError:
        job = None
if job is not None and job.state == "done" and S.get("g_job_loaded") != job.id:
    try:
        from interp.graphs import load_graph

        S["g_graph"] = load_graph(Path(job.dir) / job.result()["graph"])
        S["g_src"] = (job.params["model"], job.params["transcoders"])
        S["g_header"] = job.header
        S["g_supernodes"] = {}
        S["g_job_loaded"] = job.id
    except (InterpError, OSError, KeyError) as e:
        _error(e)

left, right = st.columns([1, 1])
with left:
    mode = st.radio("Graph", ["Build from a prompt", "Load a graph file"], key="g_mode", horizontal=True)
with right:
    model_name = st.text_input("Model", value="embedded", key="g_model")
    tc_dir = st.text_input("Transcoders (one per MLP layer)", value=str(ROOT / "transcoders" / "embedded"), key="g_tc")

if mode == "Build from a prompt":
    prompt = st.text_input("Prompt", value="When Mary and John went to the store, John gave a drink to", key="g_prompt")
    tkind = st.radio("Explain", ["Salient logits", "Given tokens", "Logit difference"], key="g_tkind", horizontal=True)
    targets, diff = None, None
    if tkind == "Given tokens":
        targets = [t for t in st.text_input("Target tokens (comma separated, with their leading spaces)", value=" Mary",
                                            key="g_targets").split(",") if t]
    elif tkind == "Logit difference":
        c1, c2 = st.columns(2)
        diff = (c1.text_input("Token A", value=" Mary", key="g_diff_a"), c2.text_input("Token B", value=" John", key="g_diff_b"))
    if st.button("Build graph (background job)", key="g_build", type="primary"):
        try:
            import torch

            from interp.graphs.targets import resolve_targets
            from interp.hooks import prompt_tokens
            from interp.transcoders.io import check_set_fits

            # bad input is one line here, before the job starts: transcoders that do not fit, a prompt longer
            # than the context, a target that is not one token
            m = _model(model_name)
            check_set_fits(_transcoders(tc_dir), m)
            n_tok = prompt_tokens(m, prompt).shape[-1]
            if n_tok > m.cfg.n_ctx:
                raise InterpError(f"prompt is {n_tok} tokens, longer than the model's context of {m.cfg.n_ctx}")
            if targets or diff:
                resolve_targets(m, torch.zeros(m.cfg.d_vocab), targets, diff)
            target_txt = (f"logit({diff[0]})-logit({diff[1]})" if diff else ", ".join(repr(t) for t in targets) if targets
                          else "salient logits")
            sel = selection()  # the device only: the page has its own model and transcoder boxes
            header = " · ".join(["Attribution graph", f"model {model_name}", f"transcoders {tc_dir}", f"prompt {prompt!r}",
                                 f"target {target_txt}", f"device {sel.device}"])
            params = {"model": model_name, "device": sel.device, "transcoders": tc_dir, "prompt": prompt,
                      "target": list(targets or []), "diff": list(diff) if diff else None}
            short = prompt if len(prompt) <= 40 else prompt[:39] + "…"
            start_job("graph", params, title=f"Graph: {short!r} ({target_txt})", header=header, key="g_job")
        except (InterpError, OSError, ValueError) as e:
            _error(e)
else:
    path = st.text_input("Graph file (.graph.safetensors written by `interp graph`)", key="g_path")
    if st.button("Load", key="g_load"):
        try:
            from interp.graphs import load_graph

            S["g_graph"] = load_graph(path)
            S["g_src"] = (model_name, tc_dir)
            S["g_header"] = f"loaded from {path}"
            S["g_supernodes"] = {}
            S.pop("g_job", None)
        except (InterpError, OSError) as e:
            _error(e)

if job is not None and job.state != "done" and S.get("g_job") == job.id:
    result_header(job.header)
    if job.state == "running":
        st.info(f"Building the graph as a background job ({100 * job.progress.fraction:.0f}%): its progress, time left and "
                "cancel are in the sidebar; every page stays usable meanwhile. The graph opens here when it ends.")
    else:
        st.error(f"The job was {job.state}: {' '.join(job.reason.split())}", icon=":material/error:")

graph = S.get("g_graph")
if graph is None:
    st.info("Build or load a graph to see it.")
    st.stop()
model_name, tc_dir = S.get("g_src", (model_name, tc_dir))  # the model and transcoders the shown graph was built with
if S.get("g_header"):
    result_header(S["g_header"])

from interp.graphs import graph_scores  # noqa: E402
from interp.graphs.view import (head_contributions, layout, node_card, promoted_tokens, supernode_edges,  # noqa: E402
                                top_contexts, top_tokens)

sc = graph_scores(graph)
st.subheader(f"{graph.prompt!r}")
st.write(f"{graph.n_features} feature nodes, {graph.n_nodes} nodes; logit nodes: "
         + ", ".join(f"{t!r} ({float(p):.3f})" for t, p in zip(graph.logit_tokens, graph.logit_probabilities))
         + f". Replacement score {sc.replacement:.3f}, completeness {sc.completeness:.3f}.")

c1, c2 = st.columns(2)
node_thr = c1.slider("Node threshold (share of influence kept)", 0.1, 1.0, 0.8, 0.01, key="g_node_thr")
edge_thr = c2.slider("Edge threshold", 0.1, 1.0, 0.98, 0.01, key="g_edge_thr")
view = layout(graph, node_thr, edge_thr)
st.caption(f"After pruning: {view.n_features_kept} features, {len(view.nodes)} nodes, {view.n_edges_kept} edges drawn.")

nodes = pd.DataFrame(view.nodes)
pinned = set(S.get("g_pinned_sel", []))
nodes["pinned"] = nodes["id"].isin(pinned)
nodes["promotes"] = ""
is_feat = nodes["kind"] == "feature"
if is_feat.any():
    try:
        keys = [(int(graph.feature_key(int(i))[0]), int(graph.feature_key(int(i))[2])) for i in nodes.loc[is_feat, "index"]]
        nodes.loc[is_feat, "promotes"] = promoted_tokens(_model(model_name), _transcoders(tc_dir), keys)
    except (InterpError, OSError) as e:  # a loaded graph whose model or transcoders are not here: no token line
        _error(e)
edges = pd.DataFrame(view.edges) if view.edges else pd.DataFrame(columns=["x", "y", "x2", "y2", "weight", "sign", "source", "target"])
edges["abs_weight"] = edges["weight"].abs()
ticks = {i: f"{i}: {t}" for i, t in enumerate(graph.token_strs)}
sel = alt.selection_point(fields=["id"], name="node", on="click")
edge_layer = alt.Chart(edges).mark_rule(opacity=0.5).encode(
    x="x:Q", y="y:Q", x2="x2:Q", y2="y2:Q", strokeWidth=alt.StrokeWidth("abs_weight:Q", scale=alt.Scale(range=[0.5, 5]), legend=None),
    color=alt.Color("sign:N", scale=alt.Scale(domain=["positive", "negative"], range=["#1f77b4", "#d62728"])),
    tooltip=["source", "target", alt.Tooltip("weight:Q", format=".4f")])
node_layer = alt.Chart(nodes).mark_circle(stroke="black").encode(
    x=alt.X("x:Q", title="token position", axis=alt.Axis(values=list(ticks), labelExpr=f"{json.dumps(ticks)}[datum.value]",
                                                         labelAngle=-40, labelOverlap=False)),
    y=alt.Y("y:Q", title="layer (0 = embeddings, top = logits)", scale=alt.Scale(domain=[-0.5, graph.n_layers + 1.5])),
    color=alt.Color("kind:N", scale=alt.Scale(domain=["token", "feature", "error", "logit"],
                                             range=["#7f7f7f", "#2ca02c", "#ff7f0e", "#9467bd"])),
    size=alt.Size("influence:Q", scale=alt.Scale(range=[220, 40]), legend=None),  # cumulative share: low = most influential
    strokeWidth=alt.condition("datum.pinned", alt.value(3), alt.value(0)),
    tooltip=["label", "kind", alt.Tooltip("activation:Q", format=".3f"), alt.Tooltip("influence:Q", format=".3f"), "token",
             alt.Tooltip("promotes:N", title="promotes (top tokens)")],
).add_params(sel)
event = st.altair_chart((edge_layer + node_layer).resolve_scale(color="independent").properties(height=520), width="stretch", on_select="rerun", key="g_chart")

clicked = None
try:
    pts = (event or {}).get("selection", {}).get("node", [])
    clicked = pts[0]["id"] if pts else None
except (AttributeError, KeyError, IndexError, TypeError):
    clicked = None
ids = list(nodes["id"])
labels = dict(zip(nodes["id"], nodes["label"]))
index_of = dict(zip(nodes["id"], nodes["index"]))
if S.get("g_node") not in ids:  # pruned away at this threshold (or the first graph): start at the first node
    S["g_node"] = ids[0]
new_click = clicked in ids and clicked != S.get("g_last_click")
if new_click:  # a click on the chart picks the node (the picker below is not created yet in this run)
    S["g_node"] = S["g_last_click"] = clicked
choice = st.selectbox("Node", ids, format_func=lambda i: labels[i], key="g_node")

tab_card, tab_pin, tab_int, tab_heads = st.tabs(["Node card", "Pinned nodes and supernodes", "Interventions", "Head-level view"])
with tab_card:
    card = node_card(graph, int(index_of[choice]))
    st.markdown(f"**{html.escape(card['label'])}** ({card['kind']})" + (f", activation {card['activation']:.3f}" if "activation" in card else ""))
    if card["kind"] == "feature":
        layer, pos, feat = graph.feature_key(int(index_of[choice]))
        try:
            st.write("Promotes: " + ", ".join(repr(t) for t in top_tokens(_model(model_name), _transcoders(tc_dir), layer, feat)))
        except (InterpError, OSError) as e:
            _error(e)
        st.caption(f"Feature {feat} of the layer-{layer} transcoder ({graph.transcoders.get(str(layer), tc_dir)}).")
        if st.button("Open this feature's page (top activating contexts on held-out text)", key="g_feature_page") or new_click:
            try:
                S["g_feature_ctx"] = (choice, top_contexts(_model(model_name), _transcoders(tc_dir), layer, feat))
            except (InterpError, OSError) as e:
                _error(e)
        page = S.get("g_feature_ctx")
        if page and page[0] == choice:
            st.dataframe(pd.DataFrame(page[1], columns=["activation", "context", "token"]), hide_index=True)
    ci, co = st.columns(2)
    ci.dataframe(pd.DataFrame(card["inputs"], columns=["strongest inputs", "weight"]), hide_index=True)
    co.dataframe(pd.DataFrame(card["outputs"], columns=["strongest outputs", "weight"]), hide_index=True)
    if st.button("Pin this node", key="g_pin"):
        S["g_pinned_sel"] = sorted(pinned | {choice})  # the pinned-nodes widget below is not created yet in this run
        st.rerun()

with tab_pin:
    S["g_pinned_sel"] = [p for p in S.get("g_pinned_sel", []) if p in ids]  # pruned away at this threshold: unpinned
    chosen = st.multiselect("Pinned nodes", ids, format_func=lambda i: labels[i], key="g_pinned_sel")
    name = st.text_input("Supernode name", key="g_super_name")
    if st.button("Group the pinned nodes as a supernode", key="g_group"):
        if not name.strip() or not chosen:
            st.error("give a name and pin at least one node")
        else:
            S.setdefault("g_supernodes", {})[name.strip()] = list(chosen)
    groups = S.get("g_supernodes", {})
    if groups:
        st.dataframe(pd.DataFrame([{"supernode": k, "members": ", ".join(labels.get(m, m) for m in v)} for k, v in groups.items()]),
                     hide_index=True)
        st.dataframe(pd.DataFrame(supernode_edges(graph, {k: [int(index_of[m]) for m in v if m in index_of] for k, v in groups.items()})),
                     hide_index=True)
    from interp.graphs import to_viewer_json

    viewer = to_viewer_json(graph, slug="graph", node_threshold=node_thr, edge_threshold=edge_thr, pinned=list(chosen),
                            supernodes=[[k, *v] for k, v in groups.items()])
    st.download_button("Download the viewer JSON (circuit-tracer / Neuronpedia)", json.dumps(viewer), file_name="graph.json",
                       key="g_download")

with tab_int:
    feats = [i for i in ids if nodes.set_index("id").loc[i, "kind"] == "feature"]
    picked = st.multiselect("Features", feats, default=feats[:1], format_func=lambda i: labels[i], key="g_int_feats")
    how = st.radio("Set them to", ["0 (ablate)", "a multiple of their activation (steer)"], key="g_int_how", horizontal=True)
    mult = st.number_input("Multiple", value=2.0, key="g_int_mult") if how.startswith("a multiple") else 0.0
    freeze = st.selectbox("Freeze", ["attention", "replacement", "none", "direct"], key="g_int_freeze",
                          help="attention: patterns fixed (circuit-tracer's default); replacement: the graph's local replacement model; "
                               "direct: patterns, LayerNorm scales and MLP outputs fixed (direct effects only)")
    if st.button("Run intervention", key="g_int_run"):
        try:
            from interp.graphs import FeatureEdit, check_intervention

            edits = []
            for i in picked:
                L, p, f = graph.feature_key(int(index_of[i]))
                a = float(graph.activation_values[graph.selected_features[int(index_of[i])]])
                edits.append(FeatureEdit(L, p, f, a * mult if mult else 0.0))
            res = check_intervention(graph, _model(model_name), _transcoders(tc_dir), edits, freeze=freeze)
            S["g_int_result"] = pd.DataFrame({"logit node": res.labels, "clean": res.clean, "predicted change": res.predicted,
                                              "measured change": res.measured})
        except (InterpError, OSError, ValueError) as e:
            _error(e)
    if "g_int_result" in S:
        st.dataframe(S["g_int_result"], hide_index=True)

with tab_heads:
    try:
        heads = pd.DataFrame(head_contributions(_model(model_name), graph))
        st.caption("Each attention head's direct contribution to the first logit node at the last position (z W_O projected "
                   "on the node's direction; the final LayerNorm scale from the run). The Circuits page ranks the heads of "
                   "whole tasks.")
        st.altair_chart(alt.Chart(heads.head(16)).mark_bar().encode(x=alt.X("contribution:Q"), y=alt.Y("head:N", sort="-x"),
                                                                    tooltip=["head", alt.Tooltip("contribution:Q", format=".4f")]),
                        width="stretch")
    except (InterpError, OSError) as e:
        _error(e)
