"""Home: the models and SAEs found locally, with their metrics (L0 vs CE-loss score chart)."""

import json

import altair as alt
import pandas as pd
import streamlit as st

from app.common import ROOT, show_chart, current_model_name, list_saes_all, sae_root, show_error
from interp.errors import InterpError
from interp.features import has_stats

st.title("interp: a local interpretability workbench")
st.caption("Pick a model and an SAE in the sidebar; the choice is kept across pages.")

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


def metric(m: dict, *names: str):
    """The first metric whose key ends with one of `names` (SAEBench-style keys may be nested as a/b)."""
    for n in names:
        for k, v in m.items():
            if (k == n or k.endswith("/" + n) or k.endswith("." + n)) and isinstance(v, (int, float)):
                return float(v)
    return None


st.subheader("SAEs")
try:
    saes = list_saes_all()
except InterpError as e:
    show_error(e)
    saes = []
if not saes:
    st.info(f"No SAEs found under {sae_root()}. Train one with `interp sae train` or rebuild the shipped ones.")
else:
    table = []
    for s in saes:
        m = dict(getattr(s, "metrics", None) or {})
        table.append({"name": str(s.path).split("/")[-1], "model": s.model, "hook": s.hook_name, "head": s.hook_head_index,
                      "arch": s.arch, "d_sae": s.d_sae, "L0": metric(m, "l0", "L0"),
                      "ce_loss_score": metric(m, "ce_loss_score"),
                      "explained_variance": metric(m, "explained_variance"),
                      "feature stats": "yes" if has_stats(s.path) else "no", "path": str(s.path)})
    df = pd.DataFrame(table)
    st.dataframe(df, hide_index=True, width="stretch")
    pts = df.dropna(subset=["L0", "ce_loss_score"])
    if len(pts):
        chart = alt.Chart(pts).mark_circle(size=120).encode(
            x=alt.X("L0:Q", title="L0 (active latents per token)", scale=alt.Scale(zero=False)),
            y=alt.Y("ce_loss_score:Q", title="CE loss score", scale=alt.Scale(zero=False)),
            color=alt.Color("hook:N"), tooltip=["name", "hook", "arch", "d_sae", "L0", "ce_loss_score"],
        ).properties(height=320, title="L0 vs CE loss score across SAEs")
        show_chart(chart, width="stretch")
    else:
        st.caption("No SAE has both L0 and ce_loss_score in its metrics.json yet.")
