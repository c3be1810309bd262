"""Unlearning: pick concepts, see the SAE features chosen for them and what the model forgets.

Everything is computed by `interp.unlearn.run_unlearning`; this page only collects settings and
draws the report (features table linked to the Features page, before/after completions, the
forget/retain numbers and the Pareto plot).
"""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.common import current_model_name, current_sae_dir, load_model_cached, saes_for_model, show_error
from interp.data.corpus import CATEGORIES
from interp.errors import InterpError
from interp.unlearn import ALL_METHODS, UnlearnConfig, UnlearnSpec, builtin_concept, run_unlearning
from interp.unlearn.pipeline import DEFAULT_VALUE

STRENGTH = {"clamp": "Clamp multiplier", "zero": "(unused)", "scale": "Scale factor", "direction": "Direction strength alpha",
            "finetune": "Fine-tuning steps"}


@st.cache_data(show_spinner="Unlearning...", max_entries=16)
def _run(model_name: str, concepts: tuple[str, ...], sae_dirs: tuple[str, ...], method: str, n_features: int,
         value: float, sweep: bool, retain_threshold: float) -> dict:
    model = load_model_cached(model_name)
    cfg = UnlearnConfig(method=method, n_features=n_features, value=value, sweep=sweep, retain_threshold=retain_threshold)
    return run_unlearning(model, [builtin_concept(c) for c in concepts], list(sae_dirs), cfg, model_name=model_name).to_dict()


def _open_feature(sae_dir: str, feature: int) -> None:
    st.session_state["sae_dir"] = sae_dir
    st.session_state["feature_id"] = int(feature)
    st.switch_page("pages/features.py")


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


st.title("Unlearning")
st.caption("Forget a concept by clamping its SAE features at inference (the weights never change), "
           "and compare with projecting out a direction and with fine-tuning.")

model_name = current_model_name()
try:
    sae_paths = [str(s.path) for s in saes_for_model(model_name)]
except InterpError as e:
    show_error(e)
    sae_paths = []

c1, c2, c3 = st.columns([2, 2, 1])
concepts = c1.multiselect("Concepts to forget", list(CATEGORIES), default=[CATEGORIES[0]], key="unl_concepts")
cur = current_sae_dir()
sae_dirs = c2.multiselect("SAEs (their hooks)", sae_paths, default=[cur] if cur in sae_paths else sae_paths[:1],
                          format_func=lambda p: Path(p).name, key="unl_saes")
method = c3.selectbox("Method", ALL_METHODS, key="unl_method")
c4, c5, c6, c7 = st.columns([1, 1, 1, 1])
n_features = c4.number_input("Features per SAE", min_value=1, max_value=512, value=20, step=1, key="unl_n")
value = c5.number_input(STRENGTH[method], value=float(DEFAULT_VALUE[method]), key=f"unl_value_{method}",
                        disabled=method == "zero")
threshold = c6.number_input("Max retain firing rate", min_value=0.0, max_value=1.0, value=0.2, step=0.01, format="%.3f",
                            key="unl_thr", help="features active on more retain tokens than this are never chosen")
sweep = c7.toggle("Sweep features x strength", key="unl_sweep")

if st.button("Run unlearning", type="primary", key="unl_run"):
    st.session_state.pop("unl_report", None)
    try:
        if not concepts:
            raise InterpError("pick at least one concept")
        st.session_state["unl_report"] = _run(model_name, tuple(concepts), tuple(sae_dirs), method, int(n_features), float(value), sweep,
                                            float(threshold))
    except InterpError as e:
        show_error(e)

rep = st.session_state.get("unl_report")
if rep is None:
    st.info("Pick concept(s), SAEs and a method, then press **Run unlearning**.")
    st.stop()

base, best = rep["base"], rep["best"]
st.subheader(f"{rep['concept']} · {rep['method']} · best setting: {best['n_features']} features, strength {best['value']:g}")
if not rep["best_meets_bar"]:
    st.warning("No setting kept retain accuracy >= 95% of the unmodified model with retain loss up <= 5%; the mildest is shown.")
