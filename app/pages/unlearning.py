"""Unlearning: pick concepts, see the SAE features chosen for them and what the model forgets.

Everything is computed by `interp.unlearn.run_unlearning` with the CLI's defaults (features and
strength chosen on a validation split, numbers from the held-out test split), as a background job
(`interp.jobs`, kind "unlearning"); this page only collects settings and draws the job's report (numbers, the Pareto plot
against the baselines, before/after completions, the chosen features linked to the Features page).
"""

from dataclasses import asdict
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.common import cached_chart, default_sae, saes_for_model, selection, set_sae, show_error, show_spec
from app.jobs_panel import start_job, take_opened
from app.style import result_header
from interp import jobs
from interp.data.corpus import CATEGORIES
from interp.errors import InterpError
from interp.unlearn import ALL_METHODS, UnlearnConfig, UnlearnSpec
from interp.unlearn.concepts import SPLIT_BY
from interp.unlearn.select import POSITIONS, SCORES

STRENGTH = {"clamp": "Clamp multiplier", "zero": "(unused)", "scale": "Scale factor", "direction": "Direction strength alpha",
            "finetune": "Fine-tuning steps"}
BASELINES = ("direction", "finetune")


def _open_feature(sae_dir: str, feature: int) -> None:
    set_sae(sae_dir)
    st.session_state["feature_id"] = int(feature)
    st.switch_page("pages/features.py")


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _pts(a: float, b: float) -> str | None:
    return None if a != a or b != b else f"{100 * (a - b):+.1f} pts"


def _layer(hook: str | None) -> int:
    import re

    m = re.match(r"^blocks\.(\d+)\.", hook or "")
    return int(m.group(1)) if m else -1


st.title("Unlearning")
sel = selection()
model_name = sel.model
try:
    saes = saes_for_model(model_name)
except InterpError as e:
    show_error(e)
    saes = []
sae_paths = [str(s.path) for s in saes]
if sel.sae_dir and sel.sae_dir not in sae_paths:
    sae_paths.append(sel.sae_dir)

