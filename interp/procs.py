"""Child processes that die with their parent.

Every process interp starts (the Streamlit server of `interp app`, sweep workers, torchrun ranks,
dashboard jobs) passes `preexec_fn=die_with_parent` to `subprocess.Popen` (or calls it first thing
in a `multiprocessing` worker), so a `kill -9` of the parent never leaves an orphan holding a port
or memory.

On Linux this is `prctl(PR_SET_PDEATHSIG, SIGTERM)`: the kernel sends the child SIGTERM when the
thread that forked it exits. Elsewhere (macOS, Windows) there is no such call; `watch_parent`
starts a daemon thread that polls `os.getppid()` and terminates the process once it changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux); elsewhere start
    `watch_parent`. Safe as a `preexec_fn` (no allocation-heavy work, no locks)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
            # The parent may already have died between fork and prctl: then we were re-parented.
            if os.getppid() == 1:
                os.kill(os.getpid(), sig)
            return
    watch_parent(sig)


def watch_parent(sig: int = signal.SIGTERM, interval: float = 1.0) -> threading.Thread:
    """Poll the parent's pid from a daemon thread; send `sig` to ourselves once it changes."""
    parent = os.getppid()

    def _watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), sig)
                return

    t = threading.Thread(target=_watch, name="interp-watch-parent", daemon=True)
    t.start()
    return t
