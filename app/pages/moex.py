"""MoE-X page: routing statistics, per-expert unit browser, chess board heatmaps, comparison table.

Everything is computed by `interp.moex` (inspect / evaluate); this page only picks and draws.
"""

from __future__ import annotations

import time
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.common import cached_chart, show_error, show_spec
from app.style import PALETTE, SEQUENTIAL, result_header

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


@st.cache_resource
def _model_runs() -> dict:
    """("units", path, layer, games, min firings) -> UnitTable and ("routing", path, layer, games) ->
    RoutingStats, shared by all sessions; a plain dict so that a progress bar can be drawn while one
    is computed (st.cache_* cannot replay a bar drawn outside it)."""
    return {}


def _units(path: str, layer: int, n_games: int, min_firings: int, min_cell: int):
    """The unit table, with a progress bar while the model runs over the games (cached per setting)."""
    from interp.moex.browse import unit_table

    model, mcfg, mlp, _ = _load(path)
    return _with_progress(("units", path, layer, n_games, min_firings, min_cell),
                          lambda progress: unit_table(model, mlp, _games()["val"][:n_games], mcfg.n_ctx, layer,
                                                      min_firings=min_firings, progress=progress, min_cell=min_cell))


def _with_progress(key: tuple, compute):
    """`compute(progress)` once per key (kept in `_model_runs`' bounded store), drawing a progress bar
    while the model runs over the games (st.cache_* cannot replay a bar drawn inside it)."""
    cache = _model_runs()
    if key not in cache:
        slot = st.empty()

        def progress(done: int, total: int) -> None:
            slot.progress(done / total, text=f"Running the model over the held-out games: {done}/{total}")

        value = compute(progress)
        slot.empty()
        while len(cache) >= 8:  # bounded: the oldest setting goes first
            cache.pop(next(iter(cache)))
        cache[key] = value
    return cache[key]


def _routing(path: str, layer: int, n_games: int):
    from interp.moex.browse import routing_stats

    model, mcfg, mlp, _ = _load(path)
    return _with_progress(("routing", path, layer, n_games),
                          lambda progress: routing_stats(model, mlp, _games()["val"][:n_games], mcfg.n_ctx, layer, progress=progress))


@st.cache_data(show_spinner=False)
def _comparison() -> dict:
    from interp.moex.browse import shipped_comparison

    return shipped_comparison()


@cached_chart
def _comparison_chart(rows: list):
    """Coverage and reconstruction per model as bars (mean over seeds) with ±std whiskers; the table's
    cells are text ("0.198 ± 0.007"), so they are parsed by the library first (comparison_points)."""
    from interp.moex.browse import comparison_points

    df = pd.DataFrame(comparison_points(rows))
    df["lo"], df["hi"] = df["mean"] - df["std"], df["mean"] + df["std"]
    y = alt.Y("model:N", sort=None, title=None)
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("mean:Q", title="score (F1, 0-1; mean over seeds)", scale=alt.Scale(domain=[0, 1])), y=y,
        color=alt.Color("metric:N", title="metric", scale=alt.Scale(range=PALETTE[:2])), yOffset="metric:N",
        tooltip=["model", "metric", alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("std:Q", format=".3f"), "seeds"])
    whisk = alt.Chart(df).mark_rule(color="#333333").encode(x="lo:Q", x2="hi:Q", y=y, yOffset="metric:N")
    return (bars + whisk).properties(height=alt.Step(16))


@cached_chart
def _routing_charts(path: str, layer: int, n_games: int, which: str):
    """One of the routing view's three charts ("load", "active", "per expert")."""
    rs = _routing(path, layer, n_games)
    load = pd.DataFrame({"expert": range(len(rs.expert_load)), "fraction of tokens": rs.expert_load,
                         "active units when chosen": rs.active_when_chosen,
                         "router estimate": rs.estimated_when_chosen})
    if which == "load":
        return alt.Chart(load).mark_bar(color=PALETTE[0]).encode(
            x=alt.X("expert:O", title="expert"), y=alt.Y("fraction of tokens:Q", title="fraction of characters routed to it"),
            tooltip=list(load.columns))
    if which == "active":
        return alt.Chart(pd.DataFrame({"active units": rs.active_per_token})).mark_bar(color=PALETTE[0]).encode(
            x=alt.X("active units:Q", bin=alt.Bin(maxbins=40), title="active units per character"),
            y=alt.Y("count():Q", title="characters"))
    long = load.melt(id_vars="expert", value_vars=["active units when chosen", "router estimate"], var_name="measure",
                     value_name="active units").dropna()
    return alt.Chart(long).mark_bar().encode(x=alt.X("expert:O", title="expert"), y=alt.Y("active units:Q", title="active units when chosen"),
                                             color=alt.Color("measure:N", title=None), xOffset="measure:N")


