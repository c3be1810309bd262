"""Every feature source of a model in one list, and one search across all of them.

Sources: each SAE of the model (residual, MLP, attention-output and per-head SAEs alike: an SAE
is a source whatever its hook) and the MLP neurons of each layer. SAE statistics live next to
the SAE; neuron statistics under the user data directory (`neuron_stats_dir`), never in the
package. `search_all` answers one query (a label word, a token, or a feature id) over every
source that has statistics, ranked by specificity, with labels on the hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from interp.errors import InterpError
from interp.features.store import FeatureStore
from interp.features.views import Hit, features_for_token, search_labels


@dataclass(frozen=True)
class SourceRef:
    """One feature source of a model: `kind` ("sae", "neurons", "moex"), a display name, where its
    statistics live, and what is needed to rebuild them (`sae_dir` or `layer`)."""

    kind: str
    name: str
    stats_dir: str
    hook: str = ""
    sae_dir: str | None = None
    layer: int | None = None


def neuron_stats_dir(model_name: str, layer: int) -> Path:
    """Where the statistics of one MLP layer's neurons are kept (under $INTERP_HOME)."""
    from interp.io import user_data_dir
    from interp.models import model_id

    return user_data_dir("feature_stats", model_id(model_name), f"neurons_L{layer}")


def model_sources(model_name: str, saes: list, n_layers: int, has_mlp: bool = True) -> list[SourceRef]:
    """SourceRefs for `saes` (interp.sae.io.SaeInfo records) and the MLP neurons of each layer."""
    out = []
    for s in saes:
        out.append(SourceRef("sae", Path(s.path).name, str(s.path), s.hook, sae_dir=str(s.path)))
    if has_mlp:
        for layer in range(n_layers):
            out.append(SourceRef("neurons", f"MLP neurons L{layer}", str(neuron_stats_dir(model_name, layer)),
                                 f"blocks.{layer}.mlp.hook_post", layer=layer))
    return out


class SourceHit(NamedTuple):
    source: str  # SourceRef.name
    hit: Hit
    why: str  # "token", "label" or "id"


def search_all(stores: dict[str, FeatureStore], query: str, limit: int = 20) -> list[SourceHit]:
    """Search every source: ``#12`` or ``12`` opens feature 12 of each source; a vocabulary token
    (``' Mary'``, quotes optional) ranks features by their specificity to it; any other text
    matches labels (best concept F1, then rarest first). Token hits come before label hits."""
    q = query.strip()
    if not q:
        return []
    m = re.fullmatch(r"#?(\d+)", q)
    if m:
        i = int(m.group(1))
        return [SourceHit(name, Hit(i, 1.0, st.labels[i], 0.0, float(st.t["freq"][i])), "id")
                for name, st in stores.items() if i < st.n_features][:limit]
    tok = q[1:-1] if len(q) >= 2 and q[0] == q[-1] and q[0] in "'\"" else query
    token_hits: list[SourceHit] = []
    for name, st in stores.items():
        try:
            token_hits += [SourceHit(name, h, "token") for h in features_for_token(st, tok, limit)]
        except InterpError:
            continue  # not a token of this vocabulary, or never seen: no token hits here
    token_hits.sort(key=lambda x: -x.hit.score)
    label_hits: list[SourceHit] = []
    for name, st in stores.items():
        f1, freq = st.meta["label_f1"], st.t["freq"]
        label_hits += [SourceHit(name, Hit(i, float(f1[i]), st.labels[i], 0.0, float(freq[i])), "label")
                       for i in search_labels(st, q, limit)]
    label_hits.sort(key=lambda x: (-x.hit.score, x.hit.freq))
    return (token_hits + label_hits)[:limit]


# ----------------------------------------------------------------------------- the SAE overview (Home)
MIN_ABLATION_CE = 0.01  # nats: below this, zero-ablating the hook barely moves the loss
MIN_ABLATION_KL = 0.01  # nats: the same for the KL divergence


def metric(m: dict, *names: str) -> float | None:
    """The first numeric metric whose key is or ends with one of `names` (SAEBench keys may be nested as a/b)."""
    for n in names:
        for k, v in m.items():
            if (k == n or k.endswith("/" + n) or k.endswith("." + n)) and isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return None


def uninformative(m: dict) -> list[str]:
    """Why an SAE's fidelity scores carry no information, one reason per score.

    ce_loss_score = (CE_ablation - CE_sae) / (CE_ablation - CE_clean): when zero-ablating the hook
    hardly changes the loss, the denominator is noise and so is the score (attn_out_L2: 0.50 over
    a 0.0007-nat gap). The same holds for kl_div_score with the KL of the ablated run."""
    out = []
    ce_abl, ce_clean = metric(m, "ce_loss_with_ablation"), metric(m, "ce_loss_without_sae")
    if ce_abl is not None and ce_clean is not None and ce_abl - ce_clean < MIN_ABLATION_CE:
        out.append(f"ce_loss_score is uninformative: zero-ablating this hook changes the loss by only {ce_abl - ce_clean:.4f} nats")
    kl_abl = metric(m, "kl_div_with_ablation")
    if kl_abl is not None and kl_abl < MIN_ABLATION_KL:
        out.append(f"kl_div_score is uninformative: zero-ablating this hook gives a KL of only {kl_abl:.4f} nats")
    return out


def training_architecture(sae_dir: str | Path) -> str:
    """The architecture an SAE was trained as: BatchTopK SAEs are saved for inference as JumpReLU
    (SAELens does so), so cfg.json says 'jumprelu'; metadata.training_architecture keeps the truth."""
    from interp.sae.io import read_cfg

    cfg = read_cfg(sae_dir)
    arch = cfg.get("architecture", "?")
    trained = (cfg.get("metadata") or {}).get("training_architecture")
    return f"{trained} (saved as {arch})" if trained and trained != arch else str(arch)


def sae_overview(saes: list, root: str | Path | None = None) -> list[dict]:
    """One row per SAE (interp.sae.io.SaeInfo) for the Home table and chart: names, the true
    architecture, the fidelity metrics, why any of them is uninformative, and the path relative to `root`."""
    from interp.features.store import has_stats

    rows = []
    for s in saes:
        m = dict(getattr(s, "metrics", None) or {})
        try:
            arch = training_architecture(s.path)
        except InterpError:
            arch = s.arch
        p = Path(s.path)
        try:
            rel = str(p.relative_to(root)) if root else str(p)
        except ValueError:
            rel = str(p)
        rows.append({"name": p.name, "model": s.model, "hook": s.hook, "arch": arch, "d_sae": s.d_sae,
                     "L0": metric(m, "l0", "L0"), "explained_variance": metric(m, "explained_variance"),
                     "kl_div_score": metric(m, "kl_div_score"), "ce_loss_score": metric(m, "ce_loss_score"),
                     "frac_alive": metric(m, "frac_alive"), "stats": has_stats(s.path), "path": rel,
                     "uninformative": uninformative(m)})
    return rows
