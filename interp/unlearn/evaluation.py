"""What was forgotten and what was kept.

* forget accuracy: the argmax next token is the first token of the expected completion, on the
  forget prompts; paraphrase accuracy likewise on the held-out phrasings;
* adversarial accuracy: likewise on prompts that ask for the concept indirectly;
* retain accuracy (in-domain): the same on the retain prompts (other concepts of the same kind);
* corpus accuracy (cross-domain retain): top-1 next-token accuracy on held-out corpus text that
  states none of the forgotten facts;
* retain loss: mean next-token cross-entropy on that corpus text; `loss_change` = (loss - base
  loss) / base loss;
* KL: mean over those corpus tokens of KL(p_base || p_edited).

An *edit* is a callable `edit(model)` returning a context manager that yields the model to run
(`lambda m: apply_spec(m, spec)` for SAE edits, a hook for the direction baseline, a fine-tuned
copy for the fine-tuning baseline); `None` is the unmodified model.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge

from interp.data.corpus import Prompt
from interp.device import device_of
from interp.hooks import run_from
from interp.unlearn.concepts import Concept
from interp.unlearn.tokens import first_token, token_batches

log = logging.getLogger(__name__)

Edit = Callable[[TransformerBridge], ContextManager[TransformerBridge]] | None
RETAIN_BAR = 0.95  # issue target: retain accuracy >= 0.95 of baseline
LOSS_BAR = 0.05  # issue target: retain loss rises <= 5%
SAEBENCH_RETAIN = 0.99  # SAEBench: settings count only if retain accuracy >= 0.99 of baseline


@dataclass
class EvalResult:
    """Forget/retain numbers of one model (edited or not)."""

    forget_acc: float
    retain_acc: float  # nan when the concept has no retain prompts with completions
    paraphrase_acc: float  # nan when there are no paraphrases
    retain_loss: float
    loss_change: float = 0.0  # relative to the unmodified model
    kl: float = 0.0  # KL(base || edited) per corpus token
    adversarial_acc: float = float("nan")  # nan when there are no adversarial prompts
    corpus_acc: float = float("nan")  # cross-domain retain: top-1 next-token accuracy on the corpus text
    forget_prob: float = float("nan")  # mean probability of the expected first token on the forget prompts


Batch = tuple[torch.Tensor, torch.Tensor]  # tokens [b, p], counted-position mask [b, p]
PROMPT_SETS = ("forget", "retain", "paraphrase", "adversarial")


@dataclass
class PromptSet:
    """Tokenized prompts with an expected completion: batches and the answers' first tokens."""

    batches: list[Batch]
    answers: torch.Tensor  # [n] first token of each expected completion

    @property
    def n(self) -> int:
        return len(self.answers)


@dataclass
class EvalSet:
    """A concept's prompts and corpus, tokenized once, and the unmodified model's numbers.

    Runs may start at a later layer (`evaluate(..., start_layer=L)`) from the unmodified model's
    cached residual stream when the edit changes nothing before block L."""

    concept: Concept
    corpus: list[str]
    sets: dict[str, PromptSet] = field(default_factory=dict, repr=False)  # forget / retain / paraphrase / adversarial
    corpus_batches: list[Batch] = field(default_factory=list, repr=False)
    base: EvalResult | None = None
    base_logprobs: list[torch.Tensor] = field(default_factory=list, repr=False)  # per corpus batch [n_tok, vocab]
    resid: dict[int, dict[str, list[torch.Tensor]]] = field(default_factory=dict, repr=False)  # layer -> set -> resid_pre per batch


def _edit_ctx(model: TransformerBridge, edit: Edit) -> ContextManager[TransformerBridge]:
    return contextlib.nullcontext(model) if edit is None else edit(model)


def _prompt_set(model: TransformerBridge, prompts, batch_size: int) -> PromptSet:
    ps = [p for p in prompts if p.answer]
    return PromptSet(list(token_batches(model, [p.text for p in ps], batch_size)),
                     torch.tensor([first_token(model, p.answer) for p in ps], dtype=torch.long, device=device_of(model)))


def _last_logits(model: TransformerBridge, x: torch.Tensor, mask_BP: torch.Tensor, start_layer: int) -> torch.Tensor:
    """Logits at each row's last real token, running blocks start_layer.. on `x` (tokens if 0)."""
    resid = run_from(model, x, start_layer, stop_at_layer=model.cfg.n_layers)
    last = resid[torch.arange(len(resid), device=resid.device), mask_BP.sum(1)]  # mask skips BOS, so its sum is the last index
    return model.unembed(model.ln_final(last[:, None]))[:, 0]