@st.cache_data(show_spinner=False, max_entries=64)
def _top_contexts(path: str, layer: int, n_games: int, unit: int, _hidden) -> list:
    """Top contexts from the unit table's activations (`_hidden`, determined by path/layer/n_games): no forward."""
    from interp.moex.browse import top_contexts

    model, mcfg, mlp, _ = _load(path)
    return top_contexts(model, mlp, _games()["val"][:n_games], mcfg.n_ctx, layer, unit, hidden=_hidden)


@cached_chart
def _heatmap_chart(path: str, layer: int, n_games: int, min_firings: int, unit: int, piece: str, _df: pd.DataFrame):
    vals = _df["mean activation"].dropna()
    lo, hi = float(vals.min()), float(vals.max())
    scale = alt.Scale(scheme=SEQUENTIAL, domain=[lo, hi if hi > lo else lo + 1e-6])
    return alt.Chart(_df).mark_rect().encode(
        x=alt.X("file:O", sort=list("abcdefgh")), y=alt.Y("rank:O", sort=[str(i) for i in range(8, 0, -1)]),
        color=alt.Color("mean activation:Q", scale=scale, legend=alt.Legend(format=".3g")),
        tooltip=["file", "rank", alt.Tooltip("mean activation:Q", format=".3f")]).properties(width=320, height=320)


def comparison_tab():
    res = _comparison()
    seeds = sorted({r.get("seeds", 1) for r in res["rows"]})
    st.markdown(f"Measured by `benchmarks/moex/run.py` on held-out games (mean ± std over {'/'.join(map(str, seeds))} "
                "seed(s), same data for every row).")
    rows_df = pd.DataFrame(res["rows"])
    # every column whole: text columns sized to their longest cell (no "reconstru..." cut), the table scrolls sideways
    st.dataframe(rows_df, hide_index=True, width="stretch",
                 column_config={c: st.column_config.Column(c, width="medium") for c in rows_df.columns})
    st.markdown("**Board-state interpretability** (Karvonen et al.): coverage and reconstruction, mean ± std over seeds")
    show_spec(_comparison_chart(res["rows"]), width="stretch")
    st.markdown("**Targets (the paper's direction)**")
    st.dataframe(pd.DataFrame(res["targets"]), hide_index=True, width="stretch")
    st.markdown("**Speed ratios**")
    st.dataframe(pd.DataFrame(res["speed"]), hide_index=True, width="stretch")
    st.caption(res["scale"])


def routing_tab(path: str, mlp, layer: int, n_games: int):
    if not mlp.is_moe:
        st.info(f"{mlp.arch} is a dense MLP: there is no router. Pick a Switch or MoE-X model.")
        return
    c1, c2 = st.columns(2)
    with c1:
        st.markdown(f"**Expert load** (top-{mlp.top_k} of {mlp.n_experts}; share of every character of the games)")
        show_spec(_routing_charts(path, layer, n_games, "load"), width="stretch")
    with c2:
        st.markdown(f"**Units active per token** (of {mlp.top_k} x {mlp.d_mlp} computed)")
        show_spec(_routing_charts(path, layer, n_games, "active"), width="stretch")
    st.markdown("**Active units per expert when chosen** (measured vs the sparsity router's estimate)")
    show_spec(_routing_charts(path, layer, n_games, "per expert"), width="stretch")


