"""SAEBench core metrics for any SAELens SAE, computed by SAELens' own evaluation functions.

Keys (SAEBench's names), on held-out text, special tokens (BOS/EOS/PAD) excluded:

* ``l0``: mean number of active latents per token; ``l1``: mean sum of |latent|.
* ``explained_variance`` = 1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2)  (pooled over tokens).
* ``mse`` = E||x - x_hat||^2 (summed over dimensions, mean over tokens); ``cossim`` = E cos(x, x_hat).
* ``ce_loss_score`` = (CE_zero - CE_sae) / (CE_zero - CE_clean): the fraction of the next-token
  loss recovered when the hook's activation is replaced by the SAE reconstruction, relative to
  zero-ablating it.
* ``kl_div_score`` = (KL_zero - KL_sae) / KL_zero, KL(clean || patched) of next-token distributions.
* ``l2_ratio`` = E ||x_hat|| / ||x||;  ``relative_reconstruction_bias`` = E||x_hat||^2 / E<x, x_hat>.
* ``frac_alive``: fraction of latents that fire at least once; ``freq_over_1_percent`` /
  ``freq_over_10_percent``: fraction of latents firing on more than 1% / 10% of tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from interp.errors import InterpError

if TYPE_CHECKING:
    from interp.data.sources import SourceSpec

log = logging.getLogger(__name__)

CORE_KEYS = ("l0", "explained_variance", "mse", "cossim", "ce_loss_score", "kl_div_score", "l2_ratio",
             "relative_reconstruction_bias", "frac_alive", "freq_over_1_percent", "freq_over_10_percent")


@dataclass
class EvalResult:
    """SAEBench core metrics plus the per-latent firing frequency behind the frac_* keys."""

    metrics: dict[str, float]
    feature_density: torch.Tensor  # [d_sae] fraction of eval tokens each latent fires on


class _TokenRows:
    """The one method SAELens' eval functions ask of an activation store: `get_batch_tokens`."""

    def __init__(self, rows: torch.Tensor):
        self.rows, self.i = rows, 0

    def get_batch_tokens(self, n: int) -> torch.Tensor:
        out = self.rows[self.i : self.i + n]
        self.i += n
        return out


