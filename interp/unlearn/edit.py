"""Inference-time unlearning: edit chosen SAE latents inside hooks; the model's weights never change.

The edits are `interp.edits.LatentEdit`s (the project's one vocabulary: zero / scale / set / clamp,
optionally conditional), applied through `interp.hooks.sae_edit`, which keeps the SAE error term:
x' = x + decode(edit(encode(x))) - decode(encode(x)), so only the edited features move. Unlearning
uses

    clamp:  a_i -> -multiplier * typical_i   where a_i > 0 (active), else unchanged

(`typical_i` = the feature's mean activation on forget tokens where active; Farrell et al., 2024
clamp to a fixed negative value, here it is relative so one multiplier fits every feature.) With
`detectors` the edit applies only at positions where one of the concept's detector features
fires (conditional clamping, SAUCE).

An `UnlearnSpec` names SAE directories, hooks, features and the intervention; it saves to JSON
and re-applies with one call::

    spec = UnlearnSpec.load("colors.json")
    with apply_spec(model, spec):
        logits = model(tokens)   # the model with "colors" forgotten; hooks removed on exit
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from transformer_lens.model_bridge import TransformerBridge

from interp.edits import MODES, Condition, LatentEdit, edit_hook
from interp.errors import InterpError
from interp.io import atomic_write_json, check_parent_writable
from interp.unlearn import saes as S

METHODS = MODES  # zero | scale | set | clamp (interp.edits)


@dataclass
class FeatureEdit:
    """The features edited at one SAE."""

    sae_dir: str  # SAE directory (SAELens format)
    hook: str  # hook spec the SAE reads, e.g. blocks.2.hook_resid_post (must match its cfg metadata)
    features: list[int]  # latent indices
    typical: list[float]  # typical activation of each feature (the clamp's unit)
    labels: list[str] = field(default_factory=list)  # human-readable label per feature (informational)
    detectors: list[int] = field(default_factory=list)  # conditional edit: only where one of these fires; []: everywhere

    def __post_init__(self):
        if len(self.typical) != len(self.features):
            raise InterpError(f"edit at {self.hook}: {len(self.features)} features but {len(self.typical)} typical activations")
        if not self.features:
            raise InterpError(f"edit at {self.hook} names no features")


@dataclass
class UnlearnSpec:
    """Everything needed to re-apply an unlearning: which features, where, and how."""

    edits: list[FeatureEdit]  # one per SAE
    method: str = "clamp"  # zero | scale | clamp
    value: float = 20.0  # clamp: multiplier of the typical activation; scale: factor; zero: ignored
    concepts: list[str] = field(default_factory=list)  # names of the forgotten concepts (informational)
    model: str = "embedded"  # the model the features were chosen on (informational)

    def __post_init__(self):
        if self.method not in METHODS:
            raise InterpError(f"unknown SAE intervention {self.method!r}; use one of {', '.join(METHODS)}")
        if not self.edits:
            raise InterpError("an unlearning spec needs at least one SAE edit")
        self.edits = [e if isinstance(e, FeatureEdit) else FeatureEdit(**e) for e in self.edits]

    def latent_edits(self, e: FeatureEdit) -> list[LatentEdit]:
        """The `interp.edits` form of one SAE's edit."""
        cond = Condition(tuple(e.detectors)) if e.detectors else None
        return [LatentEdit(self.method, e.features, self.value, e.typical, cond)]

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically; refuses a directory path (one-line error)."""
        p = check_parent_writable(path, "spec file")
        if p.is_dir():
            raise InterpError(f"spec file {p} is a directory; give a file path (nothing was changed)")
        return atomic_write_json(p, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "UnlearnSpec":
        p = Path(path)
        if not p.is_file():
            raise InterpError(f"unlearning spec {p} does not exist")
        try:
            d = json.loads(p.read_text())
            return cls(**d)
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError, AttributeError) as e:
            raise InterpError(f"{p} is not an unlearning spec: {str(e).splitlines()[0][:160]}") from None


def merge_specs(specs: list[UnlearnSpec]) -> UnlearnSpec:
    """One spec forgetting several concepts: edits at the same SAE are united (the larger typical
    activation wins for a shared feature). All specs must use the same method and value."""
    if len({(s.method, s.value) for s in specs}) > 1:
        raise InterpError("specs to merge must use the same method and value")
    by_sae: dict[tuple[str, str], dict[int, tuple[float, str]]] = {}
    detectors: dict[tuple[str, str], list[int]] = {}
    for s in specs:
        for e in s.edits:
            det = detectors.setdefault((e.sae_dir, e.hook), [])
            det.extend(x for x in e.detectors if x not in det)
            d = by_sae.setdefault((e.sae_dir, e.hook), {})
            labels = e.labels or [""] * len(e.features)
            for f, t, lab in zip(e.features, e.typical, labels):
                if f not in d or t > d[f][0]:
                    d[f] = (t, lab)
    edits = [FeatureEdit(sd, h, list(d), [v[0] for v in d.values()], [v[1] for v in d.values()], detectors[(sd, h)])
             for (sd, h), d in by_sae.items()]
    return UnlearnSpec(edits, specs[0].method, specs[0].value, [c for s in specs for c in s.concepts], specs[0].model)


def spec_hooks(model: TransformerBridge, spec: UnlearnSpec, saes: dict | None = None) -> list[tuple[str, Callable]]:
    """TransformerLens (name, hook) pairs for a spec, after checking every SAE fits the model, its
    hook, and that every named feature exists. `saes` maps sae_dir -> loaded SAE (loaded if absent)."""
    saes = {} if saes is None else saes
    hooks = []
    for e in spec.edits:
        sae = saes.get(e.sae_dir)
        if sae is None:
            sae = saes[e.sae_dir] = S.load(e.sae_dir, model)
        hs = S.check_fits(model, sae, e.hook, path=e.sae_dir)
        S.check_features(sae, e.features, path=e.sae_dir)
        hooks.append((hs.name, edit_hook(sae, spec.latent_edits(e), head=hs.head)))
    return hooks


@contextlib.contextmanager
def apply_spec(model: TransformerBridge, spec: UnlearnSpec | str | Path, saes: dict | None = None) -> Iterator[TransformerBridge]:
    """Run forwards inside the block with the spec's features edited; hooks are removed on exit."""
    if not isinstance(spec, UnlearnSpec):
        spec = UnlearnSpec.load(spec)
    with model.hooks(fwd_hooks=spec_hooks(model, spec, saes)):
        yield model
