"""Reports: export selected features of the current SAE as HTML, JSON or Markdown downloads."""

from functools import partial

import streamlit as st

from app.common import current_sae_dir, show_error, stats_key, stats_or_stop
from interp.errors import InterpError
from interp.features import parse_feature_range
from interp.reports import render

st.title("Reports")
sae_dir = current_sae_dir()
if not sae_dir:
    st.info("Pick an SAE in the sidebar (none found for this model yet).")
    st.stop()
stats = stats_or_stop(sae_dir, "Build the statistics on the Features page, or with `interp features --sae DIR`.")


@st.cache_data(show_spinner=False, max_entries=16)
def _preview(skey: str, ids: tuple, title: str, _stats) -> str:
    return render(_stats, list(ids), "md", title)


n = stats.n_features
spec = st.text_input(f"Features (ids 0..{n - 1}, e.g. 0-99 or 3,7,10-12)", value=f"0-{min(n, 20) - 1}", key="report_ids")
title = st.text_input("Title", value=f"Features of {sae_dir.rstrip('/').split('/')[-1]}", key="report_title")
try:
    ids = parse_feature_range(spec, n)
    st.caption(f"{len(ids)} features: " + ", ".join(f"#{i} {stats.labels[i]}" for i in ids[:8]) + (" …" if len(ids) > 8 else ""))
    cols = st.columns(3)
    for col, (fmt, mime) in zip(cols, (("html", "text/html"), ("json", "application/json"), ("md", "text/markdown"))):
        # a callable: the report is rendered when the button is clicked, not on every rerun
        col.download_button(f"Download {fmt.upper()}", partial(render, stats, ids, fmt, title), file_name=f"features.{fmt}", mime=mime,
                            key=f"dl_{fmt}", width="stretch", on_click="ignore")
    with st.expander("Markdown preview"):
        st.markdown(_preview(stats_key(sae_dir), tuple(ids[:3]), title, stats))
except InterpError as e:
    show_error(e)
