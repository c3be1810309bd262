"""`interp build-default --attn-only`: the attention-only model `embedded-attn`.

Same corpus and tokenizer as the embedded model (the same `interp.build` pieces, imported, not
copied): 4 layers x 8 heads, no MLPs, the setting of the discrete-SAE circuits paper (its
docstring model is an attention-only 4-layer transformer). Written to `interp/embedded_attn/`
(weights, tokenizer, model_card.json); `load_model("embedded-attn")` loads that directory.

Phase 1 is the embedded model's corpus. Phase 2 is task-focused (`phase2_mix="tasks"`): its
prose is only IOI and year sentences (no facts or filler, which an attention-only model is not
built to store) and `phase2_code_frac` of its documents are Python functions with docstrings; the
embedded model's phase 2 is the general generator with more code. d_model 128 (d_head 16): a
d_model 64 build (900 + 400 steps, the general phase 2) stayed at chance on IOI at step 600 and
reached only 0.35 greater-than probability difference, 0.01 docstring accuracy. Checkpoints every
`ckpt_every` steps, and a rerun resumes (see `interp.build._train_phase`).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from interp import io, model_card
from interp.build import BuildConfig, _pack, _train_phase, corpus_module, curve_eval, finish_build, learning_curve, prepare_corpus
from interp.data import corpus as C
from interp.models import build_from_config, n_params, save_model

log = logging.getLogger(__name__)

EMBEDDED_ATTN_DIR = Path(__file__).parent / "embedded_attn"

# The behaviours the circuits tasks need; an attention-only model is not expected to store facts.
ATTN_TARGETS = {"ioi_accuracy": 0.95, "docstring_accuracy": 0.9, "greater_than_prob_diff": 0.6}


@dataclass
class AttnBuildConfig(BuildConfig):
    """The attention-only model's build; fields as in `BuildConfig` (d_mlp is unused)."""

    d_model: int = 128
    d_mlp: int = 0  # attention-only: no MLP
    steps: int = 600
    batch_size: int = 16
    lr: float = 3e-3
    ckpt_every: int = 100
    phase2_steps: int = 400
    phase2_code_frac: float = 0.5
    phase2_lr: float = 2e-3
    phase2_mix: str = "tasks"  # phase-2 prose: "tasks" (IOI + year sentences only) or "corpus" (the general generator)

    def __post_init__(self):
        super().__post_init__()
        if self.phase2_mix not in ("tasks", "corpus"):
            raise ValueError(f"phase2_mix must be 'tasks' or 'corpus', not {self.phase2_mix!r}")

    @classmethod
    def quick(cls) -> "AttnBuildConfig":
        return cls(n_docs=3000, n_layers=2, d_model=32, n_heads=4, steps=40, warmup=5, batch_size=8,
                   ckpt_every=20, eval_n=20, phase2_steps=10, phase2_docs=300, phase2_warmup=2)

    @classmethod
    def testbed(cls) -> "AttnBuildConfig":
        """Issue 25's recipe: corpus v2 and ~10x the shipped v1 model's 2M tokens (5000 x 32 x 128
        = 20.5M): 2000 general steps, then 3000 task-focused ones; a learning curve every 250 steps."""
        return cls(corpus="v2", n_docs=100_000, steps=2000, warmup=100, batch_size=32, ckpt_every=100,
                   phase2_steps=3000, phase2_docs=60_000, phase2_warmup=50, eval_every=250)


