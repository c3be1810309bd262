"""MoE-X beyond chess: a language model's MLPs replaced by MoE-X layers upcycled from them.

    lm_moex_comparison(model, LMMoEXConfig(...)) -> list[LMUnitScore]

1. `upcycle_language_model`: every MLP in `layers` becomes an MoE-X layer (`replace_mlps`'s
   layer type) whose experts are copies of the trained MLP's neurons (`interp.moex.upcycle`).
2. `finetune_lm`: a short next-token fine-tune of the whole model on the embedded corpus.
3. Interpretability of three feature sources on the same held-out tokens: the dense model's MLP
   neurons (``hook_post``), the MoE-X units (``hook_moex_z``) and a TopK SAE (interp's SAELens
   training) on the dense neurons. The measure is the feature browser's concept labels
   (`interp.features.ConceptMatcher`: a token lies inside a fact sentence of a concept category
   of the embedded corpus): for each feature, the best F1 of "fires above t x max" against a
   category (`interp.moex.metrics.best_property_per_feature`); reported as the share of features
   that earn a label (F1 >= 0.2, the browser's `label_min_f1`), the mean best F1 over features
   that fire often enough, and the concept coverage (mean over categories of the best feature's F1).

Deviation from the MoE-X paper: the paper trains MoE-X GPT-2 models from scratch on OpenWebText;
here the embedded model is upcycled and fine-tuned briefly (a CPU-sized check of the direction).
The dense MLP is GELU and MoE-X experts are ReLU, so upcycling changes the function at first;
the fine-tune repairs it (its loss is reported next to the dense model's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from tqdm import tqdm

from interp.device import device_of
from interp.errors import InterpError
from interp.moex.layer import MoEXConfig
from interp.moex.metrics import best_property_per_feature, coverage

log = logging.getLogger(__name__)
LABEL_MIN_F1 = 0.2
"""the feature browser's label threshold (`interp.features.StatsConfig.label_min_f1`)"""


@dataclass
class LMMoEXConfig:
    n_experts: int = 8
    """E experts per MoE-X layer"""
    top_k: int = 2
    """k experts per token; expert width D = d_mlp / k, so the active hidden units equal the dense MLP's"""
    layers: tuple[int, ...] | None = None
    """layers whose MLP is replaced (None = the last layer)"""
    steps: int = 200
    """fine-tune steps"""
    batch_size: int = 8
    """rows per step"""
    seq_len: int = 128
    """tokens per row"""
    lr: float = 3e-4
    """fine-tune learning rate (AdamW, constant after 10% warmup)"""
    eval_rows: int = 64
    """held-out rows for loss and concept F1"""
    sae_k: int = 32
    """TopK SAE: active latents per token"""
    sae_steps: int = 600
    """TopK SAE training steps"""
    min_firings: int = 10
    """features firing at fewer held-out tokens get no F1"""
    seed: int = 0
    """corpus, upcycling and SAE seed"""

    def __post_init__(self):
        if self.top_k > self.n_experts or min(self.n_experts, self.top_k, self.steps, self.batch_size, self.seq_len, self.eval_rows) < 1:
            raise InterpError("need 1 <= top_k <= n_experts and positive steps, batch_size, seq_len, eval_rows")


def upcycle_language_model(model, cfg: LMMoEXConfig):
    """A copy of `model` whose MLPs in `cfg.layers` are MoE-X layers upcycled from them."""
    from interp.models import fresh_copy, swap_mlp
    from interp.moex.upcycle import upcycle_mlp

    m = fresh_copy(model)
    layers = list(cfg.layers) if cfg.layers is not None else [m.cfg.n_layers - 1]
    d_mlp = m.cfg.d_mlp
    if d_mlp % cfg.top_k:
        raise InterpError(f"d_mlp {d_mlp} is not divisible by top_k {cfg.top_k}")
    mcfg = MoEXConfig("moex", d_model=m.cfg.d_model, d_mlp=d_mlp // cfg.top_k, n_experts=cfg.n_experts, top_k=cfg.top_k)
    for layer in layers:
        if not 0 <= layer < m.cfg.n_layers:
            raise InterpError(f"layer {layer} out of range (model has {m.cfg.n_layers} layers)")
        swap_mlp(m, layer, upcycle_mlp(m.blocks[layer].mlp, mcfg, seed=cfg.seed + layer).to(device_of(model)))
    return m, mcfg, layers


def corpus_rows(model, n_rows: int, seq_len: int, seed: int) -> torch.Tensor:
    """[n_rows, seq_len] packed token rows of the embedded corpus (seeded), on the model's device."""
    from interp.activations import text_source, token_rows

    docs, _ = text_source("corpus", seed=seed)
    rows = []
    for r in token_rows(model, docs, seq_len):
        rows.append(r)
        if len(rows) == n_rows:
            break
    return torch.stack(rows).to(device_of(model))


def lm_loss(model, rows: torch.Tensor) -> torch.Tensor:
    logits = model(rows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), rows[:, 1:].reshape(-1))


