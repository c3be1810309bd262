"""Features: one feature at a time (by id, by token, or by label), everything from its statistics."""

import altair as alt
import pandas as pd
import streamlit as st

from app.common import current_model_name, show_chart, current_sae_dir, load_model_cached, load_stats_cached, show_error
from interp import features as F
from interp.errors import InterpError
from interp.reports import CTX_CSS, contexts_html, render_html

st.title("Features")
sae_dir = current_sae_dir()
if not sae_dir:
    st.info("Pick an SAE in the sidebar (none found for this model yet).")
    st.stop()

if not F.has_stats(sae_dir):
    st.warning(f"This SAE has no feature statistics yet ({sae_dir}).")
    n_tok = st.number_input("Tokens to scan", min_value=2_000, max_value=2_000_000, value=50_000, step=10_000)
    if st.button("Build feature statistics now", type="primary"):
        try:
            with st.spinner("Scanning the corpus..."):
                F.build_for_sae_dir(sae_dir, F.StatsConfig(n_tokens=int(n_tok)), model=load_model_cached(current_model_name()),
                                    model_name=current_model_name())
            st.rerun()
        except InterpError as e:
            show_error(e)
    st.caption(f"Or from a terminal: `interp features --sae {sae_dir} --tokens 200000`")
    st.stop()

try:
    stats = load_stats_cached(sae_dir)
except InterpError as e:
    show_error(e)
    st.stop()
n = stats.n_features


def _sync_id():
    st.session_state["feature_id"] = int(st.session_state["_fid_input"])


def _step(d: int):
    st.session_state["feature_id"] = min(max(int(st.session_state.get("feature_id", 0)) + d, 0), n - 1)


def _go(i: int):
    st.session_state["feature_id"] = int(i)


st.session_state["_fid_input"] = int(st.session_state.get("feature_id", 0))
c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 3, 3])
c1.number_input(f"Feature id (0..{n - 1})", min_value=0, step=1, key="_fid_input", on_change=_sync_id)
c2.button("◀ previous", on_click=_step, args=(-1,), width="stretch")
c3.button("next ▶", on_click=_step, args=(1,), width="stretch")
tok_q = c4.text_input("Which features fire on token…", placeholder="e.g. ' Mary' (mind the leading space)", key="token_query")
lab_q = c5.text_input("Search labels", placeholder="e.g. colors", key="label_query")

if tok_q:
    try:
        hits = F.features_for_token(stats, tok_q.strip("'\"") if tok_q.startswith(("'", '"')) else tok_q)
        if hits:
            cols = st.columns(min(len(hits), 8))
            for col, (i, v) in zip(cols, hits):
                col.button(f"#{i} ({v:.2f})", key=f"tokhit{i}", on_click=_go, args=(i,), help=stats.labels[i])
        else:
            st.caption("No feature fires on that token.")
    except InterpError as e:
        show_error(e)
if lab_q:
    ids = F.search_labels(stats, lab_q)
    if ids:
        sel = st.selectbox(f"{len(ids)} matching features", ids, format_func=lambda i: f"#{i}: {stats.labels[i]}", key="label_pick")
        st.button("Open", on_click=_go, args=(sel,), key="label_open")
    else:
        st.caption("No label matches.")

fid = int(st.session_state.get("feature_id", 0))
try:
    fv = stats.feature(fid)
except InterpError as e:
    show_error(e)
    st.stop()

st.subheader(f"Feature {fv.id}: {fv.label}")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Firing frequency", f"{fv.freq:.2e}")
m2.metric("Max activation", f"{fv.max_act:.3f}")
m3.metric("Mean when firing", f"{fv.mean_act:.3f}")
m4.download_button("Open in report (HTML)", render_html(stats, [fv.id], title=f"Feature {fv.id}"),
                   file_name=f"feature_{fv.id}.html", mime="text/html")

left, mid, right = st.columns(3)
with left:
    edges = fv.hist_edges
    hd = pd.DataFrame({"log10 activation": [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])], "count": fv.hist_counts})
    show_chart(alt.Chart(hd).mark_bar(color="#fb8500").encode(x=alt.X("log10 activation:Q", bin=alt.Bin(step=edges[1] - edges[0]), title="log10 activation"),
                                                                   y="count:Q").properties(height=200, title="Activation density (firing tokens)"),
                    width="stretch")
with mid:
    st.markdown("**Logit effects**")
    lt = pd.DataFrame({"promoted": [repr(t) for t, _ in fv.pos_logits], "+": [v for _, v in fv.pos_logits],
                       "suppressed": [repr(t) for t, _ in fv.neg_logits], "−": [v for _, v in fv.neg_logits]})
    st.dataframe(lt, hide_index=True, height=240, width="stretch")
with right:
    st.markdown("**Most correlated features**")
    for j, r, lab in fv.correlated:
        st.button(f"#{j}  r={r:+.2f}  {lab}", key=f"corr{j}", on_click=_go, args=(j,))
    cf = pd.DataFrame({"category": list(fv.category_f1), "F1": list(fv.category_f1.values())})
    show_chart(alt.Chart(cf).mark_bar().encode(x=alt.X("F1:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("category:N", sort="-x", axis=alt.Axis(labelOverlap=False)))
                    .properties(height=alt.Step(20), title="Concept-category F1"), width="stretch")

st.markdown("**Top activations**")
st.html(f"<style>{CTX_CSS}</style>" + (contexts_html(fv.top, fv.max_act) or "<p>never fired</p>"))
st.markdown("**Samples across the activation distribution**")
st.html(f"<style>{CTX_CSS}</style>" + contexts_html(fv.quantiles, fv.max_act))
if fv.logit_hist:
    lo, hi = fv.logit_range
    nb = len(fv.logit_hist)
    ld = pd.DataFrame({"logit effect": [lo + (hi - lo) * (j + 0.5) / nb for j in range(nb)], "tokens": fv.logit_hist})
    show_chart(alt.Chart(ld).mark_bar(color="#8250df").encode(x=alt.X("logit effect:Q", bin=alt.Bin(step=(hi - lo) / nb or 1)), y="tokens:Q")
                    .properties(height=160, title="Logit effects over the vocabulary"), width="stretch")
with st.expander("Feature density across this SAE"):
    edges, counts = F.density_histogram(stats)
    dd = pd.DataFrame({"log10 frequency": [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])], "features": counts})
    show_chart(alt.Chart(dd).mark_bar().encode(x=alt.X("log10 frequency:Q"), y="features:Q").properties(height=160), width="stretch")
