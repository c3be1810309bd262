"""Offline feature labels, from what the statistics already hold.

* Concept labels (``colors (F1 0.62)``) only where the corpus defines concepts: the embedded world
  corpus marks every token inside a fact sentence with that fact's category (`ConceptMatcher`);
  a feature gets the category its firing tracks best when that F1 (interp.features.firing) is at
  least ``min_f1``.
* Everywhere else (and below that F1): the input side and the output side together,
  ``' the' ' a' → ' cat' ' horse' ' bear'``: its most common top-activating tokens, then the
  tokens it promotes most through the unembedding. A feature that fires on "the" before an
  animal and promotes animals is then labelled by both, not by "the" alone.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from interp.data import corpus as C

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge

DEAD = "dead (never fired)"


class ConceptMatcher:
    """Marks tokens that lie inside a fact sentence of each concept category of the embedded corpus.

    A fact sentence is ``fact_prompt(...).text + answer + "."``; it is matched as a token
    subsequence (with and without a leading space), so it works on any packed token rows."""

    def __init__(self, model: TransformerBridge):
        tok = model.tokenizer
        self.categories = list(C.CATEGORIES)
        self._by_start: dict[tuple[int, int], list[tuple[tuple[int, ...], int]]] = {}
        for ci, cat in enumerate(self.categories):
            for t in range(len(C.FACT_TEMPLATES[cat])):
                for i in range(len(C.FACTS[cat])):
                    p = C.fact_prompt(cat, i, t)
                    s = p.text + p.answer + "."
                    for variant in (" " + s, s):
                        ids = tuple(tok(variant, add_special_tokens=False)["input_ids"])
                        if len(ids) >= 2:
                            self._by_start.setdefault(ids[:2], []).append((ids, ci))

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T] category index, -1 outside fact sentences (on rows' device)."""
        out = torch.full(rows.shape, -1, dtype=torch.long)
        for b, row in enumerate(rows.tolist()):
            for i in range(len(row) - 1):
                cands = self._by_start.get((row[i], row[i + 1]))
                if not cands:
                    continue
                for ids, ci in cands:
                    if tuple(row[i : i + len(ids)]) == ids:
                        out[b, i : i + len(ids)] = ci
                        break
        return out.to(rows.device)


class Labels(NamedTuple):
    text: list[str]  # the label shown everywhere
    f1: list[float]  # concept F1 of the label (0 when it is not a concept label)
    inputs: list[list[str]]  # input side: most common top-activating tokens
    outputs: list[list[str]]  # output side: most promoted tokens


def make_labels(count: Tensor, centre_FK: Tensor, top_vals_FK: Tensor, vocab: list[str], categories: list[str],
                concept_f1: Tensor | None, promoted_ids: Tensor | None, min_f1: float, n_tokens: int = 3) -> Labels:
    """Labels for F features. `centre_FK` are the token ids at the peak of each top context,
    `top_vals_FK` their values (> 0 = real); `concept_f1` [F, C] or None when the corpus defines
    no concepts; `promoted_ids` [F, n] top promoted token ids or None without logit effects."""
    F = len(count)
    text, f1s, ins, outs = [], [], [], []
    best_f1, best_c = (concept_f1.max(1) if concept_f1 is not None and concept_f1.shape[1] else (None, None))
    for i in range(F):
        ids = [int(x) for x, v in zip(centre_FK[i].tolist(), top_vals_FK[i].tolist()) if v > 0 and x >= 0]
        inp = [vocab[x] for x, _ in Counter(ids).most_common(n_tokens)]
        out = [vocab[int(x)] for x in promoted_ids[i][:n_tokens].tolist()] if promoted_ids is not None else []
        ins.append(inp)
        outs.append(out)
        if count[i] == 0:
            text.append(DEAD)
            f1s.append(0.0)
        elif best_f1 is not None and float(best_f1[i]) >= min_f1:
            text.append(f"{categories[int(best_c[i])]} (F1 {float(best_f1[i]):.2f})")
            f1s.append(float(best_f1[i]))
        else:
            side_in = " ".join(repr(s) for s in inp)
            text.append(f"{side_in} → {' '.join(repr(s) for s in out)}" if out else f"tokens: {side_in}")
            f1s.append(float(best_f1[i]) if best_f1 is not None else 0.0)
    return Labels(text, f1s, ins, outs)
