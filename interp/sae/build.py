"""`build_default_saes`: rebuild every shipped SAE of the embedded model, deterministically, and
write `saes/README.md` from their metrics.json files.

The shipped set (all TopK unless named otherwise, d_sae 4 x d_model, k 32):

* ``resid_post_L{l}_topk``: ``blocks.{l}.hook_resid_post`` for every layer l;
* ``mlp_out_L{l}_topk`` and ``attn_out_L{l}_topk``: ``blocks.{l}.hook_mlp_out`` / ``hook_attn_out``
  for the middle layers;
* ``resid_post_L{m}_batchtopk``: a second architecture (BatchTopK, saved by SAELens as JumpReLU)
  on the middle residual stream.

All of them train from one pass of cached activations (`train_saes`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from interp.errors import InterpError
from interp.sae.config import RECIPES, SAETrainConfig
from interp.sae.io import list_saes

log = logging.getLogger(__name__)

SAES_ROOT = Path(__file__).resolve().parents[2] / "saes"
TARGETS = {"ce_loss_score": 0.95, "explained_variance": 0.9, "l0_max": 32, "frac_alive": 0.9}  # residual SAEs


@dataclass
class ShippedSpec:
    """How large and how long the shipped SAEs are trained."""

    tokens: int = 245_760  # training activations per SAE (60 steps of 4096)
    act_tokens: int = 204_800  # activations collected once per hook (rounded up to whole shards)
    k: int = 32  # TopK / BatchTopK latents per token
    expansion: int = 4  # d_sae = expansion * d_model
    batch_size: int = 4096
    # Every shipped SAE trains with SAELens' Adam recipe and these settings. `topk_recipe="default"`
    # trains the TopK ones with today's TopK default instead (sparsify's SignSGD + schedule-free,
    # interp/sae/config.py RECIPES); at these settings it did worse (benchmarks/sae_shipped_recipe.py).
    topk_recipe: str = "shipped"
    adam_lr: float = 2e-3
    dead_window: int = 10  # steps without firing before SAELens' AuxK loss revives a latent
    aux_coef: float = 4.0  # AuxK loss weight (higher keeps more latents alive in a short run)
    eval_tokens: int = 16384  # held-out tokens for metrics.json
    longer: dict = field(default_factory=lambda: {"resid_post_L0_topk": 655_360, "resid_post_L1_topk": 491_520,
                                                  "resid_post_L2_topk": 1_474_560, "resid_post_L3_topk": 1_474_560,
                                                  "resid_post_L1_batchtopk": 1_474_560})
    # ^ SAEs that need more training tokens than `tokens` to reach the targets (at 491,520 tokens the
    #   L2/L3 residual SAEs kept 13-17% dead latents; 1,474,560 brings frac_alive to >= 0.99)

    def __post_init__(self):
        if self.tokens < self.batch_size or self.act_tokens < self.batch_size:
            raise InterpError("tokens and act_tokens must be at least one batch")
        if self.topk_recipe not in ("shipped", "default"):
            raise InterpError(f"topk_recipe must be 'shipped' or 'default', got {self.topk_recipe!r}")


def shipped_configs(n_layers: int, d_model: int, model_name: str, spec: ShippedSpec) -> dict[str, SAETrainConfig]:
    """name -> config for every shipped SAE of a model with `n_layers` layers."""
    mid = sorted({max(0, n_layers // 2 - 1), n_layers // 2} & set(range(n_layers)))
    common = dict(model=model_name, d_sae=spec.expansion * d_model, tokens=spec.tokens, batch_size=spec.batch_size, k=spec.k)
    adam = dict(RECIPES["saelens"], lr=spec.adam_lr, dead_window=spec.dead_window, aux_coef=spec.aux_coef)
    topk = dict(common, **(adam if spec.topk_recipe == "shipped" else {}))
    out = {f"resid_post_L{l}_topk": SAETrainConfig(hook=f"blocks.{l}.hook_resid_post", arch="topk", **topk)
           for l in range(n_layers)}
    for l in mid:
        out[f"mlp_out_L{l}_topk"] = SAETrainConfig(hook=f"blocks.{l}.hook_mlp_out", arch="topk", **topk)
        out[f"attn_out_L{l}_topk"] = SAETrainConfig(hook=f"blocks.{l}.hook_attn_out", arch="topk", **topk)
    out[f"resid_post_L{mid[0]}_batchtopk"] = SAETrainConfig(hook=f"blocks.{mid[0]}.hook_resid_post", arch="batchtopk",
                                                            **common, **adam)
    return {name: replace(c, tokens=spec.longer.get(name, c.tokens)) for name, c in out.items()}


def build_default_saes(model_dir: str | Path | None = None, out_root: str | Path | None = None,
                       spec: ShippedSpec | None = None, acts_dir: str | Path = "runs/acts/shipped", only: list[str] | None = None):
    """Train (from one activation pass), evaluate and save every shipped SAE; regenerate README.md.

    `model_dir` defaults to the embedded model (then the SAEs record the model name ``embedded``).
    `only` restricts the build to some names."""
    from interp.models import EMBEDDED_DIR, load_model
    from interp.sae.train import train_saes

    spec = spec or ShippedSpec()
    model_dir = Path(model_dir) if model_dir else EMBEDDED_DIR
    name = "embedded" if model_dir.resolve() == EMBEDDED_DIR.resolve() else str(model_dir)
    model = load_model(name)
    out_root = Path(out_root) if out_root else SAES_ROOT / "embedded"
    cfgs = shipped_configs(model.cfg.n_layers, model.cfg.d_model, name, spec)
    if only:
        unknown = sorted(set(only) - set(cfgs))
        if unknown:
            raise InterpError(f"unknown shipped SAE(s) {', '.join(unknown)}; known: {', '.join(cfgs)}")
        cfgs = {k: v for k, v in cfgs.items() if k in only}
    results, collect_s = train_saes(list(cfgs.values()), [out_root / n for n in cfgs], acts_dir=acts_dir,
                                    act_tokens=spec.act_tokens, eval_tokens=spec.eval_tokens, model=model, overwrite=True,
                                    on_result=lambda r: write_readme(out_root.parent))  # usable SAEs as soon as each is done
    log.info("collected activations in %.1fs; trained %d SAEs in %.1fs", collect_s, len(results),
             sum(r.train_seconds for r in results))
    write_readme(out_root.parent)
    return results


def meets_targets(m: dict) -> bool:
    return (m.get("ce_loss_score", 0) >= TARGETS["ce_loss_score"] and m.get("explained_variance", 0) >= TARGETS["explained_variance"]
            and m.get("l0", 1e9) <= TARGETS["l0_max"] + 1e-6 and m.get("frac_alive", 0) >= TARGETS["frac_alive"])


UNSTABLE_CE_GAP = 0.01  # nats: below this, ablating the hook barely matters and ce_loss_score is noise


def write_readme(root: str | Path | None = None) -> Path:
    """saes/README.md: a table of every SAE under `root` with its metrics (generated)."""
    root = Path(root) if root else SAES_ROOT
    rows, notes = [], []
    for s in list_saes(root):
        m = s.metrics
        gap = m.get("ce_loss_with_ablation", float("nan")) - m.get("ce_loss_without_sae", float("nan"))
        if gap < UNSTABLE_CE_GAP:  # also False for NaN
            notes.append(f"- `{Path(s.path).relative_to(root)}`: zero-ablating `{s.hook}` raises the loss by only {gap:.4f} nats "
                         f"(clean {m['ce_loss_without_sae']:.4f}, with the SAE {m['ce_loss_with_sae']:.4f}), so ce_loss_score, "
                         "a ratio of two tiny differences, says little here; kl_div_score and explained_variance are the "
                         "meaningful numbers for this hook.")
        f = lambda k: f"{m[k]:.3f}" if isinstance(m.get(k), (int, float)) else "-"  # noqa: E731
        target = ("yes" if meets_targets(m) else "no") if "hook_resid_post" in s.hook else "n/a"
        size = (Path(s.path) / "sae_weights.safetensors").stat().st_size / 2**20
        rows.append(f"| `{Path(s.path).relative_to(root)}` | `{s.hook}` | {s.arch} ({m.get('arch', s.arch)}, {(m.get('config') or {}).get('optimizer') or 'adam'}) | {s.d_in} | {s.d_sae} | "
                    f"{f('l0')} | {f('explained_variance')} | {f('ce_loss_score')} | {f('kl_div_score')} | {f('mse')} | {f('cossim')} | "
                    f"{f('l2_ratio')} | {f('relative_reconstruction_bias')} | {f('frac_alive')} | {f('freq_over_1_percent')} | "
                    f"{f('freq_over_10_percent')} | {m.get('train_tokens', '-')} | {size:.1f} | {target} |")
    text = (
        "# Shipped SAEs\n\n"
        "Generated by `interp.sae.build.write_readme` from each SAE's `metrics.json`; do not edit by hand.\n"
        "Rebuild them all with `interp build-default` (or `python -m interp.sae.build`).\n\n"
        "Each directory is SAELens format (`sae_lens.SAE.load_from_disk(dir)`). Metrics are SAEBench's core keys on\n"
        f"held-out embedded-corpus text. Targets for residual-stream SAEs: ce_loss_score >= {TARGETS['ce_loss_score']}, "
        f"explained_variance >= {TARGETS['explained_variance']}, l0 <= {TARGETS['l0_max']}, frac_alive >= {TARGETS['frac_alive']}.\n"
        "The optimizer in the arch column names the recipe each SAE was trained with: `signum` is the TopK default\n"
        "(sparsify's SignSGD + schedule-free, unit-norm decoder, no input normalisation), `adam` SAELens' recipe.\n"
        "The TopK SAEs below keep the Adam recipe: retrained with the TopK default at their own settings they explained\n"
        "less variance (residual stream) or kept fewer latents alive (MLP/attention); see the `sae_shipped_recipe`\n"
        "table in benchmarks/README.md (`python benchmarks/sae_shipped_recipe.py --run`).\n\n"
        "| SAE | hook | arch (trained as, optimizer) | d_in | d_sae | l0 | explained_variance | ce_loss_score | kl_div_score | mse | cossim | "
        "l2_ratio | relative_reconstruction_bias | frac_alive | freq_over_1_percent | freq_over_10_percent | train tokens | weights MiB | "
        "meets targets |\n"
        "|" + "---|" * 19 + "\n" + "\n".join(rows) + "\n"
        + ("\nWhere ce_loss_score is not informative (generated from the same metrics):\n\n" + "\n".join(notes) + "\n" if notes else "")
    )
    from interp.io import atomic_write_text

    return atomic_write_text(root / "README.md", text)


if __name__ == "__main__":
    import argparse

    import torch

    p = argparse.ArgumentParser(description="rebuild the shipped SAEs of the embedded model")
    p.add_argument("--only", nargs="+", help="names to rebuild (default: all)")
    p.add_argument("--tokens", type=int, default=ShippedSpec.tokens, help="training activations per SAE")
    p.add_argument("--act-tokens", type=int, default=ShippedSpec.act_tokens, help="activations collected per hook")
    p.add_argument("--readme-only", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    if a.readme_only:
        write_readme()
    else:
        build_default_saes(spec=ShippedSpec(tokens=a.tokens, act_tokens=a.act_tokens), only=a.only)
