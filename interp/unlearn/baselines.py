"""Baselines on the same model and data as the SAE interventions.

* **direction**: the concept's mean-difference direction at a hook,
  u = normalize(mean_F(x) - mean_R(x)) over the counted tokens of the forget prompts F (as in
  feature selection: the last token, or all) and every token of the retain data R. The hook moves every position's component along u to the retain mean:
  x' = x - alpha * ((x . u) - m_R) u, with m_R = mean_R(x . u); alpha = 1 projects the concept
  out, alpha > 1 pushes past it.
* **finetune**: gradient ascent on the forget completions with a retain term, on a deep copy of the
  model (the original is never touched):
  loss = -mean_F min(CE, cap) + retain_weight * (mean_R CE + corpus LM loss).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from jaxtyping import Float
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp.errors import InterpError
from interp.hooks import HookSpec, capture, parse_hook
from interp.unlearn.concepts import Concept
from interp.device import device_of
from interp.unlearn.tokens import first_token, last_positions, token_batches

log = logging.getLogger(__name__)


@dataclass
class Direction:
    """A concept direction at one hook."""

    hook: str
    u: Float[torch.Tensor, " d"]  # unit vector
    retain_mean: float  # mean of x . u on retain tokens


@torch.no_grad()
def _mean_act(model, hs: HookSpec, texts: list[str], batch_size: int = 32, last_only: bool = False) -> torch.Tensor:
    total, n = None, 0
    for toks_BP, mask_BP in token_batches(model, texts, batch_size):
        if last_only:
            mask_BP = last_positions(mask_BP)
        with capture(model, [hs]) as acts:
            model(toks_BP)
        x_ND = acts[str(hs)][mask_BP].float()
        total = x_ND.sum(0) if total is None else total + x_ND.sum(0)
        n += x_ND.shape[0]
    return (total / n).cpu()


def mean_difference_direction(model: TransformerBridge, hook: str | HookSpec, concept: Concept, corpus: list[str],
                              positions: str = "last") -> Direction:
    """The normalized mean-difference direction forget - retain at `hook` (module docstring); the
    forget mean is over the same tokens feature selection counts (`positions`: "last" or "all")."""
    hs = parse_hook(model, hook)
    retain = [p.text for p in concept.retain] + list(corpus)
    if not retain:
        raise InterpError(f"concept {concept.name!r} has no retain data to compare against")
    mu_f = _mean_act(model, hs, [p.text for p in concept.forget], last_only=positions == "last")
    mu_r = _mean_act(model, hs, retain)
    diff = mu_f - mu_r
    u = diff / diff.norm().clamp(min=1e-8)
    return Direction(str(hs), u, float(mu_r @ u))


@contextlib.contextmanager
def project_out(model: TransformerBridge, direction: Direction, alpha: float = 1.0) -> Iterator[TransformerBridge]:
    """Run with x' = x - alpha ((x . u) - m_R) u at the direction's hook; removed on exit."""
    hs = parse_hook(model, direction.hook)

    def fn(act, hook):
        x = act if hs.head is None else act[..., hs.head, :]
        u = direction.u.to(x.device, x.dtype)
        x2 = x - alpha * ((x @ u) - direction.retain_mean)[..., None] * u
        if hs.head is None:
            return x2
        out = act.clone()
        out[..., hs.head, :] = x2
        return out

    with model.hooks(fwd_hooks=[(hs.name, fn)]):
        yield model


@dataclass
class FinetuneConfig:
    """Gradient-ascent unlearning with a retain term."""

    steps: int = 30  # optimizer steps
    lr: float = 2e-4  # Adam learning rate
    batch_size: int = 8  # forget prompts and retain prompts per step (each)
    corpus_batch: int = 2  # corpus documents per step (for the retain LM loss)
    cap: float = 10.0  # forget cross-entropy above this gives no more gradient (keeps ascent bounded)
    retain_weight: float = 1.0  # weight of the retain term
    checkpoints: tuple[int, ...] = (10, 20, 30)  # steps at which a copy is yielded
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0 or self.batch_size < 1 or self.corpus_batch < 0:
            raise InterpError("finetune needs steps >= 1, lr > 0, batch_size >= 1 and corpus_batch >= 0")
        if any(not 1 <= c <= self.steps for c in self.checkpoints):
            raise InterpError(f"finetune checkpoints must lie in 1..{self.steps}")


def _answer_ce(model, prompts, ans) -> torch.Tensor:
    """Cross-entropy of the expected first answer token at each prompt's last position -> [n]."""
    toks_BP, mask_BP = next(token_batches(model, [p.text for p in prompts], len(prompts)))
    logits = model(toks_BP)[torch.arange(len(prompts), device=toks_BP.device), mask_BP.sum(1)]
    return F.cross_entropy(logits, ans, reduction="none")


def finetune_unlearn(
    model: TransformerBridge, concept: Concept, corpus: list[str], cfg: FinetuneConfig = FinetuneConfig()
) -> Iterator[tuple[int, TransformerBridge]]:
    """Fine-tune a deep copy of `model` (module docstring); yields (step, copy) at each checkpoint.
    `concept.retain` and `corpus` are trained on: keep them apart from the evaluation data.
    The yielded copy keeps training after the consumer resumes, so use it before asking for the next."""
    forget = [p for p in concept.forget if p.answer]
    retain = [p for p in concept.retain if p.answer]
    if not forget:
        raise InterpError(f"concept {concept.name!r} has no forget prompts with completions to fine-tune against")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    ft = copy.deepcopy(model)  # deepcopy keeps every parameter on the original's device
    dev = device_of(ft)
    ft.train()
    opt = torch.optim.Adam(ft.parameters(), lr=cfg.lr)
    f_ans = {p.text: first_token(model, p.answer) for p in forget}
    r_ans = {p.text: first_token(model, p.answer) for p in retain}
    for step in tqdm(range(1, cfg.steps + 1), desc=f"finetune-unlearn {concept.name}", leave=False):
        with torch.enable_grad():  # callers (e.g. the dashboard) may have turned gradients off globally
            fb = rng.sample(forget, min(cfg.batch_size, len(forget)))
            loss = -_answer_ce(ft, fb, torch.tensor([f_ans[p.text] for p in fb], device=dev)).clamp(max=cfg.cap).mean()
            retain_loss = torch.zeros((), device=dev)
            if retain:
                rb = rng.sample(retain, min(cfg.batch_size, len(retain)))
                retain_loss = retain_loss + _answer_ce(ft, rb, torch.tensor([r_ans[p.text] for p in rb], device=dev)).mean()
            if corpus:
                docs = rng.sample(corpus, min(cfg.corpus_batch, len(corpus)))
                toks_BP, mask_BP = next(token_batches(ft, docs, len(docs)))
                logits = ft(toks_BP)[:, :-1]
                m = mask_BP[:, 1:]
                retain_loss = retain_loss + F.cross_entropy(logits[m], toks_BP[:, 1:][m])
            loss = loss + cfg.retain_weight * retain_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        if step in cfg.checkpoints:
            ft.eval()
            yield step, ft
            ft.train()