def task_corpus(n_docs: int, seed: int, code_frac: float) -> list[str]:
    """Phase-2 documents: a Python function with its docstring (probability `code_frac`), else 3-7
    IOI (60%) and year (40%) sentences; deterministic in `seed`."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        if rng.random() < code_frac:
            docs.append(C.docstring_function(rng).meta["full"])
            continue
        parts = []
        for _ in range(rng.randint(3, 7)):
            if rng.random() < 0.6:
                p = C.ioi_sentence(rng)
                parts.append(p.text + p.answer + ".")
            else:
                parts.append(C.year_sentence(rng).meta["full"])
        docs.append(" ".join(parts))
    return docs


def phase2_docs(cfg: AttnBuildConfig) -> list[str]:
    if cfg.phase2_mix == "tasks":
        make = task_corpus if cfg.corpus == "v1" else corpus_module(cfg.corpus).task_corpus
        return make(cfg.phase2_docs, seed=cfg.seed + 1, code_frac=cfg.phase2_code_frac)
    return corpus_module(cfg.corpus).generate_corpus(cfg.phase2_docs, seed=cfg.seed + 1, code_frac=cfg.phase2_code_frac)


def attn_model_config(cfg: AttnBuildConfig, d_vocab: int) -> dict:
    """The model config dict (TransformerLens field names) of the attention-only model."""
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
    if phase1.exists() and phase1_meta.exists() and cfg.phase1_done(json.loads(phase1_meta.read_text())["key"]):
        model.load_state_dict(load_file(str(phase1)))
        curve = json.loads(phase1_meta.read_text())["curve"]
        log.info("phase 1 already done in %s; reusing it", work)
    else:
        curve = _train_phase(model, data, steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, cfg=cfg, seed=cfg.seed,
                             work=work, tag="phase1", on_eval=curve_eval(cfg))
        io.atomic_save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, phase1)
        io.atomic_write_json(phase1_meta, {"key": cfg.phase1_key(), "curve": curve}, indent=None)
    curve2: list = []
    if cfg.phase2_steps:
        docs2 = phase2_docs(cfg)
        curve2 = _train_phase(model, _pack(tokenizer, docs2, cfg.n_ctx), steps=cfg.phase2_steps, lr=cfg.phase2_lr,
                              warmup=cfg.phase2_warmup, cfg=cfg, seed=cfg.seed + 1, work=work, tag="phase2",
                              on_eval=curve_eval(cfg))

    card = model_card.evaluate(model, n=cfg.eval_n, docs=heldout_docs, corpus=cfg.corpus)
    targets = ATTN_TARGETS if cfg.corpus == "v1" else model_card.ATTN_TARGETS_V2
    card["targets"] = targets
    card["meets_targets"] = model_card.meets_targets(card, targets)
    card["target_misses"] = model_card.target_misses(card, targets)
    card["target_line"] = model_card.target_line(card, targets)
    card["note"] = ("attention-only (no MLP): fact recall is reported but not a target; targets are the three "
                    f"circuits tasks" + (" on held-out template families" if cfg.corpus == "v2" else "")
                    + f". Phase 2 ({cfg.phase2_steps} steps) trains on "
                    + ("IOI and year sentences and Python functions only (task-focused)" if cfg.phase2_mix == "tasks"
                       else "the general generator") + "; met: "
                    + ", ".join(f"{k} {card[k]:.3f} ({'yes' if ok else 'NO'}, target {targets[k]})"
                                for k, ok in card["meets_targets"].items()))
    finish_build(model, cfg, card, docs, curve, curve2, out_dir, task_curve=learning_curve(cfg, work))
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
    gen = corpus_module(cfg.corpus)
    docs = gen.generate_corpus(cfg.n_docs, seed=cfg.seed)
    card = model_card.evaluate(model, n=cfg.eval_n, docs=gen.generate_corpus(max(200, cfg.eval_n), seed=C.HELDOUT_SEED),
                               corpus=cfg.corpus)
    targets = ATTN_TARGETS if cfg.corpus == "v1" else model_card.ATTN_TARGETS_V2
    card["targets"] = targets
    card["meets_targets"] = model_card.meets_targets(card, targets)
    card["target_misses"] = model_card.target_misses(card, targets)
    done = meta["step"] + (cfg.steps if tag == "phase2" else 0)
    card["note"] = (f"attention-only (no MLP). A PARTIAL build: {tag} checkpoint at step {meta['step']} "
                    f"({done} of {cfg.steps + cfg.phase2_steps} optimizer steps); the build was stopped for time on a "
                    f"2-core machine shared by seven jobs. Rerunning `interp build-default --attn-only` with the same "
                    f"work dir resumes it. Fact recall is reported but not a target.")
    card["build"] = asdict(cfg)
    card["trained_steps"] = done
    card["params"] = n_params(model)
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
