"""The embedded world corpus, version 2: the same five kinds of text as `corpus` (v1), in many more
sentence frames, with whole template families held out of training.

v1 has 18 IOI templates, 8 year phrasings and one docstring layout, which a small model can
memorise; a model trained on it does IOI in its training templates but not in new sentences. v2:

* IOI: `IOI_SETTINGS` (20 frames of how the two people are introduced: clause orders, pronouns,
  "A met B", a second sentence) x `IOI_ACTIONS` (16 verbs with their objects and "to"/"for"),
  = 320 sentence frames, plus optional distractor sentences in front or in the middle;
* greater-than: 11 phrasings (`YEAR_PHRASINGS`) x 16 events;
* docstring: 10 function styles (`DOC_STYLES`: with or without self, type hints, defaults,
  `:type` lines, methods in a class, classmethods, long descriptions), 2-6 arguments drawn from
  66 names, varied descriptions;
* facts and connecting text: exactly v1's (`corpus.FACTS`, `corpus.FILLER`).

A *family* is one IOI setting, one year phrasing, or one docstring style. The families in
`HELDOUT_FAMILIES` never occur in training text (`generate_corpus`); the evaluation prompts
(`task_prompts(task, n, split)`) come either from the seen families (new names, years and
arguments: split "seen") or from the held-out families only (split "heldout"). Generation is
deterministic in the seed (`random.Random`), as in v1.
"""

from __future__ import annotations

import random

from interp.data import corpus as C
from interp.data.corpus import EOT, NAMES, Prompt, corpus_hash  # noqa: F401  (re-exported: same API as v1)

VERSION = "v2"
SPLITS = ("seen", "heldout")
TASKS = ("ioi", "greater-than", "docstring")

# ---------------------------------------------------------------- IOI
# {A} {B}: the two people (in either order), {S}: the repeated subject, {P}: a place, {X}: the action
# (verb, object, preposition). A "{M}" marks where a middle distractor sentence may go.
IOI_SETTINGS = (
    "When {A} and {B} went to {P}, {S} {X}",
    "After {A} and {B} arrived at {P}, {S} {X}",
    "While {A} and {B} were waiting at {P}, {S} {X}",
    "{A} and {B} went to {P}.{M} {S} {X}",
    "{A} and {B} spent the afternoon at {P}, and then {S} {X}",
    "Then, {A} and {B} had a long talk at {P}.{M} Afterwards {S} {X}",
    "{A} met {B} at {P}, and {S} {X}",
    "At {P}, {A} and {B} sat down together.{M} Soon {S} {X}",
    "Once {A} and {B} got to {P}, {S} quickly {X}",
    "{A} and {B} were tired after the day at {P}, so {S} {X}",
    "The day {A} and {B} visited {P}, {S} {X}",
    "As {A} and {B} walked home from {P}, {S} {X}",
    "{A} and {B} had lunch at {P}.{M} Because it was late, {S} {X}",
    "Before {A} and {B} left {P}, {S} {X}",
    "{A} was with {B} at {P} when {S} {X}",
    "It was raining when {A} and {B} reached {P}.{M} Later, {S} {X}",
    "{A} and {B} both worked at {P}.{M} One day, {S} {X}",
    "Since {A} and {B} were at {P} together, {S} {X}",
    "In the evening {A} and {B} came back from {P}, and {S} {X}",
    "{A} and {B} cleaned up {P}. When they were done, {S} {X}",
)
IOI_ACTIONS = (
    ("gave", ("a drink", "a book", "the keys", "a flower", "an apple"), "to"),
    ("handed", ("a cup", "the bag", "a pen", "the letter", "a towel"), "to"),
    ("passed", ("the salt", "a note", "the bread", "the ball"), "to"),
    ("threw", ("the ball", "a stick", "a coin", "an orange"), "to"),
    ("sent", ("a letter", "a message", "a card", "a photo"), "to"),
    ("showed", ("a picture", "the map", "a photo", "the new phone"), "to"),
    ("lent", ("an umbrella", "a pen", "some money", "a bike"), "to"),
    ("offered", ("a seat", "a cup of tea", "a sandwich", "some help"), "to"),
    ("sold", ("a bike", "an old car", "a lamp", "a chair"), "to"),
    ("read", ("a story", "a poem", "the news", "a letter"), "to"),
    ("brought", ("a gift", "a coffee", "a blanket", "some soup"), "for"),
    ("bought", ("a ticket", "a cake", "a hat", "a book"), "for"),
    ("made", ("a sandwich", "a cup of tea", "a card", "a kite"), "for"),
    ("left", ("a note", "a message", "the keys", "some food"), "for"),
    ("explained", ("the plan", "the rules", "the game", "the problem"), "to"),
    ("returned", ("the book", "the money", "the keys", "the hammer"), "to"),
)
IOI_PLACES = (
    "the store", "the park", "the house", "the office", "the garden", "the market", "the beach", "the school",
    "the museum", "the station", "the river", "the bakery", "the hall", "the kitchen", "the library", "the farm",
    "the harbor", "the cafe", "the hospital", "the zoo", "the hotel", "the church", "the gym", "the bank",
)
DISTRACTORS = (
    "It was a cold day.", "The sun was out.", "Nobody else was there.", "They talked for an hour.",
    "The room was quiet.", "It was getting late.", "They were both hungry.", "A dog barked outside.",
    "The bus was late again.", "Everyone was in a good mood.",
)

