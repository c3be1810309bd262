"""Prompt lab: your own prompt as a token view (coloured by any feature, labelled features at every
position), the next-token distribution, attention, and live ablations with the biggest logit changes."""

import altair as alt
import pandas as pd
import streamlit as st

from app.common import (cached_chart, current_device, current_model_name, current_sae_dir, guarded, load_model_cached,
                        load_sae_cached, load_stats_cached, mean_z_cached, page_state, selection, show_error, show_spec)
from app.style import SEQUENTIAL, md_text, result_header, text
from interp import prompt_lab as P
from interp.errors import InterpError
from interp.features import has_stats
from interp.reports import CTX_CSS, prob_bars_html, token_features_html, token_values_html

DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"
TASKS = ("ioi", "greater-than", "docstring")

st.title("Prompt lab")
ps = page_state("lab")
try:
    model = load_model_cached(current_model_name())
except InterpError as e:
    show_error(e)
    st.stop()
cfg = model.cfg
model_name, device = current_model_name(), current_device()
sel = selection()


# Every model run of this page is cached per setting (model, device, prompt and the run's own
# choices), so a rerun that changed nothing (a widget elsewhere, navigation) runs nothing.
@st.cache_data(show_spinner=False, max_entries=32)
def _predict(name: str, dev: str, prompt: str, k: int):
    m = load_model_cached(name, dev)
    return P.predict(m, P.prepare(m, prompt).tokens, k)


@st.cache_data(show_spinner=False, max_entries=32)
def _top_view(name: str, dev: str, prompt: str, pick: str, sae_dir: str | None, k: int):
    """(hook, n_features, top k features per token) for a feature source."""
    m = load_model_cached(name, dev)
    src = _source(m, pick, sae_dir, dev)
    return str(src.hook), src.n_features, P.top_features(m, src, P.prepare(m, prompt).tokens, k)


@st.cache_data(show_spinner=False, max_entries=32)
def _values_view(name: str, dev: str, prompt: str, pick: str, sae_dir: str | None, fid: int):
    """One feature's value on every token of the prompt."""
    m = load_model_cached(name, dev)
    return P.feature_values(m, _source(m, pick, sae_dir, dev), P.prepare(m, prompt).tokens, fid)


@cached_chart
def _attention_chart(name: str, dev: str, prompt: str, layer: int, heads: tuple):
    m = load_model_cached(name, dev)
    prep = P.prepare(m, prompt)
    pat = P.attention(m, prep.tokens, layer)
    toks = [f"{i}:{t}" for i, t in enumerate(prep.str_tokens)]
    recs = [{"head": h, "query": toks[q], "key": toks[kk], "attention": float(pat[h, q, kk])}
            for h in heads for q in range(len(toks)) for kk in range(q + 1)]
    return alt.Chart(pd.DataFrame(recs)).mark_rect().encode(
        x=alt.X("key:N", sort=toks, axis=alt.Axis(labelAngle=-60, labelOverlap=False)),
        y=alt.Y("query:N", sort=toks, axis=alt.Axis(labelOverlap=False)),
        color=alt.Color("attention:Q", scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, 1])), tooltip=["head", "query", "key", "attention"],
    ).properties(width=300, height=300).facet(facet=alt.Facet("head:N"), columns=2)


@st.cache_data(show_spinner=False, max_entries=32)
def _compare(name: str, dev: str, prompt: str, heads: tuple, mode: str, op: str, ids: tuple, val: float, sae_dir: str | None,
             target: tuple | None):
    m = load_model_cached(name, dev)
    clamps = [P.LatentEdit(op, list(ids), val)] if ids else []
    ab = P.Ablation(heads=list(heads), head_mode=mode, clamps=clamps)
    sae = load_sae_cached(sae_dir, dev) if clamps else None
    means = {l: mean_z_cached(name, l) for l, _ in ab.heads} if mode == "mean" else None
    return P.compare(m, P.prepare(m, prompt).tokens, ab, sae=sae, target=target, means=means)


