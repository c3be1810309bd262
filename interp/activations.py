"""Stream activations to sharded safetensors on disk and read them back in shuffled batches.

Layout of an activation directory::

    manifest.json                    model and how it was loaded, source, context size, hooks, shapes,
                                     dtype, token count, shards done and the sha256 of every shard file
    tokens/shard_00000.safetensors   "tokens": int32 [rows, context_size]   (the inputs, for contexts)
    <hook>/shard_00000.safetensors   "acts":  dtype [rows * context_size, d] (row-major over positions)
    .lock                            while a collect runs (names the process; a second one is refused)

Guarantees (`collect_activations`):

* the token stream is deterministic, so shard i always holds the same rows and a rerun with the
  same configuration resumes at the first shard that is missing *or whose checksum does not match
  the manifest* (a truncated or corrupt shard is reported and rewritten); the result is
  bit-identical to an uninterrupted run;
* an existing directory that is not an activation directory (or a file) is never touched, even
  with ``overwrite``; with ``overwrite`` a previous run is replaced atomically (the new run is
  built beside it and renamed into place; the old one is removed last);
* a run with a different configuration is refused with a line saying what differs;
* everything is validated (hooks with close-match hints, sizes, context size, the source, the
  disk space needed) before the first forward pass.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformer_lens.model_bridge import TransformerBridge

from interp import io
from interp.alloc import tune_malloc
from interp.data.sources import SourceSpec, TextSource, open_source
from interp.errors import InterpError
from interp.hooks import Collector, HookSpec, capture, parse_hook, stop_layer

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MARKER = "manifest.json"


def text_source(source: str, seed: int = 0) -> tuple[Iterator[str], str]:
    """Documents from `source` (see `interp.data.sources`) and a short id naming its content."""
    src = open_source(SourceSpec(source=source, seed=seed))
    return src.docs(), src.id


def token_rows(model: TransformerBridge, docs: Iterator[str], seq_len: int, prepend_bos: bool = True) -> Iterator[torch.Tensor]:
    """Pack documents into rows of `seq_len` tokens as SAELens does (`interp.data.sources.TextSource.rows`)."""
    src = TextSource(SourceSpec(), {"kind": "docs"}, lambda: docs, tokenizer=model.tokenizer)
    return src.rows(seq_len, prepend_bos=prepend_bos)


@dataclass
class CollectConfig:
    """What `collect_activations` records."""

    hooks: list[str]  # hook specs, NAME or NAME:HEAD
    n_tokens: int  # tokens to record (rounded up to whole rows; the last shard may be short)
    source: str = "corpus"  # corpus, a text/.jsonl/.parquet file, a dataset directory, or hf:NAME (interp.data.sources)
    seq_len: int | None = None  # context size (tokens per row); default the model's n_ctx
    batch_size: int = 32  # rows per forward
    shard_rows: int = 256  # rows per shard file
    dtype: str = "float32"  # stored dtype
    seed: int = 0  # corpus seed
    text_field: str = "text"  # the text field of JSONL / parquet / dataset sources
    split: str = "train"  # the split of a dataset source with several
    prepend_bos: bool = True  # BOS at position 0 of every row (SAELens' prepend_bos)

    def __post_init__(self):
        if not self.hooks:
            raise InterpError("give at least one hook")
        if not isinstance(self.n_tokens, int) or self.n_tokens <= 0:
            raise InterpError(f"--tokens {self.n_tokens}: must be a positive number of tokens")
        if self.seq_len is not None and self.seq_len < 2:
            raise InterpError(f"--context-size {self.seq_len}: must be at least 2 (BOS plus one token)")
        if self.batch_size < 1:
            raise InterpError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.shard_rows < 1:
            raise InterpError(f"shard_rows {self.shard_rows}: must be at least 1")
        if self.dtype not in _DTYPES:
            raise InterpError(f"dtype must be one of {', '.join(_DTYPES)}")
        if self.shard_rows % self.batch_size:
            self.shard_rows = max(self.batch_size, self.shard_rows // self.batch_size * self.batch_size)

    @property
    def source_spec(self) -> SourceSpec:
        return SourceSpec(source=self.source, text_field=self.text_field, split=self.split, context_size=self.seq_len,
                          prepend_bos=self.prepend_bos, seed=self.seed)


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
    source: dict = field(default_factory=dict)  # the source's identity (kind, path/name, sha256, field, split)
    loading: dict = field(default_factory=dict)  # interp.models.loading_info of the model (family, processing, dtype)
    sha256: dict = field(default_factory=dict)  # shard file path (relative) -> sha256
    kind: str = "interp-activations"

    @property
    def context_size(self) -> int:
        return self.seq_len

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        p = Path(path) / MARKER
        if not p.exists():
            raise InterpError(f"{path} is not an activation directory (no manifest.json)")
        try:
            raw = json.loads(p.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
            raise InterpError(f"{p} is corrupt: {' '.join(str(e).split())[:160]}") from None
        except OSError as e:
            raise InterpError(f"{p}: {io.os_error_message(e)}") from None

    def write(self, path: Path) -> None:
        io.atomic_write_json(Path(path) / MARKER, asdict(self))


def config_differences(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every setting two runs do not share (what a refusal says)."""
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys]


