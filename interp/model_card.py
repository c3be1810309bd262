"""Held-out behaviour of a model on the embedded corpus' tasks: the numbers in `model_card.json`.

* IOI accuracy: the indirect object's logit beats the subject's; mean logit difference IO - S.
* greater-than probability difference: sum of P(YY' > YY) minus sum of P(YY' <= YY) over the
  two-digit year tokens, at the end-year position (Hanna et al., 2023).
* docstring accuracy: the argmax next token after the last ``:param`` is the right argument.
* fact accuracy per category: the argmax next token is the first token of the answer.
* loss: mean next-token cross-entropy on held-out corpus documents.

Every tensor is made on the model's device, so the card evaluates a CUDA model in place.
"""

from __future__ import annotations

import torch
from transformer_lens.model_bridge import TransformerBridge

from interp.data import corpus as C
from interp.device import device_of


def _first_token(model: TransformerBridge, s: str) -> int:
    return int(model.to_tokens(s, prepend_bos=False)[0, 0])


@torch.no_grad()
def last_logits(model: TransformerBridge, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """Logits at the last real token of each text (right padding handled) -> [n, d_vocab]."""
    out = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        toks = model.to_tokens(chunk, padding_side="right")
        dev = device_of(model)
        lengths = torch.tensor([model.to_tokens(t).shape[1] for t in chunk], device=dev)
        logits = model(toks.to(dev))
        out.append(logits[torch.arange(len(chunk), device=dev), lengths - 1])
    return torch.cat(out)


def year_token_ids(model: TransformerBridge) -> torch.Tensor:
    """Token ids of "00".."99" (without a leading space), in order."""
    return torch.tensor([_first_token(model, f"{y:02d}") for y in range(100)], device=device_of(model))


@torch.no_grad()
def evaluate(model: TransformerBridge, n: int = 200, docs: list[str] | None = None) -> dict:
    """All model-card numbers on held-out prompts (seed `corpus.HELDOUT_SEED`)."""
    card: dict = {}
    dev = device_of(model)
    ioi = C.ioi_prompts(n)
    lg = last_logits(model, [p.text for p in ioi])
    io = torch.tensor([_first_token(model, " " + p.meta["io"]) for p in ioi], device=dev)
    s = torch.tensor([_first_token(model, " " + p.meta["s"]) for p in ioi], device=dev)
    ar = torch.arange(len(ioi), device=dev)
    diff = lg[ar, io] - lg[ar, s]
    card["ioi_accuracy"] = float((diff > 0).float().mean())
    card["ioi_logit_diff"] = float(diff.mean())

    yrs = C.year_prompts(n)
    probs = last_logits(model, [p.text for p in yrs]).softmax(-1)[:, year_token_ids(model)]
    pd = [float(pr[p.meta["start"] + 1 :].sum() - pr[: p.meta["start"] + 1].sum()) for p, pr in zip(yrs, probs)]
    card["greater_than_prob_diff"] = sum(pd) / len(pd)

    ds = C.docstring_prompts(n)
    pred = last_logits(model, [p.text for p in ds]).argmax(-1)
    ans = torch.tensor([_first_token(model, p.answer) for p in ds], device=dev)
    card["docstring_accuracy"] = float((pred == ans).float().mean())

    facts = {}
    for cat in C.CATEGORIES:
        ps = C.fact_prompts(cat)
        pred = last_logits(model, [p.text for p in ps]).argmax(-1)
        ans = torch.tensor([_first_token(model, p.answer) for p in ps], device=dev)
        facts[cat] = float((pred == ans).float().mean())
    card["fact_accuracy"] = facts

    if docs:
        losses = []
        for i in range(0, len(docs), 32):
            toks = model.to_tokens(docs[i : i + 32], padding_side="right")[:, : model.cfg.n_ctx].to(dev)
            mask = toks != model.tokenizer.pad_token_id
            mask[:, 0] = True  # BOS shares the pad id; it is a real input
            logits = model(toks).float()
            lp = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), toks[:, 1:].flatten(), reduction="none")
            m = mask[:, 1:].flatten().float()
            losses.append((lp * m).sum() / m.sum())
        card["heldout_loss"] = float(torch.stack(losses).mean())
    return card


TARGETS = {"ioi_accuracy": 0.95, "docstring_accuracy": 0.9, "fact_accuracy": 0.9, "greater_than_prob_diff": 0.6}


def meets_targets(card: dict) -> dict[str, bool]:
    return {
        "ioi_accuracy": card["ioi_accuracy"] >= TARGETS["ioi_accuracy"],
        "docstring_accuracy": card["docstring_accuracy"] >= TARGETS["docstring_accuracy"],
        "fact_accuracy": all(v >= TARGETS["fact_accuracy"] for v in card["fact_accuracy"].values()),
        "greater_than_prob_diff": card["greater_than_prob_diff"] >= TARGETS["greater_than_prob_diff"],
    }