@st.cache_data(show_spinner=False, max_entries=8)
def _examples(model_name: str, task: str):
    return [(x.prompt, x.a, x.b) for x in P.task_examples(load_model_cached(model_name), task, n=6)]


def _use_example():
    pick = st.session_state.get(ps.key("example"))
    if pick:
        prompt, a, b = pick
        ps["prompt"], ps["tok_a"], ps["tok_b"], ps["answers_for"] = prompt, a, b, prompt


with st.expander("Load a task example (sets the prompt and both answer tokens)"):
    c1, c2 = st.columns([1, 3])
    task = c1.selectbox("Task", TASKS, **ps.widget("task"))
    with guarded("task examples"):
        ex = _examples(current_model_name(), task)
        c2.selectbox("Example", ex, **ps.widget("example"), format_func=lambda e: f"{e[0]}  → {e[1]!r} vs {e[2]!r}",
                     on_change=_use_example, index=None, placeholder="pick an example")

ps.default("prompt", DEFAULT_PROMPT)
prompt = st.text_area("Prompt", height=90, **ps.widget("prompt"))
st.session_state["lab_prompt"] = prompt  # other pages may read the current prompt
try:
    prep = P.prepare(model, prompt)
except InterpError as e:
    show_error(e)
    st.stop()
if prep.truncated:
    st.warning(f"The prompt is {prep.n_original} tokens, longer than the model's context of {cfg.n_ctx}: "
               f"only BOS and the last {cfg.n_ctx - 1} tokens are used.")

# answer tokens: the task's right / wrong answer where known, else the two most likely tokens;
# reset only when the prompt changes, so the user's own choice survives reruns and navigation
if ps.get("answers_for") != prompt:
    known = P.known_answers(model, prompt)
    if known:
        ps["tok_a"], ps["tok_b"], ps["answers_why"] = known.a, known.b, known.why
    else:
        top2 = _predict(model_name, device, prompt, 2)
        ps["tok_a"], ps["tok_b"] = top2[0].token, (top2[1].token if len(top2) > 1 else "")
        ps["answers_why"] = "no task answer known for this prompt: the two most likely next tokens"
    ps["answers_for"] = prompt

st.html(f"<style>{CTX_CSS}</style>")
sae_dir = current_sae_dir()


def _source(m, pick: str, sae_dir: str | None, dev: str):
    from interp.features import NeuronSource, SaeSource

    if pick.startswith("SAE: "):
        return SaeSource(load_sae_cached(sae_dir, dev), m)
    return NeuronSource(m, int(pick.rsplit(" ", 1)[1]))


def _open_feature(f: int) -> None:
    st.session_state["feature_id"] = int(f)
    st.session_state["_goto"] = "pages/features.py"  # app/main.py switches there (a callback cannot)


def _labels(pick: str) -> list[str] | None:
    if pick.startswith("SAE: ") and sae_dir and has_stats(sae_dir):
        return load_stats_cached(sae_dir).labels
    return None


tab_tok, tab_next, tab_attn, tab_abl = st.tabs(["Top features per token", "Next token", "Attention", "Ablate"])

