"""Shared dashboard widgets and state: the sidebar (model, SAE, device), cached heavy objects,
and the helpers every page uses.

* `current_model_name()` / `current_sae_dir()` / `current_device()`: the sidebar's choices.
* `load_model_cached` / `load_sae_cached` / `load_stats_cached`: one shared copy per setting.
* `progress_box(label)`: a context manager giving an `interp.progress.ProgressFn`
  ``(done, total, message)`` that drives `st.progress`; pass it to any library call that takes
  ``progress=``.
* `show_error(e)` / `guarded()`: one readable line (`st.error`), never a traceback; the rest of
  the page keeps working.
* `page_state(page)` and the selection (`current_*`, `selection()`): re-exported from app/state.py,
  the one module that owns `st.session_state`.

Pages compute nothing themselves: they call `interp` and draw the result.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.state import (DEVICE_KEY, PageState, cli_default_model, current_device, current_model_name,  # noqa: E402,F401
                       current_sae_dir, default_device, model_root, page_state, sae_root, selection, set_device,
                       set_model, set_sae)
from interp.errors import InterpError  # noqa: E402

log = logging.getLogger("interp.app")


def _leave_pages_folder_mode() -> None:
    """Started without app/serve.py (plain `streamlit run app/main.py`) and opened straight on a
    page URL, Streamlit runs that page alone in its v1 pages-folder mode; switch to st.navigation
    (app/main.py) and rerun, so the sidebar and page config are always there."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_folder_mode()


