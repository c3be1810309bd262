"""Features: one browser for every kind of unit (SAE latents, per-head SAEs, MLP neurons), one
feature at a time, SAEDashboard-style, plus search across every source of the model."""

from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from app.common import (cached_chart, current_model_name, current_sae_dir, guarded, load_model_cached, load_sae_cached,
                        load_stats_cached, page_state, progress_box, saes_for_model, selection, set_sae, show_error, show_spec,
                        stats_key, stats_or_stop)
from app.jobs_panel import start_job
from app.style import PALETTE, md_text, result_header, text
from interp import features as F
from interp import jobs
from interp.errors import InterpError
from interp.features.catalog import model_sources, search_all
from interp.reports import CTX_CSS, contexts_html, intervals_html, logit_chips_html, token_values_html

st.title("Features")
ps = page_state("features")
model_name = current_model_name()
sae_dir = current_sae_dir()


@st.cache_data(show_spinner=False, ttl=10)
def _n_layers(name: str) -> tuple[int, bool]:
    m = load_model_cached(name)
    return m.cfg.n_layers, not m.cfg.attn_only


try:
    n_layers, has_mlp = _n_layers(model_name)
    sources = model_sources(model_name, saes_for_model(model_name), n_layers, has_mlp)
except InterpError as e:
    show_error(e)
    st.stop()
by_name = {s.name: s for s in sources}

# the source: the sidebar's SAE unless the user picked another unit kind here
kinds = {"sae": "SAE latents (the sidebar's SAE)", "neurons": "MLP neurons", "moex": "MoE-X expert units (chess models)"}
kind = st.radio("Units", list(kinds), format_func=kinds.get, horizontal=True, **ps.widget("kind"))
if kind == "sae":
    if not sae_dir:
        st.info("Pick an SAE in the sidebar (none found for this model yet), or browse MLP neurons.")
        st.stop()
    src = next((s for s in sources if s.sae_dir == sae_dir), None) or F.catalog.SourceRef("sae", sae_dir.rstrip("/").split("/")[-1], sae_dir, sae_dir=sae_dir)
elif kind == "neurons":
    if not has_mlp:
        st.info("This model is attention-only: it has no MLP neurons.")
        st.stop()
    ps.default("neuron_layer", 0)
    layer = st.selectbox("Layer", list(range(n_layers)), **ps.widget("neuron_layer"))
    src = by_name[f"MLP neurons L{layer}"]
else:
    from interp.features.catalog import SourceRef
    from interp.features.moex_source import moex_stats_dir
    from interp.moex.model import read_cfg, shipped_models

    chess = {k: str(v) for k, v in shipped_models().items()}
    if not chess:
        st.info("No chess models are shipped with this install (interp/moex/shipped/).")
        st.stop()
    c1, c2 = st.columns(2)
    ps.default("chess_model", "moex" if "moex" in chess else next(iter(chess)))
    cm = c1.selectbox("Chess model", list(chess), **ps.widget("chess_model"))
    ps.default("chess_layer", 0)
    n_chess_layers = int(read_cfg(chess[cm])["model"]["n_layers"])
    cl = c2.selectbox("Layer", list(range(n_chess_layers)), **ps.widget("chess_layer"))
    src = SourceRef("moex", f"{cm} units L{cl}", str(moex_stats_dir(cm, int(cl))), layer=int(cl))
stats_dir = src.stats_dir
build_cmd = {"sae": f"interp features --sae {stats_dir} --tokens 200000",
             "neurons": f"interp features --neurons {src.layer} --out {stats_dir} --tokens 200000"}.get(src.kind)  # no CLI for MoE-X units
sel_key = f"{src.kind}:{stats_dir}"  # widgets that depend on the source are keyed by it

