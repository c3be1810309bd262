"""Feature statistics for any feature source (SAE latents, MLP neurons, MoE-X units), and views of them.

* `sources`: what a feature is (`FeatureSource`: a hook + encode + write directions).
* `accumulators`: running totals over token batches, each with update/finalize.
* `compute`: `build_feature_stats` (one pass over a corpus) and `StatsConfig`.
* `labels`: concept labels where the corpus defines concepts, else input + output tokens.
* `firing`: the one "fires above t x max, then F1" helper.
* `store`: `FeatureStore` and its files next to an SAE.
* `views`: one feature as plain values (`FeatureView`), token/label search, feature lists.
* `catalog`: every feature source of a model, and search across all of them.
"""

from interp.features.compute import StatsConfig, build_feature_stats, build_for_sae_dir, load_sae_dir, corpus_defines_concepts
from interp.features.labels import ConceptMatcher
from interp.features.sources import FeatureSource, NeuronSource, SaeSource, layer_of, to_residual
from interp.features.store import FORMAT_VERSION, META_FILE, STATS_FILE, FeatureStore, has_stats, load_stats, save_stats
from interp.features.views import (
    Context,
    FeatureView,
    Hit,
    Interval,
    density_histogram,
    feature_view,
    features_for_token,
    flags_of,
    iter_views,
    log10_freq,
    parse_feature_range,
    search_labels,
)

__all__ = [
    "FORMAT_VERSION", "META_FILE", "STATS_FILE", "ConceptMatcher", "Context", "FeatureSource", "FeatureStore", "FeatureView",
    "Hit", "Interval", "NeuronSource", "SaeSource", "StatsConfig", "build_feature_stats", "build_for_sae_dir",
    "corpus_defines_concepts", "density_histogram", "feature_view", "features_for_token", "flags_of", "has_stats", "iter_views",
    "layer_of", "load_sae_dir", "load_stats", "log10_freq", "parse_feature_range", "save_stats", "search_labels", "to_residual",
]
