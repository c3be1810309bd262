"""Token batches with a mask of the positions that count (no BOS, no padding), shared by feature
selection, the direction baseline and the evaluations."""

from __future__ import annotations

from typing import Iterator

import torch
from jaxtyping import Bool, Int
from transformer_lens.model_bridge import TransformerBridge


def token_batches(
    model: TransformerBridge, texts: list[str], batch_size: int = 32
) -> Iterator[tuple[Int[torch.Tensor, "b p"], Bool[torch.Tensor, "b p"]]]:
    """Right-padded BOS-prefixed tokens (cut to n_ctx) and a mask that is True on real,
    non-BOS positions, on the model's device."""
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        rows = [model.to_tokens(t)[0, : model.cfg.n_ctx] for t in chunk]
        n = max(len(r) for r in rows)
        pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
        dev = rows[0].device  # the model's device (to_tokens puts tokens there)
        toks_BP = torch.full((len(rows), n), pad, dtype=torch.long, device=dev)
        mask_BP = torch.zeros(len(rows), n, dtype=torch.bool, device=dev)
        for j, r in enumerate(rows):
            toks_BP[j, : len(r)] = r
            mask_BP[j, 1 : len(r)] = True
        yield toks_BP, mask_BP


def first_token(model: TransformerBridge, s: str) -> int:
    """The first token id of `s` (no BOS)."""
    return int(model.to_tokens(s, prepend_bos=False)[0, 0])


def last_positions(mask_BP: Bool[torch.Tensor, "b p"]) -> Bool[torch.Tensor, "b p"]:
    """A mask with only each row's last counted position (the one that predicts the completion)."""
    last = mask_BP.sum(1)
    out = torch.zeros_like(mask_BP)
    out[torch.arange(len(last), device=mask_BP.device), last] = True
    return out