def units_tab(path: str, mlp, layer: int, n_games: int):
    from interp.data.chess import PIECE_CLASSES
    from interp.moex.browse import unit_heatmap

    c1, c2, c3, c4, c5 = st.columns(5)
    min_firings = int(c4.number_input("Min. firings for F1", 1, 1000, 10, key="moex_min_firings",
                                      help="units that fire at fewer '.' positions get no F1 (a unit that fired once would rank first)"))
    min_cell = int(c5.number_input("Min. cell occurrences", 1, 1000, 10, key="moex_min_cell",
                                   help="a square:piece cell that holds at fewer '.' positions is never a unit's best cell "
                                        "(F1 = 1.000 on a cell seen once or twice is luck)"))
    table = _units(path, layer, n_games, min_firings, min_cell)
    n_units = table.acts.shape[1]
    width = mlp.d_mlp if mlp.is_moe else n_units
    n_exp = mlp.n_experts if mlp.is_moe else 1
    expert = int(c1.number_input("Expert", 0, n_exp - 1, 0, disabled=n_exp == 1, key="moex_expert"))
    sl = slice(expert * width, (expert + 1) * width)
    units = pd.DataFrame({"unit": range(sl.start, sl.stop),
                          "rate at '.'": table.firing_rate[sl], "rate at every char": table.firing_rate_all[sl],
                          "firings at '.'": table.n_firings[sl], "best cell": table.best_property[sl],
                          "cell occurrences": table.best_cell_count[sl], "F1": table.best_f1[sl], "t": table.best_threshold[sl]})
    units = units.sort_values(["F1", "rate at every char"], ascending=False, na_position="last")
    default_unit = int(units["unit"].iloc[0])
    unit = int(c2.number_input("Unit", 0, n_units - 1, default_unit, key=f"moex_unit_{path}_{layer}_{expert}"))
    piece = c3.selectbox("Piece on the square", ["any", *PIECE_CLASSES[1:]], key="moex_piece")
    st.caption(f"Where rates are measured: 'rate at .' and F1 over the {table.n_positions:,} '.' characters just before a "
               f"white move (where the board is known and scored, Karvonen et al.); 'rate at every char' over all "
               f"{table.n_chars:,} characters of the {n_games} held-out games, the positions routing statistics count. "
               f"A unit can be silent at '.' and busy elsewhere (e.g. on move text). F1 is blank for units with fewer "
               f"than {min_firings} firings at '.'; a best cell must occur at >= {min_cell} of the {table.n_positions:,} "
               "positions ('cell occurrences').")
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Units of expert {expert}** (best F1 of 'fires above t x max' for any square:piece cell)")
        st.dataframe(units, hide_index=True, width="stretch", height=320,
                     column_config={**{c: st.column_config.NumberColumn(format="%.3f")
                                       for c in ("rate at '.'", "rate at every char", "F1")},
                                    "t": st.column_config.NumberColumn("t (× max act.)", format="%.2f")})
    with right:
        heat = unit_heatmap(table, unit, None if piece == "any" else piece)
        files = "abcdefgh"
        df = pd.DataFrame([{"file": files[f], "rank": str(r + 1), "mean activation": heat[r, f]}
                           for r in range(8) for f in range(8)])
        st.markdown(f"**Unit {unit}: mean activation at '.' by square** (where the square holds {piece})")
        vals = df["mean activation"].dropna()
        if vals.empty or float(vals.abs().max()) == 0.0:
            st.info(f"Unit {unit} never fires at the '.' positions of these games"
                    + (f" (it fires at {table.firing_rate_all[unit]:.1%} of all characters)." if table.firing_rate_all[unit] > 0 else "."))
        else:
            show_spec(_heatmap_chart(path, layer, n_games, min_firings, unit, piece, df))
    ctx = _top_contexts(path, layer, n_games, unit, table.hidden)
    st.markdown(f"**Top contexts of unit {unit}** over every character (the character it fires on is in brackets)")
    st.dataframe(pd.DataFrame([{"activation": c["activation"], "text": f"…{c['context']}[{c['char']}]{c['next']}"} for c in ctx]),
                 hide_index=True, width="stretch")


TRAIN_ARCHS = ["moex", "switch", "dense-relu", "dense-gelu"]


def _open_model(model_dir: str) -> None:
    """Show a trained model in the views (a button callback: runs before the directory box is drawn)."""
    st.session_state["moex_dir"] = model_dir


