"""Reports: export selected features of the selected SAE (or the pinned feature list) as HTML, JSON or
Markdown downloads; every export is titled after the current selection and carries its header."""

from functools import partial

import streamlit as st

from app.common import page_state, selection, show_error, stats_key, stats_or_stop
from app.style import result_header, text
from interp.errors import InterpError
from interp.features import parse_feature_range
from interp.reports import render

st.title("Reports")
ps = page_state("reports")
sel = selection()
if not sel.sae_dir:
    st.info("Pick an SAE in the sidebar (none found for this model yet).")
    st.stop()
stats = stats_or_stop(sel.sae_dir, "Build the statistics on the Features page, or with `interp features --sae DIR`.")


@st.cache_data(show_spinner=False, max_entries=16)
def _preview(skey: str, ids: tuple, title: str, header: str, _stats) -> str:
    return render(_stats, list(ids), "md", title, header)


def default_title(s) -> str:
    """The export title for a selection: it names the SAE and its hook, so it can never describe another SAE."""
    return f"Features of {s.sae_name} ({s.hook})"


n = stats.n_features
pinned = [i for i in st.session_state.get("pinned", {}).get(sel.sae_dir, []) if 0 <= i < n]
left, right = st.columns([1, 2])
with left:
    # both inputs follow the selection: a new SAE gives a fresh title and range (the user's edits stay otherwise)
    ps.follow("ids", ",".join(map(str, pinned)) if pinned else f"0-{min(n, 20) - 1}", sel.sae_dir)
    spec = st.text_input(f"Features (ids 0..{n - 1}, e.g. 0-99 or 3,7,10-12)", key=ps.key("ids"))
    if pinned:
        st.caption(f"{len(pinned)} pinned on the Features page: " + ", ".join(f"#{i}" for i in pinned))
    ps.follow("title", default_title(sel), (sel.sae_dir, sel.hook))
    title = st.text_input("Title", key=ps.key("title"))
header = sel.header("Feature report", {"statistics": f"{stats.meta.get('n_tokens'):,} tokens of {stats.meta.get('corpus')}"},
                    seed=(stats.meta.get("config") or {}).get("seed"))
try:
    ids = parse_feature_range(spec, n)
    with left:
        cols = st.columns(3)
        for col, (fmt, mime) in zip(cols, (("html", "text/html"), ("json", "application/json"), ("md", "text/markdown"))):
            # a callable: the report is rendered when the button is clicked, not on every rerun
            col.download_button(f"Download {fmt.upper()}", partial(render, stats, ids, fmt, title, header),
                                file_name=f"{sel.sae_name}_features.{fmt}", mime=mime, key=f"dl_{fmt}", width="stretch",
                                on_click="ignore")
    with right:
        result_header(header)
        st.html(f'<p data-testid="report-title"><b>{text(title)}</b> · {len(ids)} features: '
                + text(", ".join(f"#{i} {stats.labels[i]}" for i in ids[:8]) + (" …" if len(ids) > 8 else "")) + "</p>")
        with st.expander("Markdown preview (first 3 features)", expanded=True):
            st.markdown(_preview(stats_key(sel.sae_dir), tuple(ids[:3]), title, header, stats))
except InterpError as e:
    show_error(e)
