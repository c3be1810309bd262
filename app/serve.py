"""Start Streamlit on app/main.py with `st.navigation` in charge from the very first request.

Streamlit treats an entry file with a `pages/` folder beside it as a v1 multipage app until the
entry script has called `st.navigation` once; a first visit straight to /features would then run
app/pages/features.py alone (no sidebar, no page config). Clearing that flag before the server
starts makes every request go through app/main.py. Usage: python app/serve.py run app/main.py ...

The libraries the pages need are imported in a background thread from the start, while the server
waits for the browser, in two phases: first what Home needs (torch, pandas, altair, the SAE list and
report code: `LIGHT`), then TransformerLens and the model code (`HEAVY`). app/main.py waits for the
first phase (`LIGHT_DONE`) on Home and for the whole thread (`PRELOAD`) on every other page, instead
of importing the same modules from two threads at once. Why it must wait: two threads importing
TransformerLens at once can end in Python's import-deadlock detection (an ImportError in one of
them), which is how a cold first visit to Features once came up without its controls (4a6ddbd).
"""

import importlib
import sys
import threading

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web.cli import main

PRELOAD = "interp-preload"  # the thread's name
LIGHT = ("torch", "pandas", "altair", "interp.sae.io", "interp.features.catalog", "interp.reports", "interp.jobs")
HEAVY = ("transformer_lens", "interp.models")
LIGHT_DONE = threading.Event()  # set once LIGHT is imported (or failed): Home can draw. Also the thread's
# `light_done` attribute: this file runs as __main__, so `from app.serve import LIGHT_DONE` elsewhere is another object


def _preload() -> None:
    try:
        for name in LIGHT:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the page imports it again and shows any error as one line
        return
    finally:
        LIGHT_DONE.set()
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001
            return


PagesManager.uses_pages_directory = False

if __name__ == "__main__":
    t = threading.Thread(target=_preload, name=PRELOAD, daemon=True)
    t.light_done = LIGHT_DONE
    t.start()
    sys.exit(main())