# ---------------------------------------------------------------- greater-than
YEAR_PHRASINGS = (
    "The {E} lasted from the year {Y1} to the year {Y2}.",
    "The {E} lasted from {Y1} to {Y2}.",
    "The {E} began in {Y1} and ended in {Y2}.",
    "Between {Y1} and {Y2}, the {E} went on.",
    "The {E} ran from {Y1} until {Y2}.",
    "From {Y1} to {Y2}, the {E} continued.",
    "The {E}, which started in {Y1}, was over by {Y2}.",
    "In {Y1} the {E} started, and it ended in {Y2}.",
    "The records of the {E} cover the years {Y1} to {Y2}.",
    "The {E} went on from the year {Y1} through the year {Y2}.",
    "Historians date the {E} from {Y1} to {Y2}.",
)
YEAR_EVENTS = (
    "war", "drought", "famine", "treaty", "reign", "expedition", "strike", "siege", "plague", "journey",
    "exile", "trade ban", "festival", "rebellion", "flood", "occupation",
)

# ---------------------------------------------------------------- docstring
DOC_ARG_NAMES = tuple(C.ARG_NAMES) + tuple(
    "items values result buffer prefix suffix name_map timeout retries verbose seed batch shape channel "
    "ratio factor margin region query cache flag parent child host port url delay".split())
DOC_DESCRIPTIONS = tuple(C.PARAM_WORDS) + (
    "the object to process", "a list of values", "the maximum number of retries", "whether to print progress",
    "the random seed", "the output directory", "a mapping of names to values", "the time to wait in seconds",
    "the parent node", "the key to look up",
)
TYPE_NAMES = ("int", "str", "float", "bool", "list", "dict")
# Each style: receiver ("self", "cls" or ""), type hints in the signature, default values on the
# last arguments, `:type` lines after each `:param`, inside a class (8-space indent), a longer
# docstring body.
DOC_STYLES = (
    dict(recv="self", hints=False, defaults=False, types=False, cls=False, long=False),
    dict(recv="", hints=False, defaults=False, types=False, cls=False, long=False),
    dict(recv="", hints=True, defaults=False, types=False, cls=False, long=False),
    dict(recv="", hints=False, defaults=True, types=False, cls=False, long=False),
    dict(recv="self", hints=False, defaults=False, types=True, cls=False, long=False),
    dict(recv="self", hints=False, defaults=False, types=False, cls=True, long=True),
    dict(recv="cls", hints=False, defaults=False, types=False, cls=True, long=False),
    dict(recv="", hints=False, defaults=False, types=False, cls=False, long=True),
    dict(recv="self", hints=True, defaults=False, types=True, cls=False, long=False),
    dict(recv="self", hints=False, defaults=True, types=False, cls=True, long=False),
)
DOC_CLASS_NAMES = ("Loader", "Parser", "Model", "Table", "Graph", "Client", "Reader", "Writer", "Cache", "Runner")