if not F.has_stats(stats_dir):
    st.warning(f"{src.name} has no feature statistics yet.")
    n_tok = st.number_input("Tokens to scan", min_value=2_000, max_value=2_000_000, value=50_000, step=10_000, key="build_tokens")
    running = [j for j in jobs.history(kind="feature-stats", limit=0) if j.state == "running" and j.params.get("sae_dir") == stats_dir]
    if src.kind == "sae" and running:
        st.info("Building them as a background job: progress and cancel in the sidebar; this page opens them when it ends.")
    elif src.kind == "sae" and st.button("Build feature statistics (background job)", type="primary", key="build_stats"):
        sel_ = selection()
        start_job("feature-stats", {"model": model_name, "device": sel_.device, "sae_dir": stats_dir, "tokens": int(n_tok)},
                  title=f"Feature statistics: {src.name}", header=sel_.header("Feature statistics", {"tokens": int(n_tok)}, seed=0))
    elif src.kind != "sae" and st.button("Build feature statistics now", type="primary", key="build_stats"):
        with guarded("building statistics"), progress_box(f"Scanning {int(n_tok):,} tokens") as cb:
            model = load_model_cached(model_name)
            cfg = F.StatsConfig(n_tokens=int(n_tok))
            if src.kind == "moex":
                from interp.features.moex_source import build_moex_stats

                build_moex_stats(chess[cm], int(src.layer), n_games=max(20, int(n_tok) // 256), progress=cb)
            else:
                st_ = F.build_feature_stats(model, F.NeuronSource(model, int(src.layer)), cfg, model_name=model_name,
                                            source_name=src.name, progress=cb)
                F.save_stats(st_, stats_dir)
            st.rerun()
    if build_cmd:
        st.caption(f"Or from a terminal: `{build_cmd}`")
    else:
        st.caption("Statistics run over the shipped held-out games (about 256 characters each).")
    st.stop()

stats = stats_or_stop(stats_dir)
skey = stats_key(stats_dir)  # every cached view below is keyed by it (and the feature id)
n = stats.n_features
sel = selection()
result_header(sel.header("Features", {"source": src.name, "hook": stats.meta.get("hook"), "features": n,
                                      "statistics": f"{stats.meta.get('n_tokens'):,} tokens of {stats.meta.get('corpus')}"},
                         seed=(stats.meta.get("config") or {}).get("seed"), sae=src.kind == "sae"))


@st.cache_data(show_spinner=False, max_entries=64)
def _token_hits(skey: str, token: str, _stats):
    return F.features_for_token(_stats, token, include_dense=True)


@st.cache_data(show_spinner=False, max_entries=64)
def _search_all(keys: tuple, query: str, _stores: dict):
    return search_all(_stores, query)


@st.cache_data(show_spinner=False, max_entries=128)
def _samples_html(skey: str, fid: int, _fv) -> tuple[str, str]:
    """The top-activation and activation-interval HTML of one feature (most of a feature page's text)."""
    top = contexts_html(_fv.top, _fv.max_act) or "<p>never fired</p>"
    return top, intervals_html(_fv.intervals, _fv.max_act) if _fv.intervals else contexts_html(_fv.quantiles, _fv.max_act)


@cached_chart
def _density_chart(skey: str, fid: int, _stats, _fv):
    edges, counts = F.density_histogram(_stats)
    dd = pd.DataFrame({"log10 frequency": [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])], "features": counts})
    base = alt.Chart(dd).mark_bar(color="#999999").encode(
        x=alt.X("log10 frequency:Q", title="log10 firing frequency (fraction of tokens)", axis=alt.Axis(tickCount=6, format=".1f")),
        y=alt.Y("features:Q", title="features", axis=alt.Axis(tickCount=4)))
    here = F.log10_freq(_fv)
    layers = [base]
    if here is not None:
        layers.append(alt.Chart(pd.DataFrame({"x": [here], "what": [f"feature {_fv.id}"]})).mark_rule(color=PALETTE[5], size=2)
                      .encode(x="x:Q", tooltip=["what", alt.Tooltip("x:Q", title="log10 frequency", format=".2f")]))
    return alt.layer(*layers).properties(height=200)


@cached_chart
def _activation_chart(skey: str, fid: int, _fv):
    e = _fv.hist_edges
    hd = pd.DataFrame({"lo": e[:-1], "hi": e[1:], "count": _fv.hist_counts})
    nz = hd[hd["count"] > 0]
    # the x axis spans the bins that hold firings (one empty bin either side), not the histogram's fixed -4..2 range
    lo, hi = (float(nz["lo"].min()) - (e[1] - e[0]), float(nz["hi"].max()) + (e[1] - e[0])) if len(nz) else (e[0], e[-1])
    return alt.Chart(hd[(hd["lo"] >= lo) & (hd["hi"] <= hi)]).mark_bar(color=PALETTE[1]).encode(
        x=alt.X("lo:Q", title="log10 activation", scale=alt.Scale(domain=[lo, hi], nice=False), axis=alt.Axis(format=".1f")),
        x2="hi:Q", y=alt.Y("count:Q", title="firing tokens", axis=alt.Axis(tickCount=4)),
        tooltip=[alt.Tooltip("lo:Q", title="from", format=".2f"), alt.Tooltip("hi:Q", title="to", format=".2f"), "count"],
    ).properties(height=180)


