"""Prompt lab: next-token distribution, per-token top features, attention, and live ablations."""

import altair as alt
import pandas as pd
import streamlit as st

from app.common import current_model_name, show_chart, current_sae_dir, load_model_cached, load_sae_cached, mean_z_cached, show_error
from interp import prompt_lab as P
from interp.errors import InterpError

st.title("Prompt lab")
try:
    model = load_model_cached(current_model_name())
except InterpError as e:
    show_error(e)
    st.stop()
cfg = model.cfg

prompt = st.text_area("Prompt", value=st.session_state.get("lab_prompt", "When Mary and John went to the store, John gave a drink to"),
                      height=90, key="_lab_prompt_input", on_change=lambda: st.session_state.update(lab_prompt=st.session_state["_lab_prompt_input"]))
st.session_state["lab_prompt"] = prompt
try:
    prep = P.prepare(model, prompt)
except InterpError as e:
    show_error(e)
    st.stop()
if prep.truncated:
    st.warning(f"The prompt is {prep.n_original} tokens, longer than the model's context of {cfg.n_ctx}: "
               f"only BOS and the last {cfg.n_ctx - 1} tokens are used.")


def prob_chart(rows, title):
    df = pd.DataFrame([{"token": repr(r.token), "prob": r.prob} for r in rows])
    return alt.Chart(df).mark_bar().encode(x=alt.X("prob:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("token:N", sort="-x"),
                                           tooltip=["token", "prob"]).properties(height=240, title=title)


tab_next, tab_feats, tab_attn, tab_abl = st.tabs(["Next token", "Top features per token", "Attention", "Ablate"])

with tab_next:
    try:
        clean = P.predict(model, prep.tokens, 10)
        show_chart(prob_chart(clean, "Next-token distribution"), width="stretch")
    except InterpError as e:
        show_error(e)

with tab_feats:
    sae_dir = current_sae_dir()
    choices = ([f"SAE: {sae_dir}"] if sae_dir else []) + [f"MLP neurons, layer {l}" for l in range(cfg.n_layers) if not cfg.attn_only]
    src_pick = st.selectbox("Feature source (its hook)", choices, key="lab_source")
    k = st.slider("Features per token", 1, 10, 5, key="lab_k")
    try:
        if src_pick and src_pick.startswith("SAE: "):
            from interp.features import SaeSource

            src = SaeSource(load_sae_cached(sae_dir), model)
        elif src_pick:
            from interp.features import NeuronSource

            src = NeuronSource(model, int(src_pick.rsplit(" ", 1)[1]))
        else:
            src = None
        if src is not None:
            st.caption(f"hook {src.hook}")
            per_tok = P.top_features(model, src, prep.tokens, k)
            rows = [{"pos": i, "token": repr(t), "features": ", ".join(f"#{f} ({v:.2f})" for f, v in fs)}
                    for i, (t, fs) in enumerate(zip(prep.str_tokens, per_tok))]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=min(420, 38 + 35 * len(rows)))
            if src_pick.startswith("SAE: "):
                ids = sorted({f for fs in per_tok for f, _ in fs})
                if ids:
                    c1, c2 = st.columns([3, 1])
                    go = c1.selectbox("Open a feature on the Features page", ids, key="lab_open_feat")
                    if c2.button("Open feature", key="lab_open_btn"):
                        st.session_state["feature_id"] = int(go)
                        st.switch_page("pages/features.py")
    except InterpError as e:
        show_error(e)

