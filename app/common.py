"""Shared dashboard widgets and state: the sidebar (model, SAE, device), cached heavy objects,
and the helpers every page uses.

* `current_model_name()` / `current_sae_dir()` / `current_device()`: the sidebar's choices.
* `load_model_cached` / `load_sae_cached` / `load_stats_cached`: one shared copy per setting.
* `progress_box(label)`: a context manager giving an `interp.progress.ProgressFn`
  ``(done, total, message)`` that drives `st.progress`; pass it to any library call that takes
  ``progress=``.
* `show_error(e)` / `guarded()`: one readable line (`st.error`), never a traceback; the rest of
  the page keeps working.
* `page_state(page)`: per-page state in `st.session_state` that survives navigation, also for
  widgets (``st.text_input("A", **ps.widget("a"))``, default through ``ps.default("a", v)``).

Pages compute nothing themselves: they call `interp` and draw the result.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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


# ----------------------------------------------------------------------------- device
DEVICE_KEY = "device"  # session key of the sidebar's device choice ("auto", "cpu", "cuda", "cuda:1", "mps")


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


def _default_device() -> str:
    """`interp app --device D` (after `--` in argv), else $INTERP_DEVICE, else auto."""
    args = sys.argv[1:]
    if "--device" in args and args.index("--device") + 1 < len(args):
        return args[args.index("--device") + 1]
    return os.environ.get("INTERP_DEVICE") or "auto"


def current_device() -> str:
    """The sidebar's device, resolved (`interp.device.resolve_device`) to a concrete name like 'cpu'."""
    from interp.device import resolve_device

    return str(resolve_device(st.session_state.get(DEVICE_KEY) or _default_device()))


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
    from interp.io import model_id

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
        device_picker()
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
        st.caption(f"{info.arch} · {info.hook} · d_sae {info.d_sae}")


def device_picker() -> None:
    """Sidebar device choice (auto / cpu / cuda / mps as available here); models and SAEs load on it."""
    from interp.device import resolve_device

    opts = device_options()
    cur = st.session_state.get(DEVICE_KEY) or _default_device()
    if cur not in opts:
        opts.append(cur)
    st.selectbox("Device", opts, index=opts.index(cur), key="_device_pick",
                 help="auto = cuda, then mps, then cpu. Models and SAEs are loaded on this device.",
                 on_change=lambda: st.session_state.update({DEVICE_KEY: st.session_state["_device_pick"]}))
    st.session_state[DEVICE_KEY] = cur
    try:
        st.caption(f"running on {resolve_device(cur)}")
    except InterpError as e:
        show_error(e)
        st.session_state[DEVICE_KEY] = "auto"


# ----------------------------------------------------------------------------- page state
PAGE_PREFIX = "p:"


class PageState:
    """State of one page in `st.session_state`, under keys ``p:<page>:<name>``.

    Plain values (``ps["x"] = 1``) live as long as the session. A widget keeps its value across
    navigation through Streamlit's own ``persist_state="session"``: create it with
    ``**ps.widget(name)`` (its key and that option) and give its default through `default()`,
    never ``value=``/``index=`` (Streamlit warns when both are set)."""

    def __init__(self, page: str):
        self.page = page

    def key(self, name: str) -> str:
        return f"{PAGE_PREFIX}{self.page}:{name}"

    def widget(self, name: str) -> dict:
        """Keyword arguments for a widget whose value survives navigation."""
        return {"key": self.key(name), "persist_state": "session"}

    def get(self, name: str, default: Any = None) -> Any:
        return st.session_state.get(self.key(name), default)

    def __getitem__(self, name: str) -> Any:
        return st.session_state[self.key(name)]

    def __setitem__(self, name: str, value: Any) -> None:
        st.session_state[self.key(name)] = value

    def __contains__(self, name: str) -> bool:
        return self.key(name) in st.session_state

    def pop(self, name: str, default: Any = None) -> Any:
        return st.session_state.pop(self.key(name), default)

    def default(self, name: str, value: Any) -> Any:
        """Set `name` to `value` unless it already has a value; returns the current value."""
        return st.session_state.setdefault(self.key(name), value)


def page_state(page: str) -> PageState:
    return PageState(page)


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
    """st.altair_chart without the schema validation (see `_no_validation`); for charts that depend on
    a selection event. Everything else goes through `cached_chart`."""
    st.altair_chart(_no_validation(c), **kw)


def cached_chart(build: Callable[..., Any]) -> Callable[..., dict]:
    """Decorator: `build(*args)` returns an altair chart; the decorated function returns its Vega-Lite
    spec (data as Arrow bytes, as st.altair_chart sends it), built once per arguments (st.cache_data;
    an argument whose name starts with ``_`` is left out of the key, as st.cache_data does). Draw it
    with `show_spec`.

    Why: building an altair chart costs 30-450 ms per rerun (every encoding channel is checked against
    the schema on construction), most of a warm page; a cached spec costs a few ms."""
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec  # the conversion st.altair_chart does

    @functools.wraps(build)  # keeps the name (one cache per builder) and the signature (the "_" rule)
    def spec(*args, **kwargs) -> dict:
        return _convert_altair_to_vega_lite_spec(_no_validation(build(*args, **kwargs)))

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