with tab_tok:
    choices = ([f"SAE: {sae_dir}"] if sae_dir else []) + [f"MLP neurons, layer {l}" for l in range(cfg.n_layers) if not cfg.attn_only]
    if not choices:
        st.info("No feature source: pick an SAE in the sidebar (this model has no MLP neurons).")
    else:
        if ps.get("source") not in choices:
            ps["source"] = choices[0]
        c1, c2, c3 = st.columns([3, 1, 1])
        pick = c1.selectbox("Feature source (its hook)", choices, **ps.widget("source"))
        ps.default("k", 3)
        k = c2.slider("Features per token", 1, 10, **ps.widget("k"))
        with guarded("features per token"):
            hook, n_feats, per_tok = _top_view(model_name, device, prompt, pick, sae_dir, int(k))
            # "Colour by" starts on a feature that fires on this prompt (the strongest at the last token), and
            # moves with the prompt and source unless the user picked one
            default_fid = P.colour_feature(per_tok)
            ps.follow("colour_by", int(default_fid if default_fid is not None else 0), (prompt, pick))
            if int(ps["colour_by"]) >= n_feats:
                ps["colour_by"] = 0
            fid = c3.number_input(f"Colour by feature (0..{n_feats - 1})", min_value=0, max_value=n_feats - 1, step=1,
                                  key=ps.key("colour_by"))
            vals = _values_view(model_name, device, prompt, pick, sae_dir, int(fid))
            labels = _labels(pick)
            result_header(sel.header("Features per token", {"source": pick.removeprefix("SAE: ").rstrip("/").split("/")[-1],
                                                            "hook": hook, "features per token": int(k)}))
            st.caption(f"hook {hook} · {n_feats} features"
                       + ("" if labels else " · no feature statistics for this source, so no labels (build them on the Features page)"))
            lab = f": {labels[int(fid)]}" if labels else ""
            st.html(f"<p><b>Feature {int(fid)}{text(lab)}</b> on your prompt (hover a token for its value; max {max(vals):.3f})</p>")
            if max(vals) <= 0:
                st.caption(f"Feature {int(fid)} does not fire anywhere on this prompt.")
            st.html(token_values_html(prep.str_tokens, vals))
            rows = [[(f, v, labels[f] if labels else "") for f, v in fs] for fs in per_tok]
            st.html(token_features_html(prep.str_tokens, rows))
            if pick.startswith("SAE: "):
                ids = sorted({f for fs in per_tok for f, _ in fs}, key=lambda f: -max(v for fs in per_tok for g, v in fs if g == f))
                if ids:
                    st.markdown("**Features on this prompt** (click one: colour the prompt by it; ↗ opens it on the Features page)")
                    with st.container(key="feature-chips"):
                        chips = st.columns(6)
                        for j, f in enumerate(ids[:24]):
                            name = f"#{f}" + (f" {md_text(labels[f][:22])}" if labels else "")
                            cc = chips[j % 6].columns([4, 1], gap="small")
                            cc[0].button(name, key=f"chip{f}", on_click=ps.__setitem__, args=("colour_by", int(f)), width="stretch",
                                         help=labels[f] if labels else None)
                            cc[1].button("↗", key=f"chipgo{f}", on_click=_open_feature, args=(int(f),), help="open on the Features page")

with tab_next:
    with guarded("next token"):
        clean = _predict(model_name, device, prompt, 10)
        st.html(prob_bars_html([(r.token, r.prob) for r in clean], "Next-token distribution"))

with tab_attn:
    ps.default("attn_layer", 0)
    layer = st.selectbox("Layer", list(range(cfg.n_layers)), **ps.widget("attn_layer"))
    with guarded("attention"):
        ps.default("attn_heads", list(range(min(4, cfg.n_heads))))
        heads = st.multiselect("Heads", list(range(cfg.n_heads)), **ps.widget("attn_heads"))
        if heads:
            show_spec(_attention_chart(model_name, device, prompt, int(layer), tuple(heads)))

