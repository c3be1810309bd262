"""The one vocabulary for editing SAE latents (prompt lab, unlearning, anything else).

A `LatentEdit` changes some latents a_i of one SAE, at every position or only where a
`Condition` holds. Its modes:

    zero:   a_i -> 0
    scale:  a_i -> value * a_i
    set:    a_i -> value                              (every counted position)
    clamp:  a_i -> -value * typical_i   where a_i > 0, else unchanged

`clamp` is the negative clamp of Farrell et al. (2024) / SAUCE: an active feature is pushed to a
negative multiple of its typical activation (`typical_i`, default 1, so `value` is then an absolute
magnitude). A `Condition` (detector features and a threshold) limits the edit to positions where
any detector latent exceeds the threshold *before* editing ("conditional clamping").

`edit_hook(sae, edits)` turns edits into a TransformerLens hook on top of `interp.hooks.sae_edit`,
which keeps the SAE error term, x' = x + decode(edit(encode(x))) - decode(encode(x)), so only the
edited features move; use it inside `model.hooks(...)` or `interp.hooks.intervene`::

    e = LatentEdit("clamp", [12, 40], value=2.0, typical=[3.1, 0.8])
    with intervene(model, [(hook_name, edit_hook(sae, [e]))]):
        logits = model(tokens)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from jaxtyping import Float

from interp.errors import InterpError

MODES = ("zero", "scale", "set", "clamp")


@dataclass(frozen=True)
class Condition:
    """Edit only at positions where one of these detector latents is active."""

    features: tuple[int, ...]  # detector latent indices (same SAE as the edit)
    threshold: float = 0.0  # a position qualifies if any detector latent is > threshold (before editing)

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(int(f) for f in self.features))
        if not self.features:
            raise InterpError("a condition needs at least one detector feature")
        if self.threshold != self.threshold:
            raise InterpError("a condition's threshold must be a number, not nan")

    def mask(self, f: Float[torch.Tensor, "... d_sae"]) -> torch.Tensor:
        """[...] True where any detector latent exceeds the threshold."""
        idx = torch.tensor(self.features, dtype=torch.long, device=f.device)
        return (f[..., idx] > self.threshold).any(-1)


@dataclass
class LatentEdit:
    """An edit of some latents of one SAE (module docstring)."""

    mode: str  # zero | scale | set | clamp
    features: list[int]  # latent indices
    value: float = 0.0  # scale: factor; set: the value; clamp: multiple of `typical`; zero: ignored
    typical: list[float] | None = None  # clamp: each feature's unit (e.g. its mean activation where active); None: 1
    condition: Condition | None = None  # only where detector features fire; None: everywhere

    def __post_init__(self):
        if self.mode not in MODES:
            raise InterpError(f"unknown latent edit {self.mode!r}; use one of {', '.join(MODES)}")
        self.features = [int(f) for f in self.features]
        if not self.features:
            raise InterpError(f"a {self.mode} edit names no features")
        if self.value != self.value or abs(self.value) == float("inf"):
            raise InterpError(f"{self.mode} edit: value must be a finite number, not {self.value}")
        if self.typical is not None:
            self.typical = [float(t) for t in self.typical]
            if len(self.typical) != len(self.features):
                raise InterpError(f"{self.mode} edit: {len(self.features)} features but {len(self.typical)} typical activations")
        if isinstance(self.condition, dict):
            self.condition = Condition(**self.condition)

    def check(self, d_sae: int, what: str = "this SAE") -> None:
        """One-line error if a feature (or detector) index is outside 0..d_sae-1."""
        for f in [*self.features, *(self.condition.features if self.condition else ())]:
            if not 0 <= f < d_sae:
                raise InterpError(f"feature {f} does not exist: {what} has {d_sae} features (0..{d_sae - 1})")

    def apply(self, f: Float[torch.Tensor, "... d_sae"], before: Float[torch.Tensor, "... d_sae"] | None = None) -> torch.Tensor:
        """Edit latents `f` in place and return them. `before` (default `f`) are the unedited latents
        the condition reads, so several edits in a row all see the original activations."""
        before = f if before is None else before
        idx = torch.tensor(self.features, dtype=torch.long, device=f.device)
        sel = f[..., idx]
        if self.mode == "zero":
            new = torch.zeros_like(sel)
        elif self.mode == "scale":
            new = sel * self.value
        elif self.mode == "set":
            new = torch.full_like(sel, self.value)
        else:
            typ = torch.ones(len(self.features)) if self.typical is None else torch.tensor(self.typical)
            new = torch.where(sel > 0, (-self.value * typ).to(sel.device, sel.dtype).expand_as(sel), sel)
        if self.condition is not None:
            new = torch.where(self.condition.mask(before)[..., None], new, sel)
        f[..., idx] = new
        return f


def apply_edits(f: Float[torch.Tensor, "... d_sae"], edits: Sequence[LatentEdit]) -> torch.Tensor:
    """All `edits` applied in order to latents `f` (in place); conditions read the unedited latents."""
    before = f.clone() if any(e.condition is not None for e in edits) else f
    for e in edits:
        e.apply(f, before)
    return f


def edit_hook(sae, edits: Sequence[LatentEdit], head: int | None = None) -> Callable:
    """A TransformerLens hook that applies `edits` to `sae`'s latents, keeping the error term
    (`interp.hooks.sae_edit`). Indices are checked against the SAE first (one-line error)."""
    from interp.hooks import sae_edit

    edits = list(edits)
    for e in edits:
        e.check(int(sae.cfg.d_sae))
    return sae_edit(sae, lambda f: apply_edits(f, edits), head=head)