# Whole families never seen in training (indices into the tuples above).
HELDOUT_FAMILIES = {
    "ioi": (3, 8, 14, 19),  # "A and B went to P. S ...", "Once ... quickly", "A was with B ... when", "cleaned up ... they"
    "greater-than": (2, 6, 10),  # "began in .. ended in", "which started in .. was over by", "Historians date .. from .. to"
    "docstring": (2, 6, 9),  # type hints alone, classmethods, defaults inside a class
}
N_FAMILIES = {"ioi": len(IOI_SETTINGS), "greater-than": len(YEAR_PHRASINGS), "docstring": len(DOC_STYLES)}


def families(task: str, split: str) -> tuple[int, ...]:
    """The family indices of `task` in `split` ("seen": used in training, "heldout": never)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    held = HELDOUT_FAMILIES[task]
    return held if split == "heldout" else tuple(i for i in range(N_FAMILIES[task]) if i not in held)


def n_frames(split: str) -> int:
    """IOI sentence frames (setting x action) in `split`."""
    return len(families("ioi", split)) * len(IOI_ACTIONS)


def ioi_sentence(rng: random.Random, split: str = "seen", family: int | None = None) -> Prompt:
    """An IOI prompt in one sentence frame of `split`; the answer is the non-repeated name.
    `meta["abc"]` is the same text with the subject's first mention replaced by a third name
    (`meta["c"]`), the circuits task's negative prompt."""
    fam = rng.choice(families("ioi", split)) if family is None else family
    a, b, c = rng.sample(NAMES, 3)  # a = indirect object, b = subject, c = third person (negative only)
    verb, objs, prep = rng.choice(IOI_ACTIONS)
    act = f"{verb} {rng.choice(objs)} {prep}"
    place = rng.choice(IOI_PLACES)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    mid = " " + rng.choice(DISTRACTORS) if rng.random() < 0.3 else ""
    pre = rng.choice(DISTRACTORS) + " " if rng.random() < 0.2 else ""
    t = IOI_SETTINGS[fam]
    text = pre + t.format(A=first, B=second, S=b, P=place, X=act, M=mid)
    neg = pre + t.format(A=c if first == b else first, B=c if second == b else second, S=b, P=place, X=act, M=mid)
    return Prompt(text, " " + a, {"io": a, "s": b, "c": c, "abc": neg, "family": fam, "verb": verb,
                                  "order": "ABBA" if first == a else "BABA", "template": t})


def year_sentence(rng: random.Random, split: str = "seen", family: int | None = None, lo: int = 2, hi: int = 98) -> Prompt:
    """Greater-than prompt in one phrasing of `split`: the text ends at the end year's century;
    the answer is the end year's last two digits, strictly greater than the start year's."""
    fam = rng.choice(families("greater-than", split)) if family is None else family
    c, yy = rng.randint(11, 19), rng.randint(lo, hi)
    end = rng.randint(yy + 1, 99)
    full = YEAR_PHRASINGS[fam].format(E=rng.choice(YEAR_EVENTS), Y1=f"{c}{yy:02d}", Y2=f"{c}{end:02d}")
    cut = full.index(f"{c}{end:02d}") + 2
    return Prompt(full[:cut], f"{end:02d}", {"century": c, "start": yy, "end": end, "full": full, "family": fam})


