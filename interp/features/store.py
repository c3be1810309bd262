"""Stored feature statistics: `FeatureStore` (arrays + metadata) and its two files next to an SAE.

`feature_stats.safetensors` holds the arrays (first dimension F features, or d_vocab for the
token index); `feature_stats.json` the metadata, labels and vocabulary. Both are written
atomically (interp.io), the JSON last: its presence marks a complete pair. Reading needs neither
the model nor TransformerLens, so the dashboard and reports open statistics fast.

Format 2 added activation intervals, token specificity and two-sided labels; format-1 files
still open (those views are then absent and the page says to rebuild).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from interp.errors import InterpError

STATS_FILE = "feature_stats.safetensors"
META_FILE = "feature_stats.json"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class FeatureStore:
    """Feature statistics of one source: arrays (`t`, name -> tensor) and metadata (`meta`).

    (Named apart from interp.unlearn.select.FeatureStats, the unlearning module's per-concept counts.)"""

    t: dict[str, Tensor]
    meta: dict

    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def labels(self) -> list[str]:
        return self.meta["labels"]

    @property
    def vocab(self) -> list[str]:
        return self.meta["vocab"]

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "sae")

    def check_id(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.n_features:
            raise InterpError(f"feature id {i} out of range: this source has features 0..{self.n_features - 1}")
        return i

    def feature(self, i: int):
        from interp.features.views import feature_view

        return feature_view(self, i)


def save_stats(stats: FeatureStore, directory: str | Path) -> Path:
    """Write `feature_stats.safetensors` + `feature_stats.json` into `directory` (atomically, JSON last)."""
    from interp.io import atomic_save_safetensors, atomic_write_text, os_error_message

    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise InterpError(f"{d} is a file, not a directory; give a directory for the statistics")
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors(stats.t, d / STATS_FILE)
        atomic_write_text(d / META_FILE, json.dumps(stats.meta))
    except OSError as e:
        raise InterpError(f"cannot write feature statistics into {d}: {os_error_message(e)}") from None
    return d


def has_stats(directory: str | Path) -> bool:
    d = Path(directory)
    return (d / STATS_FILE).is_file() and (d / META_FILE).is_file()


def _check_meta(meta, t: dict[str, Tensor], d: Path) -> None:
    """The metadata must be what `build_feature_stats` writes: a crafted or damaged file is refused."""
    rebuild = f"rebuild them with `interp features --sae {d}`"
    if not isinstance(meta, dict) or meta.get("format_version") not in READABLE_VERSIONS:
        raise InterpError(f"feature statistics in {d} are from another version; {rebuild}")
    n = meta.get("n_features")
    if not isinstance(n, int) or "freq" not in t or t["freq"].shape[0] != n:
        raise InterpError(f"feature statistics in {d} do not match their arrays; {rebuild}")
    for key in ("labels", "label_f1", "vocab"):
        v = meta.get(key)
        if not isinstance(v, list) or (key != "vocab" and len(v) != n):
            raise InterpError(f"feature statistics in {d}: '{key}' is missing or has the wrong length; {rebuild}")
    if not all(isinstance(x, str) for x in meta["labels"]) or not all(isinstance(x, str) for x in meta["vocab"]):
        raise InterpError(f"feature statistics in {d}: labels and vocabulary must be strings; {rebuild}")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in meta["label_f1"]):
        raise InterpError(f"feature statistics in {d}: label_f1 must be finite numbers; {rebuild}")
    V = len(meta["vocab"])
    for k in ("top_tokens", "q_tokens", "iv_tokens", "logit_pos_ids", "logit_neg_ids", "token_top_ids"):
        if k in t and t[k].numel() and int(t[k].max()) >= (n if k == "token_top_ids" else V):
            raise InterpError(f"feature statistics in {d}: '{k}' points past the vocabulary; {rebuild}")
    if not isinstance(meta.get("config"), dict) or not isinstance(meta["config"].get("left"), int):
        raise InterpError(f"feature statistics in {d}: config is missing; {rebuild}")


def load_stats(directory: str | Path) -> FeatureStore:
    """Read the statistics stored next to an SAE; a clear `InterpError` if missing, corrupt or crafted."""
    d = Path(directory)
    if not has_stats(d):
        raise InterpError(f"{d} has no feature statistics yet; build them with `interp features --sae {d}`")
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        t = load_file(str(d / STATS_FILE))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as e:
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise InterpError(f"feature statistics in {d} are corrupt ({first}); rebuild them with `interp features --sae {d}`") from None
    _check_meta(meta, t, d)
    return FeatureStore(t, meta)