def estimate_bytes(n_rows: int, seq_len: int, dims: dict[str, int], dtype: str) -> int:
    """Disk bytes an activation run of `n_rows` rows takes (activations plus int32 tokens)."""
    item = torch.empty(0, dtype=_DTYPES[dtype]).element_size()
    return n_rows * seq_len * (sum(dims.values()) * item + 4)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PB"


def _check_disk(out: Path, need: int) -> None:
    anc = out
    while not anc.exists() and anc.parent != anc:
        anc = anc.parent
    free = shutil.disk_usage(anc).free
    if need > free:
        raise InterpError(f"this run needs about {_human(need)} on disk and {anc} has {_human(free)} free; ask for fewer tokens or hooks")


def _verified_shards(out: Path, man: Manifest) -> int:
    """The number of leading shards whose files exist and match the manifest's checksums."""
    for i in range(man.shards_done):
        for rel in _shard_files(man, i):
            want = man.sha256.get(rel)
            f = out / rel
            if not f.is_file() or (want is not None and io.sha256_file(f) != want):
                log.warning("shard %d (%s) is missing, truncated or corrupt; resuming from shard %d", i, rel, i)
                return i
    return man.shards_done


def _shard_files(man: Manifest, i: int) -> list[str]:
    name = f"shard_{i:05d}.safetensors"
    return [f"tokens/{name}"] + [f"{_spec_of(h).safe}/{name}" for h in man.hooks]


def _spec_of(hook: str) -> HookSpec:
    name, _, head = hook.partition(":")
    return HookSpec(name, int(head) if head else None)