def finetune_lm(model, rows: torch.Tensor, cfg: LMMoEXConfig, progress=None) -> list[float]:
    """A short fine-tune (batches drawn by (seed, step)); -> the training loss per step."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    warm = max(1, cfg.steps // 10)
    losses = []
    model.train()
    for step in tqdm(range(cfg.steps), desc="fine-tune MoE-X LM", leave=False):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(rows), (cfg.batch_size,), generator=g).to(rows.device)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / warm)
        loss = lm_loss(model, rows[idx]) + sum(b.mlp.aux_loss for b in model.blocks if hasattr(b.mlp, "aux_loss"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, cfg.steps)
    model.eval()
    return losses


@torch.no_grad()
def eval_loss(model, rows: torch.Tensor, batch: int = 16) -> float:
    model.eval()
    return sum(float(lm_loss(model, rows[i:i + batch])) * len(rows[i:i + batch]) for i in range(0, len(rows), batch)) / len(rows)


@torch.no_grad()
def hook_acts(model, hook: str, rows: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """[rows * (seq_len - 1), F] activations at `hook` over every token but each row's first (the attention sink)."""
    out = []
    for i in range(0, len(rows), batch):
        _, cache = model.run_with_cache(rows[i:i + batch], names_filter=hook)
        out.append(cache[hook][:, 1:].reshape(-1, cache[hook].shape[-1]).float().cpu())
    return torch.cat(out)


class LMUnitScore(NamedTuple):
    source: str
    """dense neurons, MoE-X units, or TopK SAE latents"""
    n_features: int
    l0: float
    """mean features > 0 per token"""
    eval_loss: float
    """held-out next-token loss of the model the features come from"""
    labelled_share: float
    """share of features (firing >= min_firings times) whose best concept F1 >= LABEL_MIN_F1"""
    mean_best_f1: float
    """mean best concept F1 over the features firing >= min_firings times"""
    concept_coverage: float
    """mean over concept categories of the best F1 of any feature (Karvonen's coverage, LM concepts)"""
    n_scored: int
    """features firing >= min_firings times"""


def score_features(source: str, acts: torch.Tensor, concepts_NC: torch.Tensor, loss: float, min_firings: int) -> LMUnitScore:
    best = best_property_per_feature(acts, concepts_NC, min_firings=min_firings)
    scored = torch.isfinite(torch.as_tensor(best.f1))
    f1 = torch.as_tensor(best.f1)[scored]
    cov = coverage(acts, concepts_NC)
    return LMUnitScore(source, acts.shape[1], float((acts > 0).float().sum(1).mean()), loss,
                       float((f1 >= LABEL_MIN_F1).float().mean()) if len(f1) else 0.0,
                       float(f1.mean()) if len(f1) else 0.0, cov.score, int(scored.sum()))


def lm_moex_comparison(model, cfg: LMMoEXConfig, progress=None) -> tuple[list[LMUnitScore], dict]:
    """Dense neurons vs MoE-X units (upcycled + fine-tuned) vs TopK SAE latents on the same held-out
    tokens of the embedded corpus; -> (scores, details incl. the fine-tune losses)."""
    from interp.features import ConceptMatcher
    from interp.sae.train import train_sae_on_tensor

    train = corpus_rows(model, cfg.steps * cfg.batch_size // 2 + cfg.batch_size, cfg.seq_len, cfg.seed)
    held = corpus_rows(model, cfg.eval_rows, cfg.seq_len, cfg.seed + 10_000)
    matcher = ConceptMatcher(model)
    cats = matcher(held.cpu())[:, 1:].reshape(-1)  # [tokens] category index, -1 outside fact sentences
    if not (cats >= 0).any():
        raise InterpError("no concept (fact sentence) token in the held-out rows; raise eval_rows")
    concepts = torch.zeros(len(cats), len(matcher.categories), dtype=torch.bool)
    concepts[(cats >= 0).nonzero(as_tuple=True)[0], cats[cats >= 0]] = True
    moe, mcfg, layers = upcycle_language_model(model, cfg)
    layer = layers[-1]
    loss_dense = eval_loss(model, held)
    loss_up0 = eval_loss(moe, held)
    losses = finetune_lm(moe, train, cfg, progress=progress)
    loss_moe = eval_loss(moe, held)
    dense_hook, moe_hook = f"blocks.{layer}.mlp.hook_post", f"blocks.{layer}.mlp.hook_moex_z"
    a_dense = hook_acts(model, dense_hook, held)
    a_moe = hook_acts(moe, moe_hook, held)
    sae_train = hook_acts(model, dense_hook, train[: max(8, len(train) // 2)])
    sae = train_sae_on_tensor(sae_train, arch="topk", d_sae=mcfg.n_experts * mcfg.d_mlp, k=cfg.sae_k, steps=cfg.sae_steps,
                              batch_size=1024, seed=cfg.seed, hook_name=dense_hook)
    with torch.no_grad():
        a_sae = sae.encode(a_dense.to(device_of(sae))).float().cpu()
    scores = [score_features("dense MLP neurons", a_dense, concepts, loss_dense, cfg.min_firings),
              score_features("MoE-X units (upcycled + fine-tuned)", a_moe, concepts, loss_moe, cfg.min_firings),
              score_features(f"TopK SAE latents (k={cfg.sae_k}) on the dense neurons", a_sae, concepts, loss_dense, cfg.min_firings)]
    details = {"layer": layer, "moex": mcfg.to_dict(), "loss_dense": loss_dense, "loss_upcycled_before_finetune": loss_up0,
               "loss_moex": loss_moe, "finetune_losses": losses, "held_out_tokens": int(len(cats)),
               "concept_tokens": int((cats >= 0).sum()), "n_concepts_present": int(concepts.any(0).sum())}
    return scores, details
