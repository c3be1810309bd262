"""Adversarial prompts for the embedded fact categories: ask for a concept indirectly.

SAUCE (2025) checks that an unlearned concept stays forgotten when it is asked for in ways the
feature selection never saw. For each fact of a category (`corpus.FACTS`) this builds, by code:

* ``template``: new phrasings that are in no corpus template (e.g. "Look at a lemon: its color is");
* ``synonym``: the first corpus template with its description reworded by a fixed synonym table
  ("a ripe banana" -> "one mature banana");
* ``context``: an unrelated filler sentence, then the held-out paraphrase template (a distracting
  prefix the model never saw before that template).

None of these prompts is used to choose features or settings; they are a held-out test only. The
embedded model was trained on the corpus templates, so its base accuracy here is lower than on the
corpus templates (a few candidate phrasings it could not complete at all, e.g. "{D} has the color",
were replaced: a prompt the model never answered cannot show forgetting); unlearning is judged on
the drop from that base.
"""

from __future__ import annotations

import random
import re

from interp.data.corpus import FACT_TEMPLATES, FACTS, FILLER, Prompt

KINDS = ("template", "synonym", "context")

NEW_TEMPLATES: dict[str, tuple[str, ...]] = {
    "colors": ("The color that {d} has is", "Look at {d}: its color is"),
    "animals": ("There is an animal that {d}. It is the", "The creature that {d} is the"),
    "sports": ("The sport that people play {d} is", "A popular sport played {d} is"),
    "emotions": ("Someone who {d} will feel", "After a person {d}, that person feels"),
    "materials": ("{D} is mostly made of", "What is {d} made of? It is made of"),
    "foods": ("The dish that is {d} is called", "We ate {d}, which is called"),
}

SYNONYMS = {
    "a": "one", "an": "one", "the": "that", "ripe": "mature", "fresh": "new", "small": "little", "big": "large",
    "long": "lengthy", "round": "circular", "sweet": "sugary", "thin": "narrow", "heavy": "weighty", "high": "tall",
    "quiet": "silent", "dear": "close", "lovely": "nice", "strange": "odd", "hard": "tough", "cooked": "prepared",
    "baked": "made", "says": "goes", "eats": "munches", "makes": "produces", "has": "owns", "thick": "dense",
}


def _reword(d: str) -> str:
    return " ".join(SYNONYMS.get(w, w) for w in d.split(" "))


def _fill(t: str, d: str) -> str:
    return t.format(d=d, D=d[0].upper() + d[1:])


def adversarial_prompts(category: str, facts: list[int] | None = None, seed: int = 0) -> list[Prompt]:
    """The adversarial set of `category` (module docstring), for the given fact indices (all by
    default); `meta` holds category, fact, kind. Deterministic in `seed` (the context fillers)."""
    if category not in FACTS:
        raise ValueError(f"no adversarial prompts for {category!r}; known: {', '.join(FACTS)}")
    rng = random.Random(seed)
    last = FACT_TEMPLATES[category][-1]
    out = []
    for i in range(len(FACTS[category])) if facts is None else facts:
        d, a = FACTS[category][i]
        meta = {"category": category, "fact": i}
        for t in NEW_TEMPLATES[category]:
            out.append(Prompt(_fill(t, d), " " + a, {**meta, "kind": "template"}))
        syn = _reword(d)
        if syn != d:
            out.append(Prompt(_fill(FACT_TEMPLATES[category][0], syn), " " + a, {**meta, "kind": "synonym"}))
        out.append(Prompt(rng.choice(FILLER) + " " + _fill(last, d), " " + a, {**meta, "kind": "context"}))
    return [p for p in out if not re.search(r"\s{2,}", p.text)]