# ----------------------------------------------------------------------------- device
def device_options() -> list[str]:
    """'auto' and 'cpu', plus every accelerator torch can see here (cuda, cuda:N, mps)."""
    import torch

    opts = ["auto", "cpu"]
    if torch.cuda.is_available():
        opts.append("cuda")
        opts += [f"cuda:{i}" for i in range(1, torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        opts.append("mps")
    return opts


@st.cache_resource(show_spinner="Loading model...")
def _load_model(name: str, device: str):
    import torch

    from interp.models import load_model

    torch.set_grad_enabled(False)
    return load_model(name, device=device)


def load_model_cached(name: str, device: str | None = None):
    """The model `name` on `device` (default: the sidebar's device); one copy per (name, device)."""
    return _load_model(name, device or current_device())


@st.cache_resource(show_spinner="Loading SAE...")
def _load_sae(path: str, device: str):
    from interp.sae.io import load_sae

    return load_sae(path, device=device)


def load_sae_cached(path: str, device: str | None = None):
    """The SAE in `path` on `device` (default: the sidebar's device); one copy per (path, device)."""
    return _load_sae(str(path), device or current_device())


@st.cache_resource(show_spinner="Loading feature statistics...", max_entries=8)
def _load_stats(path: str, key: str):
    from interp.features import load_stats

    return load_stats(path)


def stats_key(path: str) -> str:
    """A cache key for the feature statistics in `path` that changes whenever they are rebuilt."""
    from interp.features import META_FILE

    meta = Path(path) / META_FILE
    return f"{path}@{meta.stat().st_mtime_ns if meta.exists() else 0}"


def load_stats_cached(path: str):
    """Feature statistics of an SAE dir (reloaded when the file changes); InterpError if missing."""
    from interp.features import has_stats, load_stats

    if not has_stats(path):
        return load_stats(path)  # raises the clear "no statistics yet" error
    return _load_stats(str(path), stats_key(str(path)))


def stats_or_stop(path: str, hint: str = ""):
    """The statistics of `path` (`load_stats_cached`); if they cannot be read, one error line (and
    `hint` as a caption) and the page stops there."""
    try:
        return load_stats_cached(path)
    except InterpError as e:
        show_error(e)
        if hint:
            st.caption(hint)
        st.stop()


@st.cache_resource(show_spinner=False, max_entries=32)
def _mean_z(model_name: str, layer: int, device: str):
    from interp.prompt_lab import mean_z

    return mean_z(load_model_cached(model_name, device), layer)


def mean_z_cached(model_name: str, layer: int):
    return _mean_z(model_name, layer, current_device())


def local_models() -> list[str]:
    """Every shipped model (interp.models.SHIPPED), the one given on the command line, and the
    Hugging Face directories under `model_root()`."""
    from interp.shipped import SHIPPED

    names = list(SHIPPED)
    cli = cli_default_model()
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
    from interp.io import model_id

    mid = model_id(model_name)
    return [s for s in list_saes_all() if str(getattr(s, "model", "")) in (mid, model_name)]


_LAYER = re.compile(r"^blocks\.(\d+)\.")  # as interp.hooks.hook_layer, which imports TransformerLens (the sidebar must not)


def default_sae(saes) -> str | None:
    """The SAE a fresh session starts on: the deepest residual-stream SAE with feature statistics (its
    features are the most general to browse, and it is the one the README's unlearning command uses;
    with statistics, the Features page opens on it), else the deepest one, else the first."""
    resid = [s for s in saes if "hook_resid" in (s.hook_name or "")]
    if resid:
        def depth(s):
            m = _LAYER.match(s.hook_name or "")
            has = (Path(str(s.path)) / "feature_stats.json").is_file()  # interp.features.META_FILE (no torch import here)
            return (has, int(m.group(1)) if m else -1, "seed" not in Path(str(s.path)).name, -len(str(s.path)))

        return str(max(resid, key=depth).path)
    return str(saes[0].path) if saes else None


def _extra_sae() -> None:
    """The sidebar's free-text SAE box: any SAELens-format directory or an SAELens registry id."""
    from interp.sae.io import REGISTRY_PREFIX

    text = (st.session_state.get("_sae_other") or "").strip()
    st.session_state.pop("_sae_other_error", None)
    if not text:
        return
    if text.startswith(REGISTRY_PREFIX) or (Path(text) / "cfg.json").is_file():
        set_sae(text)
    else:
        st.session_state["_sae_other_error"] = (f"{text} is neither an SAELens directory (no cfg.json there) nor a registry id "
                                                f"({REGISTRY_PREFIX}RELEASE/SAE_ID)")


def _is_extra_sae(path: str | None) -> bool:
    return bool(path) and (str(path).startswith("sae-lens:") or (Path(str(path)) / "cfg.json").is_file())


def sidebar() -> None:
    """Model, SAE and device pickers: they write the selection (app/state.py), which every page,
    export and job reads."""
    with st.sidebar:
        models = local_models()
        cur = current_model_name()
        if cur not in models:
            models.append(cur)
        st.selectbox("Model", models, index=models.index(cur), key="_model_pick",
                     on_change=lambda: set_model(st.session_state["_model_pick"]))
        device_picker()
        try:
            saes = saes_for_model(cur)
        except InterpError as e:
            show_error(e)
            saes = []
        paths = [str(s.path) for s in saes]
        sel = current_sae_dir()
        if sel and sel not in paths and _is_extra_sae(sel):
            paths.append(sel)  # a directory or registry id typed below: offered like the others
        if not paths:
            st.caption(f"No SAEs for this model under {sae_root()}.")
            set_sae(None, picked=False)
        else:
            if sel not in paths:
                sel = default_sae(saes) or paths[0]
                set_sae(sel, picked=False)
            st.selectbox("SAE", paths, index=paths.index(sel), key="_sae_pick", format_func=lambda p: Path(p).name,
                         on_change=lambda: set_sae(st.session_state["_sae_pick"]))
            info = next((s for s in saes if str(s.path) == sel), None)
            if info is not None:
                st.caption(f"{info.arch} · {info.hook} · d_sae {info.d_sae}")
        st.text_input("or an SAELens directory / registry id", key="_sae_other", on_change=_extra_sae,
                      placeholder="a folder, or sae-lens:RELEASE/ID")
        if st.session_state.get("_sae_other_error"):
            st.error(st.session_state["_sae_other_error"], icon=":material/error:")


def device_picker() -> None:
    """Sidebar device choice (auto / cpu / cuda / mps as available here); models and SAEs load on it."""
    from interp.device import resolve_device

    opts = device_options()
    cur = st.session_state.get(DEVICE_KEY) or default_device()
    if cur not in opts:
        opts.append(cur)
    st.selectbox("Device", opts, index=opts.index(cur), key="_device_pick",
                 help="auto = cuda, then mps, then cpu. Models and SAEs are loaded on this device.",
                 on_change=lambda: set_device(st.session_state["_device_pick"]))
    set_device(cur)
    try:
        st.caption(f"running on {resolve_device(cur)}")
    except InterpError as e:
        show_error(e)
        set_device("auto")


# ----------------------------------------------------------------------------- progress and errors
@contextmanager
def progress_box(label: str = "Working...") -> Iterator:
    """``with progress_box("Scanning") as cb: lib_call(..., progress=cb)``: the library's
    ``(done, total, message)`` callbacks drive one `st.progress` bar, removed when the block ends.
    Updates are throttled to whole percents (each one is a message to the browser)."""
    slot = st.empty()
    bar = slot.progress(0.0, text=label)
    last = [-1]

    def cb(done: int, total: int | None, message: str = "") -> None:
        frac = min(max(done / total, 0.0), 1.0) if total else 0.0
        pct = int(frac * 100)
        if pct != last[0]:
            last[0] = pct
            text = f"{label} {message}".strip() if message and message != label else label
            bar.progress(frac, text=f"{text} ({done:,}/{total:,})" if total else text)

    try:
        yield cb
    finally:
        slot.empty()


def _is_control_flow(e: BaseException) -> bool:
    """Streamlit's st.stop / st.rerun / st.switch_page work by raising; never swallow those."""
    from streamlit.runtime.scriptrunner import RerunException, StopException

    return isinstance(e, (RerunException, StopException))


@contextmanager
def guarded(what: str = "") -> Iterator[None]:
    """Run a block of a page; any error becomes one `st.error` line (InterpError as is, anything
    else as ``Type: message``, the traceback only in the log) and the page goes on after it."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - the page must keep working whatever a block raises
        if _is_control_flow(e):
            raise
        if not isinstance(e, InterpError):
            log.exception("error in the dashboard%s", f" ({what})" if what else "")
        show_error(e, what)


def _no_validation(c):
    """Skip altair's JSON-schema validation of the whole Vega-Lite spec (~60 ms per chart): the specs
    are fixed in code and validated by the tests (INTERP_VALIDATE_CHARTS=1, set by tests/test_app.py)."""
    if not os.environ.get("INTERP_VALIDATE_CHARTS"):
        orig = c.to_dict
        object.__setattr__(c, "to_dict", lambda *a, **k: orig(*a, **{**k, "validate": False}))
    return c


def show_chart(c, **kw) -> None:
    """st.altair_chart in the house style (app/style.py) without the schema validation (see
    `_no_validation`); for charts that depend on a selection event. Everything else goes through
    `cached_chart`."""
    from app.style import style_chart

    st.altair_chart(_no_validation(style_chart(c)), **kw)


def cached_chart(build: Callable[..., Any]) -> Callable[..., dict]:
    """Decorator: `build(*args)` returns an altair chart; the decorated function returns its Vega-Lite
    spec (data as Arrow bytes, as st.altair_chart sends it), built once per arguments (st.cache_data;
    an argument whose name starts with ``_`` is left out of the key, as st.cache_data does). Draw it
    with `show_spec`.

    Why: building an altair chart costs 30-450 ms per rerun (every encoding channel is checked against
    the schema on construction), most of a warm page; a cached spec costs a few ms."""
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec  # the conversion st.altair_chart does

    from app.style import style_chart

    @functools.wraps(build)  # keeps the name (one cache per builder) and the signature (the "_" rule)
    def spec(*args, **kwargs) -> dict:
        return _convert_altair_to_vega_lite_spec(_no_validation(style_chart(build(*args, **kwargs))))

    return st.cache_data(show_spinner=False, max_entries=64)(spec)


def show_spec(spec: dict, **kw) -> None:
    """Draw a spec from a `cached_chart` function (st.vega_lite_chart; keyword arguments as st.altair_chart's)."""
    st.vega_lite_chart(spec, **kw)


def error_line(e: BaseException, what: str = "") -> str:
    """One line for an error: InterpError's own message, else ``Type: first line``."""
    msg = str(e).strip() if isinstance(e, InterpError) else f"{type(e).__name__}: {str(e).strip()}"
    first = (msg.splitlines() or [type(e).__name__])[0]
    if len(first) > 400:
        first = first[:400] + "…"
    return f"{what}: {first}" if what else first


def show_error(e: BaseException, what: str = "") -> None:
    """One clear line on screen (`st.error`), never a stack trace."""
    st.error(error_line(e, what), icon=":material/error:")
