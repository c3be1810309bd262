"""Progress reporting for long library calls: one callback signature, and a tqdm-compatible bar.

A long function takes ``progress: ProgressFn | None`` and reports through `Progress`, which is a
tqdm bar on the terminal and, when a callback is given, also calls

    progress(done, total, message)

after every update (``total`` may be None when unknown). The dashboard turns that callback into
``st.progress`` (app/common.py `progress_box`); the CLI leaves it None and sees tqdm only. The
callback never decides anything: an exception raised in it propagates, so a GUI can cancel work.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

ProgressFn = Callable[[int, "int | None", str], None]
T = TypeVar("T")


class Progress:
    """A tqdm bar that also reports ``(done, total, message)`` to `callback`.

    Use it like tqdm: ``update(n)``, ``set_description(s)``, ``close()``, or as a context manager.
    It counts by itself, so the callback sees every update even when the tqdm bar is disabled."""

    def __init__(self, total: int | None = None, desc: str = "", callback: ProgressFn | None = None,
                 disable: bool | None = False, **tqdm_kw):
        self.total, self.desc, self.n = total, desc, 0
        self.callback = callback
        self.bar = tqdm(total=total, desc=desc, disable=disable, **tqdm_kw)
        self._emit()

    def _emit(self) -> None:
        if self.callback is not None:
            done = self.n if self.total is None else min(self.n, self.total)
            self.callback(done, self.total, self.desc)

    def update(self, n: int = 1) -> None:
        self.n += n
        self.bar.update(n)
        self._emit()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        self.bar.set_description(desc)
        self._emit()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], total: int | None = None, desc: str = "", callback: ProgressFn | None = None,
          **tqdm_kw) -> Iterator[T]:
    """Iterate over `items`, reporting one step per item (tqdm(iterable) with a callback)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, callback, **tqdm_kw) as bar:
        for x in items:
            yield x
            bar.update(1)


def scaled(callback: ProgressFn | None, start: float, stop: float, total: int = 100) -> ProgressFn | None:
    """A callback for one stage of a longer job: its ``done/total`` is mapped into
    ``[start, stop] * total`` of the outer callback (stages of one bar)."""
    if callback is None:
        return None

    def inner(done: int, sub_total: int | None, message: str) -> None:
        frac = done / sub_total if sub_total else 0.0
        callback(int(round((start + (stop - start) * frac) * total)), total, message)

    return inner
