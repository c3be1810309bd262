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


def _task_metrics(model: TransformerBridge, ioi: list, yrs: list, ds: list) -> dict:
    """IOI accuracy and logit difference, greater-than probability difference and docstring
    accuracy on the given prompt lists (the definitions in the module docstring)."""
    card: dict = {}
    dev = device_of(model)
    lg = last_logits(model, [p.text for p in ioi])
    io = torch.tensor([_first_token(model, " " + p.meta["io"]) for p in ioi], device=dev)
    s = torch.tensor([_first_token(model, " " + p.meta["s"]) for p in ioi], device=dev)
    ar = torch.arange(len(ioi), device=dev)
    diff = lg[ar, io] - lg[ar, s]
    card["ioi_accuracy"] = float((diff > 0).float().mean())
    card["ioi_logit_diff"] = float(diff.mean())

    probs = last_logits(model, [p.text for p in yrs]).softmax(-1)[:, year_token_ids(model)]
    pd = [float(pr[p.meta["start"] + 1 :].sum() - pr[: p.meta["start"] + 1].sum()) for p, pr in zip(yrs, probs)]
    card["greater_than_prob_diff"] = sum(pd) / len(pd)

    pred = last_logits(model, [p.text for p in ds]).argmax(-1)
    ans = torch.tensor([_first_token(model, p.answer) for p in ds], device=dev)
    card["docstring_accuracy"] = float((pred == ans).float().mean())
    return card


@torch.no_grad()
def template_metrics(model: TransformerBridge, n: int, split: str, seed: int | None = None) -> dict:
    """The three task metrics on `n` corpus-v2 prompts per task from the template families of
    `split` ("seen" or "heldout", see `interp.data.corpus_v2`)."""
    from interp.data import corpus_v2 as V

    kw = {} if seed is None else {"seed": seed}
    return _task_metrics(model, *(V.task_prompts(t, n, split, **kw) for t in V.TASKS))


@torch.no_grad()
def evaluate(model: TransformerBridge, n: int = 200, docs: list[str] | None = None, corpus: str = "v1") -> dict:
    """All model-card numbers on held-out prompts (seed `corpus.HELDOUT_SEED`).

    corpus "v1": the v1 templates with held-out names and numbers. corpus "v2": the top-level task
    numbers are on the held-out template families (never in training), and `card["templates"]`
    holds both splits ("seen" families with new names/numbers, and "heldout")."""
    if corpus not in ("v1", "v2"):
        raise ValueError(f"unknown corpus version {corpus!r}; known: v1, v2")
    if corpus == "v1":
        card = _task_metrics(model, C.ioi_prompts(n), C.year_prompts(n), C.docstring_prompts(n))
    else:
        from interp.data import corpus_v2 as V

        splits = {sp: template_metrics(model, n, sp) for sp in V.SPLITS}
        card = dict(splits["heldout"])
        card["templates"] = splits
        card["template_families"] = {t: {sp: list(V.families(t, sp)) for sp in V.SPLITS} for t in V.TASKS}
        card["ioi_frames"] = {sp: V.n_frames(sp) for sp in V.SPLITS}
    card["corpus"] = corpus
    dev = device_of(model)

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


# Issue 25's targets for the corpus-v2 models, on held-out template families.
TARGETS_V2 = {"ioi_accuracy": 0.95, "ioi_logit_diff": 4.0, "greater_than_prob_diff": 0.7, "docstring_accuracy": 0.9,
              "fact_accuracy": 0.9}
ATTN_TARGETS_V2 = {"ioi_accuracy": 0.9, "docstring_accuracy": 0.8, "greater_than_prob_diff": 0.6}


def _value(card: dict, key: str) -> float:
    """A card number compared with its target; fact accuracy is the worst category's."""
    v = card[key]
    return min(v.values()) if isinstance(v, dict) else v


def meets_targets(card: dict, targets: dict | None = None) -> dict[str, bool]:
    """Per target key: the card's number reaches it (`TARGETS` by default)."""
    targets = TARGETS if targets is None else targets
    return {k: _value(card, k) >= t for k, t in targets.items()}


def target_misses(card: dict, targets: dict) -> dict[str, float]:
    """Per missed target: by how much the card's number falls short (target - value > 0)."""
    return {k: round(t - _value(card, k), 4) for k, t in targets.items() if _value(card, k) < t}


def target_line(card: dict, targets: dict) -> str:
    """One line for the end of a build: every target met, or each miss with its shortfall."""
    miss = target_misses(card, targets)
    where = " on held-out templates" if card.get("corpus") == "v2" else ""
    if not miss:
        return f"all {len(targets)} targets met{where}"
    return f"MISSES {len(miss)} of {len(targets)} targets{where}: " + ", ".join(
        f"{k} {_value(card, k):.3f} < {targets[k]} (short by {m:.3f})" for k, m in miss.items())