with tab_attn:
    layer = st.selectbox("Layer", list(range(cfg.n_layers)), key="lab_attn_layer")
    try:
        pat = P.attention(model, prep.tokens, int(layer))
        toks = [f"{i}:{t}" for i, t in enumerate(prep.str_tokens)]
        heads = st.multiselect("Heads", list(range(cfg.n_heads)), default=list(range(min(4, cfg.n_heads))), key="lab_attn_heads")
        recs = [{"head": h, "query": toks[q], "key": toks[kk], "attention": float(pat[h, q, kk])}
                for h in heads for q in range(len(toks)) for kk in range(q + 1)]
        if recs:
            df = pd.DataFrame(recs)
            order = toks
            chart = alt.Chart(df).mark_rect().encode(
                x=alt.X("key:N", sort=order, axis=alt.Axis(labelAngle=-60)), y=alt.Y("query:N", sort=order),
                color=alt.Color("attention:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])), tooltip=["head", "query", "key", "attention"],
            ).properties(width=300, height=300).facet(facet=alt.Facet("head:N"), columns=2)
            show_chart(chart)
    except InterpError as e:
        show_error(e)

with tab_abl:
    all_heads = [f"{l}.{h}" for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    preset = [f"{l}.{h}" for l, h in st.session_state.get("ablate_heads", []) if f"{l}.{h}" in all_heads]
    if "lab_heads" not in st.session_state or st.session_state.get("_ablate_heads_seen") != preset:
        st.session_state["lab_heads"] = preset  # heads sent from the Circuits page pre-fill the ablation
        st.session_state["_ablate_heads_seen"] = preset
    c1, c2 = st.columns(2)
    with c1:
        heads_sel = st.multiselect("Ablate attention heads (layer.head)", all_heads, key="lab_heads")
        mode = st.radio("Head ablation", P.HEAD_MODES, horizontal=True, key="lab_head_mode",
                        help="zero: the head's output is 0; mean: the head's mean output over corpus text")
    with c2:
        clamp_ids = st.text_input("Clamp SAE features (ids, comma-separated)", key="lab_clamp_ids",
                                  disabled=not current_sae_dir(), placeholder="e.g. 3, 17")
        op = st.radio("Clamp", P.CLAMP_OPS, horizontal=True, key="lab_clamp_op")
        val = st.number_input("Value (scale factor or set value)", value=0.0 if op != "scale" else 2.0, key="lab_clamp_val")
    top_clean = P.predict(model, prep.tokens, 2)
    t1, t2 = st.columns(2)
    ta = t1.text_input("Logit difference: token A", value=top_clean[0].token, key="lab_tok_a")
    tb = t2.text_input("minus token B", value=top_clean[1].token if len(top_clean) > 1 else "", key="lab_tok_b")
    try:
        clamps = []
        for part in clamp_ids.replace(" ", "").split(","):
            if part:
                if not part.isdigit():
                    raise InterpError(f"bad feature id {part!r}; give whole numbers like 3, 17")
                clamps.append(P.Clamp(int(part), op, float(val)))
        ab = P.Ablation(heads=P.parse_heads(", ".join(heads_sel)), head_mode=mode, clamps=clamps)
        sae = load_sae_cached(current_sae_dir()) if clamps else None
        means = {l: mean_z_cached(current_model_name(), l) for l, _ in ab.heads} if mode == "mean" else None
        cmp = P.compare(model, prep.tokens, ab, sae=sae, target=(ta, tb) if ta and tb else None, means=means)
        if ab.empty:
            st.info("Nothing ablated yet: pick heads or feature clamps. Both runs below are the clean run.")
        k1, k2, k3 = st.columns(3)
        if cmp.clean_logit_diff is not None:
            k1.metric(f"logit[{ta!r}] − logit[{tb!r}], clean", f"{cmp.clean_logit_diff:.3f}")
            k2.metric("ablated", f"{cmp.ablated_logit_diff:.3f}", delta=f"{cmp.ablated_logit_diff - cmp.clean_logit_diff:+.3f}")
        k3.metric("KL(clean ‖ ablated)", f"{cmp.kl:.4f}")
        a, b = st.columns(2)
        with a:
            show_chart(prob_chart(cmp.clean, "Clean run"), width="stretch")
        with b:
            show_chart(prob_chart(cmp.ablated, "Ablated run"), width="stretch")
    except InterpError as e:
        show_error(e)
