"""Concepts to unlearn: forget prompts, retain prompts and held-out paraphrases.

A *concept* is three prompt sets (each a `corpus.Prompt`: text + expected completion):

* ``forget``: prompts whose completions should be forgotten; used to select features and to
  measure forget accuracy;
* ``retain``: prompts whose completions must survive (retain accuracy); also used, with
  held-out corpus text, as the "must not fire" side of feature selection;
* ``paraphrase``: other phrasings of the forget prompts, never used for selection (a held-out
  check that the concept, not a template, was forgotten);
* ``adversarial``: prompts written to elicit the concept indirectly (`interp.data.adversarial`),
  held out like the paraphrases.

The six embedded categories are built in: forget = the category's facts in templates 0 and 1,
paraphrase = its last template, adversarial = new templates, synonyms and distracting context,
retain = every other category in all templates. User concepts come from a file (see
`load_concept_file`).

`split_concept` cuts forget and retain prompts into selection / validation / test parts: features
are chosen on selection, the setting on validation, and every reported number comes from test. By
default prompts are split one by one (a fact's other template may sit in another part, as a
rephrased question about known knowledge); `by="fact"` keeps a fact and all its templates in one
part, so test asks about facts never seen at all (much harder for answer-specific features).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from interp.data import corpus as C
from interp.errors import InterpError

SELECT_TEMPLATES = (0, 1)  # templates of a built-in category used for feature selection


@dataclass(frozen=True)
class Concept:
    """Forget / retain / paraphrase prompt sets of one (or several merged) concepts."""

    name: str  # "colors", a file stem, or "colors+animals" for merged concepts
    forget: tuple[C.Prompt, ...]  # prompts to forget (feature selection + forget accuracy)
    retain: tuple[C.Prompt, ...]  # prompts to keep answering (retain accuracy)
    paraphrase: tuple[C.Prompt, ...] = ()  # held-out phrasings of the forget prompts
    adversarial: tuple[C.Prompt, ...] = ()  # held-out indirect prompts for the concept

    def __post_init__(self):
        if not self.forget:
            raise InterpError(f"concept {self.name!r} has no forget examples")
        overlap = {p.text for p in self.forget} & {p.text for p in self.retain}
        if overlap:
            raise InterpError(f"concept {self.name!r}: {len(overlap)} prompt(s) are in both the forget and retain sets, e.g. {sorted(overlap)[0]!r}")

    @property
    def parts(self) -> list[str]:
        return self.name.split("+")


def builtin_concept(name: str) -> Concept:
    """One of the embedded categories (`corpus.CATEGORIES`) as a ready-made concept."""
    if name not in C.FACTS:
        raise InterpError(f"unknown concept {name!r}: not a file and not one of {', '.join(C.CATEGORIES)}")
    from interp.data.adversarial import adversarial_prompts

    last = len(C.FACT_TEMPLATES[name]) - 1
    retain = tuple(p for other in C.CATEGORIES if other != name for p in C.fact_prompts(other))
    return Concept(name, tuple(C.fact_prompts(name, SELECT_TEMPLATES)), retain, tuple(C.fact_prompts(name, (last,))),
                   tuple(adversarial_prompts(name)))


def _answer(s: str | None) -> str:
    if not s:
        return ""
    return s if s[0].isspace() else " " + s


def load_concept_file(path: str | Path) -> Concept:
    """A user concept from a file, named after the file stem.

    * JSONL: one object per line, ``{"set": "forget"|"retain"|"paraphrase"|"adversarial", "text": ...,
      "answer": ...}`` (``answer`` optional);
    * text: section headers ``# forget``, ``# retain``, ``# paraphrase``, ``# adversarial`` and one prompt per
      line below them, optionally ``prompt<TAB>expected completion``.

    A completion gets a leading space unless it has one; prompts without one are used for
    selection but not for accuracy.
    """
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"concept file {p} does not exist")
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InterpError(f"concept file {p} is not UTF-8 text") from None
    except OSError as e:
        raise InterpError(f"cannot read concept file {p}: {e.strerror or e}") from None
    if "\x00" in raw:
        raise InterpError(f"concept file {p} is binary, not text")
    sets: dict[str, list[C.Prompt]] = {"forget": [], "retain": [], "paraphrase": [], "adversarial": []}
    if p.suffix in (".jsonl", ".json"):
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InterpError(f"{p}:{n}: not a JSON object ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("set") not in sets:
                raise InterpError(f'{p}:{n}: expected {{"set": "forget"|"retain"|"paraphrase"|"adversarial", "text": "...", "answer": "..."}}')
            sets[row["set"]].append(C.Prompt(row["text"], _answer(row.get("answer")), {"source": str(p)}))
    else:
        current = None
        for n, line in enumerate(raw.splitlines(), 1):
            head = line.strip().lower()
            if head.startswith("#"):
                current = head.lstrip("#").strip()
                if current not in sets:
                    raise InterpError(f"{p}:{n}: unknown section {current!r}; use # forget, # retain, # paraphrase or # adversarial")
                continue
            if not line.strip():
                continue
            if current is None:
                raise InterpError(f"{p}:{n}: a prompt before any '# forget' / '# retain' header")
            text, _, ans = line.partition("\t")
            sets[current].append(C.Prompt(text.rstrip(), _answer(ans.strip()), {"source": str(p)}))
    return Concept(p.stem, tuple(sets["forget"]), tuple(sets["retain"]), tuple(sets["paraphrase"]), tuple(sets["adversarial"]))


def resolve_concept(spec: str) -> Concept:
    """A built-in category name or a concept file path."""
    if Path(spec).is_file():
        return load_concept_file(spec)
    if spec in C.FACTS:
        return builtin_concept(spec)
    if Path(spec).suffix:
        raise InterpError(f"concept file {spec} does not exist")
    raise InterpError(f"unknown concept {spec!r}: not a file and not one of {', '.join(C.CATEGORIES)}")


def merge_concepts(concepts: list[Concept]) -> Concept:
    """Forget several concepts at once: the union of the forget (and paraphrase) sets; retain is
    every retain prompt that is not forgotten by any of them."""
    if len(concepts) == 1:
        return concepts[0]
    names = [c.name for c in concepts]
    if len(set(names)) != len(names):
        raise InterpError(f"concept given twice: {', '.join(names)}")
    forget = _dedup(p for c in concepts for p in c.forget)
    gone = {p.text for c in concepts for p in (*c.forget, *c.paraphrase)}
    retain = _dedup(p for c in concepts for p in c.retain if p.text not in gone)
    return Concept("+".join(names), forget, retain, _dedup(p for c in concepts for p in c.paraphrase),
                   _dedup(p for c in concepts for p in c.adversarial))


def thin_retain(concept: Concept, n: int) -> Concept:
    """The concept with at most `n` retain prompts, evenly spread over the retain set (0: all).
    Evaluation cost grows with the retain set; selection should still see all of it."""
    if n <= 0 or len(concept.retain) <= n:
        return concept
    idx = [round(i * (len(concept.retain) - 1) / (n - 1)) for i in range(n)] if n > 1 else [0]
    return replace(concept, retain=tuple(concept.retain[i] for i in idx))


def _dedup(ps) -> tuple[C.Prompt, ...]:
    seen, out = set(), []
    for p in ps:
        if p.text not in seen:
            seen.add(p.text)
            out.append(p)
    return tuple(out)


def retain_corpus(concept: Concept, n_docs: int = 32, seed: int = C.HELDOUT_SEED + 1, max_tries: int = 20_000) -> list[str]:
    """Held-out corpus documents that state none of the concept's forget facts (so a retain-loss
    rise measures collateral damage, not the forgetting itself)."""
    import random

    rng = random.Random(seed)
    gone = [p.text for p in (*concept.forget, *concept.paraphrase)]  # forget prompts of every split
    docs = []
    for _ in range(max_tries):
        if len(docs) >= n_docs:
            break
        d = C.document(rng)
        if not any(g in d for g in gone):
            docs.append(d)
    return docs


SPLITS = ("selection", "validation", "test")
SPLIT_FRACTIONS = (0.5, 0.25, 0.25)  # selection / validation / test share of the facts
MIN_PER_SPLIT = 2  # forget prompts (with a completion) each split needs at least


@dataclass(frozen=True)
class Splits:
    """One concept cut three ways (module docstring). Paraphrase and adversarial prompts stay whole
    and belong to `test` only (they are never seen by selection or tuning)."""

    selection: Concept  # features are chosen here
    validation: Concept  # the setting (features, strength) is chosen here
    test: Concept  # every reported number

    def __getitem__(self, name: str) -> Concept:
        return getattr(self, name)


SPLIT_BY = ("prompt", "fact")


def _group(p: C.Prompt, by: str) -> tuple:
    """With by="fact", prompts of the same fact (any template) share a group, so no fact is in two splits."""
    if by == "fact" and "fact" in p.meta:
        return (p.meta.get("category"), p.meta["fact"])
    return (p.text,)


def _split(prompts: tuple[C.Prompt, ...], fractions: tuple[float, ...], seed: int, by: str) -> list[tuple[C.Prompt, ...]]:
    groups: dict[tuple, list[C.Prompt]] = {}
    for p in prompts:
        groups.setdefault(_group(p, by), []).append(p)
    keys = sorted(groups, key=str)
    import random

    random.Random(seed).shuffle(keys)
    bounds, acc = [], 0.0
    for f in fractions:
        acc += f
        bounds.append(round(acc * len(keys)))
    parts, lo = [], 0
    for hi in bounds:
        parts.append(tuple(p for k in keys[lo:hi] for p in groups[k]))
        lo = hi
    return parts


def split_concept(concept: Concept, fractions: tuple[float, float, float] = SPLIT_FRACTIONS, seed: int = 0, by: str = "prompt") -> Splits:
    """Selection / validation / test parts of `concept`'s forget and retain prompts, cut by prompt
    or by fact (`by`; prompts without a fact are cut one by one), deterministic in `seed`. One-line
    error when a part would get fewer than `MIN_PER_SPLIT` forget prompts with a completion."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise InterpError(f"split fractions must be three positive numbers summing to 1, not {fractions}")
    if by not in SPLIT_BY:
        raise InterpError(f"unknown split {by!r}; use one of {', '.join(SPLIT_BY)}")
    forget = _split(tuple(p for p in concept.forget if p.answer), fractions, seed, by)
    short = [(n, len(f)) for n, f in zip(SPLITS, forget) if len(f) < MIN_PER_SPLIT]
    if short:
        n_ans = sum(1 for p in concept.forget if p.answer)
        need = max(MIN_PER_SPLIT / f for f in fractions)
        raise InterpError(f"concept {concept.name!r} has {n_ans} forget prompts with a completion; the selection / validation / test "
                          f"splits need at least {MIN_PER_SPLIT} each (about {int(need + 0.999)} prompts in all)")
    # prompts without a completion still help selection (they show where the concept's features fire)
    forget[0] = forget[0] + tuple(p for p in concept.forget if not p.answer)
    retain = _split(concept.retain, fractions, seed, by)
    parts = [Concept(f"{concept.name}", f, r) for f, r in zip(forget, retain)]
    test = replace(parts[2], paraphrase=concept.paraphrase, adversarial=concept.adversarial)
    return Splits(parts[0], parts[1], test)
