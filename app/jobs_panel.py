"""The jobs panel (every page's sidebar) and the status bar (every page's top line).

Both are `st.fragment`s that redraw themselves every second while a job runs, so the page around
them stays usable: progress over the whole job, elapsed time, time left, a cancel button, and the
history (finished, cancelled and crashed jobs with the reason) whose results open on their page.
Everything shown comes from `interp.jobs` (files under INTERP_HOME/jobs).
"""

from __future__ import annotations

import os
import time

import streamlit as st

from app.state import selection
from app.style import md_text
from interp import jobs

OPEN_KEY = "open_job"  # session key: {kind: job id} of a result to open on its page
PAGE_OF = {"circuits": "pages/circuits.py", "unlearning": "pages/unlearning.py", "feature-stats": "pages/features.py",
           "sae-training": "pages/home.py", "moex-train": "pages/moex.py", "graph": "pages/graph.py"}
HISTORY_SHOWN = 6


def fmt_s(s: float | None) -> str:
    """Seconds as '42 s', '3 min 05 s', '1 h 02 min'; '?' when unknown."""
    if s is None or s != s:
        return "?"
    s = max(float(s), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def start_job(kind: str, params: dict, title: str, header: str, key: str | None = None) -> None:
    """Start a job (`interp.jobs.start`), store its id under session `key`, and rerun the page: the
    jobs panel, drawn before the page, shows it from the next run on (and polls while it runs)."""
    j = jobs.start(kind, params, title=title, header=header)
    if key:
        st.session_state[key] = j.id
    st.rerun()


GOTO_KEY = "_goto"  # a page to switch to at the next full run (app/main.py): callbacks cannot switch pages themselves


def open_result(j: jobs.JobInfo) -> None:
    """Ask the job's page to show its result, and go there (a button callback)."""
    st.session_state.setdefault(OPEN_KEY, {})[j.kind] = j.id
    page = PAGE_OF.get(j.kind)
    if page:
        st.session_state[GOTO_KEY] = page


def take_opened(kind: str) -> jobs.JobInfo | None:
    """The job of `kind` the user asked to open (once), or None."""
    jid = st.session_state.get(OPEN_KEY, {}).pop(kind, None)
    if not jid:
        return None
    try:
        return jobs.get(jid)
    except Exception:  # noqa: BLE001 - removed meanwhile: nothing to open
        return None


def _cancel(job_id: str) -> None:
    jobs.cancel(job_id)


def _all() -> list[jobs.JobInfo]:
    """Running jobs and the newest finished ones (the panel shows HISTORY_SHOWN of them)."""
    try:
        return jobs.history(limit=HISTORY_SHOWN)
    except OSError:
        return []


def _rss_mb() -> float | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if os.uname().sysname == "Darwin" else 1024)
    except Exception:  # noqa: BLE001
        return None


def _job_row(j: jobs.JobInfo, live: bool) -> None:
    with st.container(border=True, key=f"job-{j.id}"):
        st.markdown(f"**{md_text(j.title)}**", help=md_text(j.header) if j.header else None)  # titles carry prompts: text, never Markdown
        if live:
            p = j.progress
            st.progress(p.fraction, text=md_text((p.message or "running")[:80]))
            st.caption(f"{100 * p.fraction:.0f}% · elapsed {fmt_s(p.elapsed_s)} · left {fmt_s(p.eta_s)}")
            st.button("Cancel", key=f"cancel-{j.id}", on_click=_cancel, args=(j.id,), width="stretch")
        else:
            icon = {"done": "✓", "cancelled": "■", "crashed": "✗"}.get(j.state, "?")
            when = time.strftime("%H:%M", time.localtime(j.finished or j.created))
            st.caption(f"{icon} {j.state} at {when}" + (f": {md_text(j.reason)}" if j.reason else ""))
            if j.state == "done" and j.kind in PAGE_OF:
                st.button("Open result", key=f"open-{j.id}", on_click=open_result, args=(j,), width="stretch")


def _panel_body() -> None:
    if st.session_state.get(GOTO_KEY):  # "Open result" was clicked inside this fragment: a full run switches the page
        st.rerun()
    all_jobs = _all()
    running = [j for j in all_jobs if j.state == "running"]
    st.markdown(f"**Jobs** ({len(running)} running)")
    for j in running:
        _job_row(j, True)
    past = [j for j in all_jobs if j.state != "running"][:HISTORY_SHOWN]
    if past:
        with st.expander("History (newest first)", expanded=not running):
            for j in past:
                _job_row(j, False)
    if not all_jobs:
        st.caption("No jobs yet: circuits, unlearning and feature statistics run here, in their own process.")
    # keep polling only while something runs (an idle page sends nothing)
    was = st.session_state.get("_jobs_running", 0)
    st.session_state["_jobs_running"] = len(running)
    if was and not running:
        st.rerun()  # a job just ended: redraw the whole page (its result may be waited for)


@st.fragment(run_every=1.0)
def _panel_live() -> None:
    _panel_body()


@st.fragment
def _panel_idle() -> None:
    _panel_body()


def jobs_panel() -> None:
    """The jobs panel, in the sidebar of every page."""
    with st.sidebar:
        if any(j.state == "running" for j in _all()):
            _panel_live()
        else:
            _panel_idle()


def status_line() -> str:
    """model · SAE (hook) · device · memory · jobs, as one line of plain text."""
    sel = selection()
    running = sum(j.state == "running" for j in _all())
    mem = _rss_mb()
    parts = [f"model {sel.model}", f"SAE {sel.sae_name} ({sel.hook})" if sel.sae_dir else "no SAE", f"device {sel.device}"]
    if mem is not None:
        parts.append(f"server memory {mem:,.0f} MB")
    parts.append(f"jobs running {running}")
    return " · ".join(parts)


def status_bar() -> None:
    """A one-line status bar: model, SAE, device, memory, jobs (names from files shown as text)."""
    from app.style import text

    with st.container(key="status-bar"):
        st.html(f'<p data-testid="status-line">{text(status_line())}</p>')
