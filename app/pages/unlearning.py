"""Unlearning: pick concepts, see the SAE features chosen for them and what the model forgets.

Everything is computed by `interp.unlearn.run_unlearning` with the CLI's defaults (features and
strength chosen on a validation split, numbers from the held-out test split); this page only
collects settings, shows the library's progress, and draws the report (numbers, the Pareto plot
against the baselines, before/after completions, the chosen features linked to the Features page).
"""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.common import current_model_name, current_sae_dir, load_model_cached, progress_box, saes_for_model, show_error
from interp.data.corpus import CATEGORIES
from interp.errors import InterpError
from interp.unlearn import ALL_METHODS, UnlearnConfig, UnlearnSpec, builtin_concept, run_unlearning
from interp.unlearn.concepts import SPLIT_BY
from interp.unlearn.select import POSITIONS, SCORES

STRENGTH = {"clamp": "Clamp multiplier", "zero": "(unused)", "scale": "Scale factor", "direction": "Direction strength alpha",
            "finetune": "Fine-tuning steps"}
BASELINES = ("direction", "finetune")


def _run(model_name: str, concepts: tuple[str, ...], sae_dirs: tuple[str, ...], cfg: UnlearnConfig) -> dict:
    """One report, cached in the session per setting; the library's progress drives a bar."""
    cache = st.session_state.setdefault("unl_cache", {})
    key = (model_name, concepts, sae_dirs, repr(cfg))
    if key not in cache:
        model = load_model_cached(model_name)
        with progress_box(f"Unlearning ({cfg.method})") as cb:
            cache[key] = run_unlearning(model, [builtin_concept(c) for c in concepts], list(sae_dirs), cfg, model_name=model_name,
                                        progress=cb).to_dict()
    return cache[key]


def _open_feature(sae_dir: str, feature: int) -> None:
    st.session_state["sae_dir"] = sae_dir
    st.session_state["feature_id"] = int(feature)
    st.switch_page("pages/features.py")


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _pts(a: float, b: float) -> str | None:
    return None if a != a or b != b else f"{100 * (a - b):+.1f} pts"


st.title("Unlearning")
st.caption("Forget a concept by clamping its SAE features at inference (the weights never change). Features are chosen on a "
           "selection split, the number of features and the strength on a validation split, and every number below comes "
           "from held-out test prompts.")

model_name = current_model_name()
try:
    sae_paths = [str(s.path) for s in saes_for_model(model_name)]
except InterpError as e:
    show_error(e)
    sae_paths = []

DEFAULT = UnlearnConfig()  # the CLI's defaults: every widget below starts from them (tests/test_unlearn_app.py)
c1, c2, c3 = st.columns([2, 2, 1])
concepts = c1.multiselect("Concepts to forget", list(CATEGORIES), default=[CATEGORIES[0]], key="unl_concepts")
cur = current_sae_dir()
sae_dirs = c2.multiselect("SAEs (their hooks)", sae_paths, default=[cur] if cur in sae_paths else sae_paths[:1],
                          format_func=lambda p: Path(p).name, key="unl_saes")
method = c3.selectbox("Method", ALL_METHODS, index=ALL_METHODS.index(DEFAULT.method), key="unl_method")
c4, c5, c6, c7 = st.columns([1, 1, 1, 1])
auto = c4.toggle("Choose features and strength on the validation split", value=True, key="unl_auto",
                 help=f"The default: an early-stopping search that forgets the most while retain accuracy stays >= "
                      f"{100 * DEFAULT.val_retain_bar:.0f}% of the unmodified model and corpus loss rises <= "
                      f"{100 * DEFAULT.val_loss_bar:.0f}% on validation prompts.")
n_features = c5.number_input("Features per SAE", min_value=1, max_value=512, value=10, step=1, key="unl_n",
                             disabled=auto or method not in ("clamp", "zero", "scale"))
value = c6.number_input(STRENGTH[method], value={"clamp": 2.0, "zero": 0.0, "scale": -1.0, "direction": 2.0, "finetune": 20.0}[method],
                        key=f"unl_value_{method}", disabled=auto or method == "zero")
compare = c7.toggle("Compare with direction and fine-tuning", value=False, key="unl_compare",
                    help="Also sweep the mean-difference direction baseline and gradient-ascent fine-tuning on the same splits "
                         "(adds their points to the Pareto plot).")