def train_form() -> None:
    """Train a small chess model as a background job (`interp.jobs` "moex-train", i.e. the library call
    `interp moex train` makes) and open finished ones in the views below."""
    from app.jobs_panel import start_job, take_opened
    from app.state import Selection, selection
    from interp import jobs
    from interp.errors import InterpError
    from interp.moex.train import check_train_output

    opened = take_opened("moex-train")  # "Open result" in the jobs panel
    if opened is not None:
        try:
            _open_model(opened.result()["model_dir"])
        except InterpError as e:
            show_error(e)
    d = jobs.MOEX_JOB_DEFAULTS
    with st.expander("Train a model (background job)", expanded=False):
        st.caption(f"A small model ({d['layers']} layers, d_model {d['d_model']}, {d['games']} training games) on "
                   "weighted-random games (`--engine random`: no Stockfish needed; generated once into the game store), "
                   "about a minute on one CPU core. It is far from the shipped models; use `interp moex train` for those.")
        c1, c2, c3, c4 = st.columns([2, 1, 1, 3])
        arch = c1.selectbox("Architecture", TRAIN_ARCHS, key="moex_train_arch")
        steps = int(c2.number_input("Steps", 1, 100_000, d["steps"], step=50, key="moex_train_steps"))
        seed = int(c3.number_input("Seed", 0, 2**31 - 1, d["seed"], key="moex_train_seed"))
        out = c4.text_input("New model directory (optional)", key="moex_train_out",
                            help="empty: a new directory inside the job's own folder; a path must not exist yet")
        if st.button("Train (background job)", key="moex_train_go"):
            try:
                params = {"arch": arch, "steps": steps, "seed": seed, "device": selection().device}
                if out.strip():  # absolute: the job's process must not depend on the server's working directory
                    params["out"] = str(Path(out.strip()).expanduser().resolve())
                cfg = jobs.moex_train_config(params)  # one line if bad, before the job starts
                if out.strip():  # never over an existing directory (interp/io.py's output policy)
                    check_train_output(Path(params["out"]), cfg, resume=False, overwrite=False)
                header = Selection(f"chess {arch} (new)", None, params["device"]).header(
                    "MoE-X training", {"steps": steps, "games": f"{cfg.n_games} {cfg.engine}"}, seed=seed, sae=False)
                start_job("moex-train", params, title=f"Train chess {arch}", header=header, key="moex_train_job")
            except InterpError as e:
                show_error(e)
        done = [j for j in jobs.history(kind="moex-train", limit=20) if j.state == "done"]
        if done:
            st.markdown("**Trained models** (finished jobs)")
            rows = []
            for j in done:
                try:
                    r = j.result()
                except (InterpError, OSError, ValueError):
                    continue
                rows.append({"job": j.title, "finished": time.strftime("%Y-%m-%d %H:%M", time.localtime(j.finished or j.created)),
                             "validation loss (nats/char)": r.get("val_loss"), "legal-move rate": r.get("legal_move_rate"),
                             "steps": r.get("steps"), "seed": r.get("seed"), "model directory": r.get("model_dir")})
            if rows:
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                             column_config={c: st.column_config.NumberColumn(format="%.3f")
                                            for c in ("validation loss (nats/char)", "legal-move rate")})
                pick = st.selectbox("Open in the views below", [r["model directory"] for r in rows], key="moex_train_pick")
                st.button("Open", key="moex_train_open", on_click=_open_model, args=(pick,))


try:
    from interp.moex.model import shipped_models

    models = shipped_models()
    if not models:
        st.warning("No shipped chess models found (the package is incomplete); train one with `interp moex train` "
                   "and give its directory.")
        st.stop()
    train_form()
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
    result_header(f"MoE-X · chess model {name if not other.strip() else path} · layer {layer} · {n_games} held-out games · "
                  f"seed {cfg.get('seed', 'n/a')}")
    # a radio, not st.tabs: st.tabs runs every tab's code on every rerun; this computes only the open view
    view = st.radio("View", ["Comparison", "Routing", "Units & board"], horizontal=True, key="moex_view",
                    label_visibility="collapsed")
    if view == "Comparison":
        comparison_tab()
    elif view == "Routing":
        routing_tab(path, mlp, layer, n_games)
    else:
        units_tab(path, mlp, layer, n_games)
except Exception as e:  # noqa: BLE001 - shown as one line, never a stack trace
    show_error(e)