@cached_chart
def _logit_chart(skey: str, fid: int, _fv):
    lo, hi = _fv.logit_range
    nb = len(_fv.logit_hist)
    ld = pd.DataFrame({"logit effect": [lo + (hi - lo) * (j + 0.5) / nb for j in range(nb)], "tokens": _fv.logit_hist})
    return (alt.Chart(ld).mark_bar(color=PALETTE[3]).encode(
        x=alt.X("logit effect:Q", bin=alt.Bin(step=(hi - lo) / nb or 1), title="logit effect (per unit of activation)",
                axis=alt.Axis(tickCount=5, format=".2f")),
        y=alt.Y("tokens:Q", title="vocabulary tokens", axis=alt.Axis(tickCount=3))).properties(height=160))


@cached_chart
def _category_chart(skey: str, fid: int, _fv):
    cf = pd.DataFrame({"category": list(_fv.category_f1), "F1": list(_fv.category_f1.values())})
    return (alt.Chart(cf).mark_bar(color=PALETTE[2]).encode(x=alt.X("F1:Q", title="F1 (0-1)", scale=alt.Scale(domain=[0, 1])),
                                                            y=alt.Y("category:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False)))
            .properties(height=alt.Step(18)))



@st.cache_data(show_spinner=False, max_entries=32)
def _my_text_values(name: str, dev: str, sae_dir: str, text_: str, fid: int) -> tuple[list[float], list[str]]:
    """One feature's value on every token of the user's text (interp.prompt_lab.feature_values)."""
    from interp.prompt_lab import feature_values, prepare

    m = load_model_cached(name, dev)
    prep = prepare(m, text_)
    return feature_values(m, F.SaeSource(load_sae_cached(sae_dir, dev), m), prep.tokens, fid), prep.str_tokens


@st.cache_data(show_spinner="Generating...", max_entries=32)
def _steered(name: str, dev: str, sae_dir: str, prompt: str, fid: int, mode: str, strength: float, n: int):
    from interp.features.steer import steer

    m = load_model_cached(name, dev)
    return steer(m, load_sae_cached(sae_dir, dev), prompt, fid, mode, strength, n)


def _sync_id():
    st.session_state["feature_id"] = int(st.session_state["_fid_input"])


def _step(d: int):
    st.session_state["feature_id"] = min(max(int(st.session_state.get("feature_id", 0)) + d, 0), n - 1)


def _go(i: int, source: str | None = None):
    if source and source in by_name and by_name[source].kind == "sae":
        set_sae(by_name[source].sae_dir)
        ps["kind"] = "sae"
    st.session_state["feature_id"] = int(i)


def _pins() -> list[int]:
    return st.session_state.setdefault("pinned", {}).setdefault(stats_dir, [])


def _toggle_pin(i: int) -> None:
    pins = _pins()
    if i in pins:
        pins.remove(i)
    else:
        pins.append(int(i))


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


st.session_state["_fid_input"] = int(st.session_state.get("feature_id", 0))
c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 3, 3])
c1.number_input(f"Feature id (0..{n - 1})", min_value=0, step=1, key="_fid_input", on_change=_sync_id)
c2.button("◀ previous", on_click=_step, args=(-1,), width="stretch")
c3.button("next ▶", on_click=_step, args=(1,), width="stretch")
tok_q = c4.text_input("Which features fire on token…", placeholder="e.g. ' Mary' (mind the leading space)", **ps.widget("token_query"))
lab_q = c5.text_input("Search labels", placeholder="e.g. colors", **ps.widget("label_query"))

