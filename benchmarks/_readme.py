"""Each benchmark script regenerates its own section of benchmarks/README.md.

    update_section("collect", markdown_table)

replaces the text between `<!-- BEGIN collect -->` and `<!-- END collect -->` (appending the
section if it is new), atomically.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

README = Path(__file__).parent / "README.md"
HEADER = "# Benchmarks\n\nEvery table below is written by the script named in its section; rerun it to regenerate.\n"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads={_threads()}"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def update_section(name: str, body: str, readme: Path = README) -> None:
    text = readme.read_text() if readme.exists() else HEADER
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n\n_Generated {stamp} on {machine()}._\n<!-- END {name} -->"
    pat = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(readme)


def markdown_table(rows: list[dict], cols: list[str] | None = None) -> str:
    cols = cols or list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def load_note(load_start: float, load_end: float | None = None) -> str:
    """The machine conditions a table may state: the 1-minute load average measured at the start and
    the end of the run against the core count, and what follows from those two numbers, never
    prose written in advance about who else was using the machine."""
    end = os.getloadavg()[0] if load_end is None else load_end
    cores = os.cpu_count() or 1
    text = f"1-minute load average {load_start:.1f} at the start and {end:.1f} at the end of this run ({cores} cores)"
    if max(load_start, end) > cores:
        text += "; above the core count, so other work competed for the cores and absolute times are inflated"
    return text