m = st.columns(6)
m[0].metric("Forget accuracy", _pct(best["forget_acc"]), f"{100 * (best['forget_acc'] - base['forget_acc']):+.1f} pts", delta_color="inverse")
m[1].metric("Paraphrase accuracy", _pct(best["paraphrase_acc"]),
            None if base["paraphrase_acc"] != base["paraphrase_acc"] else f"{100 * (best['paraphrase_acc'] - base['paraphrase_acc']):+.1f} pts",
            delta_color="inverse")
m[2].metric("Retain accuracy", _pct(best["retain_acc"]),
            None if base["retain_acc"] != base["retain_acc"] else f"{100 * (best['retain_acc'] - base['retain_acc']):+.1f} pts")
m[3].metric("Retain loss change", f"{100 * best['loss_change']:+.2f}%", delta_color="off")
m[4].metric("KL vs unmodified", f"{best['kl']:.4f}")
m[5].metric("Unlearning score", f"{rep['score']:.3f}", help="1 - lowest forget accuracy (relative) among settings keeping retain accuracy >= 99% of baseline (SAEBench)")

left, right = st.columns([3, 2])
with left:
    st.markdown("**Pareto plot** (each point a setting; lower forget and higher retain is better)")
    df = pd.DataFrame(rep["rows"])
    pts = alt.Chart(df).mark_circle(size=80).encode(
        x=alt.X("forget_acc:Q", title="forget accuracy", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("retain_acc:Q", title="retain accuracy", scale=alt.Scale(zero=False)),
        color=alt.Color("n_features:N", title="features"),
        shape=alt.Shape("pareto:N", title="Pareto front"),
        tooltip=["method", "n_features", "value", "forget_acc", "retain_acc", "paraphrase_acc", "loss_change", "kl"],
    )
    front = alt.Chart(pd.DataFrame(rep["pareto"])).mark_line(color="gray", strokeDash=[4, 3]).encode(x="forget_acc:Q", y="retain_acc:Q")
    rule = alt.Chart(pd.DataFrame({"y": [0.95 * base["retain_acc"]]})).mark_rule(color="red", strokeDash=[2, 2]).encode(y="y:Q")
    st.altair_chart(pts + front + rule, use_container_width=True)
    st.caption("Red line: retain accuracy 95% of the unmodified model's.")
with right:
    st.markdown("**Greedy completions, before and after**")
    st.dataframe(pd.DataFrame(rep["samples"]), hide_index=True, use_container_width=True)
    st.caption(f"Unmodified model: forget {_pct(base['forget_acc'])}, paraphrase {_pct(base['paraphrase_acc'])}, "
               f"retain {_pct(base['retain_acc'])}, retain loss {base['retain_loss']:.3f}.")

if rep["features"]:
    st.markdown("**Selected features** (ranked by score; typical activation = mean on forget tokens where active)")
    feats = pd.DataFrame(rep["features"])
    st.dataframe(feats.drop(columns=["sae_dir"]), hide_index=True, use_container_width=True)
    f1, f2 = st.columns([3, 1])
    choice = f1.selectbox("Feature", list(range(len(feats))), key="unl_pick",
                          format_func=lambda i: f"{feats.iloc[i]['hook']} #{feats.iloc[i]['feature']} · {feats.iloc[i]['label']}")
    if f2.button("Open in Features page", key="unl_open"):
        row = feats.iloc[int(choice)]
        _open_feature(str(row["sae_dir"]), int(row["feature"]))

with st.expander("All settings"):
    st.dataframe(pd.DataFrame(rep["rows"]), hide_index=True, use_container_width=True)

if rep["spec"]:
    s1, s2 = st.columns([3, 1])
    path = s1.text_input("Save this setting as a spec (JSON)", value=f"runs/unlearn/{rep['concept']}.json", key="unl_spec_path")
    if s2.button("Save spec", key="unl_save"):
        try:
            st.success(f"Saved {UnlearnSpec(**rep['spec']).save(path)}; re-apply with `interp.unlearn.apply_spec(model, path)`.")
        except (InterpError, OSError) as e:
            show_error(e)
