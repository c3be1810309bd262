"""The one owner of `st.session_state`: the selection (model, SAE, device) and each page's inputs.

Every page, export and job reads the selection from here (`selection()`), and every result
names it (`Selection.header`): a sidebar change reaches every page because no page keeps its
own copy of the model, SAE or device.

* `selection()`: the current `Selection` (model, SAE dir, its hook and name, device).
* `set_model` / `set_sae` / `set_device`: the only writers of those three keys.
* `page_state(page)`: a page's own inputs, under ``p:<page>:<name>``, kept across navigation.
* `Selection.header(what, settings, seed)`: the one line every result carries.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]

MODEL_KEY = "model_name"  # session keys of the selection (tests and other pages read them through this module)
SAE_KEY = "sae_dir"
DEVICE_KEY = "device"  # "auto", "cpu", "cuda", "cuda:1", "mps"
SAE_PICKED_KEY = "sae_picked"  # True once the user chose an SAE (else the default may follow the model)


def _cli_arg(flag: str) -> str | None:
    """The value after `flag` in argv (`interp app -- --model M --device D`)."""
    args = sys.argv[1:]
    if flag in args and args.index(flag) + 1 < len(args):
        return args[args.index(flag) + 1]
    return None


def cli_default_model() -> str:
    return _cli_arg("--model") or "embedded"


def default_device() -> str:
    """`interp app --device D`, else $INTERP_DEVICE, else auto."""
    return _cli_arg("--device") or os.environ.get("INTERP_DEVICE") or "auto"


def sae_root() -> Path:
    """Where SAEs are looked for: $INTERP_SAE_ROOT, else saes/ in the repository."""
    return Path(os.environ.get("INTERP_SAE_ROOT", ROOT / "saes"))


def model_root() -> Path:
    """Local model directories are looked for in $INTERP_MODEL_ROOT, else models/ in the repository."""
    return Path(os.environ.get("INTERP_MODEL_ROOT", ROOT / "models"))


# ----------------------------------------------------------------------------- the selection
def current_model_name() -> str:
    return st.session_state.setdefault(MODEL_KEY, cli_default_model())


def current_sae_dir() -> str | None:
    return st.session_state.get(SAE_KEY)


def current_device() -> str:
    """The chosen device, resolved (`interp.device.resolve_device`) to a concrete name like 'cpu'."""
    from interp.device import resolve_device

    return str(resolve_device(st.session_state.get(DEVICE_KEY) or default_device()))


def set_model(name: str) -> None:
    """Choose a model; the SAE choice is cleared (SAEs belong to one model)."""
    if st.session_state.get(MODEL_KEY) != name:
        st.session_state[MODEL_KEY] = name
        st.session_state[SAE_KEY] = None
        st.session_state[SAE_PICKED_KEY] = False


def set_sae(path: str | None, picked: bool = True) -> None:
    """Choose an SAE directory (or registry id) for every page; `picked` = by the user."""
    st.session_state[SAE_KEY] = path
    st.session_state[SAE_PICKED_KEY] = picked and path is not None


def set_device(device: str) -> None:
    st.session_state[DEVICE_KEY] = device


@dataclass(frozen=True)
class Selection:
    """What every result is about: the model, the SAE (and the hook it reads), the device."""

    model: str
    sae_dir: str | None
    device: str
    hook: str | None = None  # the SAE's hook ("blocks.3.hook_resid_post"), None without an SAE
    arch: str | None = None

    @property
    def sae_name(self) -> str | None:
        return Path(self.sae_dir.rstrip("/")).name if self.sae_dir else None

    def header(self, what: str = "", settings: dict | None = None, seed: int | None = None, sae: bool = True) -> str:
        """One line naming what a result is of: ``Features · model embedded · SAE resid_post_L3_topk
        (blocks.3.hook_resid_post) · device cpu · tokens 50000 · seed 0``. `sae=False` for results
        that use no SAE (circuits)."""
        parts = [what] if what else []
        parts.append(f"model {self.model}")
        if sae:
            parts.append(f"SAE {self.sae_name} ({self.hook})" if self.sae_dir else "no SAE")
        parts.append(f"device {self.device}")
        parts += [f"{k} {v}" for k, v in (settings or {}).items()]
        if seed is not None:
            parts.append(f"seed {seed}")
        return " · ".join(parts)


def selection() -> Selection:
    """The current selection; the SAE's hook comes from its cfg.json (cheap, cached per directory)."""
    sae = current_sae_dir()
    hook, arch = _sae_hook(sae) if sae else (None, None)
    try:
        dev = current_device()
    except Exception:  # noqa: BLE001 - a bad device string: the sidebar shows the error line
        dev = str(st.session_state.get(DEVICE_KEY) or default_device())
    return Selection(current_model_name(), sae, dev, hook, arch)


@st.cache_data(show_spinner=False, max_entries=256)
def _sae_hook(path: str) -> tuple[str | None, str | None]:
    import json

    cfg = Path(path) / "cfg.json"
    try:
        d = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None, None
    meta = d.get("metadata") or {}
    hook = meta.get("hook_name") or d.get("hook_name")
    head = meta.get("hook_head_index", d.get("hook_head_index"))
    if hook and head is not None:
        hook = f"{hook}:{head}"  # the NAME:HEAD form of interp.sae.io.sae_hook
    return hook, d.get("architecture")


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

    def follow(self, name: str, value: Any, source: Any) -> Any:
        """`name` takes `value` whenever `source` (e.g. the selected SAE) changes, and keeps the
        user's own edits otherwise: an input derived from the selection never goes stale."""
        if st.session_state.get(self.key(name + ":for")) != source:
            st.session_state[self.key(name)] = value
            st.session_state[self.key(name + ":for")] = source
        return st.session_state[self.key(name)]


def page_state(page: str) -> PageState:
    return PageState(page)
