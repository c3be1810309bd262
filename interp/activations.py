"""Stream activations to sharded safetensors on disk and read them back in shuffled batches.

Layout of an activation directory::

    manifest.json                    model, hooks, shapes, dtype, token count, corpus hash, shards done
    tokens/shard_00000.safetensors   "tokens": int32 [rows, seq_len]   (the inputs, for contexts)
    <hook>/shard_00000.safetensors   "acts":  dtype [rows * seq_len, d] (row-major over positions)

Shard i always holds the same token rows (the token stream is deterministic), so an interrupted
run resumes at the first missing shard. Memory is bounded by one shard per hook, whatever N is.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp.alloc import tune_malloc
from interp.data import corpus as C
from interp.errors import InterpError
from interp.hooks import HookSpec, capture, parse_hook, stop_layer

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _check_text(path: Path) -> str:
    if not path.exists():
        raise InterpError(f"corpus file {path} does not exist")
    raw = path.read_bytes()
    if b"\0" in raw[:65536]:
        raise InterpError(f"corpus file {path} is not text (it contains NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InterpError(f"corpus file {path} is not UTF-8 text") from None
    if not text.strip():
        raise InterpError(f"corpus file {path} is empty")
    return text


def text_source(source: str, seed: int = 0) -> tuple[Iterator[str], str]:
    """Documents from `source` and a hash naming it.

    * ``"corpus"``: the embedded world corpus (endless, seeded);
    * a text file path: one document per blank-line-separated paragraph;
    * ``"hf:NAME[:SPLIT[:COLUMN]]"``: a Hugging Face dataset (needs it in the local cache).
    """
    if source == "corpus":
        import random

        rng = random.Random(seed)

        def gen():
            while True:
                yield C.document(rng)

        return gen(), f"corpus-seed{seed}"
    if source.startswith("hf:"):
        parts = source[3:].split(":")
        name, split, col = parts[0], (parts[1] if len(parts) > 1 else "train"), (parts[2] if len(parts) > 2 else "text")
        try:
            from datasets import load_dataset

            ds = load_dataset(name, split=split, streaming=True)
        except Exception as e:  # datasets raises many types for offline/missing
            raise InterpError(f"could not open Hugging Face dataset {name!r} (offline and not cached?): {str(e).splitlines()[0][:160]}") from None
        return (row[col] for row in ds), f"hf-{name}-{split}"
    path = Path(source)
    text = _check_text(path)
    import hashlib

    docs = [d for d in text.split("\n\n") if d.strip()]
    return iter(docs), "file-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def token_rows(model: HookedTransformer, docs: Iterator[str], seq_len: int) -> Iterator[torch.Tensor]:
    """Pack BOS+document token streams into rows of `seq_len` tokens (like the model's training)."""
    tok = model.tokenizer
    if tok is None:
        raise InterpError("this model has no tokenizer, so text cannot be tokenized")
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    buf: list[int] = []
    for d in docs:
        buf.append(bos)
        buf.extend(tok(d, add_special_tokens=False)["input_ids"])
        while len(buf) >= seq_len:
            yield torch.tensor(buf[:seq_len])
            buf = buf[seq_len:]
    if len(buf) > 1:
        yield torch.tensor(buf + [bos] * (seq_len - len(buf)))


@dataclass
class CollectConfig:
    """What `collect_activations` records."""

    hooks: list[str]  # hook specs, NAME or NAME:HEAD
    n_tokens: int  # tokens to record (rounded up to whole rows; the last shard may be short)
    source: str = "corpus"  # "corpus", a text file, or hf:NAME[:SPLIT[:COLUMN]]
    seq_len: int | None = None  # context length; default the model's n_ctx
    batch_size: int = 32  # rows per forward
    shard_rows: int = 256  # rows per shard file
    dtype: str = "float32"  # stored dtype
    seed: int = 0  # corpus seed

    def __post_init__(self):
        if not self.hooks:
            raise InterpError("give at least one hook")
        if self.n_tokens <= 0:
            raise InterpError("--tokens must be positive")
        if self.dtype not in _DTYPES:
            raise InterpError(f"dtype must be one of {', '.join(_DTYPES)}")
        if self.shard_rows % self.batch_size:
            self.shard_rows = max(self.batch_size, self.shard_rows // self.batch_size * self.batch_size)


@dataclass
class Manifest:
    model: str
    hooks: list[str]
    d: dict[str, int]
    dtype: str
    seq_len: int
    n_tokens: int
    corpus: str
    config: dict
    shards_done: int = 0
    n_shards: int = 0
    shard_rows: int = 0
    complete: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        p = Path(path) / "manifest.json"
        if not p.exists():
            raise InterpError(f"{path} is not an activation directory (no manifest.json)")
        try:
            return cls(**json.loads(p.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise InterpError(f"{p} is corrupt: {e}") from None

    def write(self, path: Path) -> None:
        tmp = path / "manifest.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.rename(path / "manifest.json")


def collect_activations(model: HookedTransformer, cfg: CollectConfig, out_dir: str | Path, model_name: str = "embedded", overwrite: bool = False,
                        parallel=None) -> Manifest:
    """Run `model` over `cfg.source` and stream the activations at `cfg.hooks` into `out_dir`.

    Under torchrun (`parallel`, see `interp.distributed`), rank r writes shards r, r+W, ...
    and skips the shards already on disk (resumable per rank); rank 0 alone writes the manifest."""
    from interp import distributed as dist

    par = parallel or dist.LOCAL
    specs = [parse_hook(model, h) for h in cfg.hooks]
    seq_len = cfg.seq_len or model.cfg.n_ctx
    if seq_len > model.cfg.n_ctx:
        raise InterpError(f"context length {seq_len} is longer than the model's n_ctx {model.cfg.n_ctx}")
    docs, corpus_id = text_source(cfg.source, cfg.seed)
    rows_needed = -(-cfg.n_tokens // seq_len)
    n_shards = -(-rows_needed // cfg.shard_rows)  # the last one holds only the rows still needed
    out = Path(out_dir)
    run_cfg = {**asdict(cfg), "seq_len": seq_len, "model": model_name}

    with torch.no_grad(), capture(model, specs) as store:
        model(torch.zeros(1, 2, dtype=torch.long))
        dims = {str(s): store[str(s)].shape[-1] for s in specs}

    def setup() -> Manifest:
        if out.exists() and any(out.iterdir()):
            try:
                old = Manifest.read(out)
            except InterpError:
                old = None
            if old is not None and old.config == run_cfg and not overwrite:
                if old.complete:
                    log.info("%s already holds this run; nothing to do", out)
                    return old
                log.info("resuming %s at shard %d/%d", out, old.shards_done, old.n_shards)
                man = old
            elif overwrite:
                shutil.rmtree(out)
                man = None
            else:
                raise InterpError(f"{out} already holds a different run; pass --overwrite to replace it")
        else:
            man = None
        out.mkdir(parents=True, exist_ok=True)
        if man is None:
            man = Manifest(model=model_name, hooks=[str(s) for s in specs], d=dims, dtype=cfg.dtype, seq_len=seq_len,
                           n_tokens=rows_needed * seq_len, corpus=corpus_id, config=run_cfg,
                           n_shards=n_shards, shard_rows=cfg.shard_rows)
            man.write(out)
        for s in specs:
            (out / s.safe).mkdir(exist_ok=True)
        (out / "tokens").mkdir(exist_ok=True)
        return man

    man = dist.agree(par, setup if par.is_writer else None)  # rank 0 prepares the directory; all ranks agree on errors
    man = man if par.is_writer else Manifest.read(out)
    if man.complete:
        return man

    rows = token_rows(model, docs, seq_len)
    # Skip the rows of shards already written (the stream is deterministic).
    for _ in range(man.shards_done * cfg.shard_rows):
        next(rows, None)
    dtype = _DTYPES[cfg.dtype]
    from interp.forward import FastCapture

    forward = FastCapture(model, specs)  # the quickest forward giving these hooks' activations (interp/forward.py)
    bar = tqdm(total=rows_needed * seq_len, initial=man.shards_done * cfg.shard_rows * seq_len,
               unit="tok", unit_scale=True, desc="collect activations", disable=not par.is_writer)
    tune_malloc()
    for shard in range(man.shards_done, n_shards):
        tok_rows, acts = [], {str(s): [] for s in specs}
        n_rows = 0
        shard_rows = min(cfg.shard_rows, rows_needed - shard * cfg.shard_rows)
        name = f"shard_{shard:05d}.safetensors"
        if par.active and (not par.owns_shard(shard) or (out / "tokens" / name).exists()):
            for _ in range(shard_rows):  # another rank's shard, or one this rank already wrote
                next(rows, None)
            bar.update(shard_rows * seq_len)
            continue
        while n_rows < shard_rows:
            batch = [r for _, r in zip(range(min(cfg.batch_size, shard_rows - n_rows)), rows)]
            if not batch:
                break
            toks = torch.stack(batch)
            store = forward(toks)
            tok_rows.append(toks)
            n_rows += len(toks)
            for k in acts:
                acts[k].append(store[k].reshape(-1, dims[k]).to(dtype))
            bar.update(toks.numel())
        if not tok_rows:
            raise InterpError(f"the source {cfg.source!r} ran out of text after {shard} shards; ask for fewer tokens")
        for s in specs:
            tmp = out / s.safe / (name + ".tmp")
            a = torch.cat(acts[str(s)])
            if not torch.isfinite(a.float()).all():
                raise InterpError(f"non-finite activations at hook {s} in shard {shard}")
            save_file({"acts": a.contiguous()}, str(tmp))
            tmp.rename(out / s.safe / name)
        tmp = out / "tokens" / (name + ".tmp")
        save_file({"tokens": torch.cat(tok_rows).to(torch.int32)}, str(tmp))
        tmp.rename(out / "tokens" / name)
        if not par.active:
            man.shards_done = shard + 1
            man.write(out)
    bar.close()
    dist.barrier(par)  # every rank's shards are on disk
    man.shards_done, man.complete = n_shards, True
    if par.is_writer:
        man.write(out)
    dist.barrier(par)
    return man


class ActivationStore:
    """Read an activation directory back: shuffled batches of one hook, bounded memory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest = Manifest.read(self.path)

    def _dir(self, hook: str) -> Path:
        if hook not in self.manifest.hooks:
            raise InterpError(f"hook {hook!r} is not in {self.path}; it holds {', '.join(self.manifest.hooks)}")
        name, _, head = hook.partition(":")
        return self.path / HookSpec(name, int(head) if head else None).safe

    def shard(self, hook: str, i: int) -> torch.Tensor:
        f = self._dir(hook) / f"shard_{i:05d}.safetensors"
        try:
            return load_file(str(f))["acts"]
        except (SafetensorError, OSError, KeyError) as e:
            raise InterpError(f"activation shard {f} is corrupt or truncated: {e}") from None

    def tokens(self, i: int) -> torch.Tensor:
        return load_file(str(self.path / "tokens" / f"shard_{i:05d}.safetensors"))["tokens"].long()

    @property
    def n_shards(self) -> int:
        return self.manifest.shards_done

    def iter_batches(self, hook: str, batch_size: int, shuffle: bool = True, seed: int = 0,
                     skip_bos: bool = True, epochs: int = 1) -> Iterator[torch.Tensor]:
        """Batches of [batch_size, d] float32 activations; shuffles shard order and rows within a
        shard (two shards in memory at most). `skip_bos` drops each row's position 0."""
        g = torch.Generator().manual_seed(seed)
        carry = None
        for _ in range(epochs):
            order = torch.randperm(self.n_shards, generator=g) if shuffle else torch.arange(self.n_shards)
            for i in order.tolist():
                a = self.shard(hook, i).float()
                if skip_bos:
                    a = a.view(-1, self.manifest.seq_len, a.shape[-1])[:, 1:].reshape(-1, a.shape[-1])
                if carry is not None:
                    a = torch.cat([carry, a])
                if shuffle:
                    a = a[torch.randperm(len(a), generator=g)]
                n = len(a) // batch_size * batch_size
                for j in range(0, n, batch_size):
                    yield a[j : j + batch_size]
                carry = a[n:]
        if carry is not None and len(carry):
            yield carry
