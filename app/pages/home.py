"""Home: the models and SAEs found locally, their metrics side by side, and which scores mean nothing."""

import json

import altair as alt
import pandas as pd
import streamlit as st

from app.common import ROOT, cached_chart, current_model_name, list_saes_all, sae_root, show_error, show_spec
from app.style import PALETTE
from interp.errors import InterpError
from interp.features.catalog import sae_overview
from interp.reports import TABLE_CSS, table_html

st.title("interp: a local interpretability workbench")
st.caption("Pick a model, an SAE and a device in the sidebar: every page, export and job follows that choice. Long work "
           "(circuits, unlearning, feature statistics) runs as background jobs, listed in the sidebar.")

st.subheader("Models")
card_path = ROOT / "interp" / "embedded" / "model_card.json"
rows = []
if card_path.exists():
    card = json.loads(card_path.read_text())
    b = card.get("build", {})
    rows.append({"model": "embedded", "layers": b.get("n_layers"), "d_model": b.get("d_model"), "heads": b.get("n_heads"),
                 "IOI acc": card.get("ioi_accuracy"), "greater-than prob diff": card.get("greater_than_prob_diff"),
                 "docstring acc": card.get("docstring_accuracy"), "held-out loss": card.get("heldout_loss")})
if current_model_name() != "embedded":
    rows.append({"model": current_model_name()})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

def _train_form() -> None:
    """Train a new SAE for the selected model as a background job (interp.sae.train.train_saes)."""
    from dataclasses import asdict

    from app.common import selection
    from app.jobs_panel import start_job
    from interp.sae.config import ARCHS, SAETrainConfig

    sel = selection()
    with st.expander("Train a new SAE (background job)"):
        c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 1])
        hook = c1.text_input("Hook", value="blocks.3.hook_resid_post", key="train_hook",
                             help="NAME or NAME:HEAD, e.g. blocks.1.attn.hook_z:3")
        arch = c2.selectbox("Architecture", ARCHS, index=ARCHS.index("topk"), key="train_arch")
        d_sae = c3.number_input("Latents", 16, 65536, 1024, step=256, key="train_dsae")
        k = c4.number_input("k (active latents)", 1, 1024, 32, key="train_k", disabled=arch not in ("topk", "batchtopk", "matryoshka"))
        tokens = c5.number_input("Tokens", 4096, 100_000_000, 200_000, step=50_000, key="train_tokens")
        name = st.text_input("Name (a new directory under the SAE folder)", value=f"{hook.replace('blocks.', 'L').replace('.hook_', '_')}_{arch}_ui",
                             key="train_name")
        if st.button("Train (background job)", key="train_go"):
            try:
                if not name or "/" in name or name.startswith("."):
                    raise InterpError(f"bad SAE name {name!r}: one directory name, no '/'")
                out = sae_root() / str(sel.model).replace("/", "__") / name
                if out.exists():
                    raise InterpError(f"{out} already exists; pick another name")
                cfg = SAETrainConfig(hook=hook, model=sel.model, arch=arch, d_sae=int(d_sae), tokens=int(tokens),
                                     k=int(k) if arch in ("topk", "batchtopk", "matryoshka") else None)
                start_job("sae-training", {"config": asdict(cfg), "out": str(out), "device": sel.device},
                          title=f"Train SAE {name}", header=sel.header("SAE training", {"hook": hook, "arch": arch, "d_sae": int(d_sae),
                                                                                        "tokens": int(tokens)}, seed=cfg.seed, sae=False),
                          key="train_job")
            except InterpError as e:
                show_error(e)


_train_form()
st.subheader("SAEs")
try:
    saes = list_saes_all()
except InterpError as e:
    show_error(e)
    saes = []
if not saes:
    st.info(f"No SAEs found under {sae_root()}. Train one with `interp train-sae` or rebuild the shipped ones.")
    st.stop()

table = sae_overview(saes, sae_root())
cols = [("name", "name", ""), ("hook", "hook", ""), ("arch", "architecture", ""), ("d_sae", "d_sae", "num"), ("L0", "L0", "num"),
        ("explained_variance", "explained variance", "num"), ("kl_div_score", "KL-div score", "num"),
        ("ce_loss_score", "CE-loss score", "num"), ("frac_alive", "alive", "num"), ("stats", "stats", ""),
        ("path", "path", "path")]
warn = {(i, k) for i, r in enumerate(table) for k in ("ce_loss_score", "kl_div_score") if any(w.startswith(k) for w in r["uninformative"])}
st.html(f"<style>{TABLE_CSS}</style>" + table_html(table, cols, "sae-table", warn))
st.caption(f"Paths are under {sae_root()}; 'stats' = feature statistics built (the Features page can build them).")
for r in table:
    if r["uninformative"]:
        st.warning(f"{r['name']}: " + "; ".join(r["uninformative"]) + ". Judge it by explained variance instead.")


# one row per SAE and one panel per metric: every SAE gets its own line, so SAEs with the same L0
# no longer sit on top of each other; L0 on a log axis (TopK SAEs share one value, others spread)
@cached_chart
def _metrics_chart(long: list[dict], order: list[str]):
    df = pd.DataFrame(long)
    panels = []
    for k, title, log in (("L0", "L0 (active latents per token, log)", True), ("explained_variance", "explained variance", False),
                          ("kl_div_score", "KL-div score", False), ("ce_loss_score", "CE-loss score", False)):
        d = df[df.metric == k]
        if d.empty:
            continue
        x = alt.X("value:Q", title=title, scale=alt.Scale(type="log") if log and (d.value > 0).all() else alt.Scale(zero=False),
                  axis=alt.Axis(tickCount=3, labelOverlap="greedy", format="~g"))
        panels.append(alt.Chart(d).mark_point(size=90, filled=True).encode(
            x=x, y=alt.Y("SAE:N", sort=order, title=None, axis=alt.Axis(labels=not panels)),
            color=alt.Color("hook:N", title="hook", scale=alt.Scale(range=PALETTE)),
            shape=alt.Shape("informative:N", title="informative", scale=alt.Scale(domain=["yes", "no (see warning)"], range=["circle", "cross"])),
            tooltip=["SAE", "hook", "metric", alt.Tooltip("value:Q", format=".4g"), "informative"],
        ).properties(width=150, height=alt.Step(22)))
    return alt.hconcat(*panels, spacing=14)


long = [{"SAE": r["name"], "hook": r["hook"], "metric": k, "value": r[k],
         "informative": "no (see warning)" if any(w.startswith(k) for w in r["uninformative"]) else "yes"}
        for r in table for k in ("L0", "explained_variance", "kl_div_score", "ce_loss_score") if r[k] is not None]
if long:
    st.markdown("**SAE metrics**, one row per SAE (a cross marks a score that carries no information)")
    show_spec(_metrics_chart(long, [r["name"] for r in table]))
