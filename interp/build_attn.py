"""`interp build-default --attn-only`: the attention-only model `embedded-attn`.

Same corpus and tokenizer as the embedded model (the same `interp.build` pieces, imported, not
copied): 4 layers x 8 heads, no MLPs, the setting of the discrete-SAE circuits paper (its
docstring model is an attention-only 4-layer transformer). Written to `interp/embedded_attn/`
(weights, tokenizer, model_card.json); `load_model("embedded-attn")` loads that directory.

Training length is sized for a 2-core CPU shared by seven jobs (load average 18 when it was
built): d_model 64 (d_head 8) instead of the embedded model's 256 and batches of 16 rows, so one
optimizer step costs about a sixteenth as much (a d_model 128, batch 32 first try ran at 17 s a
step on that machine); checkpoints every `ckpt_every` steps, and a rerun resumes (see
`interp.build._train_phase`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from interp import io, model_card
from interp.build import BuildConfig, _pack, _train_phase, finish_build, prepare_corpus
from interp.data import corpus as C
from interp.models import build_from_config, save_model

log = logging.getLogger(__name__)

EMBEDDED_ATTN_DIR = Path(__file__).parent / "embedded_attn"

# The behaviours the circuits tasks need; an attention-only model is not expected to store facts.
ATTN_TARGETS = {"ioi_accuracy": 0.95, "docstring_accuracy": 0.9, "greater_than_prob_diff": 0.6}


@dataclass
class AttnBuildConfig(BuildConfig):
    """The attention-only model's build; fields as in `BuildConfig` (d_mlp is unused)."""

    d_model: int = 64
    d_mlp: int = 0  # attention-only: no MLP
    steps: int = 900
    batch_size: int = 16
    lr: float = 3e-3
    ckpt_every: int = 100
    phase2_steps: int = 400

    @classmethod
    def quick(cls) -> "AttnBuildConfig":
        return cls(n_docs=3000, n_layers=2, d_model=32, n_heads=4, steps=40, warmup=5, batch_size=8,
                   ckpt_every=20, eval_n=20, phase2_steps=10, phase2_docs=300, phase2_warmup=2)


def attn_model_config(cfg: AttnBuildConfig, d_vocab: int) -> dict:
    """The HookedTransformer config dict of the attention-only model."""
    return dict(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_ctx=cfg.n_ctx, d_head=cfg.d_model // cfg.n_heads,
        n_heads=cfg.n_heads, d_mlp=None, attn_only=True, d_vocab=d_vocab, act_fn="gelu",
        normalization_type="LN", model_name="embedded-attn", seed=cfg.seed,
    )