with st.expander("Feature selection options"):
    o1, o2, o3, o4, o5 = st.columns(5)
    threshold = o1.number_input("Max retain firing rate", min_value=0.0, max_value=1.0, value=DEFAULT.retain_threshold, step=0.01,
                                format="%.3f", key="unl_thr", help="features active on more retain tokens than this are never chosen")
    score = o2.selectbox("Ranking score", SCORES, index=SCORES.index(DEFAULT.score), key="unl_score",
                         help="contrast: fires on the forget prompts' answer position more than on other concepts' answer "
                              "positions and writes along that difference (see interp.unlearn.select)")
    positions = o3.selectbox("Forget positions scored", POSITIONS, index=POSITIONS.index(DEFAULT.positions), key="unl_pos",
                             help="last: only the token that predicts the answer; all: every token of the forget prompts")
    condition = o4.toggle("Conditional clamping", value=DEFAULT.condition, key="unl_cond",
                          help="edit only where the concept's detector features fire")
    split_by = o5.selectbox("Split prompts by", SPLIT_BY, index=SPLIT_BY.index(DEFAULT.split_by), key="unl_split",
                            help="fact: test prompts ask only about facts never seen in selection or validation")

if st.button("Run unlearning", type="primary", key="unl_run"):
    st.session_state.pop("unl_report", None)
    st.session_state.pop("unl_baselines", None)
    try:
        if not concepts:
            raise InterpError("pick at least one concept")
        sae_method = method in ("clamp", "zero", "scale")
        common = dict(retain_threshold=float(threshold), score=score, positions=positions, split_by=split_by)
        cfg = UnlearnConfig(method=method, n_features=None if auto or not sae_method else int(n_features),
                            value=None if auto else float(value), condition=bool(condition) and sae_method, **common)
        st.session_state["unl_report"] = _run(model_name, tuple(concepts), tuple(sae_dirs), cfg)
        if compare:
            st.session_state["unl_baselines"] = [
                _run(model_name, tuple(concepts), tuple(sae_dirs), UnlearnConfig(method=b, sweep=True, test_every_setting=False, **common))
                for b in BASELINES if b != method]
    except InterpError as e:
        show_error(e)

rep = st.session_state.get("unl_report")
if rep is None:
    st.info("Pick concept(s), SAEs and a method, then press **Run unlearning**. The defaults choose the number of features "
            "and the strength for you.")
    st.stop()

base, test, best = rep["base"], rep["test"], rep["best"]
how = {"auto": "chosen on the validation split", "fixed": "set by hand", "sweep": "best of the sweep on the validation split"}[rep["search"]]
setting = f"{best['n_features']} features per SAE, strength {best['value']:g}" if best["n_features"] else f"strength {best['value']:g}"
st.subheader(f"{rep['concept']} · {rep['method']} · {setting} ({how})")
sz = rep["split_sizes"]
if rep["meets_bar"]:
    st.success("On the held-out test prompts retain accuracy stays >= 95% of the unmodified model and corpus loss rises <= 5%.")
else:
    st.warning("On the held-out test prompts this setting misses the bar (retain accuracy >= 95% of the unmodified model, "
               "corpus loss up <= 5%).")
m = st.columns(7)
m[0].metric("Forget accuracy", _pct(test["forget_acc"]), _pts(test["forget_acc"], base["forget_acc"]), delta_color="inverse",
            help=f"{sz.get('test', '?')} held-out forget prompts")
m[1].metric("Paraphrase accuracy", _pct(test["paraphrase_acc"]), _pts(test["paraphrase_acc"], base["paraphrase_acc"]),
            delta_color="inverse", help="the held-out template")
m[2].metric("Adversarial accuracy", _pct(test["adversarial_acc"]), _pts(test["adversarial_acc"], base["adversarial_acc"]),
            delta_color="inverse", help="new templates, synonyms and distracting context, never used for choosing")
m[3].metric("Retain, in-domain", _pct(test["retain_acc"]), _pts(test["retain_acc"], base["retain_acc"]),
            help="other concepts' test prompts")
m[4].metric("Retain, cross-domain", _pct(test["corpus_acc"]), _pts(test["corpus_acc"], base["corpus_acc"]),
            help="next-token accuracy on held-out corpus text that states none of the forgotten facts")
m[5].metric("Corpus loss change", f"{100 * test['loss_change']:+.2f}%", delta_color="off")
m[6].metric("KL vs unmodified", f"{test['kl']:.4f}")