def docstring_function(rng: random.Random, split: str = "seen", family: int | None = None, n_args: int | None = None) -> Prompt:
    """A Python function in one style of `split` whose docstring has a `:param` line per argument,
    in order. The prompt stops after the last `:param`; the answer is the last argument's name."""
    fam = rng.choice(families("docstring", split)) if family is None else family
    st = DOC_STYLES[fam]
    n = n_args or rng.randint(2, 6)
    args = rng.sample(DOC_ARG_NAMES, n)
    types = [rng.choice(TYPE_NAMES) for _ in args]
    n_def = rng.randint(1, n - 1) if st["defaults"] else 0
    parts = [f"{a}: {t}" if st["hints"] else a for a, t in zip(args, types)]
    parts = [p + ("=None" if i >= n - n_def else "") for i, p in enumerate(parts)]
    if st["recv"]:
        parts.insert(0, st["recv"])
    fname = f"{rng.choice(C.FUNC_VERBS)}_{rng.choice(C.FUNC_NOUNS)}"
    ind = " " * (8 if st["cls"] else 4)
    head = ""
    if st["cls"]:
        head = f"class {rng.choice(DOC_CLASS_NAMES)}:\n"
        if st["recv"] == "cls":
            head += "    @classmethod\n"
    base = " " * (4 if st["cls"] else 0)
    head += f"{base}def {fname}({', '.join(parts)}):\n{ind}\"\"\"{fname.replace('_', ' ').capitalize()}.\n\n"
    if st["long"]:
        head += f"{ind}This is used by {rng.choice(C.FUNC_VERBS)}_{rng.choice(C.FUNC_NOUNS)} and may be slow.\n\n"
    lines = [f"{ind}:param {a}: {rng.choice(DOC_DESCRIPTIONS)}\n" + (f"{ind}:type {a}: {t}\n" if st["types"] else "")
             for a, t in zip(args, types)]
    prompt = head + "".join(lines[:-1]) + f"{ind}:param"
    full = head + "".join(lines) + f'{ind}"""\n{ind}return None\n'
    return Prompt(prompt, " " + args[-1], {"args": args, "full": full, "family": fam})


def _fact_sentence(rng: random.Random) -> str:
    return C._fact_sentence(rng)


def document(rng: random.Random, code_frac: float = 0.15, split: str = "seen") -> str:
    """One document, as v1's `corpus.document`, from the families of `split`."""
    if rng.random() < code_frac:
        return docstring_function(rng, split).meta["full"]
    parts = []
    for _ in range(rng.randint(3, 7)):
        r = rng.random()
        if r < 0.30:
            p = ioi_sentence(rng, split)
            parts.append(p.text + p.answer + ".")
        elif r < 0.50:
            parts.append(year_sentence(rng, split).meta["full"])
        elif r < 0.85:
            parts.append(_fact_sentence(rng))
        else:
            parts.append(rng.choice(C.FILLER))
    return " ".join(parts)


def generate_corpus(n_docs: int, seed: int = 0, code_frac: float = 0.15, split: str = "seen") -> list[str]:
    """`n_docs` training documents (seen families only), deterministic in `seed`."""
    rng = random.Random(seed)
    return [document(rng, code_frac, split) for _ in range(n_docs)]


def task_corpus(n_docs: int, seed: int, code_frac: float) -> list[str]:
    """Task-focused documents (seen families): a Python function (probability `code_frac`), else
    3-7 IOI (60%) and year (40%) sentences; v2's `build_attn.task_corpus`."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        if rng.random() < code_frac:
            docs.append(docstring_function(rng).meta["full"])
            continue
        parts = []
        for _ in range(rng.randint(3, 7)):
            if rng.random() < 0.6:
                p = ioi_sentence(rng)
                parts.append(p.text + p.answer + ".")
            else:
                parts.append(year_sentence(rng).meta["full"])
        docs.append(" ".join(parts))
    return docs


HELDOUT_SEED = C.HELDOUT_SEED
_MAKERS = {"ioi": ioi_sentence, "greater-than": year_sentence, "docstring": docstring_function}


def task_prompts(task: str, n: int, split: str, seed: int = HELDOUT_SEED) -> list[Prompt]:
    """`n` evaluation prompts of `task` from the families of `split`, deterministic in `seed`."""
    families(task, split)  # validates both
    rng = random.Random(seed)
    return [_MAKERS[task](rng, split) for _ in range(n)]
