"""Concept unlearning with SAE features (SAUCE, 2025; Farrell et al., 2024).

* `concepts`  forget / retain / paraphrase / adversarial prompt sets, selection / validation / test splits
* `select`    per-feature forget vs retain statistics and the ranked feature choice
* `edit`      `UnlearnSpec` JSON + `apply_spec` (the edits themselves: `interp.edits`)
* `evaluation`forget / retain / paraphrase accuracy, retain loss and KL, samples, Pareto, score
* `baselines` mean-difference direction projection and gradient-ascent fine-tuning
* `pipeline`  `run_unlearning`: all of the above in one call, setting chosen on validation, numbers on test
"""

from interp.unlearn.concepts import Concept, Splits, builtin_concept, load_concept_file, merge_concepts, resolve_concept, retain_corpus, split_concept
from interp.unlearn.edit import FeatureEdit, UnlearnSpec, apply_spec, merge_specs
from interp.unlearn.evaluation import EvalResult, SweepRow, best_row, evaluate, pareto, prepare, unlearning_score
from interp.unlearn.pipeline import ALL_METHODS, UnlearnConfig, UnlearnReport, evaluate_spec, run_unlearning, save_report_json, transfer_spec
from interp.unlearn.select import FeatureStats, SelectConfig, Selection, feature_stats, select_features

__all__ = [
    "ALL_METHODS", "Concept", "EvalResult", "FeatureEdit", "FeatureStats", "SelectConfig", "Selection", "SweepRow",
    "UnlearnConfig", "UnlearnReport", "UnlearnSpec", "apply_spec", "best_row", "builtin_concept", "evaluate", "evaluate_spec",
    "feature_stats", "load_concept_file", "merge_concepts", "merge_specs", "pareto", "prepare",
    "resolve_concept", "retain_corpus", "run_unlearning", "save_report_json", "select_features", "split_concept", "Splits",
    "transfer_spec", "unlearning_score",
]