st.markdown("**Pareto plot**: each point is a setting tried, measured on the validation split; lower forget accuracy and "
            "higher retain accuracy is better. Lines join each method's Pareto front.")
rows = [dict(r, method=rep["method"]) for r in rep["rows"]]
for b in st.session_state.get("unl_baselines") or []:
    rows += [dict(r, method=b["method"]) for r in b["rows"]]
df = pd.DataFrame(rows)
df["setting"] = [f"n={n} v={v:g}" if n else f"v={v:g}" for n, v in zip(df["n_features"], df["value"])]
lo = max(0.0, min(float(df["retain_acc"].min()), 0.95 * rep["val_base"]["retain_acc"]) - 0.02)
x = alt.X("forget_acc:Q", title="forget accuracy (validation; lower = more forgotten)", scale=alt.Scale(domain=[0, 1]))
y = alt.Y("retain_acc:Q", title="retain accuracy, in-domain (validation)", scale=alt.Scale(domain=[lo, 1.0]))
pts = alt.Chart(df).mark_point(size=90, filled=True).encode(
    x=x, y=y, color=alt.Color("method:N", title="method"),
    tooltip=["method", "setting", alt.Tooltip("forget_acc:Q", format=".3f"), alt.Tooltip("retain_acc:Q", format=".3f"),
             alt.Tooltip("loss_change:Q", format="+.3f"), alt.Tooltip("kl:Q", format=".4f")])
front = alt.Chart(df[df["pareto"]]).mark_line(strokeDash=[4, 3]).encode(x=x, y=y, color="method:N", order="forget_acc:Q")
rule = alt.Chart(pd.DataFrame({"y": [0.95 * rep["val_base"]["retain_acc"]]})).mark_rule(color="red", strokeDash=[2, 2]).encode(y="y:Q")
st.altair_chart((pts + front + rule).properties(height=360), use_container_width=True)
st.caption("Red line: 95% of the unmodified model's retain accuracy." +
           ("" if st.session_state.get("unl_baselines") else " Turn on *Compare with direction and fine-tuning* to add the baselines."))

st.markdown("**Greedy completions on test prompts, before and after**")
st.dataframe(pd.DataFrame(rep["samples"]), hide_index=True, use_container_width=True,
             column_config={"prompt": st.column_config.TextColumn("prompt", width="large"),
                            "before": st.column_config.TextColumn("before", width="small"),
                            "after": st.column_config.TextColumn("after", width="small")})
st.caption(f"Prompts: selection {sz.get('selection', '?')}, validation {sz.get('validation', '?')}, test {sz.get('test', '?')}, "
           f"paraphrase {sz.get('paraphrase', '?')}, adversarial {sz.get('adversarial', '?')}. Unmodified model on test: forget "
           f"{_pct(base['forget_acc'])}, retain {_pct(base['retain_acc'])}, corpus loss {base['retain_loss']:.3f}.")

if rep["features"]:
    n_used = best["n_features"]
    feats = pd.DataFrame(rep["features"])
    feats = feats.groupby(["sae_dir"], sort=False).head(n_used).reset_index(drop=True)
    st.markdown(f"**Selected features** (the top {n_used} per SAE by score; typical activation = mean on forget tokens where active)")
    st.dataframe(feats.drop(columns=["sae_dir"]), hide_index=True, use_container_width=True)
    f1, f2 = st.columns([3, 1])
    choice = f1.selectbox("Feature", list(range(len(feats))), key="unl_pick",
                          format_func=lambda i: f"{feats.iloc[i]['hook']} #{feats.iloc[i]['feature']} · {feats.iloc[i]['label']}")
    if f2.button("Open in Features page", key="unl_open"):
        row = feats.iloc[int(choice)]
        _open_feature(str(row["sae_dir"]), int(row["feature"]))

with st.expander("All settings tried (validation split)"):
    st.dataframe(pd.DataFrame(rep["rows"]), hide_index=True, use_container_width=True)

if rep["spec"]:
    s1, s2 = st.columns([3, 1])
    path = s1.text_input("Save this setting as a spec (JSON)", value=f"runs/unlearn/{rep['concept']}.json", key="unl_spec_path")
    if s2.button("Save spec", key="unl_save"):
        try:
            st.success(f"Saved {UnlearnSpec(**rep['spec']).save(path)}; re-apply with `interp.unlearn.apply_spec(model, path)`.")
        except (InterpError, OSError) as e:
            show_error(e)
