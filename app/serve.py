"""Start Streamlit on app/main.py with `st.navigation` in charge from the very first request.

Streamlit treats an entry file with a `pages/` folder beside it as a v1 multipage app until the
entry script has called `st.navigation` once; a first visit straight to /features would then run
app/pages/features.py alone (no sidebar, no page config). Clearing that flag before the server
starts makes every request go through app/main.py. Usage: python app/serve.py run app/main.py ...

The libraries the first page needs (torch, pandas, altair, interp's SAE listing and reports: most
of the first render) are imported in a background thread from the start, while the server waits
for the browser; app/main.py waits for that thread (`PRELOAD`) instead of importing them a second
time alongside it. TransformerLens (`interp.models`, ~10 s of CPU, needed by the pages that run a
model, not by Home) is imported after them in a second thread that nobody waits for; a page that
needs it first simply finishes that import (Python's per-module import locks make that safe).
"""

import importlib
import sys
import threading

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web.cli import main

PRELOAD = "interp-preload"  # the thread's name
FIRST = ("torch", "interp.sae.io", "interp.features.catalog", "interp.reports", "pandas", "altair")  # Home's imports
LATER = ("interp.models",)  # TransformerLens: the pages that run a model


def _import_all(names: tuple[str, ...]) -> bool:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the page imports it again and shows any error as one line
            return False
    return True


def _preload() -> None:
    if _import_all(FIRST):
        threading.Thread(target=_import_all, args=(LATER,), name=PRELOAD + "-later", daemon=True).start()


PagesManager.uses_pages_directory = False

if __name__ == "__main__":
    threading.Thread(target=_preload, name=PRELOAD, daemon=True).start()
    sys.exit(main())
