"""The dashboard's entry file: page config, the status bar, the sidebar (selection and jobs), and
navigation over all pages.

Launched by `interp app` (app/serve.py run app/main.py -- --model M); every page is a thin script.
"""

import sys
import threading
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.serve import PRELOAD  # noqa: E402

st.set_page_config(page_title="interp", layout="wide", initial_sidebar_state="expanded")
_preloading = [t for t in threading.enumerate() if t.name == PRELOAD]
for _t in _preloading:  # started by app/serve.py: wait for the libraries every page (and the sidebar) imports
    _t.light_done.wait()

from app.common import sidebar  # noqa: E402
from app.jobs_panel import jobs_panel, status_bar  # noqa: E402
from app.style import page_css  # noqa: E402

PAGES = {
    "Browse": [
        st.Page("pages/home.py", title="Home", default=True),
        st.Page("pages/features.py", title="Features", url_path="features"),
        st.Page("pages/prompt_lab.py", title="Prompt lab", url_path="prompt_lab"),
        st.Page("pages/reports.py", title="Reports", url_path="reports"),
    ],
    "Experiments": [
        st.Page("pages/circuits.py", title="Circuits", url_path="circuits"),
        st.Page("pages/unlearning.py", title="Unlearning", url_path="unlearning"),
        st.Page("pages/moex.py", title="MoE-X", url_path="moex"),
    ],
}
if (ROOT / "app" / "pages" / "graph.py").exists():  # the attribution-graph page (issue 27), when present
    PAGES["Experiments"].insert(1, st.Page("pages/graph.py", title="Attribution graph", url_path="graph"))

nav = st.navigation(PAGES)
_goto = st.session_state.pop("_goto", None)  # set by a callback (open a job's result, open a feature): go there now
if _goto:
    st.switch_page(_goto)
page_css()
if nav.url_path:
    # every page but Home waits for TransformerLens too, rather than importing it from a second thread
    # (app/serve.py: two threads importing it at once once cost the Features page its controls)
    for _t in _preloading:
        _t.join()
if nav.url_path != "moex":  # the MoE-X page uses its own chess models: the LM and SAE pickers do not apply
    sidebar()
status_bar()
jobs_panel()
nav.run()