def collect_activations(model: TransformerBridge, cfg: CollectConfig, out_dir: str | Path, model_name: str | None = None,
                        overwrite: bool = False, parallel=None) -> Manifest:
    """Run `model` over `cfg.source` and stream the activations at `cfg.hooks` into `out_dir` (see the
    module docstring for the guarantees). Returns the finished manifest.

    Under torchrun (`parallel`, see `interp.distributed`): rank 0 checks, locks and prepares the
    directory; rank r writes shards r, r+W, ... and skips those already on disk (resumable per
    rank); rank 0 writes the manifest once every rank is done."""
    from interp import distributed as dist

    par = parallel or dist.LOCAL
    if not par.active:
        return _collect(model, cfg, out_dir, model_name, overwrite, par)
    if par.is_writer:
        object.__setattr__(par, "_announced", False)  # set by `_announce` once the other ranks are told where to write
        try:
            man = _collect(model, cfg, out_dir, model_name, overwrite, par)
        except BaseException as e:
            if not getattr(par, "_announced", False):
                dist.broadcast_from_writer(par, ("error", str(e) if isinstance(e, InterpError) else f"rank 0 failed: {e}"))
            raise
    else:
        kind, value = dist.broadcast_from_writer(par, None)  # rank 0's verdict, and the directory to write into
        if kind == "error":
            raise dist.RankExit(value)
        out, man = Path(value[0]), Manifest(**value[1])
        if kind == "run":
            specs = [parse_hook(model, h) for h in cfg.hooks]
            rows_needed = -(-cfg.n_tokens // man.seq_len)
            man = _run(model, cfg, specs, open_source(cfg.source_spec, model.tokenizer), man, out, rows_needed, man.n_shards, par)
    dist.barrier(par)  # rank 0 has moved the finished directory into place
    return man


def _collect(model: TransformerBridge, cfg: CollectConfig, out_dir: str | Path, model_name: str | None, overwrite: bool,
             par) -> Manifest:
    from interp.models import loading_info

    # --- validate everything before any work --------------------------------------------------
    specs = [parse_hook(model, h) for h in cfg.hooks]
    if len({str(s) for s in specs}) != len(specs):
        raise InterpError("a hook is given twice")
    seq_len = cfg.seq_len or model.cfg.n_ctx
    if seq_len > model.cfg.n_ctx:
        raise InterpError(f"--context-size {seq_len} is longer than the model's context of {model.cfg.n_ctx}")
    out = Path(out_dir).expanduser()
    io.check_output_dir(out, marker=MARKER, overwrite=True, what="--out")  # a file or a foreign directory: refused
    src = open_source(cfg.source_spec, model.tokenizer)
    src.bos_id()
    info = loading_info(model)
    model_name = model_name or info["name"]
    rows_needed = -(-cfg.n_tokens // seq_len)
    n_shards = -(-rows_needed // cfg.shard_rows)  # the last one holds only the rows still needed
    run_cfg = {**asdict(cfg), "seq_len": seq_len, "model": model_name, "processing": info["processing"],
               "model_dtype": info["dtype"]}
    with torch.no_grad(), capture(model, specs) as store:
        model(torch.zeros(1, 2, dtype=torch.long, device=model.cfg.device), stop_at_layer=stop_layer(model, specs))
        dims = {str(s): store[str(s)].shape[-1] for s in specs}
    _check_disk(out, estimate_bytes(rows_needed, seq_len, dims, cfg.dtype))

    old = None
    if out.is_dir() and (out / MARKER).exists():
        old = Manifest.read(out)
        if old.config != run_cfg and not overwrite:
            diff = "; ".join(config_differences(old.config, run_cfg)[:4])
            raise InterpError(f"{out} holds a different collect run ({diff}); pass --overwrite to replace it or choose another --out")
    io.clean_stale_siblings(out)
    if old is not None and old.config == run_cfg and not overwrite:
        with io.RunLock(out, "activation directory"):
            old.shards_done = _verified_shards(out, old)
            if old.complete and old.shards_done == old.n_shards:
                log.info("%s already holds this run; nothing to do", out)
                _announce(par, "done", out, old)
                return old
            log.info("resuming %s at shard %d/%d", out, old.shards_done, old.n_shards)
            old.complete = False
            return _run(model, cfg, specs, src, old, out, rows_needed, n_shards, par)
    man = Manifest(model=model_name, hooks=[str(s) for s in specs], d=dims, dtype=cfg.dtype, seq_len=seq_len,
                   n_tokens=rows_needed * seq_len, corpus=src.id, config=run_cfg, n_shards=n_shards,
                   shard_rows=cfg.shard_rows, source=src.identity, loading=info)
    if old is not None or (out.exists() and any(p.name != ".lock" for p in out.iterdir())):
        # replace a previous run atomically: build beside it, swap, delete the old one last
        with io.RunLock(out, "activation directory"), io.atomic_dir(out, overwrite=True, marker=MARKER) as tmp:
            return _run(model, cfg, specs, src, man, tmp, rows_needed, n_shards, par)
    with io.RunLock(out, "activation directory"):
        return _run(model, cfg, specs, src, man, out, rows_needed, n_shards, par)


def _announce(par, kind: str, out: Path, man: Manifest) -> None:
    """Distributed: rank 0 tells the other ranks where to write (or that the run is already done)."""
    if par.active and par.is_writer:
        from interp import distributed as dist

        dist.broadcast_from_writer(par, (kind, (str(out), asdict(man))))
        object.__setattr__(par, "_announced", True)


def _run(model, cfg: CollectConfig, specs: list[HookSpec], src: TextSource, man: Manifest, out: Path,
         rows_needed: int, n_shards: int, par=None) -> Manifest:
    """Write shards man.shards_done..n_shards-1 into `out`, each file atomically, the manifest after each shard.
    Distributed (`par`): this rank's shards only, skipping those already on disk; rank 0 writes the manifest at the end."""
    from interp import distributed as dist

    par = par or dist.LOCAL
    seq_len = man.seq_len
    if par.active and not par.is_writer:
        return _run_rank(model, cfg, specs, src, man, out, rows_needed, n_shards, par)
    for s in specs:
        (out / s.safe).mkdir(parents=True, exist_ok=True)
        io.remove_stale_temp_files(out / s.safe)
    (out / "tokens").mkdir(exist_ok=True)
    io.remove_stale_temp_files(out / "tokens")
    io.remove_stale_temp_files(out)
    man.write(out)
    if par.active:
        _announce(par, "run", out, man)
        return _run_rank(model, cfg, specs, src, man, out, rows_needed, n_shards, par)
    rows = src.rows(seq_len)
    # Skip the rows of shards already written (the stream is deterministic).
    for _ in range(man.shards_done * cfg.shard_rows):
        next(rows, None)
    dtype = _DTYPES[cfg.dtype]
    forward = Collector(model, specs)  # the bridge's forward, stopped after the deepest hook
    device = model.cfg.device
    bar = tqdm(total=rows_needed * seq_len, initial=man.shards_done * cfg.shard_rows * seq_len,
               unit="tok", unit_scale=True, desc="collect activations")
    tune_malloc()
    for shard in range(man.shards_done, n_shards):
        shard_rows = min(cfg.shard_rows, rows_needed - shard * cfg.shard_rows)
        tok_rows, acts = _fill_shard(rows, shard_rows, cfg, forward, device, specs, man, dtype, bar, shard)
        name = f"shard_{shard:05d}.safetensors"
        man.sha256.update(_write_shard(out, name, specs, tok_rows, acts, shard))
        man.shards_done = shard + 1
        man.write(out)
    bar.close()
    man.complete = True
    man.write(out)
    return man


def _fill_shard(rows, shard_rows: int, cfg: CollectConfig, forward, device, specs: list[HookSpec], man: Manifest,
                dtype: torch.dtype, bar, shard: int) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Run `shard_rows` token rows through `forward` in batches: (token batches, activations per hook)."""
    tok_rows, acts, n_rows = [], {str(s): [] for s in specs}, 0
    while n_rows < shard_rows:
        batch = [r for _, r in zip(range(min(cfg.batch_size, shard_rows - n_rows)), rows)]
        if not batch:
            break
        toks = torch.stack(batch)
        store = forward(toks.to(device))
        tok_rows.append(toks)
        n_rows += len(toks)
        for k in acts:
            acts[k].append(store[k].reshape(-1, man.d[k]).to(dtype).cpu())
        bar.update(toks.numel())
    if not tok_rows:
        raise InterpError(f"the source {cfg.source!r} ran out of text after {shard} shards "
                          f"({shard * cfg.shard_rows * man.seq_len} tokens); ask for fewer tokens")
    return tok_rows, acts


def _write_shard(out: Path, name: str, specs: list[HookSpec], tok_rows: list[torch.Tensor],
                 acts: dict[str, list[torch.Tensor]], shard: int) -> dict[str, str]:
    """Write one shard (each hook's activations, then the tokens last, each atomically); its sha256s."""
    sums = {}
    for s in specs:
        a = torch.cat(acts[str(s)])
        if not torch.isfinite(a.float()).all():
            raise InterpError(f"non-finite activations at hook {s} in shard {shard}; the model's weights or dtype "
                              "overflow (try --dtype float32)")
        io.atomic_save_safetensors({"acts": a}, out / s.safe / name)
        sums[f"{s.safe}/{name}"] = io.sha256_file(out / s.safe / name)
    io.atomic_save_safetensors({"tokens": torch.cat(tok_rows).to(torch.int32)}, out / "tokens" / name)
    sums[f"tokens/{name}"] = io.sha256_file(out / "tokens" / name)
    return sums


def _run_rank(model, cfg: CollectConfig, specs: list[HookSpec], src: TextSource, man: Manifest, out: Path,
              rows_needed: int, n_shards: int, par) -> Manifest:
    """One rank of a distributed collection: shards i with i % W == rank that are not on disk yet
    (a shard's files are each written atomically, tokens last, so a tokens file means a whole
    shard); then the ranks pool their checksums and rank 0 writes the finished manifest."""
    from interp import distributed as dist
    seq_len, dtype = man.seq_len, _DTYPES[cfg.dtype]
    rows = src.rows(seq_len)
    forward = Collector(model, specs)
    device = model.cfg.device
    mine = {}
    bar = tqdm(total=rows_needed * seq_len, unit="tok", unit_scale=True, desc="collect activations", disable=not par.is_writer)
    tune_malloc()
    for shard in range(n_shards):
        shard_rows = min(cfg.shard_rows, rows_needed - shard * cfg.shard_rows)
        name = f"shard_{shard:05d}.safetensors"
        files = [f"{s.safe}/{name}" for s in specs] + [f"tokens/{name}"]
        if not par.owns_shard(shard) or all((out / f).is_file() for f in files):
            for _ in range(shard_rows):  # another rank's shard, or one this rank already wrote: skip its rows
                next(rows, None)
            if par.owns_shard(shard):
                mine.update({f: io.sha256_file(out / f) for f in files})
            bar.update(shard_rows * seq_len)
            continue
        tok_rows, acts = _fill_shard(rows, shard_rows, cfg, forward, device, specs, man, dtype, bar, shard)
        mine.update(_write_shard(out, name, specs, tok_rows, acts, shard))
    bar.close()
    import torch.distributed as tdist

    every: list = [None] * par.world_size
    tdist.all_gather_object(every, mine)  # also the barrier: every rank's shards are on disk
    for d in every:
        man.sha256.update(d)
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
        f = self.path / "tokens" / f"shard_{i:05d}.safetensors"
        try:
            return load_file(str(f))["tokens"].long()
        except (SafetensorError, OSError, KeyError) as e:
            raise InterpError(f"token shard {f} is corrupt or truncated: {' '.join(str(e).split())[:120]}") from None

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
