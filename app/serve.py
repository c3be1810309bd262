"""Start Streamlit on app/main.py with `st.navigation` in charge from the very first request.

Streamlit treats an entry file with a `pages/` folder beside it as a v1 multipage app until the
entry script has called `st.navigation` once; a first visit straight to /features would then run
app/pages/features.py alone (no sidebar, no page config). Clearing that flag before the server
starts makes every request go through app/main.py. Usage: python app/serve.py run app/main.py ...

The libraries every page needs (torch, TransformerLens, pandas, altair: most of the first render)
are imported in a background thread from the start, while the server waits for the browser;
app/main.py waits for that thread (`PRELOAD`) instead of importing them a second time alongside it.
"""

import importlib
import sys
import threading

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web.cli import main

PRELOAD = "interp-preload"  # the thread's name
MODULES = ("torch", "interp.models", "interp.sae.io", "interp.features.catalog", "interp.reports", "pandas", "altair")


def _preload() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the page imports it again and shows any error as one line
            return


PagesManager.uses_pages_directory = False

if __name__ == "__main__":
    threading.Thread(target=_preload, name=PRELOAD, daemon=True).start()
    sys.exit(main())
