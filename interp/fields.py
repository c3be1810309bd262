"""Field-by-field checks of config dataclasses, and text -> field value for grids.

A config read from a file or a grid (an SAE cfg.json, a checkpoint manifest, `interp sweep
--grid`) can hold any JSON value in any field. `check_types(cfg, where)` refuses a value whose
type is not the field's annotation with one line naming the field and where it came from,
before `__post_init__`'s range checks compare a string with a number (which used to surface as
"unexpected TypeError"). `parse_value(cls, name, text)` turns a grid's text into the field's type.

Annotations are read as text (the modules use ``from __future__ import annotations``): the plain
forms ``int``, ``float``, ``str``, ``bool``, ``X | None`` and ``tuple[...]`` are checked; any other
annotation is left to the class itself.
"""

from __future__ import annotations

import dataclasses
import math

from interp.errors import InterpError

_SIMPLE = {"int", "float", "str", "bool"}


def _parts(annotation) -> tuple[str | None, bool]:
    """(base type name or None if not a simple one, whether None is allowed)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|")]
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    if len(rest) != 1:
        return None, optional
    base = rest[0]
    if base.startswith("tuple"):
        return "tuple", optional
    return (base if base in _SIMPLE else None), optional


def _ok(base: str, v) -> bool:
    if base == "bool":
        return isinstance(v, bool)
    if base == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if base == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if base == "str":
        return isinstance(v, str)
    if base == "tuple":
        return isinstance(v, (tuple, list))
    return True


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def is_bool_field(cls, name: str) -> bool:
    """Whether field `name` of dataclass `cls` holds true / false (optionally null)."""
    return any(f.name == name and _parts(f.type)[0] == "bool" for f in dataclasses.fields(cls))


def check_types(obj, where: str = "") -> None:
    """One-line InterpError for the first field of dataclass `obj` whose value is not of its type
    (ranges, NaN included, are the class's own checks). `where` names the source, e.g. "in runs/x/cfg.json"."""
    at = f" {where}" if where else ""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        base, optional = _parts(f.type)
        if base is None or (v is None and optional):
            continue
        if not _ok(base, v):
            want = base + (" or null" if optional else "")
            raise InterpError(f"field {f.name}{at} must be {want}, not {type(v).__name__} {str(v)[:40]!r}")


def parse_value(cls, name: str, text, where: str = "") -> object:
    """`text` (a grid value) as the type of field `name` of dataclass `cls`: one line naming the
    field if there is no such field or the text is not of its type."""
    at = f" {where}" if where else ""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise InterpError(f"{name}{at} is not a field; fields are {', '.join(fields)}")
    if not isinstance(text, str):
        return text
    base, optional = _parts(fields[name].type)
    t = text.strip()
    if optional and t.lower() in ("none", "null"):
        return None
    try:
        if base == "int":
            return int(t)
        if base == "float":
            v = float(t)
            if not math.isfinite(v):
                raise ValueError
            return v
        if base == "bool":
            low = t.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
    except ValueError:
        kind = {"int": "an integer", "float": "a finite number", "bool": "true or false"}[base]
        raise InterpError(f"{name}={t[:40]!r}{at}: expected {kind}") from None
    return t


def _duration(seconds: float) -> str:
    for unit, s in (("years", 365 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= s:
            return f"{seconds / s:,.0f} {unit}"
    return f"{seconds:.0f} seconds"


def check_count(flag: str, n, hi: int, lo: int = 1, rate: float | None = None, what: str = "") -> None:
    """One line unless ``lo <= n <= hi``; above `hi`, with the time it would take at `rate` units per
    second (the order of magnitude measured on a CPU), so a typo such as 1e12 is answered at once."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise InterpError(f"{flag} {n!r}: expected an integer")
    if n < lo:
        raise InterpError(f"{flag} {n:,}: must be at least {lo:,}")
    if n > hi:
        est = f"; at about {rate:,.0f} {what} per second that is {_duration(n / rate)}" if rate else ""
        raise InterpError(f"{flag} {n:,} is above the limit of {hi:,}{est}")
