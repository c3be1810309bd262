"""`interp build-default`: regenerate the embedded corpus, tokenizer and model, deterministically.

The training loop is one top-to-bottom function (`train_embedded_model`), nanoGPT-style:
generate corpus -> train tokenizer -> pack tokens into n_ctx rows (each document starts with the
BOS/EOT token) -> AdamW with linear warm-up and cosine decay -> held-out model card.
Checkpoints (safetensors) are written every `ckpt_every` steps, and a rerun resumes from them.
"""

from __future__ import annotations

import io as _io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from interp import io, model_card
from interp.data import corpus as C
from interp.data.tokenizer import train_tokenizer
from interp.device import device_of
from interp.models import EMBEDDED_DIR, build_from_config, n_params, save_model

log = logging.getLogger(__name__)


@dataclass
class BuildConfig:
    """Everything that decides the embedded model; `quick()` is the tiny test version."""

    n_docs: int = 40_000  # corpus documents generated (seed `seed`)
    vocab_size: int = 4096  # BPE vocabulary cap (the corpus saturates well below it)
    n_layers: int = 4
    d_model: int = 256
    n_heads: int = 8
    d_mlp: int = 1024
    n_ctx: int = 128
    steps: int = 1200  # optimizer steps of phase 1 (the general corpus)
    batch_size: int = 32  # rows of n_ctx tokens per step
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    seed: int = 0
    ckpt_every: int = 250
    eval_n: int = 200  # held-out prompts per task in the model card
    # Phase 2: the same generator with many more Python functions. Phase 1 learns facts, IOI and
    # greater-than, but the two-hop docstring pattern needs more examples than 15% code gives.
    phase2_steps: int = 600  # optimizer steps of phase 2 (0 = skip)
    phase2_docs: int = 12_000  # documents generated for phase 2 (seed `seed + 1`)
    phase2_code_frac: float = 0.6  # fraction of phase-2 documents that are Python functions
    phase2_lr: float = 1e-3
    phase2_warmup: int = 20

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.warmup >= self.steps:
            raise ValueError("warmup must be shorter than steps")
        if self.phase2_steps and self.phase2_warmup >= self.phase2_steps:
            raise ValueError("phase2_warmup must be shorter than phase2_steps")

    @classmethod
    def quick(cls) -> "BuildConfig":
        return cls(n_docs=3000, n_layers=2, d_model=64, n_heads=4, d_mlp=256, steps=120, warmup=10,
                   batch_size=16, ckpt_every=60, eval_n=40, phase2_steps=30, phase2_docs=600, phase2_warmup=5)

    def phase1_key(self) -> dict:
        """The fields that decide phase 1 (a finished phase 1 is reused when they match)."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("phase2") and k not in ("ckpt_every", "eval_n")}


def _pack(tokenizer, docs: list[str], n_ctx: int) -> torch.Tensor:
    """Concatenate BOS+doc token streams and cut them into rows of n_ctx tokens."""
    bos = tokenizer.bos_token_id
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.append(bos)
        ids.extend(enc)
    n = len(ids) // n_ctx
    return torch.tensor(ids[: n * n_ctx]).view(n, n_ctx)


def _train_phase(model, data: torch.Tensor, *, steps: int, lr: float, warmup: int, cfg: BuildConfig, seed: int,
                 work: Path, tag: str) -> list:
    """AdamW with linear warm-up and cosine decay to 10% over `steps` batches of `data` rows.
    Checkpoints go to `work/<tag>_ckpt.*` and a rerun with the same config resumes from them."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(frac * math.pi)))

    start, curve = 0, []
    ckpt, meta_path, opt_path = work / f"{tag}_ckpt.safetensors", work / f"{tag}_ckpt.json", work / f"{tag}_ckpt_opt.pt"
    if ckpt.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        intact = meta.get("sha256") in (None, io.sha256_file(ckpt)) and (
            meta.get("opt_sha256") in (None, io.sha256_file(opt_path) if opt_path.exists() else ""))
        if not intact:
            log.warning("%s: checkpoint in %s does not match its manifest (corrupt or truncated); starting over", tag, work)
        if meta.get("config") == asdict(cfg) and intact:
            model.load_state_dict(load_file(str(ckpt), device=str(device_of(model))))
            opt.load_state_dict(torch.load(opt_path, weights_only=True))
            start, curve = meta["step"], meta["curve"]
            log.info("%s: resuming from step %d", tag, start)

    gen = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(data), generator=gen) for _ in range(steps * cfg.batch_size // len(data) + 1)])
    model.train()
    bar = tqdm(range(start, steps), desc=f"train embedded model ({tag})", initial=start, total=steps)
    t0 = time.time()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = data[order[step * cfg.batch_size : (step + 1) * cfg.batch_size].to(data.device)]
        loss = model(batch, return_type="loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 0:
            curve.append([step, round(loss.item(), 4)])
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{(step + 1 - start) * cfg.batch_size * cfg.n_ctx / (time.time() - t0):.0f}")
        if (step + 1) % cfg.ckpt_every == 0 and step + 1 < steps:
            # The meta file is written last: a crash between the three writes leaves the previous
            # step's meta, whose step the weights no longer match, so meta carries the weights' hash.
            io.atomic_save_safetensors(dict(model.state_dict()), ckpt)
            buf = _io.BytesIO()
            torch.save(opt.state_dict(), buf)  # the optimizer state is a pickle (PyTorch's format); see README
            io.atomic_write_bytes(opt_path, buf.getvalue())
            io.atomic_write_json(meta_path, {"step": step + 1, "curve": curve, "config": asdict(cfg),
                                             "sha256": io.sha256_file(ckpt), "opt_sha256": io.sha256_file(opt_path)})
    model.eval()
    return curve


def prepare_corpus(cfg, work: Path) -> tuple[list, list, object, torch.Tensor, int]:
    """The generated corpus, tokenizer and packed training rows for a build config (any config with
    n_docs, seed, eval_n, vocab_size and n_ctx): (docs, held-out docs, tokenizer, rows, padded vocab size).
    The same config fields give the same corpus and tokenizer, so models built from it share them."""
    from transformers import AutoTokenizer

    docs = C.generate_corpus(cfg.n_docs, seed=cfg.seed)
    heldout_docs = C.generate_corpus(max(200, cfg.eval_n), seed=C.HELDOUT_SEED)
    tok_dir = train_tokenizer(docs, cfg.vocab_size, work / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    data = _pack(tokenizer, docs, cfg.n_ctx)
    log.info("corpus: %d docs, %d rows of %d tokens, vocab %d", len(docs), len(data), cfg.n_ctx, len(tokenizer))
    d_vocab = ((len(tokenizer) + 63) // 64) * 64  # round up: faster matmuls, room for specials
    return docs, heldout_docs, tokenizer, data, d_vocab


def finish_build(model, cfg, card: dict, docs: list, curve: list, curve2: list, out_dir: str | Path) -> Path:
    """Add what every shipped model's card records about its build (config, parameters, corpus
    hash, training tokens and curve) to `card`, then save the model and the card into `out_dir`."""
    card["build"] = asdict(cfg)
    card["params"] = n_params(model)
    card["corpus_hash"] = C.corpus_hash(docs)
    card["train_tokens"] = (cfg.steps + cfg.phase2_steps) * cfg.batch_size * cfg.n_ctx
    card["train_curve"] = curve + [[cfg.steps + s, v] for s, v in curve2]
    out = save_model(model, out_dir)
    io.atomic_write_json(out / "model_card.json", card)
    return out


def train_embedded_model(cfg: BuildConfig, out_dir: str | Path = EMBEDDED_DIR, work_dir: str | Path = "runs/embedded",
                         device: str | torch.device | None = "cpu"):
    """Build corpus, tokenizer and model on `device` (default cpu: the shipped weights are built on
    the CPU so a rebuild is bit-reproducible; None = `resolve_device`); write `out_dir` (model,
    tokenizer, model_card.json)."""
    from interp.device import resolve_device

    dev = resolve_device(device)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    docs, heldout_docs, tokenizer, data, d_vocab = prepare_corpus(cfg, work)
    model_cfg = dict(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_ctx=cfg.n_ctx, d_head=cfg.d_model // cfg.n_heads,
        n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, d_vocab=d_vocab, act_fn="gelu", normalization_type="LN",
        model_name="embedded", seed=cfg.seed,
    )
    model = build_from_config(model_cfg, tokenizer=tokenizer, device=dev)
    data = data.to(dev)

    phase1, phase1_meta = work / "phase1.safetensors", work / "phase1.json"
    if phase1.exists() and phase1_meta.exists() and json.loads(phase1_meta.read_text())["key"] == cfg.phase1_key():
        model.load_state_dict(load_file(str(phase1), device=str(dev)))
        curve = json.loads(phase1_meta.read_text())["curve"]
        log.info("phase 1 already done in %s; reusing it", work)
    else:
        curve = _train_phase(model, data, steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, cfg=cfg, seed=cfg.seed, work=work, tag="phase1")
        io.atomic_save_safetensors(dict(model.state_dict()), phase1)
        io.atomic_write_json(phase1_meta, {"key": cfg.phase1_key(), "curve": curve})
    curve2: list = []
    if cfg.phase2_steps:
        docs2 = C.generate_corpus(cfg.phase2_docs, seed=cfg.seed + 1, code_frac=cfg.phase2_code_frac)
        curve2 = _train_phase(model, _pack(tokenizer, docs2, cfg.n_ctx).to(dev), steps=cfg.phase2_steps, lr=cfg.phase2_lr,
                              warmup=cfg.phase2_warmup, cfg=cfg, seed=cfg.seed + 1, work=work, tag="phase2")

    card = model_card.evaluate(model, n=cfg.eval_n, docs=heldout_docs)
    card["targets"] = model_card.TARGETS
    card["meets_targets"] = model_card.meets_targets(card)
    finish_build(model, cfg, card, docs, curve, curve2, out_dir)
    log.info("model card: %s", {k: card[k] for k in ("ioi_accuracy", "greater_than_prob_diff", "docstring_accuracy", "fact_accuracy")})
    return model, card
