"""`build_shipped_transcoders`: rebuild the shipped transcoder set of the embedded model (one JumpReLU
transcoder per MLP layer, all from one activation pass, seeded) and write its table
``transcoders/README.md`` from the metrics it measured (per layer: FVU, L0, CE / KL scores with that
MLP replaced; and the CE / KL scores with every MLP replaced at once)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from interp.transcoders.config import TranscoderTrainConfig

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2] / "transcoders"
COMMAND = "interp build-transcoders"


@dataclass
class ShippedTranscoders:
    """How large and how long the shipped transcoders are trained."""

    arch: str = "jumprelu"  # SAELens' JumpReLUTranscoder loads them with no interp code
    d_sae: int = 1024  # 4 x d_model
    tokens: int = 1_024_000  # training samples per transcoder (1000 steps of 1024)
    act_tokens: int = 262_144  # activations collected once for all layers (float16)
    l0_coef: float = 2e-3
    init_threshold: float = 1.5
    eval_tokens: int = 16_384
    seed: int = 0


def build_shipped_transcoders(out_root: str | Path | None = None, model_name: str = "embedded",
                              spec: ShippedTranscoders | None = None, model=None) -> Path:
    """Train, evaluate and save ``L0 .. L{n-1}`` under `out_root`/<model> and write the table."""
    from interp.io import atomic_write_json, atomic_write_text
    from interp.models import load_model
    from interp.transcoders.eval import evaluate_set
    from interp.transcoders.io import load_transcoder_set
    from interp.transcoders.train import train_transcoders

    spec = spec or ShippedTranscoders()
    out = Path(out_root or ROOT) / model_name
    model = model if model is not None else load_model(model_name)
    cfgs = [TranscoderTrainConfig(layer=i, model=model_name, arch=spec.arch, d_sae=spec.d_sae, tokens=spec.tokens,
                                  l0_coef=spec.l0_coef, init_threshold=spec.init_threshold, seed=spec.seed)
            for i in range(model.cfg.n_layers)]
    outs = [out / f"L{c.layer}" for c in cfgs]
    results, collect_s = train_transcoders(cfgs, outs, act_tokens=spec.act_tokens, eval_tokens=spec.eval_tokens,
                                           model=model, overwrite=True)
    tset = load_transcoder_set(out)
    whole = evaluate_set(tset.transcoders, model, n_tokens=spec.eval_tokens)
    atomic_write_json(out / "set_metrics.json", {"model": model_name, "spec": spec.__dict__, "collect_seconds": round(collect_s, 1),
                                                 "all_mlps_replaced": whole})
    atomic_write_text(ROOT / "README.md" if out_root is None else Path(out_root) / "README.md", table(out))
    return out


def table(set_dir: str | Path) -> str:
    """Markdown table of a transcoder set's metrics.json files (and set_metrics.json)."""
    set_dir = Path(set_dir)
    rows = []
    for d in sorted(p for p in set_dir.iterdir() if (p / "metrics.json").is_file()):
        m = json.loads((d / "metrics.json").read_text())
        rows.append(f"| {d.name} | {m.get('arch')} | {m['config']['d_sae']} | {m['l0']:.1f} | {m['fvu']:.3f} | "
                    f"{m['ce_loss_score']:.3f} | {m['kl_div_score']:.3f} | {m['frac_alive']:.3f} | {m['train_tokens']:,} | "
                    f"{m['train_seconds']:.0f} |")
    s = json.loads((set_dir / "set_metrics.json").read_text()) if (set_dir / "set_metrics.json").is_file() else None
    lines = [f"# Shipped transcoders: `{set_dir.name}`", "",
             f"Rebuilt by `{COMMAND}` (`interp/transcoders/build.py`); every number below is what that build measured on",
             "held-out text of the embedded corpus (BOS positions excluded). Each transcoder reads",
             "`blocks.L.ln2.hook_normalized` and predicts `blocks.L.hook_mlp_out`; saved in SAELens' format",
             "(`sae_lens.JumpReLUTranscoder.load_from_disk` loads each directory).", "",
             "FVU = unexplained variance of the MLP output (0 is perfect); CE / KL score = share of the next-token",
             "loss / KL recovered with that MLP replaced by its transcoder, against zero-ablating the MLP (1 is",
             "perfect, 0 is no better than removing the MLP; above 1, the replaced model's loss is below the clean model's,",
             "which happens where zero-ablating the MLP barely moves the loss, so the score's denominator is small).", "",
             "| layer | architecture | d_sae | L0 | FVU | CE score | KL score | alive | train tokens | train s |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows]
    if s is not None:
        w = s["all_mlps_replaced"]
        lines += ["", f"Every MLP replaced at once: CE score {w['ce_loss_score']:.3f} (CE {w['ce_loss_without_tc']:.4f} clean, "
                      f"{w['ce_loss_with_tc']:.4f} with transcoders, {w['ce_loss_with_ablation']:.4f} with all MLPs zeroed); "
                      f"KL score {w['kl_div_score']:.3f}."]
    return "\n".join(lines) + "\n"
