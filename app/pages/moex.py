"""MoE-X page: routing statistics, per-expert unit browser, chess board heatmaps, comparison table.

Everything is computed by `interp.moex` (inspect / evaluate); this page only picks and draws.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.common import show_error

st.title("MoE-X sparse experts")
st.caption("Chess models whose MLPs are dense, Switch-style MoE, or MoE-X (ReLU experts + sparsity-aware "
           "routing; Yang et al., 2025). Units are scored against the true board (Karvonen et al., 2024).")


@st.cache_resource(show_spinner="Loading chess model...")
def _load(path: str):
    from interp.moex.model import load_chess_model

    return load_chess_model(path)


@st.cache_data(show_spinner="Reading games...")
def _games() -> dict:
    from interp.moex.browse import shipped_games

    return shipped_games()


@st.cache_resource(show_spinner="Running the model over the games...")
def _units(path: str, layer: int, n_games: int):
    from interp.moex.browse import unit_table

    model, mcfg, mlp, _ = _load(path)
    return unit_table(model, mlp, _games()["val"][:n_games], mcfg.n_ctx, layer)


@st.cache_resource(show_spinner="Routing statistics...")
def _routing(path: str, layer: int, n_games: int):
    from interp.moex.browse import routing_stats

    model, mcfg, mlp, _ = _load(path)
    return routing_stats(model, mlp, _games()["val"][:n_games], mcfg.n_ctx, layer)


def comparison_tab():
    from interp.moex.browse import shipped_comparison

    res = shipped_comparison()
    st.markdown("Measured by `benchmarks/moex/run.py` on held-out games (one run, same data for every row).")
    st.dataframe(pd.DataFrame(res["rows"]), hide_index=True, use_container_width=True)
    st.markdown("**Targets (the paper's direction)**")
    st.dataframe(pd.DataFrame(res["targets"]), hide_index=True, use_container_width=True)
    st.markdown("**Speed ratios**")
    st.dataframe(pd.DataFrame(res["speed"]), hide_index=True, use_container_width=True)
    st.caption(res["scale"])
    df = pd.DataFrame(res["rows"]).melt(id_vars="model", value_vars=["coverage", "reconstruction"], var_name="metric")
    st.altair_chart(alt.Chart(df).mark_bar().encode(
        x=alt.X("value:Q", title="score"), y=alt.Y("model:N", sort=None, title=None),
        color="metric:N", yOffset="metric:N", tooltip=["model", "metric", alt.Tooltip("value:Q", format=".3f")]),
        use_container_width=True)


def routing_tab(path: str, mlp, layer: int, n_games: int):
    if not mlp.is_moe:
        st.info(f"{mlp.arch} is a dense MLP: there is no router. Pick a Switch or MoE-X model.")
        return
    rs = _routing(path, layer, n_games)
    load = pd.DataFrame({"expert": range(len(rs.expert_load)), "fraction of tokens": rs.expert_load,
                         "active units when chosen": rs.active_when_chosen,
                         "router estimate": rs.estimated_when_chosen})
    c1, c2 = st.columns(2)
    with c1:
        st.markdown(f"**Expert load** (top-{mlp.top_k} of {mlp.n_experts})")
        st.altair_chart(alt.Chart(load).mark_bar().encode(x="expert:O", y="fraction of tokens:Q",
                                                          tooltip=list(load.columns)), use_container_width=True)
    with c2:
        st.markdown(f"**Units active per token** (of {mlp.top_k} x {mlp.d_mlp} computed)")
        hist = pd.DataFrame({"active units": rs.active_per_token})
        st.altair_chart(alt.Chart(hist).mark_bar().encode(x=alt.X("active units:Q", bin=alt.Bin(maxbins=40)),
                                                          y="count():Q"), use_container_width=True)
    st.markdown("**Active units per expert when chosen** (measured vs the sparsity router's estimate)")
    long = load.melt(id_vars="expert", value_vars=["active units when chosen", "router estimate"]).dropna()
    st.altair_chart(alt.Chart(long).mark_bar().encode(x="expert:O", y="value:Q", color="variable:N",
                                                      xOffset="variable:N"), use_container_width=True)


def units_tab(path: str, mlp, mcfg, layer: int, n_games: int):
    from interp.data.chess import PIECE_CLASSES
    from interp.moex.browse import top_contexts, unit_heatmap

    table = _units(path, layer, n_games)
    n_units = table.acts.shape[1]
    width = mlp.d_mlp if mlp.is_moe else n_units
    n_exp = mlp.n_experts if mlp.is_moe else 1
    c1, c2, c3 = st.columns(3)
    expert = int(c1.number_input("Expert", 0, n_exp - 1, 0, disabled=n_exp == 1, key="moex_expert"))
    units = pd.DataFrame({"unit": range(expert * width, (expert + 1) * width),
                          "firing rate": table.firing_rate[expert * width:(expert + 1) * width],
                          "best cell": table.best_property[expert * width:(expert + 1) * width],
                          "F1": table.best_f1[expert * width:(expert + 1) * width],
                          "t": table.best_threshold[expert * width:(expert + 1) * width]}).sort_values("F1", ascending=False)
    default_unit = int(units["unit"].iloc[0])
    unit = int(c2.number_input("Unit", 0, n_units - 1, default_unit, key=f"moex_unit_{expert}"))
    piece = c3.selectbox("Piece on the square", ["any", *PIECE_CLASSES[1:]], key="moex_piece")
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Units of expert {expert}** (sorted by the best F1 of 'fires above t x max' for any board cell)")
        st.dataframe(units, hide_index=True, use_container_width=True, height=320)
    with right:
        heat = unit_heatmap(table, unit, None if piece == "any" else piece)
        files = "abcdefgh"
        df = pd.DataFrame([{"file": files[f], "rank": str(r + 1), "mean activation": heat[r, f]}
                           for r in range(8) for f in range(8)])
        st.markdown(f"**Unit {unit}: mean activation by square** (where it holds {piece})")
        st.altair_chart(alt.Chart(df).mark_rect().encode(
            x=alt.X("file:O", sort=list(files)), y=alt.Y("rank:O", sort=[str(i) for i in range(8, 0, -1)]),
            color=alt.Color("mean activation:Q", scale=alt.Scale(scheme="viridis")),
            tooltip=["file", "rank", alt.Tooltip("mean activation:Q", format=".3f")]).properties(width=320, height=320))
    model, _, _, _ = _load(path)
    ctx = top_contexts(model, mlp, _games()["val"][:n_games], mcfg.n_ctx, layer, unit)
    st.markdown(f"**Top contexts of unit {unit}** (the character it fires on is in brackets)")
    st.dataframe(pd.DataFrame([{"activation": c["activation"], "text": f"…{c['context']}[{c['char']}]{c['next']}"} for c in ctx]),
                 hide_index=True, use_container_width=True)


try:
    from interp.moex.model import shipped_models

    models = shipped_models()
    if not models:
        st.warning("No shipped chess models found; build them with `python benchmarks/moex/run.py --ship`.")
        st.stop()
    names = list(models)
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    name = c1.selectbox("Chess model", names, index=names.index("moex") if "moex" in names else 0, key="moex_model")
    other = c2.text_input("or a model directory", key="moex_dir", help="trained with `interp moex train`")
    path = other.strip() or str(models[name])
    model, mcfg, mlp, cfg = _load(path)
    layer = int(c3.number_input("Layer", 0, mcfg.n_layers - 1, mcfg.n_layers - 1, key="moex_layer"))
    n_games = int(c4.number_input("Games", 5, 200, 40, step=5, help="held-out games used on this page", key="moex_games"))
    st.caption(f"{mlp.arch}: {mcfg.n_layers} layers, d_model {mcfg.d_model}, "
               + (f"E={mlp.n_experts} experts of {mlp.d_mlp} {mlp.act} units, top-{mlp.top_k}, {mlp.router} router"
                  if mlp.is_moe else f"{mlp.d_mlp} {mlp.act} units")
               + f"; validation loss {cfg.get('val_loss', float('nan')):.4f}")
    t1, t2, t3 = st.tabs(["Comparison", "Routing", "Units & board"])
    with t1:
        comparison_tab()
    with t2:
        routing_tab(path, mlp, layer, n_games)
    with t3:
        units_tab(path, mlp, mcfg, layer, n_games)
except Exception as e:  # noqa: BLE001 - shown as one line, never a stack trace
    show_error(e)