DEFAULT = UnlearnConfig()  # the CLI's defaults: every widget below starts from them (tests/test_unlearn_app.py)
controls, results = st.columns([1, 2.4], gap="medium")
with controls:
    st.caption("Forget a concept by clamping its SAE features at inference (the weights never change). Features are chosen "
               "on a selection split, the number of features and the strength on a validation split; every number shown "
               "comes from held-out test prompts. Runs as a background job.")
    concepts = st.multiselect("Concepts to forget", list(CATEGORIES), default=[CATEGORIES[0]], key="unl_concepts")
    # the SAEs follow the sidebar's selection: a new SAE there replaces the choice here (edits here stay otherwise)
    if st.session_state.get("unl_saes_for") != sel.sae_dir:
        st.session_state["unl_saes"] = [sel.sae_dir] if sel.sae_dir in sae_paths else sae_paths[:1]
        st.session_state["unl_saes_for"] = sel.sae_dir
    sae_dirs = st.multiselect("SAEs (their hooks)", sae_paths, format_func=lambda p: Path(p).name, key="unl_saes")
    # an SAE early in the model rarely holds the concept's features: say so, and offer the one that can
    best = default_sae(saes)
    best_info = next((s for s in saes if str(s.path) == best), None)
    early = [p for p in sae_dirs if best_info is not None and _layer(next((s.hook_name for s in saes if str(s.path) == p), None))
             < _layer(best_info.hook_name)]
    if early:
        st.warning(f"{', '.join(Path(p).name for p in early)} read an earlier layer than {Path(best).name} "
                   f"({best_info.hook_name}). Concept facts are recalled late in the model, so features there rarely carry "
                   "them and the default run may forget little or nothing; the README's command uses the last layer's "
                   "residual SAE.", icon=":material/info:")
        st.button(f"Use {Path(best).name} (for every page)", key="unl_use_best", on_click=set_sae, args=(best,))
    method = st.selectbox("Method", ALL_METHODS, index=ALL_METHODS.index(DEFAULT.method), key="unl_method")
    auto = st.toggle("Choose features and strength on the validation split", value=True, key="unl_auto",
                     help=f"The default: an early-stopping search that forgets the most while retain accuracy stays >= "
                          f"{100 * DEFAULT.val_retain_bar:.0f}% of the unmodified model and corpus loss rises <= "
                          f"{100 * DEFAULT.val_loss_bar:.0f}% on validation prompts.")
    c5, c6 = st.columns(2)
    n_features = c5.number_input("Features per SAE", min_value=1, max_value=512, value=10, step=1, key="unl_n",
                                 disabled=auto or method not in ("clamp", "zero", "scale"))
    value = c6.number_input(STRENGTH[method], value={"clamp": 2.0, "zero": 0.0, "scale": -1.0, "direction": 2.0, "finetune": 20.0}[method],
                            key=f"unl_value_{method}", disabled=auto or method == "zero")
    compare = st.toggle("Compare with direction and fine-tuning", value=False, key="unl_compare",
                        help="Also sweep the mean-difference direction baseline and gradient-ascent fine-tuning on the same "
                             "splits (adds their points to the Pareto plot; one job, one overall progress).")
    with st.expander("Feature selection options"):
        threshold = st.number_input("Max retain firing rate", min_value=0.0, max_value=1.0, value=DEFAULT.retain_threshold,
                                    step=0.01, format="%.3f", key="unl_thr",
                                    help="features active on more retain tokens than this are never chosen")
        score = st.selectbox("Ranking score", SCORES, index=SCORES.index(DEFAULT.score), key="unl_score",
                             help="contrast: fires on the forget prompts' answer position more than on other concepts' answer "
                                  "positions and writes along that difference (see interp.unlearn.select)")
        positions = st.selectbox("Forget positions scored", POSITIONS, index=POSITIONS.index(DEFAULT.positions), key="unl_pos",
                                 help="last: only the token that predicts the answer; all: every token of the forget prompts")
        condition = st.toggle("Conditional clamping", value=DEFAULT.condition, key="unl_cond",
                              help="edit only where the concept's detector features fire")
        split_by = st.selectbox("Split prompts by", SPLIT_BY, index=SPLIT_BY.index(DEFAULT.split_by), key="unl_split",
                                help="fact: test prompts ask only about facts never seen in selection or validation")

    if st.button("Run unlearning (background job)", type="primary", key="unl_run"):
        try:
            if not concepts:
                raise InterpError("pick at least one concept")
            sae_method = method in ("clamp", "zero", "scale")
            if sae_method and not sae_dirs:
                raise InterpError("pick at least one SAE (the sidebar's, or another of this model)")
            common = dict(retain_threshold=float(threshold), score=score, positions=positions, split_by=split_by)
            cfg = UnlearnConfig(method=method, n_features=None if auto or not sae_method else int(n_features),
                                value=None if auto else float(value), condition=bool(condition) and sae_method, **common)
            hooks = ", ".join(f"{Path(p).name} ({next((s.hook_name for s in saes if str(s.path) == p), '?')})" for p in sae_dirs)
            header = (f"Unlearning · model {model_name} · SAEs {hooks} · device {sel.device} · concepts {', '.join(concepts)} · "
                      f"method {method} · features {cfg.n_features or 'chosen'} · strength {cfg.value if cfg.value is not None else 'chosen'}"
                      f" · split by {split_by} · seed {cfg.split_seed}")
            params = {"model": model_name, "device": sel.device, "concepts": list(concepts), "sae_dirs": list(sae_dirs),
                      "config": asdict(cfg), "baselines": list(BASELINES) if compare else []}
            start_job("unlearning", params, title=f"Unlearn {', '.join(concepts)} ({method}"
                      + (", + baselines" if compare else "") + ")", header=header, key="unl_job")
        except InterpError as e:
            show_error(e)

# the result: a job opened from the history, else this session's latest unlearning job
opened = take_opened("unlearning")
if opened is not None:
    st.session_state["unl_job"] = opened.id
job = None
if st.session_state.get("unl_job"):
    try:
        job = jobs.get(st.session_state["unl_job"])
    except InterpError:
        job = None
with results:
    if job is None:
        st.info("Pick concept(s), SAEs and a method, then press **Run unlearning**. The defaults choose the number of "
                "features and the strength for you. The run is a background job: this page and the others stay usable, "
                "and its progress is in the sidebar.")
        st.stop()
    result_header(job.header)
    if job.state == "running":
        st.info(f"Running as a background job ({100 * job.progress.fraction:.0f}%): see the sidebar for progress, time "
                "left and cancel. The result appears here when it ends.")
        st.stop()
    if job.state != "done":
        st.error(f"The job was {job.state}: {job.reason}", icon=":material/error:")
        st.stop()
    out = job.result()
    rep = out["report"]
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
    if base["forget_acc"] == base["forget_acc"] and test["forget_acc"] >= base["forget_acc"]:
        st.warning("Nothing was forgotten: forget accuracy did not drop on the test prompts. With these SAEs no setting "
                   "forgot more on validation while keeping retain accuracy and corpus loss within the bar (see *All "
                   "settings tried*); an SAE later in the model usually carries the concept.")
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
    baselines = out.get("baselines") or []
    t_pareto, t_samples, t_feats, t_all = st.tabs(["Pareto plot", "Completions", "Selected features", "All settings tried"])

