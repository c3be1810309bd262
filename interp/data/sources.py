"""Text sources for collection, SAE training and feature statistics, packed into token rows.

``--source`` takes

* ``corpus``: the embedded world corpus (endless, seeded);
* a text file: one document per blank-line-separated paragraph;
* a ``.jsonl`` file: one JSON object per line, the document in ``--text-field`` (default ``text``);
* a ``.parquet`` file: the ``--text-field`` column;
* a local Hugging Face dataset directory (what `datasets.Dataset.save_to_disk` writes;
  `datasets.load_from_disk`), split ``--split`` when it holds several;
* ``hf:NAME`` (or ``hf:NAME:SPLIT[:FIELD]``): a Hugging Face dataset through the `datasets` cache.

Everything is checked when the source is opened (exists, readable, UTF-8, not empty, the text
field present), before any model work, with one-line `InterpError`s.

Rows follow SAELens' token pipeline (`sae_lens.tokenization_and_batching.concat_and_batch_sequences`,
as its `ActivationsStore` calls it): every document is tokenized without special tokens, documents
are concatenated with BOS as the separator, and, with ``prepend_bos`` (the default, as SAELens'
``prepend_bos=True``), every row of ``context_size`` tokens starts with BOS. A tokenizer without a
BOS token uses its EOS token, as GPT-2's does.

    add_source_args(parser)                    # --source --text-field --split --context-size --no-prepend-bos
    src = open_source(args, model.tokenizer)   # validated now
    for row in src.rows(context_size): ...     # LongTensor [context_size]
    src.identity                               # what a manifest records (kind, path/name, sha256, field, ...)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from interp.errors import InterpError

if TYPE_CHECKING:
    import torch
_PEEK = 64 * 1024


@dataclass(frozen=True)
class SourceSpec:
    """Where text comes from and how it is packed (see the module docstring)."""

    source: str = "corpus"  # corpus | a text / .jsonl / .parquet file | a dataset directory | hf:NAME[:SPLIT[:FIELD]]
    text_field: str = "text"  # the field holding the document in JSONL, parquet and datasets
    split: str = "train"  # the split of a dataset directory or hf: dataset that holds several
    context_size: int | None = None  # tokens per row; None = the model's n_ctx
    prepend_bos: bool = True  # BOS at position 0 of every row (SAELens' prepend_bos)
    seed: int = 0  # the embedded corpus' seed

    def __post_init__(self):
        if not str(self.source).strip():
            raise InterpError("--source is empty")
        if not self.text_field:
            raise InterpError("--text-field is empty")
        if self.context_size is not None and self.context_size < 2:
            raise InterpError(f"--context-size {self.context_size}: must be at least 2 (BOS plus one token)")


def add_source_args(parser: argparse.ArgumentParser, default: str = "corpus", context_help: str | None = None) -> None:
    """Add --source, --text-field, --split, --context-size and --no-prepend-bos to a subcommand."""
    parser.add_argument("--source", default=default,
                        help="corpus (embedded), a text file, a .jsonl file, a .parquet file, a Hugging Face dataset "
                             "directory (save_to_disk), or hf:NAME (datasets cache)")
    parser.add_argument("--text-field", default="text", help="the text field of JSONL / parquet / dataset records (default text)")
    parser.add_argument("--split", default="train", help="the split of a dataset with several (default train)")
    parser.add_argument("--context-size", "--seq-len", dest="context_size", type=int, default=None,
                        help=context_help or "tokens per row (default: the model's n_ctx)")
    parser.add_argument("--no-prepend-bos", dest="prepend_bos", action="store_false",
                        help="do not start every row with BOS (SAELens' prepend_bos=False)")


def as_spec(source: "SourceSpec | str", **changes) -> SourceSpec:
    """`source` as a `SourceSpec` (a plain string is ``SourceSpec(source=...)``), with `changes` applied."""
    from dataclasses import replace

    return replace(source if isinstance(source, SourceSpec) else SourceSpec(source=source), **changes)


def spec_from_args(args: argparse.Namespace, seed: int = 0) -> SourceSpec:
    return SourceSpec(source=args.source, text_field=getattr(args, "text_field", "text") or "text",
                      split=getattr(args, "split", "train") or "train", context_size=getattr(args, "context_size", None),
                      prepend_bos=getattr(args, "prepend_bos", True), seed=getattr(args, "seed", seed) or seed)


@dataclass
class TextSource:
    """An opened, validated source: `docs()` yields documents; `rows()` packs them into token rows."""

    spec: SourceSpec
    identity: dict  # kind, path or name, content hash, field, split: what a manifest records
    _docs: Callable[[], Iterator[str]]
    tokenizer: object = None
    endless: bool = False
    meta: dict = field(default_factory=dict)

    def docs(self) -> Iterator[str]:
        return self._docs()

    @property
    def id(self) -> str:
        """A short string naming the content (the old manifests' ``corpus`` field)."""
        i = self.identity
        return i.get("sha256") and f"{i['kind']}-{i['sha256'][:16]}" or f"{i['kind']}-{i.get('name', i.get('seed'))}"

    def bos_id(self) -> int:
        tok = self.tokenizer
        if tok is None:
            raise InterpError("this model has no tokenizer, so text cannot be tokenized")
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if bos is None:
            raise InterpError("the tokenizer has neither a BOS nor an EOS token; rows cannot be packed")
        return int(bos)

    def rows(self, context_size: int, prepend_bos: bool | None = None) -> Iterator["torch.Tensor"]:
        """LongTensor rows of `context_size` tokens (SAELens' packing; see the module docstring)."""
        import torch

        bos = self.bos_id()
        prepend = self.spec.prepend_bos if prepend_bos is None else prepend_bos
        tok = self.tokenizer

        def token_lists():
            for d in self.docs():
                ids = tok(d, add_special_tokens=False)["input_ids"]
                if ids:
                    yield ids

        for row in pack_rows(token_lists(), context_size, bos if prepend else None, bos):
            yield torch.tensor(row, dtype=torch.long)


def pack_rows(token_lists: Iterator[list[int]], context_size: int, begin_batch_token_id: int | None,
              sequence_separator_token_id: int | None) -> Iterator[list[int]]:
    """Rows of exactly `context_size` ids: SAELens' `concat_and_batch_sequences` (concatenating mode,
    no begin-sequence token), ported line for line to plain lists. Hand-written because importing
    `sae_lens` costs about 3 s, which every `collect`, `features` and dashboard start would pay;
    `tests/test_families.py` checks that both give the same rows."""
    batch: list[int] | None = None
    for toks in token_lists:
        offset, total = 0, len(toks)
        while total - offset > 0:
            first = toks[offset]
            if batch is None:
                prefix = [begin_batch_token_id] if begin_batch_token_id is not None and first != begin_batch_token_id else []
                need = max(context_size - len(prefix), 0)
                batch = prefix[:context_size] + list(toks[offset : offset + need])
            else:
                prefix = ([sequence_separator_token_id]
                          if sequence_separator_token_id is not None and first != sequence_separator_token_id else [])
                need = max(context_size - len(batch) - len(prefix), 0)
                batch = batch + prefix[: max(context_size - len(batch), 0)] + list(toks[offset : offset + need])
            offset += need
            if len(batch) == context_size:
                yield batch
                batch = None


def _read_text_file(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise InterpError(f"source {path} is a directory but not a Hugging Face dataset (no dataset_info.json / state.json)") from None
    except OSError as e:
        raise InterpError(f"source {path}: {e.strerror or type(e).__name__}") from None
    if b"\0" in raw[:_PEEK]:
        raise InterpError(f"source {path} is not text (it contains NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InterpError(f"source {path} is not UTF-8 text (bad byte at offset {e.start})") from None
    if not text.strip():
        raise InterpError(f"source {path} is empty")
    return text


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _open_corpus(spec: SourceSpec) -> TextSource:
    from interp.data import corpus as C

    def docs():
        rng = random.Random(spec.seed)
        while True:
            yield C.document(rng)

    return TextSource(spec, {"kind": "corpus", "name": f"seed{spec.seed}", "seed": spec.seed}, docs, endless=True)


def _open_text(path: Path, spec: SourceSpec) -> TextSource:
    text = _read_text_file(path)
    docs = [d for d in text.split("\n\n") if d.strip()]
    return TextSource(spec, {"kind": "file", "path": str(path), "sha256": _sha(text.encode())}, lambda: iter(docs))


def _open_jsonl(path: Path, spec: SourceSpec) -> TextSource:
    """Checked line by line as a stream (`interp.data.lines`: each line bounded, refused with its
    number), and read again as a stream for the documents: the file is never held in memory."""
    from interp.data.lines import iter_lines

    def records():
        for i, line in iter_lines(path, "source", hasher=h):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InterpError(f"{path} line {i} is not JSON ({e.msg})") from None
            if not isinstance(rec, dict) or spec.text_field not in rec:
                keys = ", ".join(list(rec)[:8]) if isinstance(rec, dict) else type(rec).__name__
                raise InterpError(f"{path} line {i} has no text field {spec.text_field!r} (it has: {keys}); pass --text-field")
            if not isinstance(rec[spec.text_field], str):
                raise InterpError(f"{path} line {i}: field {spec.text_field!r} is {type(rec[spec.text_field]).__name__}, not text")
            if rec[spec.text_field].strip():
                yield rec[spec.text_field]

    h = hashlib.sha256()
    n_docs = sum(1 for _ in records())
    if not n_docs:
        if h.digest() == hashlib.sha256().digest():
            raise InterpError(f"source {path} is empty")
        raise InterpError(f"source {path} holds no text in field {spec.text_field!r}")
    sha = h.hexdigest()

    def docs():
        nonlocal h
        h = hashlib.sha256()
        yield from records()

    return TextSource(spec, {"kind": "jsonl", "path": str(path), "sha256": sha, "text_field": spec.text_field}, docs)


def _open_parquet(path: Path, spec: SourceSpec) -> TextSource:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InterpError("reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        pf = pq.ParquetFile(str(path))
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for non-parquet files
        raise InterpError(f"source {path} is not a readable parquet file: {str(e).splitlines()[0][:160]}") from None
    names = pf.schema_arrow.names
    if spec.text_field not in names:
        raise InterpError(f"{path} has no column {spec.text_field!r} (it has: {', '.join(names[:8])}); pass --text-field")
    if pf.metadata.num_rows == 0:
        raise InterpError(f"source {path} is empty")

    def docs():
        for batch in pq.ParquetFile(str(path)).iter_batches(columns=[spec.text_field], batch_size=1024):
            for d in batch.column(0).to_pylist():
                if isinstance(d, str) and d.strip():
                    yield d

    from interp.io import sha256_file

    return TextSource(spec, {"kind": "parquet", "path": str(path), "sha256": sha256_file(path), "text_field": spec.text_field}, docs)


def _dataset_docs(ds, spec: SourceSpec, where: str) -> TextSource:
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        if spec.split not in ds:
            raise InterpError(f"{where} has no split {spec.split!r} (it has: {', '.join(ds)}); pass --split")
        ds = ds[spec.split]
    if spec.text_field not in ds.column_names:
        raise InterpError(f"{where} has no text field {spec.text_field!r} (it has: {', '.join(ds.column_names[:8])}); pass --text-field")
    if len(ds) == 0:
        raise InterpError(f"source {where} is empty")

    def docs():
        for d in ds[spec.text_field] if len(ds) < 100_000 else (r[spec.text_field] for r in ds):
            if isinstance(d, str) and d.strip():
                yield d

    return TextSource(spec, {"kind": "dataset", "name": where, "sha256": getattr(ds, "_fingerprint", None),
                             "split": spec.split, "text_field": spec.text_field}, docs)


def _open_dataset_dir(path: Path, spec: SourceSpec) -> TextSource:
    try:
        from datasets import load_from_disk
    except ImportError:
        raise InterpError("reading a dataset directory needs the datasets package (pip install datasets)") from None
    try:
        ds = load_from_disk(str(path))
    except Exception as e:  # datasets raises FileNotFoundError / its own errors for bad directories
        raise InterpError(f"source {path} is not a readable Hugging Face dataset directory: {str(e).splitlines()[0][:160]}") from None
    return _dataset_docs(ds, spec, str(path))


def _open_hf(name: str, spec: SourceSpec) -> TextSource:
    parts = name.split(":")
    name = parts[0]
    split = parts[1] if len(parts) > 1 and parts[1] else spec.split
    text_field = parts[2] if len(parts) > 2 and parts[2] else spec.text_field
    spec = SourceSpec(spec.source, text_field, split, spec.context_size, spec.prepend_bos, spec.seed)
    if not name:
        raise InterpError("--source hf: needs a dataset name, e.g. hf:NeelNanda/pile-10k")
    try:
        from datasets import load_dataset
    except ImportError:
        raise InterpError("hf: sources need the datasets package (pip install datasets)") from None
    try:
        ds = load_dataset(name, split=split)
    except Exception as e:  # offline / not cached / unknown name come in many exception types
        raise InterpError(f"could not open Hugging Face dataset {name!r} split {split!r} (offline and not cached?): "
                          f"{str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__}") from None
    src = _dataset_docs(ds, spec, f"hf:{name}")
    src.identity["kind"] = "hf"
    return src


def open_source(spec: SourceSpec | argparse.Namespace | str, tokenizer=None) -> TextSource:
    """Open and validate a source (a `SourceSpec`, parsed CLI args from `add_source_args`, or a
    source string). One-line `InterpError` for anything unusable, before any work."""
    if isinstance(spec, argparse.Namespace):
        spec = spec_from_args(spec)
    elif isinstance(spec, str):
        spec = SourceSpec(source=spec)
    s = spec.source.strip()
    if s == "corpus":
        src = _open_corpus(spec)
    elif s.startswith("hf:"):
        src = _open_hf(s[3:], spec)
    else:
        path = Path(s).expanduser()
        if not path.exists():
            raise InterpError(f"source {path} does not exist (expected corpus, a file, a dataset directory, or hf:NAME)")
        if path.is_dir():
            if (path / "dataset_info.json").exists() or (path / "state.json").exists() or (path / "dataset_dict.json").exists():
                src = _open_dataset_dir(path, spec)
            else:
                raise InterpError(f"source {path} is a directory but not a Hugging Face dataset (no dataset_info.json / state.json)")
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            src = _open_jsonl(path, spec)
        elif path.suffix.lower() == ".parquet":
            src = _open_parquet(path, spec)
        else:
            src = _open_text(path, spec)
    src.tokenizer = tokenizer
    return src


def check_token_budget(src: TextSource, n_tokens: int, flag: str = "--tokens") -> TextSource:
    """One line when a finite text or JSONL source cannot hold `n_tokens`: a token covers at least
    one byte of text, so a file of B bytes yields at most B tokens, plus one BOS / separator per
    row or document (bounded here by B again). Endless sources (the corpus) and datasets pass."""
    ident = src.identity
    if src.endless or ident.get("kind") not in ("file", "jsonl"):
        return src
    size = Path(ident["path"]).stat().st_size
    most = 2 * size + 1024
    if n_tokens > most:
        raise InterpError(f"{flag} {n_tokens:,} is more than the source {ident['path']} can give (it is {size:,} bytes, "
                          f"so at most about {most:,} tokens); ask for fewer tokens or give a larger source")
    return src