if tok_q:
    with guarded("token search"):
        hits = _token_hits(skey, tok_q[1:-1] if len(tok_q) >= 2 and tok_q[0] == tok_q[-1] and tok_q[0] in "'\"" else tok_q, stats)
        dense = [h for h in hits if h.dense]
        hits = [h for h in hits if not h.dense]  # the library's ranking, dense features left out
        if dense:
            st.caption(f"Left out: dense feature{'s' if len(dense) > 1 else ''} "
                       + ", ".join(f"#{h.feature} (fires on {100 * h.freq:.0f}% of tokens)" for h in dense)
                       + f": above {100 * F.views.DENSE_FREQ:.0f}% of tokens a feature says little about any one token.")
        if hits:
            st.caption("Most specific first: share of the feature's activation that falls on this token × its mean "
                       "activation there relative to its max.")
            with st.container(key="token-hits"):
                cols = st.columns(min(len(hits), 4))
                for j, h in enumerate(hits):
                    cols[j % len(cols)].button(f"#{h.feature} {md_text(_short(h.label))}", key=f"tokhit{h.feature}", on_click=_go, args=(h.feature,),
                                               help=f"{h.label} · mean activation on the token {h.value:.2f} · specificity {h.score:.3g} · "
                                                    f"frequency {h.freq:.2e}", width="stretch")
        elif not dense:
            st.caption("No feature fires on that token.")
if lab_q:
    ids = F.search_labels(stats, lab_q)
    if ids:
        # keyed by the source: switching SAE gives a fresh dropdown with the new SAE's labels
        lab_pick = st.selectbox(f"{len(ids)} matching features", ids, format_func=lambda i: f"#{i}: {stats.labels[i]}", key=f"label_pick:{sel_key}")
        st.button("Open", on_click=_go, args=(lab_pick,), key="label_open")
    else:
        st.caption("No label matches.")

with st.expander("Search every SAE and neuron layer of this model (label, token, or #id)"):
    q_all = st.text_input("Search all sources", **ps.widget("search_all"), placeholder="e.g. colors, ' Mary', #12")
    if q_all:
        with guarded("search"):
            stores = {s.name: load_stats_cached(s.stats_dir) for s in sources if F.has_stats(s.stats_dir)}
            found = _search_all(tuple(stats_key(s.stats_dir) for s in sources if s.name in stores), q_all, stores)
            if not found:
                st.caption(f"No match in {len(stores)} sources with statistics.")
            with st.container(key="all-hits"):
                for j, sh in enumerate(found):
                    st.button(f"{md_text(sh.source)} #{sh.hit.feature}: {md_text(_short(sh.hit.label, 70))}  ({sh.why}, score {sh.hit.score:.3g})",
                              key=f"allhit{j}", on_click=_go, args=(sh.hit.feature, sh.source))

fid = int(st.session_state.get("feature_id", 0))
try:
    fv = stats.feature(fid)
except InterpError as e:
    show_error(e)
    st.stop()

# names and labels come from files: shown as text (escaped HTML), never as Markdown or LaTeX
badges = "".join(f' <span class="badge">{text(f)}</span>' for f in fv.flags)
st.html(f'<style>.badge{{background:#fff1e5;color:#953800;border-radius:8px;padding:0 6px;font-size:12px}}</style>'
        f'<h3 data-testid="feature-title" style="margin:0">Feature {fv.id}: {text(fv.label)}{badges}</h3>'
        f'<p style="font-size:13px;margin:0">input side: <code>{text(" ".join(repr(t) for t in fv.label_inputs) or "-")}</code> · '
        f'output side (promotes): <code>{text(" ".join(repr(t) for t in fv.label_outputs) or "-")}</code></p>')
if "dense" in fv.flags:
    st.caption(f"Dense: fires on {100 * fv.freq:.1f}% of tokens (above {100 * F.views.DENSE_FREQ:.0f}%), so it says little about any one token.")
m1, m2, m3, m4, m5 = st.columns([1, 1, 1, 1, 1])
m1.metric("Firing frequency", f"{fv.freq:.2e}")
m2.metric("Max activation", f"{fv.max_act:.3f}")
m3.metric("Mean when firing", f"{fv.mean_act:.3f}")
with m4:
    from interp.reports import render_html

    # rendered only when clicked (a callable), not on every rerun
    st.download_button("Open in report (HTML)", partial(render_html, stats, [fv.id], title=f"Feature {fv.id} of {src.name}",
                                                        header=sel.header("Feature report", {"source": src.name})),
                       file_name=f"feature_{fv.id}.html", mime="text/html", on_click="ignore")
