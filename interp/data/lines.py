"""Line-oriented text files (JSONL sources, circuit task files) read as a stream with a bound on
each line.

`iter_lines(path, what)` yields ``(line number, text)`` reading 1 MiB at a time. A line longer
than `max_line_bytes()` is refused with its number as soon as the bound is passed, so one 100 MB
line costs at most the bound in memory, never the whole line (a 50 MB JSONL line once took 124 s
and 9.3 GB before anything was said). NUL bytes (a binary file) and bytes that are not UTF-8 are
refused with the line number too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from interp.errors import InterpError

DEFAULT_MAX_LINE_BYTES = 8 << 20  # 8 MiB: about 2M tokens, far beyond any model's context


def max_line_bytes() -> int:
    """The line bound: $INTERP_MAX_LINE_BYTES, else 8 MiB."""
    v = os.environ.get("INTERP_MAX_LINE_BYTES")
    if not v:
        return DEFAULT_MAX_LINE_BYTES
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise InterpError(f"INTERP_MAX_LINE_BYTES={v!r}: expected a positive number of bytes")
    return n


def _decode(buf: bytes | bytearray, path: Path, ln: int, what: str) -> str:
    if b"\0" in buf:
        raise InterpError(f"{what} {path} line {ln} holds NUL bytes: the file is binary, not text")
    try:
        return bytes(buf).decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError as e:
        raise InterpError(f"{what} {path} line {ln} is not UTF-8 text (bad byte at column {e.start + 1})") from None


def iter_lines(path: str | Path, what: str = "file", limit: int | None = None, hasher=None,
               chunk: int = 1 << 20) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for every line of `path` (1-based, without the newline), holding at
    most `limit` bytes of one line (default `max_line_bytes()`); `hasher` (a hashlib object) sees
    every byte of the file."""
    path = Path(path)
    limit = max_line_bytes() if limit is None else limit
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise InterpError(f"{what} {path} is a directory, not a file") from None
    except OSError as e:
        raise InterpError(f"{what} {path}: {e.strerror or type(e).__name__}") from None
    with f:
        buf = bytearray()
        ln = 1
        while True:
            block = f.read(chunk)
            if not block:
                break
            if hasher is not None:
                hasher.update(block)
            start = 0
            while True:
                nl = block.find(b"\n", start)
                piece = block[start:] if nl < 0 else block[start:nl]
                if len(buf) + len(piece) > limit:
                    raise InterpError(f"{what} {path} line {ln} is longer than {limit:,} bytes; split it "
                                      f"(or raise INTERP_MAX_LINE_BYTES)")
                buf += piece
                if nl < 0:
                    break
                yield ln, _decode(buf, path, ln, what)
                buf = bytearray()
                ln += 1
                start = nl + 1
        if buf:
            yield ln, _decode(buf, path, ln, what)