@cached_chart
def _pareto_spec(job_id: str, _rep: dict, _baselines: list):
    """The Pareto chart of one job's report (cached per job: a finished job never changes)."""
    rows = [dict(r, method=_rep["method"]) for r in _rep["rows"]]
    for b in _baselines:
        rows += [dict(r, method=b["method"]) for r in b["rows"]]
    df = pd.DataFrame(rows)
    df["setting"] = [f"n={n} v={v:g}" if n else f"v={v:g}" for n, v in zip(df["n_features"], df["value"])]
    lo = max(0.0, min(float(df["retain_acc"].min()), 0.95 * _rep["val_base"]["retain_acc"]) - 0.02)
    x = alt.X("forget_acc:Q", title="forget accuracy, validation (fraction; lower = more forgotten)", scale=alt.Scale(domain=[0, 1]))
    y = alt.Y("retain_acc:Q", title="retain accuracy, in-domain, validation (fraction)", scale=alt.Scale(domain=[lo, 1.0]))
    pts = alt.Chart(df).mark_point(size=90, filled=True).encode(
        x=x, y=y, color=alt.Color("method:N", title="method"),
        tooltip=["method", "setting", alt.Tooltip("forget_acc:Q", format=".3f"), alt.Tooltip("retain_acc:Q", format=".3f"),
                 alt.Tooltip("loss_change:Q", format="+.3f"), alt.Tooltip("kl:Q", format=".4f")])
    front = alt.Chart(df[df["pareto"]]).mark_line(strokeDash=[4, 3]).encode(x=x, y=y, color="method:N", order="forget_acc:Q")
    rule = alt.Chart(pd.DataFrame({"y": [0.95 * _rep["val_base"]["retain_acc"]]})).mark_rule(color="#D55E00", strokeDash=[2, 2]).encode(y="y:Q")
    return (pts + front + rule).properties(height=360)


with results:
    with t_pareto:
        st.caption("Each point is a setting tried, measured on the validation split; lower forget accuracy and higher retain "
                   "accuracy is better. Dashed lines join each method's Pareto front; the orange line is 95% of the "
                   "unmodified model's retain accuracy."
                   + ("" if baselines else " Turn on *Compare with direction and fine-tuning* to add the baselines."))
        show_spec(_pareto_spec(job.id, rep, baselines), width="stretch")
    with t_samples:
        st.dataframe(pd.DataFrame(rep["samples"]), hide_index=True, width="stretch",
                     column_config={"prompt": st.column_config.TextColumn("prompt", width="large"),
                                    "before": st.column_config.TextColumn("completion before", width="medium"),
                                    "after": st.column_config.TextColumn("completion after", width="medium")})
        st.caption(f"Greedy completions on test prompts. Prompts: selection {sz.get('selection', '?')}, validation "
                   f"{sz.get('validation', '?')}, test {sz.get('test', '?')}, paraphrase {sz.get('paraphrase', '?')}, adversarial "
                   f"{sz.get('adversarial', '?')}. Unmodified model on test: forget {_pct(base['forget_acc'])}, retain "
                   f"{_pct(base['retain_acc'])}, corpus loss {base['retain_loss']:.3f} nats/token.")
    with t_feats:
        if rep["features"]:
            n_used = best["n_features"]
            feats = pd.DataFrame(rep["features"])
            feats = feats.groupby(["sae_dir"], sort=False).head(n_used).reset_index(drop=True)
            st.caption(f"The top {n_used} features per SAE by score; typical activation = mean on forget tokens where active.")
            st.dataframe(feats.drop(columns=["sae_dir"]), hide_index=True, width="stretch")
            f1, f2 = st.columns([3, 1])
            choice = f1.selectbox("Feature", list(range(len(feats))), key="unl_pick",
                                  format_func=lambda i: f"{feats.iloc[i]['hook']} #{feats.iloc[i]['feature']} · {feats.iloc[i]['label']}")
            if f2.button("Open in Features page", key="unl_open"):
                row = feats.iloc[int(choice)]
                _open_feature(str(row["sae_dir"]), int(row["feature"]))
        else:
            st.caption("This method uses no SAE features.")
    with t_all:
        st.dataframe(pd.DataFrame(rep["rows"]), hide_index=True, width="stretch")
        if rep["spec"]:
            s1, s2 = st.columns([3, 1])
            path = s1.text_input("Save this setting as a spec (JSON)", value=f"runs/unlearn/{rep['concept']}.json", key="unl_spec_path")
            if s2.button("Save spec", key="unl_save"):
                try:
                    st.success(f"Saved {UnlearnSpec(**rep['spec']).save(path)}; re-apply with `interp.unlearn.apply_spec(model, path)`.")
                except (InterpError, OSError) as e:
                    show_error(e)
