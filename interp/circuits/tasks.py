"""Circuit-discovery tasks: paired positive / negative prompts plus a metric, for any tokenizer.

A task is a list of *pairs*. The positive prompt shows the behaviour; the negative prompt has the
same number of tokens but lacks the signal, so a head that matters for the behaviour acts
differently on the two (and patching negative activations into a positive run removes the
behaviour). Per pair the metric is computed on the positive prompt's last-token logits:

* ``logit_diff`` (IOI, docstring, JSONL): ``logit[answer] - max_w logit[w]`` over the wrong
  answers ``w`` (with one wrong answer this is the plain logit difference; with several it is
  "correct minus best wrong").
* ``prob_diff`` (greater-than, Hanna et al. 2023): ``sum_{y > start} p(y) - sum_{y <= start} p(y)``
  over the two-digit year tokens.

Built-in tasks (prompts from `interp.data.corpus`):

* ``ioi``: "When Mary and John went to the store, John gave a drink to" -> " Mary" vs " John".
  Negative: the first clause names the indirect object and a third person ("When Mary and Kate
  went ..., John gave a drink to"), so "the name not repeated" no longer points anywhere; the
  wrong answers are the subject and the third person.
* ``greater-than``: "... from the year 1732 to the year 17" -> years > 32. Negative: the start
  year ends in 01 (or the smallest two-digit ending that is one token for this tokenizer, e.g.
  02 for the embedded model), so almost every continuation is "greater".
* ``docstring``: a def whose ``:param`` lines follow the arguments; the next ``:param`` should name
  the next argument. Negative (ACDC's ``random_random``, as the discrete-SAE paper): the def's
  argument names AND the docstring's ``:param`` names are replaced by fresh names, so nothing in
  the prompt points to the answer. ``corruption="random_def"`` (the earlier default) replaces only
  the def's names.

Custom tasks load from JSONL, one object per line with ``positive``, ``negative``, ``answer``,
``wrong_answer`` (a string or a list of strings); answers must be single tokens.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float, Int
from transformer_lens.model_bridge import TransformerBridge

from interp.data import corpus as C
from interp.errors import InterpError

log = logging.getLogger(__name__)

BUILTIN_TASKS = ("ioi", "greater-than", "docstring")
METRICS = ("logit_diff", "prob_diff")
# Discovery prompts use seeds offset from this base; reference circuits use corpus.HELDOUT_SEED,
# so a method is never scored on the prompts the reference was built from.
DISCOVERY_SEED_BASE = 20_000


@dataclass
class CircuitTask:
    """Paired prompts of one task, tokenized for one model."""

    name: str  # task name ("ioi", ..., or the JSONL file stem)
    metric: str  # "logit_diff" or "prob_diff" (see module docstring)
    positive: list[str]  # prompts that show the behaviour
    negative: list[str]  # matched prompts without the signal (same token count as the positive)
    good: list[list[int]]  # per pair: token ids counted as correct
    bad: list[list[int]]  # per pair: token ids counted as wrong
    pos_tokens: Int[torch.Tensor, "n pos"] = field(repr=False)  # right-padded tokens of `positive`
    neg_tokens: Int[torch.Tensor, "n pos"] = field(repr=False)  # right-padded tokens of `negative`
    lengths: Int[torch.Tensor, " n"] = field(repr=False)  # real token count of each pair

    def __post_init__(self):
        if self.metric not in METRICS:
            raise InterpError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if not self.positive:
            raise InterpError(f"task {self.name!r} has no prompts")

    def __len__(self) -> int:
        return len(self.positive)

    def subset(self, idx: list[int] | slice) -> "CircuitTask":
        """The task restricted to some pairs (token tensors trimmed to the longest kept pair)."""
        ids = list(range(len(self)))[idx] if isinstance(idx, slice) else list(idx)
        t = torch.tensor(ids, dtype=torch.long)
        width = int(self.lengths[t].max())
        return CircuitTask(self.name, self.metric, [self.positive[i] for i in ids], [self.negative[i] for i in ids],
                           [self.good[i] for i in ids], [self.bad[i] for i in ids],
                           self.pos_tokens[t, :width], self.neg_tokens[t, :width], self.lengths[t])

    def metric_from_logits(self, logits: Float[torch.Tensor, "n pos vocab"]) -> Float[torch.Tensor, " n"]:
        """Per-pair metric from full-sequence logits of a run on `pos_tokens` (or patched variants)."""
        last = logits[torch.arange(len(self)), self.lengths - 1]
        return metric_at_last(last, self.metric, self.good, self.bad)


def metric_at_last(last: Float[torch.Tensor, "n vocab"], metric: str, good: list[list[int]], bad: list[list[int]]) -> Float[torch.Tensor, " n"]:
    """The task metric from last-position logits (see module docstring)."""
    gm = torch.zeros_like(last, dtype=torch.bool)
    bm = torch.zeros_like(last, dtype=torch.bool)
    for i, (g, b) in enumerate(zip(good, bad)):
        gm[i, g] = True
        bm[i, b] = True
    if metric == "prob_diff":
        p = last.float().softmax(-1)
        return (p * gm).sum(-1) - (p * bm).sum(-1)
    neg_inf = torch.finfo(last.dtype).min
    return last.masked_fill(~gm, neg_inf).max(-1).values - last.masked_fill(~bm, neg_inf).max(-1).values


def _ids(model: TransformerBridge, s: str) -> list[int]:
    return model.to_tokens(s, prepend_bos=False)[0].tolist()


def _ntok(model: TransformerBridge, s: str) -> int:
    # truncate=False: TransformerLens cuts at n_ctx by default, which hid over-long prompts (the
    # answer position was dropped and the run exited 0)
    return int(model.to_tokens(s, truncate=False).shape[1])


def _single(model: TransformerBridge, s: str, where: str) -> int:
    ids = _ids(model, s)
    if len(ids) != 1:
        raise InterpError(f"{where}: answer {s!r} is {len(ids)} tokens for this model; answers must be single tokens")
    return ids[0]


def _finish(model: TransformerBridge, name: str, metric: str, pos: list[str], neg: list[str],
            good: list[list[int]], bad: list[list[int]], where: list[str] | None = None) -> CircuitTask:
    lp = [_ntok(model, s) for s in pos]
    ln = [_ntok(model, s) for s in neg]
    for i, (a, b) in enumerate(zip(lp, ln)):
        if a != b:
            at = where[i] if where else f"pair {i}"
            raise InterpError(f"{at}: positive {pos[i]!r} has {a} tokens but negative {neg[i]!r} has {b}; "
                              "patching methods need equal token counts")
    longest = max(lp)
    if longest > model.cfg.n_ctx:
        i = lp.index(longest)
        at = where[i] if where else f"pair {i}"
        raise InterpError(f"{at}: the prompt is {longest} tokens, longer than the model's context of {model.cfg.n_ctx} "
                          f"(task {name!r}); shorten it (it is never cut: the answer position would be lost)")
    pt = model.to_tokens(pos, padding_side="right")[:, :longest]
    nt = model.to_tokens(neg, padding_side="right")[:, :longest]
    return CircuitTask(name, metric, pos, neg, good, bad, pt, nt, torch.tensor(lp))


def _pairs_until(n: int, make, name: str, model: TransformerBridge, equal_length: bool = False, max_tries_factor: int = 20):
    """Call `make()` (-> tuple or None when the draw does not fit this tokenizer) until n pairs;
    with `equal_length`, keep only pairs as long (in tokens) as the first one."""
    out, width = [], None
    for _ in range(n * max_tries_factor * (10 if equal_length else 1)):
        item = make()
        if item is not None and equal_length:
            w = _ntok(model, item[0])
            width = w if width is None else width
            item = item if w == width else None
        if item is not None:
            out.append(item)
            if len(out) == n:
                return out
    raise InterpError(f"could build only {len(out)} of {n} {name} pairs whose tokens fit this model's tokenizer "
                      "(names/years must tokenize the same in the positive and negative prompt)")


def ioi_task(model: TransformerBridge, n: int = 20, seed: int = C.HELDOUT_SEED, equal_length: bool = False) -> CircuitTask:
    """IOI pairs; metric logit(IO) - max(logit(S), logit(C)), C the negative's third person.

    On a positive prompt C does not occur, so this is the usual IO - S logit difference. On the
    negative the model must pick between IO and C with nothing to tell them apart, so it falls
    to about 0 (IO - S alone would not: S is not a candidate there)."""
    rng = random.Random(seed)

    def make():
        p = C.ioi_sentence(rng)
        io, s = p.meta["io"], p.meta["s"]
        third = rng.choice([x for x in C.NAMES if x not in (io, s)])
        # Replace the subject's mention in the first clause by a third person: the clause now names
        # IO and C, the subject appears once, and "the other name" is undefined.
        clause, rest = p.text.split(",", 1) if "," in p.text else (p.text, "")
        neg_clause = clause.replace(f" {s} ", f" {third} ", 1) if f" {s} " in clause else clause.replace(f"{s} ", f"{third} ", 1)
        neg = neg_clause + ("," + rest if rest else "")
        if neg == p.text or _ntok(model, neg) != _ntok(model, p.text):
            return None
        gi, bi, ci = _ids(model, " " + io), _ids(model, " " + s), _ids(model, " " + third)
        return p.text, neg, [gi[0]], [bi[0], ci[0]]

    rows = _pairs_until(n, make, "ioi", model, equal_length)
    return _finish(model, "ioi", "logit_diff", *map(list, zip(*rows)))


def year_ids(model: TransformerBridge) -> list[int]:
    """Token ids of "00".."99" (the second half of a year), as `model_card.year_token_ids`."""
    from interp.model_card import year_token_ids

    return year_token_ids(model).tolist()


def greater_than_task(model: TransformerBridge, n: int = 20, seed: int = C.HELDOUT_SEED, equal_length: bool = False) -> CircuitTask:
    """Greater-than pairs; metric P(year > start) - P(year <= start)."""
    rng = random.Random(seed)
    yids = year_ids(model)
    # "01" as Hanna et al.; a tokenizer that never saw year 01 as one token gets the smallest one it has.
    low = next((y for y in range(1, 10) if len(_ids(model, f"{y:02d}")) == 1), 1)

    def make():
        p = C.year_sentence(rng)
        c, yy = p.meta["century"], p.meta["start"]
        neg = p.text.replace(f"{c}{yy:02d}", f"{c}{low:02d}", 1)
        if yy <= low or _ntok(model, neg) != _ntok(model, p.text):
            return None
        return p.text, neg, yids[yy + 1:], yids[: yy + 1]

    rows = _pairs_until(n, make, "greater-than", model, equal_length)
    return _finish(model, "greater-than", "prob_diff", *map(list, zip(*rows)))


DOCSTRING_CORRUPTIONS = ("random_random", "random_def")


def docstring_task(model: TransformerBridge, n: int = 20, seed: int = C.HELDOUT_SEED, equal_length: bool = False,
                   corruption: str = "random_random") -> CircuitTask:
    """Docstring pairs; metric logit(next arg) - max logit(other args of the def)."""
    if corruption not in DOCSTRING_CORRUPTIONS:
        raise InterpError(f"unknown docstring corruption {corruption!r}; known: {', '.join(DOCSTRING_CORRUPTIONS)}")
    rng = random.Random(seed)

    def make():
        p = C.docstring_function(rng)
        args = p.meta["args"]
        sig_start = p.text.index("(self, ")
        sig_end = p.text.index("):")
        others = rng.sample([a for a in C.ARG_NAMES if a not in args], len(args))
        neg = p.text[:sig_start] + "(self, " + ", ".join(others) + p.text[sig_end:]
        if corruption == "random_random":  # fresh docstring names too, distinct from both argument lists
            fresh = rng.sample([a for a in C.ARG_NAMES if a not in args and a not in others], len(args) - 1)
            for a, b in zip(args[:-1], fresh):
                neg = neg.replace(f":param {a}:", f":param {b}:", 1)
        if _ntok(model, neg) != _ntok(model, p.text):
            return None
        good = _ids(model, " " + args[-1])[:1]
        bad = sorted({_ids(model, " " + a)[0] for a in args[:-1]} - set(good))
        return p.text, neg, good, bad

    rows = _pairs_until(n, make, "docstring", model, equal_length)
    return _finish(model, "docstring", "logit_diff", *map(list, zip(*rows)))


def check_task_source(task: str) -> None:
    """Fail with one line, before any model loads, when `task` is neither a built-in task nor a
    JSONL file whose every line is a well-formed task row (missing, a directory, binary, not
    UTF-8, a line over the length bound, a bad field, answer equal to a wrong answer)."""
    if task in BUILTIN_TASKS:
        return
    path = Path(task)
    if not path.exists():
        if task.endswith(".jsonl") or "/" in task:
            raise InterpError(f"task file {path} does not exist")
        raise InterpError(f"unknown task {task!r}; use one of {', '.join(BUILTIN_TASKS)} or a FILE.jsonl")
    if path.is_dir():
        raise InterpError(f"task file {path} is a directory; give a JSONL file")
    if not any(True for _ in _task_rows(path)):
        raise InterpError(f"task file {path} has no prompts")


def _task_rows(path: Path):
    """(where, row) of each task line, streamed with a bound on the line length
    (`interp.data.lines`) and checked field by field."""
    from interp.data.lines import iter_lines

    for ln, line in iter_lines(path, "task file"):
        if not line.strip():
            continue
        at = f"{path.name} line {ln}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InterpError(f"{at}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InterpError(f"{at}: expected a JSON object")
        missing = [k for k in ("positive", "negative", "answer", "wrong_answer") if k not in row]
        if missing:
            raise InterpError(f"{at}: missing field {', '.join(missing)}")
        wrong = row["wrong_answer"] if isinstance(row["wrong_answer"], list) else [row["wrong_answer"]]
        if not all(isinstance(x, str) for x in [row["positive"], row["negative"], row["answer"], *wrong]) or not wrong:
            raise InterpError(f"{at}: positive, negative, answer must be strings and wrong_answer a string or list of strings")
        if row["answer"] in wrong:
            raise InterpError(f"{at}: answer {row['answer']!r} is also a wrong_answer; the metric would be 0 for every circuit")
        yield at, {**row, "wrong_answer": wrong}


def load_jsonl_task(model: TransformerBridge, path: str | Path, metric: str = "logit_diff") -> CircuitTask:
    """A custom task from JSONL: each line {"positive", "negative", "answer", "wrong_answer"}."""
    path = Path(path)
    check_task_source(str(path))
    pos, neg, good, bad, where = [], [], [], [], []
    for at, row in _task_rows(path):
        pos.append(row["positive"])
        neg.append(row["negative"])
        good.append([_single(model, row["answer"], at)])
        bad.append([_single(model, w, at) for w in row["wrong_answer"]])
        if good[-1][0] in bad[-1]:
            raise InterpError(f"{at}: answer {row['answer']!r} is the same token as a wrong_answer for this model")
        where.append(at)
    if not pos:
        raise InterpError(f"task file {path} has no prompts")
    return _finish(model, path.stem, metric, pos, neg, good, bad, where)


def make_task(model: TransformerBridge, task: str, n: int = 20, seed: int = C.HELDOUT_SEED, equal_length: bool = False) -> CircuitTask:
    """A built-in task by name, or a JSONL file path (then `n`, `seed`, `equal_length` are ignored).
    `equal_length`: every pair has the same token count (peers like auto-circuit need it)."""
    builders = {"ioi": ioi_task, "greater-than": greater_than_task, "docstring": docstring_task}
    if task in builders:
        return builders[task](model, n=n, seed=seed, equal_length=equal_length)
    if task.endswith(".jsonl") or Path(task).exists():
        return load_jsonl_task(model, task)
    raise InterpError(f"unknown task {task!r}; use one of {', '.join(BUILTIN_TASKS)} or a FILE.jsonl")


@torch.no_grad()
def task_separation(model: TransformerBridge, task: CircuitTask) -> tuple[float, float]:
    """Mean metric on positive and on negative prompts (same answer ids) of the full model."""
    mp = task.metric_from_logits(model(task.pos_tokens)).mean()
    mn = task.metric_from_logits(model(task.neg_tokens)).mean()
    return float(mp), float(mn)


def check_separates(model: TransformerBridge, task: CircuitTask, min_gap: float | None = None) -> bool:
    """Warn (and return False) when the metric does not separate positives from negatives."""
    mp, mn = task_separation(model, task)
    gap = min_gap if min_gap is not None else (0.05 if task.metric == "prob_diff" else 0.5)
    if mp - mn < gap:
        log.warning("task %r: the metric does not separate positive from negative prompts on the full model "
                    "(%.3f vs %.3f): there is no circuit to find", task.name, mp, mn)
        return False
    return True