with m5:
    pinned_now = fv.id in _pins()
    st.button("Unpin" if pinned_now else "Pin to my list", key="pin", on_click=_toggle_pin, args=(fv.id,),
              help="pinned features: the Pinned tab here, and the Reports page exports them", width="stretch")

tab_feat, tab_text, tab_steer, tab_pins = st.tabs(["Feature", "Test it on my text", "Steer with it", f"Pinned ({len(_pins())})"])
with tab_text:
    if src.kind != "sae":
        st.caption("Testing on your own text works for SAE latents (pick 'SAE latents' above).")
    else:
        my_text = st.text_area("Your text", height=80, **ps.widget("my_text"),
                               placeholder="e.g. The sky was a deep blue and the grass bright green.")
        if my_text and my_text.strip():
            with guarded("test on my text"):
                vals, toks_ = _my_text_values(model_name, sel.device, src.sae_dir, my_text, fv.id)
                result_header(sel.header(f"Feature {fv.id} on your text", {"tokens": len(toks_)}))
                st.html(f"<style>{CTX_CSS}</style>" + token_values_html(toks_, vals, vmax=max(fv.max_act, 1e-9)))
                st.caption(f"max on your text {max(vals):.3f} (the feature's max over the corpus: {fv.max_act:.3f}); "
                           f"fires on {sum(v > 0 for v in vals)} of {len(vals)} tokens. Hover a token for its value.")
with tab_steer:
    if src.kind != "sae":
        st.caption("Steering works with SAE latents (pick 'SAE latents' above).")
    else:
        s1, s2, s3 = st.columns([3, 1, 1])
        ps.default("steer_prompt", "The weather today is")
        steer_prompt = s1.text_input("Prompt", **ps.widget("steer_prompt"))
        steer_mode = s2.radio("Mode", ["add", "clamp"], horizontal=True, **ps.widget("steer_mode"),
                              help="add: the latent gains the strength (the activation gains strength x its decoder row); "
                                   "clamp: the latent is held at the strength everywhere")
        ps.default("steer_strength", float(round(max(fv.max_act, 1.0) * 2, 2)))
        strength = s3.number_input("Strength", step=0.5, **ps.widget("steer_strength"))
        ps.default("steer_n", 20)
        n_gen = s3.number_input("Tokens", 1, 200, step=5, **ps.widget("steer_n"))
        steer_key = (stats_dir, fv.id, steer_prompt, steer_mode, float(strength), int(n_gen))
        # generated on request only: two greedy runs are too costly to repeat on every feature change (st.tabs runs every tab)
        if st.button("Generate", key="steer_go", type="primary", disabled=not steer_prompt.strip()):
            ps["steer_for"] = steer_key
        if ps.get("steer_for") == steer_key:
            with guarded("steering"):
                out = _steered(model_name, sel.device, src.sae_dir, steer_prompt, fv.id, steer_mode, float(strength), int(n_gen))
                result_header(sel.header(f"Steering with feature {fv.id}", {"mode": steer_mode, "strength": f"{float(strength):g}",
                                                                            "tokens": int(n_gen), "decoding": "greedy"}))
                o1, o2 = st.columns(2)
                o1.html(f'<div data-testid="unsteered"><b>Unsteered</b><pre style="white-space:pre-wrap">{text(steer_prompt)}'
                        f'<span style="background:#eaeef2">{text(out.unsteered)}</span></pre></div>')
                o2.html(f'<div data-testid="steered"><b>Steered</b> ({text(steer_mode)} {float(strength):g})'
                        f'<pre style="white-space:pre-wrap">{text(steer_prompt)}<span style="background:#fff1e5">{text(out.steered)}</span></pre></div>')
with tab_pins:
    pins = _pins()
    if not pins:
        st.caption("No pinned features yet: pin one with **Pin to my list**.")
    else:
        from interp.reports import render

        for i in list(pins):
            p1, p2, p3 = st.columns([6, 1, 1])
            p1.html(f"<span>#{i}: {text(stats.labels[i])}</span>")
            p2.button("open", key=f"pin_open{i}", on_click=_go, args=(i,))
            p3.button("unpin", key=f"pin_rm{i}", on_click=_toggle_pin, args=(i,))
        hdr = sel.header("Pinned features", {"source": src.name})
        d1, d2 = st.columns(2)
        d1.download_button("Export the list (HTML report)", partial(render, stats, list(pins), "html", f"Pinned features of {src.name}", hdr),
                           file_name=f"pinned_{src.name}.html", mime="text/html", on_click="ignore", key="pins_html")
        d2.download_button("Export the list (Markdown)", partial(render, stats, list(pins), "md", f"Pinned features of {src.name}", hdr),
                           file_name=f"pinned_{src.name}.md", mime="text/markdown", on_click="ignore", key="pins_md")

