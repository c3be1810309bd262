"""Start Streamlit on app/main.py with `st.navigation` in charge from the very first request.

Streamlit treats an entry file with a `pages/` folder beside it as a v1 multipage app until the
entry script has called `st.navigation` once; a first visit straight to /features would then run
app/pages/features.py alone (no sidebar, no page config). Clearing that flag before the server
starts makes every request go through app/main.py. Usage: python app/serve.py run app/main.py ...
"""

import sys

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web.cli import main

PagesManager.uses_pages_directory = False

if __name__ == "__main__":
    sys.exit(main())
