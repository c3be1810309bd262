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
from dataclasses import asdict, dataclass, fields
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

CORPORA = ("v1", "v2")
# Fields that do not change the trained weights: a checkpoint written under other values resumes.
NON_WEIGHT_FIELDS = ("ckpt_every", "eval_n", "eval_every", "eval_curve_n")


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
    corpus: str = "v1"  # corpus version: "v1" (interp.data.corpus, the shipped models) or "v2" (corpus_v2)
    eval_every: int = 0  # steps between learning-curve points on held-out-template task metrics (0 = none)
    eval_curve_n: int = 64  # prompts per task and split at each learning-curve point

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, not {self.corpus!r}")
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

    @classmethod
    def testbed(cls) -> "BuildConfig":
        """Issue 25's recipe: corpus v2 and ~3x the shipped v1 model's 7.4M tokens (5400 x 32 x 128
        = 22.1M), with a learning curve every 300 steps."""
        return cls(corpus="v2", n_docs=100_000, steps=4200, warmup=200, ckpt_every=100, phase2_steps=1200,
                   phase2_docs=30_000, phase2_warmup=50, eval_every=300)

    def phase1_key(self) -> dict:
        """The fields that decide phase 1 (a finished phase 1 is reused when they match)."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("phase2") and k not in NON_WEIGHT_FIELDS}

    def phase1_done(self, saved_key: dict) -> bool:
        """Whether a finished phase 1 recorded with `saved_key` is this config's phase 1 (a field
        the record predates must hold its default)."""
        defaults = {f.name: f.default for f in fields(self)}
        now = self.phase1_key()
        return not set(saved_key) - set(now) and all(saved_key.get(k, defaults[k]) == v for k, v in now.items())


def corpus_module(version: str):
    """The corpus generator module of a corpus version ("v1" or "v2")."""
    if version not in CORPORA:
        raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, not {version!r}")
    from interp.data import corpus_v2

    return C if version == "v1" else corpus_v2


def _pack(tokenizer, docs: list[str], n_ctx: int) -> torch.Tensor:
    """Concatenate BOS+doc token streams and cut them into rows of n_ctx tokens."""
    bos = tokenizer.bos_token_id
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.append(bos)
        ids.extend(enc)
    n = len(ids) // n_ctx
    return torch.tensor(ids[: n * n_ctx]).view(n, n_ctx)


def same_weights_config(saved: dict | None, cfg) -> bool:
    """Whether a checkpoint's recorded config trains the same weights as `cfg`: every field equal,
    except `NON_WEIGHT_FIELDS`; a field the checkpoint predates must hold its default value (so
    adding a config field later does not throw a long run away)."""
    if not isinstance(saved, dict):
        return False
    defaults = {f.name: f.default for f in fields(cfg)}
    now = asdict(cfg)
    if set(saved) - set(now):
        return False
    return all(saved.get(k, defaults[k]) == v for k, v in now.items() if k not in NON_WEIGHT_FIELDS)


def _read_points(path: Path) -> list[dict]:
    """The learning-curve points of a `<tag>_evals.jsonl` file ([] when absent; an unreadable line,
    e.g. cut by a crash of an earlier version that appended, is skipped)."""
    out = []
    for ln in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError:
            log.warning("%s: skipping an unreadable learning-curve line", path)
    return out


def _train_phase(model, data: torch.Tensor, *, steps: int, lr: float, warmup: int, cfg: BuildConfig, seed: int,
                 work: Path, tag: str, on_eval=None) -> list:
    """AdamW with linear warm-up and cosine decay to 10% over `steps` batches of `data` rows.
    Checkpoints go to `work/<tag>_ckpt.*` and a rerun with the same config resumes from them.
    With `on_eval` (model -> dict of numbers) and `cfg.eval_every`, a learning-curve point
    {"step", **on_eval(model)} is appended to `work/<tag>_evals.jsonl` every `eval_every` steps
    and at the end (the file is cut back to the checkpoint's step on resume)."""
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
        if same_weights_config(meta.get("config"), cfg) and intact:
            model.load_state_dict(load_file(str(ckpt), device=str(device_of(model))))
            opt.load_state_dict(torch.load(opt_path, weights_only=True))
            start, curve = meta["step"], meta["curve"]
            log.info("%s: resuming from step %d", tag, start)
    evals_path = work / f"{tag}_evals.jsonl"
    points = [q for q in _read_points(evals_path) if q["step"] <= start] if start else []
    if on_eval is not None and cfg.eval_every:  # cut back to the checkpoint (or emptied for a fresh start)
        io.atomic_write_bytes(evals_path, "".join(json.dumps(q) + "\n" for q in points).encode())

    def eval_point(step: int) -> None:
        model.eval()
        points.append({"step": step, **on_eval(model)})
        model.train()
        io.atomic_write_bytes(evals_path, "".join(json.dumps(q) + "\n" for q in points).encode())  # small: rewritten whole
        log.info("%s step %d: %s", tag, step, points[-1])

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
        if on_eval is not None and cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == steps):
            eval_point(step + 1)
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

    gen = corpus_module(getattr(cfg, "corpus", "v1"))
    docs = gen.generate_corpus(cfg.n_docs, seed=cfg.seed)
    heldout_docs = gen.generate_corpus(max(200, cfg.eval_n), seed=C.HELDOUT_SEED)
    tok_dir = train_tokenizer(docs, cfg.vocab_size, work / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    data = _pack(tokenizer, docs, cfg.n_ctx)
    log.info("corpus: %d docs, %d rows of %d tokens, vocab %d", len(docs), len(data), cfg.n_ctx, len(tokenizer))
    d_vocab = ((len(tokenizer) + 63) // 64) * 64  # round up: faster matmuls, room for specials
    return docs, heldout_docs, tokenizer, data, d_vocab


def learning_curve(cfg, work: Path) -> list[dict]:
    """The learning-curve points both phases wrote in `work` (phase-2 steps counted after phase 1's)."""
    points = []
    for tag, offset in (("phase1", 0), ("phase2", cfg.steps)):
        points += [{**q, "step": q["step"] + offset, "phase": tag} for q in _read_points(work / f"{tag}_evals.jsonl")]
    return points


def curve_eval(cfg):
    """The learning-curve evaluation of a config: corpus-v2 task metrics on `eval_curve_n` prompts
    per task from the seen and the held-out template families (None for v1 or `eval_every` 0)."""
    if getattr(cfg, "corpus", "v1") != "v2" or not cfg.eval_every:
        return None

    def on_eval(model) -> dict:
        from interp.data import corpus_v2 as V

        return {sp: {k: round(v, 4) for k, v in model_card.template_metrics(model, cfg.eval_curve_n, sp).items()}
                for sp in V.SPLITS}

    return on_eval


def finish_build(model, cfg, card: dict, docs: list, curve: list, curve2: list, out_dir: str | Path,
                 task_curve: list | None = None) -> Path:
    """Add what every shipped model's card records about its build (config, parameters, corpus
    hash, training tokens, loss curve and, when recorded, the held-out task learning curve) to
    `card`, then save the model and the card into `out_dir`."""
    card["build"] = asdict(cfg)
    card["params"] = n_params(model)
    card["corpus_hash"] = C.corpus_hash(docs)
    card["train_tokens"] = (cfg.steps + cfg.phase2_steps) * cfg.batch_size * cfg.n_ctx
    card["train_curve"] = curve + [[cfg.steps + s, v] for s, v in curve2]
    if task_curve:
        card["task_curve"] = task_curve
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
    if phase1.exists() and phase1_meta.exists() and cfg.phase1_done(json.loads(phase1_meta.read_text())["key"]):
        model.load_state_dict(load_file(str(phase1), device=str(dev)))
        curve = json.loads(phase1_meta.read_text())["curve"]
        log.info("phase 1 already done in %s; reusing it", work)
    else:
        curve = _train_phase(model, data, steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, cfg=cfg, seed=cfg.seed, work=work,
                             tag="phase1", on_eval=curve_eval(cfg))
        io.atomic_save_safetensors(dict(model.state_dict()), phase1)
        io.atomic_write_json(phase1_meta, {"key": cfg.phase1_key(), "curve": curve})
    curve2: list = []
    if cfg.phase2_steps:
        docs2 = corpus_module(cfg.corpus).generate_corpus(cfg.phase2_docs, seed=cfg.seed + 1, code_frac=cfg.phase2_code_frac)
        curve2 = _train_phase(model, _pack(tokenizer, docs2, cfg.n_ctx).to(dev), steps=cfg.phase2_steps, lr=cfg.phase2_lr,
                              warmup=cfg.phase2_warmup, cfg=cfg, seed=cfg.seed + 1, work=work, tag="phase2",
                              on_eval=curve_eval(cfg))

    card = model_card.evaluate(model, n=cfg.eval_n, docs=heldout_docs, corpus=cfg.corpus)
    targets = model_card.TARGETS if cfg.corpus == "v1" else model_card.TARGETS_V2
    card["targets"] = targets
    card["meets_targets"] = model_card.meets_targets(card, targets)
    card["target_misses"] = model_card.target_misses(card, targets)
    card["target_line"] = model_card.target_line(card, targets)
    finish_build(model, cfg, card, docs, curve, curve2, out_dir, task_curve=learning_curve(cfg, work))
    log.info("model card: %s", {k: card[k] for k in ("ioi_accuracy", "greater_than_prob_diff", "docstring_accuracy", "fact_accuracy")})
    return model, card