with tab_abl:
    all_heads = [f"{l}.{h}" for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    preset = [f"{l}.{h}" for l, h in st.session_state.get("ablate_heads", []) if f"{l}.{h}" in all_heads]
    if ps.get("heads_seen") != preset:  # heads sent from the Circuits page pre-fill the ablation
        ps["heads"], ps["heads_seen"] = preset, preset
    ps.default("heads", [])
    c1, c2 = st.columns(2)
    with c1:
        heads_sel = st.multiselect("Ablate attention heads (layer.head)", all_heads, **ps.widget("heads"))
        mode = st.radio("Head ablation", P.HEAD_MODES, horizontal=True, **ps.widget("head_mode"),
                        help="zero: the head's output is 0; mean: the head's mean output over corpus text")
    with c2:
        ps.default("clamp_ids", "")
        clamp_ids = st.text_input("Clamp SAE features (ids, comma-separated)", **ps.widget("clamp_ids"),
                                  disabled=not sae_dir, placeholder="e.g. 3, 17")
        op = st.radio("Edit (interp.edits)", P.CLAMP_OPS, horizontal=True, **ps.widget("clamp_op"),
                      help="zero: 0 · scale: value × a · set: value everywhere · clamp: −value where active (negative clamp)")
        ps.default("clamp_val", 0.0)
        val = st.number_input("Value (scale factor, set value, or clamp magnitude)", **ps.widget("clamp_val"))
    t1, t2 = st.columns(2)
    ta = t1.text_input("Logit difference: token A", **ps.widget("tok_a"))
    tb = t2.text_input("minus token B", **ps.widget("tok_b"))
    st.caption(f"Answer tokens: {ps.get('answers_why', '')}")
    with guarded("ablation"):
        ids = []
        for part in clamp_ids.replace(" ", "").split(","):
            if part:
                if not part.isdigit():
                    raise InterpError(f"bad feature id {part!r}; give whole numbers like 3, 17")
                ids.append(int(part))
        head_list = tuple(P.parse_heads(", ".join(heads_sel)))
        cmp = _compare(model_name, device, prompt, head_list, mode, op, tuple(ids), float(val), sae_dir if ids else None,
                       (ta, tb) if ta and tb else None)
        result_header(sel.header("Ablation", {"heads": ", ".join(f"{l}.{h}" for l, h in head_list) or "none",
                                              "head ablation": mode,
                                              "feature edit": f"{op} {', '.join(map(str, ids))} value {float(val):g}" if ids else "none"},
                                 sae=bool(ids)))
        if not head_list and not ids:
            st.info("Nothing ablated yet: pick heads or feature clamps. Both runs below are the clean run.")
        k1, k2, k3 = st.columns(3)
        if cmp.clean_logit_diff is not None:
            k1.metric(f"logit[{ta!r}] − logit[{tb!r}], clean", f"{cmp.clean_logit_diff:.3f}")
            k2.metric("ablated", f"{cmp.ablated_logit_diff:.3f}", delta=f"{cmp.ablated_logit_diff - cmp.clean_logit_diff:+.3f}")
        k3.metric("KL(clean ‖ ablated)", f"{cmp.kl:.4f}")
        if cmp.note:
            st.warning(f"This edit changes nothing at the next-token prediction: {cmp.note}.", icon=":material/info:")
        a, b = st.columns(2)
        a.html(prob_bars_html([(r.token, r.prob) for r in cmp.clean], "Clean run"))
        b.html(prob_bars_html([(r.token, r.prob) for r in cmp.ablated], "Ablated run"))
        if cmp.changes:
            st.markdown("**Biggest logit changes**, largest |change| first; the change is measured after removing each run's "
                        f"mean logit (a shift of every logit changes no probability; this edit shifted them by "
                        f"{cmp.changes[0].shift:+.3f})")
            st.dataframe(pd.DataFrame([{"token": repr(c.token), "logit change (mean removed)": c.delta, "raw logit change": c.raw_delta,
                                        "clean logit": c.clean_logit, "ablated logit": c.ablated_logit, "clean prob": c.clean_prob,
                                        "ablated prob": c.ablated_prob} for c in cmp.changes]),
                         hide_index=True, width="stretch",
                         column_config={"clean prob": st.column_config.NumberColumn(format="%.3f"),
                                        "ablated prob": st.column_config.NumberColumn(format="%.3f"),
                                        "logit change (mean removed)": st.column_config.NumberColumn(format="%+.3f"),
                                        "raw logit change": st.column_config.NumberColumn(format="%+.3f"),
                                        "clean logit": st.column_config.NumberColumn(format="%.3f"),
                                        "ablated logit": st.column_config.NumberColumn(format="%.3f")})