def _inputs(model: TransformerBridge, es: EvalSet, name: str, batches: list[Batch], start_layer: int) -> list[torch.Tensor]:
    if not start_layer:
        return [t for t, _ in batches]
    cache = es.resid.setdefault(start_layer, {})
    if name not in cache:  # the unmodified model's residual stream entering block `start_layer`
        cache[name] = [model(t, stop_at_layer=start_layer) for t, _ in batches]
    return cache[name]


@torch.no_grad()
def accuracy(model: TransformerBridge, prompts: tuple[Prompt, ...] | list[Prompt], batch_size: int = 64) -> float:
    """Fraction of prompts (with an expected completion) whose argmax next token is its first token."""
    ps = _prompt_set(model, prompts, batch_size)
    return _set_scores(model, ps, [t for t, _ in ps.batches], 0)[0]


def _set_scores(model, ps: PromptSet, inputs: list[torch.Tensor], start_layer: int) -> tuple[float, float]:
    """(accuracy, mean probability of the expected first token) over a prompt set; nan if empty."""
    if ps.n == 0:
        return float("nan"), float("nan")
    logits = torch.cat([_last_logits(model, x, m, start_layer) for x, (_, m) in zip(inputs, ps.batches)])
    prob = logits.float().softmax(-1).gather(1, ps.answers[:, None])[:, 0]
    return float((logits.argmax(-1) == ps.answers).float().mean()), float(prob.mean())


def _corpus_logprobs(model, es: EvalSet, inputs: list[torch.Tensor], start_layer: int):
    for x, (toks_BP, mask_BP) in zip(inputs, es.corpus_batches):
        logits = run_from(model, x, start_layer)
        lp = logits[:, :-1].log_softmax(-1)
        m = mask_BP[:, 1:]
        yield lp[m], toks_BP[:, 1:][m]


@torch.no_grad()
def prepare(model: TransformerBridge, concept: Concept, corpus: list[str], batch_size: int = 64) -> EvalSet:
    """Tokenize everything once and measure the unmodified model (its corpus log-probs are kept for KL)."""
    es = EvalSet(concept, list(corpus))
    for name in PROMPT_SETS:
        es.sets[name] = _prompt_set(model, getattr(concept, name), batch_size)
    es.corpus_batches = list(token_batches(model, es.corpus, 16))
    nll, hit, n = 0.0, 0, 0
    for lp, tgt in _corpus_logprobs(model, es, [t for t, _ in es.corpus_batches], 0):
        es.base_logprobs.append(lp)
        nll += float(-lp.gather(1, tgt[:, None]).sum())
        hit += int((lp.argmax(-1) == tgt).sum())
        n += len(tgt)
    sc = {k: _set_scores(model, ps, [t for t, _ in ps.batches], 0) for k, ps in es.sets.items()}
    acc = {k: v[0] for k, v in sc.items()}
    es.base = EvalResult(acc["forget"], acc["retain"], acc["paraphrase"], nll / max(n, 1), 0.0, 0.0, acc["adversarial"],
                         hit / n if n else float("nan"), sc["forget"][1])
    return es


@torch.no_grad()
def evaluate(model: TransformerBridge, es: EvalSet, edit: Edit = None, start_layer: int = 0) -> EvalResult:
    """All numbers for `edit` applied to `model` (module docstring). Pass `start_layer` = the first
    block the edit touches to reuse the unmodified residual stream before it (same numbers, less work)."""
    inputs = {k: _inputs(model, es, k, ps.batches, start_layer) for k, ps in es.sets.items()}
    corpus_in = _inputs(model, es, "corpus", es.corpus_batches, start_layer)
    with _edit_ctx(model, edit) as m:
        nll, kl, hit, n = 0.0, 0.0, 0, 0
        for (lp, tgt), base in zip(_corpus_logprobs(m, es, corpus_in, start_layer), es.base_logprobs):
            nll += float(-lp.gather(1, tgt[:, None]).sum())
            kl += float(F.kl_div(lp, base, log_target=True, reduction="sum"))
            hit += int((lp.argmax(-1) == tgt).sum())
            n += len(tgt)
        loss = nll / max(n, 1)
        sc = {k: _set_scores(m, ps, inputs[k], start_layer) for k, ps in es.sets.items()}
    acc = {k: v[0] for k, v in sc.items()}
    return EvalResult(acc["forget"], acc["retain"], acc["paraphrase"], loss, (loss - es.base.retain_loss) / es.base.retain_loss,
                      kl / max(n, 1), acc["adversarial"], hit / n if n else float("nan"), sc["forget"][1])


