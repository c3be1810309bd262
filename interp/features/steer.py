"""Steering with one SAE feature: greedy text with the feature added or clamped, beside the
unsteered text (Neuronpedia's steering view, Templeton et al. 2024's feature clamping).

Both modes edit the feature's latent through `interp.hooks.sae_edit`, which keeps the SAE error
term, so only the feature moves, at every position of the prompt and of the generated text:

    add:    a_i -> a_i + s        (the activation gains s * W_dec[i])
    clamp:  a_i -> s              (the feature held at s everywhere)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.errors import InterpError

MODES = ("add", "clamp")


@dataclass
class Steered:
    """Greedy continuations of one prompt, unsteered and steered."""

    prompt: str
    unsteered: str  # the generated text only (without the prompt)
    steered: str
    feature: int
    mode: str
    strength: float
    hook: str


@torch.no_grad()
def greedy(model, tokens: torch.Tensor, n_tokens: int, hooks=()) -> list[int]:
    """`n_tokens` greedy next tokens after `tokens` [1, T], with `hooks` (name, fn) active; the
    context is cut to the model's n_ctx from the left."""
    from interp.hooks import intervene

    out: list[int] = []
    toks = tokens
    with intervene(model, list(hooks)):
        for _ in range(n_tokens):
            nxt = int(model(toks[:, -model.cfg.n_ctx:])[0, -1].argmax())
            out.append(nxt)
            toks = torch.cat([toks, torch.tensor([[nxt]], device=toks.device)], dim=1)
    return out


def steer(model, sae, prompt: str, feature: int, mode: str = "add", strength: float = 4.0, n_tokens: int = 20) -> Steered:
    """Greedy text after `prompt` with `feature` of `sae` added (`mode="add"`) or clamped at `strength`,
    and without; one-line errors for a bad feature, mode, strength or length before any run."""
    from interp.hooks import parse_hook, sae_edit
    from interp.prompt_lab import prepare
    from interp.sae.io import sae_hook

    d_sae = int(sae.cfg.d_sae)
    if mode not in MODES:
        raise InterpError(f"unknown steering mode {mode!r}; use one of {', '.join(MODES)}")
    if not 0 <= int(feature) < d_sae:
        raise InterpError(f"feature {feature} does not exist: this SAE has {d_sae} features (0..{d_sae - 1})")
    if strength != strength or abs(strength) == float("inf"):
        raise InterpError(f"steering strength must be a finite number, not {strength}")
    if not 1 <= int(n_tokens) <= 200:
        raise InterpError(f"generate 1..200 tokens, not {n_tokens}")
    spec = parse_hook(model, sae_hook(sae))
    f = int(feature)

    def edit(lat: torch.Tensor) -> torch.Tensor:
        if mode == "add":
            lat[..., f] = lat[..., f] + strength
        else:
            lat[..., f] = strength
        return lat

    toks = prepare(model, prompt).tokens
    dec = model.tokenizer.decode
    plain = greedy(model, toks, int(n_tokens))
    steered = greedy(model, toks, int(n_tokens), [(spec.name, sae_edit(sae, edit, head=spec.head))])
    return Steered(prompt, dec(plain), dec(steered), f, mode, float(strength), str(spec))
