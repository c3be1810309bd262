"""The circuits benchmark resumes a stopped run: `run_circuits(seeds=..., on_run=...)` runs only the
seeds asked for, hands each run over as it finishes, and gives the same numbers as an unbroken run."""

import torch

from interp.circuits.discrete_sae import DiscreteSAEConfig
from interp.circuits.run import CircuitConfig, CircuitResult, run_circuits
from tests.test_circuits import _answerable_jsonl, tiny  # noqa: F401 (fixture)


def test_resumed_seeds_equal_an_unbroken_run(tiny, tmp_path):  # noqa: F811
    f = _answerable_jsonl(tiny, tmp_path / "own.jsonl")
    cfg = CircuitConfig(n_prompts=4, seeds=3, n_eval=0, sae=DiscreteSAEConfig(n_train=4, n_read=4, steps=5, d_sae=16))
    whole = run_circuits("tiny", str(f), ["discrete-sae", "patching"], cfg, model=tiny, reference=None)
    seen = []
    part = run_circuits("tiny", str(f), ["discrete-sae", "patching"], cfg, model=tiny, reference=None, seeds=[2],
                        on_run=seen.append)
    assert [(r.method, r.seed) for r in part.runs] == [("discrete-sae", 2), ("patching", 2)]
    assert seen == part.runs
    for r in part.runs:
        same = next(w for w in whole.runs if (w.method, w.seed) == (r.method, r.seed))
        assert torch.equal(torch.tensor(r.node_scores), torch.tensor(same.node_scores))
    assert (part.full_metric, part.negative_metric) == (whole.full_metric, whole.negative_metric)


def test_missing_seeds_reads_the_saved_file(tiny, tmp_path):  # noqa: F811
    from benchmarks.circuits.run import missing_seeds

    path = tmp_path / "r.json"
    assert missing_seeds(path, "patching", 3) == [0, 1, 2]
    f = _answerable_jsonl(tiny, tmp_path / "own.jsonl")
    cfg = CircuitConfig(n_prompts=4, seeds=2, n_eval=0)
    res: CircuitResult = run_circuits("tiny", str(f), ["patching"], cfg, model=tiny, reference=None, seeds=[1])
    res.save(path)
    assert missing_seeds(path, "patching", 3) == [0, 2] and missing_seeds(path, "eap", 2) == [0, 1]