with tab_feat:
    st.html(f"<style>{CTX_CSS}</style>")
    left, mid, right = st.columns(3)
    with left:
        st.markdown("**Firing frequency**: this feature (the line) among all features of the source")
        show_spec(_density_chart(skey, fv.id, stats, fv), width="stretch")
        st.markdown("**Activation density** over its firing tokens")
        show_spec(_activation_chart(skey, fv.id, fv), width="stretch")
    with mid:
        st.markdown("**Promotes**")
        st.html(logit_chips_html(fv.pos_logits, "pos") or "<i>no logit effects for this source</i>")
        st.markdown("**Suppresses**")
        st.html(logit_chips_html(fv.neg_logits, "neg") or "<i>-</i>")
        if fv.logit_hist:
            st.markdown("**Logit effects** over the vocabulary")
            show_spec(_logit_chart(skey, fv.id, fv), width="stretch")
    with right:
        st.markdown("**Most correlated features**")
        for j, r, lab in fv.correlated:
            st.button(f"#{j}  r={r:+.2f}  {md_text(_short(lab))}", key=f"corr{j}", on_click=_go, args=(j,))
        if fv.category_f1:
            st.markdown("**Concept-category F1** (embedded corpus)")
            show_spec(_category_chart(skey, fv.id, fv), width="stretch")

    if src.kind == "moex":
        @st.cache_data(show_spinner="Reading the boards...", max_entries=64)
        def _board(model_dir: str, layer: int, unit: int, piece: str | None):
            from interp.features.moex_source import unit_board

            hm, best, f1 = unit_board(model_dir, layer, unit, piece)
            return [{"file": "abcdefgh"[c], "rank": str(8 - r), "mean activation": float(hm[r, c])} for r in range(8) for c in range(8)], best, f1

        @cached_chart
        def _board_chart(model_dir: str, layer: int, unit: int, piece: str, _cells: list):
            return alt.Chart(pd.DataFrame(_cells)).mark_rect().encode(
                x=alt.X("file:N", sort=list("abcdefgh")), y=alt.Y("rank:N", sort=[str(i) for i in range(8, 0, -1)]),
                color=alt.Color("mean activation:Q", scale=alt.Scale(scheme="oranges")),
                tooltip=["file", "rank", alt.Tooltip("mean activation:Q", format=".4g")],
            ).properties(width=260, height=260, title=f"Mean activation by square ({piece})")

        d_exp = int(stats.meta.get("d_expert") or 0)
        n_exp = int(stats.meta.get("experts") or 0)
        st.markdown(f"**Board view** · unit {fv.id}" + (f" of expert {fv.id // d_exp} (of {n_exp})" if n_exp and d_exp else "")
                    + " · unit activations at the '.' before each white move (where board properties are read)")
        from interp.data.chess import PIECE_CLASSES

        bc1, bc2 = st.columns([1, 2])
        piece = bc1.selectbox("Piece on the square", ["any", *PIECE_CLASSES[1:]], **ps.widget("board_piece"))
        with guarded("board view"):
            cells, best, f1 = _board(chess[cm], int(src.layer), fv.id, None if piece == "any" else piece)
            bc1.metric("Best board cell (F1)", f"{best}", delta=f"F1 {f1:.2f}", delta_color="off")
            with bc2:
                show_spec(_board_chart(chess[cm], int(src.layer), fv.id, piece, cells))

    top_html, samples_html = _samples_html(skey, fv.id, fv)
    st.markdown("**Top activations** (hover a token for its value)")
    st.html(top_html)
    st.markdown("**Samples across the activation distribution**")
    if not fv.intervals:
        st.caption("These statistics predate activation intervals (format 1): evenly spaced samples instead. Rebuild them for intervals"
                   + (f": `{build_cmd}`." if build_cmd else "."))
    st.html(samples_html)
