"""Shared dashboard state: the sidebar (model, SAE, navigation) and cached heavy objects.

Pages read the current choice with `current_model_name()` / `current_sae_dir()` and load heavy
objects through the `st.cache_resource` loaders here, so every page shares one copy.
Pages compute nothing themselves: they call `interp` and draw the result.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from interp.errors import InterpError  # noqa: E402


def _leave_pages_folder_mode() -> None:
    """Started without app/serve.py (plain `streamlit run app/main.py`) and opened straight on a
    page URL, Streamlit runs that page alone in its v1 pages-folder mode; switch to st.navigation
    (app/main.py) and rerun, so the sidebar and page config are always there."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_folder_mode()


def _cli_default_model() -> str:
    args = sys.argv[1:]
    if "--model" in args and args.index("--model") + 1 < len(args):
        return args[args.index("--model") + 1]
    return "embedded"


def sae_root() -> Path:
    """Where SAEs are looked for: $INTERP_SAE_ROOT, else saes/ in the repository."""
    return Path(os.environ.get("INTERP_SAE_ROOT", ROOT / "saes"))


def model_root() -> Path:
    """Local model directories are looked for in $INTERP_MODEL_ROOT, else models/ in the repository."""
    return Path(os.environ.get("INTERP_MODEL_ROOT", ROOT / "models"))


@st.cache_resource(show_spinner="Loading model...")
def load_model_cached(name: str):
    import torch

    from interp.models import load_model

    torch.set_grad_enabled(False)
    return load_model(name)


@st.cache_resource(show_spinner="Loading SAE...")
def load_sae_cached(path: str):
    from interp.features import load_sae_dir

    return load_sae_dir(path)


@st.cache_resource(show_spinner="Loading feature statistics...", max_entries=8)
def _load_stats(path: str, mtime: float):
    from interp.features import load_stats

    return load_stats(path)


def load_stats_cached(path: str):
    """Feature statistics of an SAE dir (reloaded when the file changes); InterpError if missing."""
    from interp.features import META_FILE, has_stats, load_stats

    if not has_stats(path):
        return load_stats(path)  # raises the clear "no statistics yet" error
    return _load_stats(str(path), (Path(path) / META_FILE).stat().st_mtime)


@st.cache_resource(show_spinner=False, max_entries=32)
def mean_z_cached(model_name: str, layer: int):
    from interp.prompt_lab import mean_z

    return mean_z(load_model_cached(model_name), layer)


def local_models() -> list[str]:
    names = ["embedded"]
    cli = _cli_default_model()
    if cli not in names:
        names.append(cli)
    root = model_root()
    if root.is_dir():
        names += sorted(str(p) for p in root.iterdir() if (p / "config.json").exists() and str(p) not in names)
    return names


@st.cache_data(ttl=10, show_spinner=False)
def _list_saes(root: str):
    from interp.sae.io import list_saes

    return list_saes(root)


def list_saes_all():
    """Every SAE found under `sae_root()` (SaeInfo records from interp.sae.io; rescanned every 10 s)."""
    root = sae_root()
    if not root.exists():
        return []
    return _list_saes(str(root))


def saes_for_model(model_name: str):
    from interp.models import model_id

    mid = model_id(model_name)
    return [s for s in list_saes_all() if str(getattr(s, "model", "")) in (mid, model_name)]


def current_model_name() -> str:
    return st.session_state.setdefault("model_name", _cli_default_model())


def current_sae_dir() -> str | None:
    return st.session_state.get("sae_dir")


def sidebar() -> None:
    """Model and SAE pickers; the choice lives in st.session_state and so is kept across pages."""
    with st.sidebar:
        models = local_models()
        cur = current_model_name()
        if cur not in models:
            models.append(cur)
        st.selectbox("Model", models, index=models.index(cur), key="_model_pick",
                     on_change=lambda: st.session_state.update(model_name=st.session_state["_model_pick"], sae_dir=None))
        try:
            saes = saes_for_model(cur)
        except InterpError as e:
            show_error(e)
            saes = []
        paths = [str(s.path) for s in saes]
        if not paths:
            st.caption(f"No SAEs for this model under {sae_root()}.")
            st.session_state["sae_dir"] = None
            return
        sel = current_sae_dir()
        if sel not in paths:
            # default to a residual-stream SAE: its features are the most general to browse first
            sel = next((str(s.path) for s in saes if "hook_resid" in (s.hook_name or "")), paths[0])
            st.session_state["sae_dir"] = sel
        st.selectbox("SAE", paths, index=paths.index(sel), key="_sae_pick", format_func=lambda p: Path(p).name,
                     on_change=lambda: st.session_state.update(sae_dir=st.session_state["_sae_pick"]))
        info = saes[paths.index(sel)]
        hook = str(info.hook_name) + (f":{info.hook_head_index}" if getattr(info, "hook_head_index", None) is not None else "")
        st.caption(f"{info.arch} · {hook} · d_sae {info.d_sae}")


def show_chart(c, **kw) -> None:
    """st.altair_chart without altair's JSON-schema validation on every rerun: validating the
    whole Vega-Lite spec costs ~60 ms per chart, most of a warm page; the specs are fixed in code
    and validated by the tests (AppTest renders them with validation on)."""
    if not os.environ.get("INTERP_VALIDATE_CHARTS"):
        orig = c.to_dict
        object.__setattr__(c, "to_dict", lambda *a, **k: orig(*a, **{**k, "validate": False}))
    st.altair_chart(c, **kw)


def show_error(e: Exception) -> None:
    """One clear line on screen, never a stack trace."""
    st.error(str(e) if isinstance(e, InterpError) else f"{type(e).__name__}: {e}")