def eval_tokens(model, n_tokens: int = 16384, source: "str | SourceSpec" = "corpus", seq_len: int | None = None,
                seed: int | None = None) -> torch.Tensor:
    """[rows, seq_len] held-out token rows of `source` (a source string or an `interp.data.sources.SourceSpec`;
    the embedded corpus' held-out seed by default). `seq_len` defaults to the spec's context size, then n_ctx."""
    from interp.data import corpus as C
    from interp.data.sources import as_spec, open_source

    spec = as_spec(source, seed=C.HELDOUT_SEED if seed is None else seed)
    seq_len = min(seq_len or spec.context_size or model.cfg.n_ctx, model.cfg.n_ctx)
    src = open_source(spec, model.tokenizer)
    rows = [r for _, r in zip(range(max(1, -(-n_tokens // seq_len))), src.rows(seq_len))]
    if not rows:
        raise InterpError(f"no evaluation text in {spec.source!r}")
    return torch.stack(rows)


@torch.no_grad()
def evaluate_sae(sae, model, n_tokens: int = 16384, batch_rows: int = 16, tokens: torch.Tensor | None = None,
                 source: "str | SourceSpec" = "corpus") -> EvalResult:
    """All SAEBench core metrics of `sae` on `model` (see module docstring), via SAELens'
    `get_recons_loss` and `get_sparsity_and_variance_metrics`."""
    from sae_lens.evals import get_downstream_reconstruction_metrics, get_sparsity_and_variance_metrics
    from sae_lens.training.activation_scaler import ActivationScaler
    from sae_lens.util import get_special_token_ids

    from interp.hooks import HookSpec, hook_dim, parse_hook

    from interp.device import SAE_DTYPE, device_of
    from interp.sae.io import sae_hook

    spec = parse_hook(model, sae_hook(sae))
    name = spec.name
    sae = sae.to(device=device_of(model), dtype=SAE_DTYPE)  # SAEs evaluate in float32 on the model's device
    width = hook_dim(model, spec)
    if "hook_z" in name and spec.head is None and sae.cfg.d_in == width * model.cfg.n_heads:
        width = sae.cfg.d_in  # an all-heads hook_z SAE reads the flattened [n_heads * d_head]
    if sae.cfg.d_in != width:
        raise InterpError(f"SAE d_in {sae.cfg.d_in} does not match hook {spec} of this model (width {width})")
    toks = (tokens if tokens is not None else eval_tokens(model, n_tokens, source=source)).to(device_of(model))
    n_batches = max(1, len(toks) // batch_rows)
    ignore = list(get_special_token_ids(model.tokenizer)) if model.tokenizer is not None else None
    scaler = ActivationScaler()  # the training scale is folded into the saved weights
    was_reshaping = getattr(sae, "hook_z_reshaping_mode", False)
    if was_reshaping:
        sae.turn_off_forward_pass_hook_z_reshaping()
    sae.eval()
    try:
        try:
            recon = get_downstream_reconstruction_metrics(
                sae, model, _TokenRows(toks), scaler, compute_kl=True, compute_ce_loss=True, n_batches=n_batches,
                eval_batch_size_prompts=batch_rows, ignore_tokens=ignore)
        except ZeroDivisionError:
            # SAELens averages the losses in the model's dtype and divides by CE_zero - CE_clean and by
            # KL_zero; in bfloat16, on a model whose loss the ablation barely moves, both can round to
            # exactly 0. The downstream metrics of that run are then undefined (NaN), not a crash.
            log.warning("the hook's ablation does not change the loss at %s precision; CE/KL scores are undefined",
                        str(next(model.parameters()).dtype).removeprefix("torch."))
            recon = dict.fromkeys(("ce_loss_score", "kl_div_score", "ce_loss_without_sae", "ce_loss_with_sae",
                                   "ce_loss_with_ablation", "kl_div_with_sae", "kl_div_with_ablation"), float("nan"))
        sv, feats = get_sparsity_and_variance_metrics(
            sae, model, _TokenRows(toks), scaler, n_batches=n_batches, compute_l2_norms=True, compute_sparsity_metrics=True,
            compute_variance_metrics=True, compute_featurewise_density_statistics=True, eval_batch_size_prompts=batch_rows,
            model_kwargs={}, ignore_tokens=ignore)
    finally:
        if was_reshaping:
            sae.turn_on_forward_pass_hook_z_reshaping()
    density = torch.tensor(feats["feature_density"])
    m = {
        "l0": sv["l0"], "l1": sv["l1"], "explained_variance": sv["explained_variance"], "mse": sv["mse"], "cossim": sv["cossim"],
        "ce_loss_score": recon["ce_loss_score"], "kl_div_score": recon["kl_div_score"],
        "ce_loss_without_sae": recon["ce_loss_without_sae"], "ce_loss_with_sae": recon["ce_loss_with_sae"],
        "ce_loss_with_ablation": recon["ce_loss_with_ablation"], "kl_div_with_sae": recon["kl_div_with_sae"],
        "kl_div_with_ablation": recon["kl_div_with_ablation"],
        "l2_ratio": sv["l2_ratio"], "relative_reconstruction_bias": sv["relative_reconstruction_bias"],
        "frac_alive": float((density > 0).float().mean()), "freq_over_1_percent": float((density > 0.01).float().mean()),
        "freq_over_10_percent": float((density > 0.1).float().mean()),
        "eval_tokens": int(toks.numel()),
    }
    bad = [k for k, v in m.items() if isinstance(v, float) and v != v]
    if bad:
        log.warning("NaN metrics: %s", ", ".join(bad))
    return EvalResult(metrics={k: float(v) if isinstance(v, float) else v for k, v in m.items()}, feature_density=density)


def evaluate_sae_dir(path: str | Path, model_name: str | None = None, n_tokens: int = 16384, source: "str | SourceSpec" = "corpus",
                     device: str | None = None) -> EvalResult:
    """Load the SAE in `path` (any SAELens-format directory, or ``sae-lens:RELEASE/SAE_ID``) and the
    model it names (or `model_name`) on `device`, check that it fits, and evaluate it."""
    from interp.models import load_model
    from interp.sae.io import check_sae_fits, load_sae

    sae = load_sae(path, device="cpu")  # checked (NaN/Inf, shapes) before the model loads; moved below
    name = model_name or getattr(sae.cfg.metadata, "model_name", None)
    if not name:
        raise InterpError(f"{path}/cfg.json names no model (metadata.model_name); pass --model")
    model = load_model(name, **({"device": device} if device else {}))
    check_sae_fits(sae, model)
    return evaluate_sae(sae, model, n_tokens=n_tokens, source=source)
