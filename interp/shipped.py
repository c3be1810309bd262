"""The models that ship inside the package, as plain data (no torch, no TransformerLens), so that
a model picker can list them without importing a model library. `interp.models` loads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent


@dataclass(frozen=True)
class ShippedModel:
    """A model that ships inside the package."""

    name: str  # the name users type (`--model embedded-attn`)
    dirname: str  # its directory under interp/
    build: str  # the command that (re)builds it

    @property
    def path(self) -> Path:
        return PACKAGE_DIR / self.dirname


SHIPPED = {
    m.name: m
    for m in (
        ShippedModel("embedded", "embedded", "interp build-default"),
        ShippedModel("embedded-attn", "embedded_attn", "interp build-default --attn-only"),
    )
}
