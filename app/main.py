"""The dashboard's entry file: page config, the sidebar pickers, and navigation over all pages.

Launched by `interp app` (streamlit run app/main.py -- --model M); every page is a thin script.
"""

import sys
import threading
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.serve import PRELOAD  # noqa: E402

# app/serve.py imports the heavy libraries in a thread from the server's start: wait for it rather than
# importing the same modules from two threads at once
for _t in threading.enumerate():
    if _t.name == PRELOAD:
        _t.join()

from app.common import sidebar  # noqa: E402

st.set_page_config(page_title="interp", layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("pages/home.py", title="Home", default=True),
    st.Page("pages/features.py", title="Features", url_path="features"),
    st.Page("pages/prompt_lab.py", title="Prompt lab", url_path="prompt_lab"),
    st.Page("pages/reports.py", title="Reports", url_path="reports"),
    st.Page("pages/circuits.py", title="Circuits", url_path="circuits"),
    st.Page("pages/unlearning.py", title="Unlearning", url_path="unlearning"),
    st.Page("pages/moex.py", title="MoE-X", url_path="moex"),
    st.Page("pages/graph.py", title="Feature circuits", url_path="graph"),
]

nav = st.navigation(PAGES)
if nav.url_path != "moex":  # the MoE-X page uses its own chess models: the LM and SAE pickers do not apply
    sidebar()
nav.run()
