"""What an attribution graph explains: logit nodes, each a direction in the final normalised residual.

As circuit-tracer's `AttributionTargets` (0.5.0, `attribution/targets.py`):

* salient logits (the default): the smallest set of top tokens whose probabilities sum to
  `desired_logit_prob` (0.95), at most `max_n_logits` (10); each node's weight is its probability
  and its direction the demeaned unembedding column ``W_U[:, t] - mean_v W_U[:, v]``;
* given tokens: the same, for tokens the user names (each must be exactly one token);
* a custom direction, here a logit difference ``logit(a) - logit(b)`` (IOI's metric): direction
  ``W_U[:, a] - W_U[:, b]``, weight 1, vocabulary id ``vocab_size + i`` (circuit-tracer's virtual index).

Deviation (notation only): circuit-tracer injects these directions at the unembedding's input, the
output of ``ln_final`` with its affine weights applied; we inject at ``ln_final.hook_normalized``
(before them), so every direction is multiplied by ``ln_final``'s weight ``w_f`` (``U = diag(w_f)
W_U``). The edge weights are the same numbers; on a model whose LayerNorms are folded (as in the
peer check) the two hook points coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.errors import InterpError


@dataclass
class Targets:
    """The logit nodes of a graph."""

    labels: list[str]  # token text, or "logit(a)-logit(b)"
    ids: list[int]  # vocabulary ids (vocab_size + i for a custom direction)
    probabilities: torch.Tensor  # [k] node weights
    vectors: torch.Tensor  # [k, d_model] directions at ln_final.hook_normalized


def unembed_directions(model) -> torch.Tensor:
    """[d_model, d_vocab] d logit / d ``ln_final.hook_normalized``: diag(w_f) W_U (W_U alone when the
    final norm has no weight, e.g. a folded LNPre)."""
    W_U = model.W_U.detach().float()
    ln = getattr(model, "ln_final", None)
    w = getattr(ln, "w", None) if ln is not None else None
    if w is None and ln is not None:
        w = getattr(ln, "weight", None)
    if w is None:
        return W_U
    w = w.detach().float()
    if getattr(model.cfg, "rmsnorm_uses_offset", False):  # Gemma-style norms multiply by (1 + w)
        w = 1.0 + w
    return w[:, None] * W_U


def single_token(model, text: str) -> int:
    """The id of `text` when it is exactly one token; otherwise a one-line `InterpError` with its tokenisation."""
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise InterpError(f"target {text!r} is {len(ids)} tokens, not one: {pieces!r} (ids {ids}); give a single token, "
                          "e.g. with its leading space")
    return int(ids[0])


def salient_targets(logits: torch.Tensor, U: torch.Tensor, tokenizer, max_n_logits: int = 10,
                    desired_logit_prob: float = 0.95) -> Targets:
    """circuit-tracer's `_from_salient` (module docstring); `logits` [d_vocab] at the last position."""
    probs = torch.softmax(logits.float(), dim=-1)
    top_p, top_idx = torch.topk(probs, min(max_n_logits, len(probs)))
    cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), desired_logit_prob)) + 1
    return token_targets(top_idx[:cutoff].tolist(), logits, U, tokenizer)


def token_targets(ids: list[int], logits: torch.Tensor, U: torch.Tensor, tokenizer) -> Targets:
    """circuit-tracer's `_from_indices`: probability and demeaned unembedding direction of each id."""
    probs = torch.softmax(logits.float(), dim=-1)
    idx = torch.tensor(ids, dtype=torch.long)
    vecs = (U[:, idx] - U.mean(dim=-1, keepdim=True)).T
    return Targets([tokenizer.decode([i]) for i in ids], list(map(int, ids)), probs[idx], vecs)


def difference_target(a: int, b: int, U: torch.Tensor, tokenizer, vocab_size: int) -> Targets:
    """One custom node: the direction of logit(a) - logit(b), weight 1."""
    label = f"logit({tokenizer.decode([a])})-logit({tokenizer.decode([b])})"
    return Targets([label], [vocab_size], torch.ones(1), (U[:, a] - U[:, b])[None])


def resolve_targets(model, logits_last: torch.Tensor, target: list[str] | None = None, diff: tuple[str, str] | None = None,
                    max_n_logits: int = 10, desired_logit_prob: float = 0.95) -> Targets:
    """Targets from the user's request: `diff` (a logit difference), else `target` tokens, else salient logits."""
    U = unembed_directions(model).to(logits_last.device)
    if diff is not None and target:
        raise InterpError("give either target tokens or a logit difference, not both")
    if diff is not None:
        return difference_target(single_token(model, diff[0]), single_token(model, diff[1]), U, model.tokenizer, U.shape[1])
    if target:
        return token_targets([single_token(model, t) for t in target], logits_last, U, model.tokenizer)
    return salient_targets(logits_last, U, model.tokenizer, max_n_logits, desired_logit_prob)