@torch.no_grad()
def greedy(model: TransformerBridge, prompt: str, n_tokens: int = 4) -> str:
    """The greedy continuation of `prompt` (a full forward per token, so hooks see every position)."""
    toks = model.to_tokens(prompt)
    start = toks.shape[1]
    for _ in range(n_tokens):
        if toks.shape[1] >= model.cfg.n_ctx:
            break
        toks = torch.cat([toks, model(toks)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return model.tokenizer.decode(toks[0, start:])


def samples(model: TransformerBridge, prompts: list[str], edit: Edit, n_tokens: int = 4) -> list[dict]:
    """Greedy completions before and after `edit`, side by side."""
    before = [greedy(model, p, n_tokens) for p in prompts]
    with _edit_ctx(model, edit) as m:
        after = [greedy(m, p, n_tokens) for p in prompts]
    return [{"prompt": p, "before": b, "after": a} for p, b, a in zip(prompts, before, after)]


@dataclass
class SweepRow:
    """One setting of one method and its numbers."""

    method: str
    n_features: int  # features per SAE (0 for methods without features)
    value: float  # clamp multiplier / scale factor / direction strength / fine-tuning steps
    result: EvalResult  # on the split the setting was judged on (validation in `run_unlearning`)
    seconds: float = 0.0  # wall time of this setting (selection excluded)
    test: EvalResult | None = None  # the same setting on the held-out test split, where measured

    def flat(self) -> dict:
        out = {"method": self.method, "n_features": self.n_features, "value": self.value, **asdict(self.result), "seconds": self.seconds}
        if self.test is not None:
            out.update({f"test_{k}": v for k, v in asdict(self.test).items()})
        return out


def meets_bar(row: SweepRow, base: EvalResult, retain_bar: float = RETAIN_BAR, loss_bar: float = LOSS_BAR) -> bool:
    """Retain accuracy >= `retain_bar` x baseline and retain loss up by <= `loss_bar` (relative)."""
    r = row.result
    retain_ok = base.retain_acc != base.retain_acc or r.retain_acc >= retain_bar * base.retain_acc  # nan: nothing to keep
    return retain_ok and r.loss_change <= loss_bar


def forget_key(row: SweepRow) -> tuple[float, float, float]:
    """How forgotten a setting is (smaller is more): forget accuracy, then the answers' mean
    probability (which keeps falling after accuracy reaches 0, so a search can still rank settings
    there), then retain accuracy (higher first)."""
    r = row.result
    prob = r.forget_prob if r.forget_prob == r.forget_prob else 0.0
    return (r.forget_acc, round(prob, 3), -r.retain_acc)


def best_row(rows: list[SweepRow], base: EvalResult, retain_bar: float = RETAIN_BAR, loss_bar: float = LOSS_BAR) -> tuple[SweepRow, bool]:
    """The setting with the lowest forget accuracy among those meeting the retain bars (ties: higher
    retain accuracy, then lower loss change), and True; if none meets them, the one with the highest
    retain accuracy, and False."""
    ok = [r for r in rows if meets_bar(r, base, retain_bar, loss_bar)]
    if ok:
        return min(ok, key=forget_key), True
    return max(rows, key=lambda r: (r.result.retain_acc, -r.result.loss_change)), False


def pareto(rows: list[SweepRow]) -> list[SweepRow]:
    """Settings not dominated in (lower forget accuracy, higher retain accuracy), by forget accuracy."""
    front = [r for r in rows if not any(
        o.result.forget_acc <= r.result.forget_acc and o.result.retain_acc >= r.result.retain_acc
        and (o.result.forget_acc < r.result.forget_acc or o.result.retain_acc > r.result.retain_acc) for o in rows)]
    return sorted(front, key=lambda r: r.result.forget_acc)


def unlearning_score(rows: list[SweepRow], base: EvalResult, retain_frac: float = SAEBENCH_RETAIN) -> float:
    """SAEBench-style: 1 - lowest forget accuracy (relative to the unmodified model's) among settings
    keeping retain accuracy >= `retain_frac` x baseline; 0 when no setting qualifies."""
    ok = [r.result.forget_acc for r in rows if base.retain_acc != base.retain_acc or r.result.retain_acc >= retain_frac * base.retain_acc]
    if not ok or base.forget_acc <= 0:
        return 0.0
    return max(0.0, 1.0 - min(ok) / base.forget_acc)