def train_attn_model(cfg: AttnBuildConfig, out_dir: str | Path = EMBEDDED_ATTN_DIR,
                     work_dir: str | Path = "runs/embedded_attn"):
    """Build (or resume) the attention-only model; write `out_dir` (model, tokenizer, model_card.json)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    # Same generator, seed and vocabulary cap as the embedded model -> the same corpus and tokenizer.
    docs, heldout_docs, tokenizer, data, d_vocab = prepare_corpus(cfg, work)
    model = build_from_config(attn_model_config(cfg, d_vocab), tokenizer=tokenizer)

    phase1, phase1_meta = work / "phase1.safetensors", work / "phase1.json"
    if phase1.exists() and phase1_meta.exists() and json.loads(phase1_meta.read_text())["key"] == cfg.phase1_key():
        model.load_state_dict(load_file(str(phase1)))
        curve = json.loads(phase1_meta.read_text())["curve"]
        log.info("phase 1 already done in %s; reusing it", work)
    else:
        curve = _train_phase(model, data, steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, cfg=cfg, seed=cfg.seed,
                             work=work, tag="phase1")
        io.atomic_save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, phase1)
        io.atomic_write_json(phase1_meta, {"key": cfg.phase1_key(), "curve": curve}, indent=None)
    curve2: list = []
    if cfg.phase2_steps:
        docs2 = C.generate_corpus(cfg.phase2_docs, seed=cfg.seed + 1, code_frac=cfg.phase2_code_frac)
        curve2 = _train_phase(model, _pack(tokenizer, docs2, cfg.n_ctx), steps=cfg.phase2_steps, lr=cfg.phase2_lr,
                              warmup=cfg.phase2_warmup, cfg=cfg, seed=cfg.seed + 1, work=work, tag="phase2")

    card = model_card.evaluate(model, n=cfg.eval_n, docs=heldout_docs)
    card["targets"] = ATTN_TARGETS
    card["meets_targets"] = {k: card[k] >= v for k, v in ATTN_TARGETS.items()}
    card["note"] = ("attention-only (no MLP): fact recall is reported but not a target; "
                    "targets are the three circuits tasks")
    finish_build(model, cfg, card, docs, curve, curve2, out_dir)
    log.info("model card: %s", {k: card[k] for k in ("ioi_accuracy", "greater_than_prob_diff", "docstring_accuracy")})
    return model, card


def export_checkpoint(cfg: AttnBuildConfig, work_dir: str | Path, out_dir: str | Path = EMBEDDED_ATTN_DIR, tag: str = "phase1"):
    """Write the model at the last checkpoint of `tag` in `work_dir` (weights, tokenizer, card), for a
    build stopped before its end. The card says which step it is; rerunning `train_attn_model`
    with the same config resumes from that checkpoint and finishes the build."""
    from transformers import AutoTokenizer

    work = Path(work_dir)
    meta = json.loads((work / f"{tag}_ckpt.json").read_text())
    if meta.get("config") != asdict(cfg):
        raise ValueError(f"the checkpoint in {work} was written by another config")
    tokenizer = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    model = build_from_config(attn_model_config(cfg, ((len(tokenizer) + 63) // 64) * 64), tokenizer=tokenizer)
    model.load_state_dict(load_file(str(work / f"{tag}_ckpt.safetensors")))
    model.eval()
    docs = C.generate_corpus(cfg.n_docs, seed=cfg.seed)
    card = model_card.evaluate(model, n=cfg.eval_n, docs=C.generate_corpus(max(200, cfg.eval_n), seed=C.HELDOUT_SEED))
    card["targets"] = ATTN_TARGETS
    card["meets_targets"] = {k: card[k] >= v for k, v in ATTN_TARGETS.items()}
    done = meta["step"] + (cfg.steps if tag == "phase2" else 0)
    card["note"] = (f"attention-only (no MLP). A PARTIAL build: {tag} checkpoint at step {meta['step']} "
                    f"({done} of {cfg.steps + cfg.phase2_steps} optimizer steps); the build was stopped for time on a "
                    f"2-core machine shared by seven jobs. Rerunning `interp build-default --attn-only` with the same "
                    f"work dir resumes it. Fact recall is reported but not a target.")
    card["build"] = asdict(cfg)
    card["trained_steps"] = done
    card["params"] = sum(p.numel() for p in model.parameters())
    card["corpus_hash"] = C.corpus_hash(docs)
    card["train_tokens"] = done * cfg.batch_size * cfg.n_ctx
    card["train_curve"] = meta["curve"]
    out = save_model(model, out_dir)
    io.atomic_write_json(out / "model_card.json", card)
    return model, card


if __name__ == "__main__":  # developer entry point: python -m interp.build_attn [--quick] [--out DIR]
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--work-dir", default="runs/embedded_attn")
    p.add_argument("--export-checkpoint", action="store_true", help="write the model at the last phase-1 checkpoint and stop")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    c = AttnBuildConfig.quick() if a.quick else AttnBuildConfig()
    if a.export_checkpoint:
        _, card = export_checkpoint(c, Path(a.work_dir) / ("quick" if a.quick else "full"), a.out or EMBEDDED_ATTN_DIR)
        log.info("model card: %s", {k: card[k] for k in ("ioi_accuracy", "ioi_logit_diff", "greater_than_prob_diff",
                                                          "docstring_accuracy", "heldout_loss")})
        raise SystemExit(0)
    train_attn_model(c, out_dir=a.out or EMBEDDED_ATTN_DIR, work_dir=Path(a.work_dir) / ("quick" if a.quick else "full"))
