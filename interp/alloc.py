"""Keep freed activation buffers in the process heap instead of handing them back to the OS.

A forward pass or an SAE step allocates and frees the same multi-megabyte tensors every batch.
glibc serves blocks that large with fresh `mmap`s (or trims them off the heap top) and returns
them on `free`, so every batch page-faults its buffers in again. `tune_malloc()` raises glibc's trim threshold and fixes
its mmap threshold, the same thing `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_` /
`MALLOC_TOP_PAD_` do from the environment; PyTorch's own CPU tuning guide suggests swapping in
jemalloc or tcmalloc for the same reason, which needs a preload we cannot do from inside the
process. Memory stays bounded: blocks over 32 MiB still come from `mmap`, and the heap keeps
at most what one batch needed. On a non-glibc platform it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_done = False


def tune_malloc() -> bool:
    """Apply the heap settings once per process; True when they took effect."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all(mallopt(opt, val) == 1 for opt, val in ((_M_TRIM_THRESHOLD, 1 << 30), (_M_MMAP_THRESHOLD, 32 << 20),
                                                     (_M_TOP_PAD, 64 << 20)))
    _done = ok
    log.debug("glibc malloc tuning %s", "applied" if ok else "refused")
    return ok
