"""AppTest for the Unlearning page: run a clamp on a tiny SAE, read the numbers, follow a feature link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from interp.models import load_model
from test_features_fixtures import save_tiny_sae

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture(scope="module")
def sae_root(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("saes")
    save_tiny_sae(load_model("embedded"), root / "embedded" / "tiny", d_sae=32, k=4)
    old = {k: os.environ.get(k) for k in ("INTERP_SAE_ROOT", "INTERP_HOME")}
    os.environ["INTERP_SAE_ROOT"] = str(root)
    os.environ["INTERP_HOME"] = str(tmp_path_factory.mktemp("home"))  # the jobs' history
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _wait_job(job_id: str, timeout: float = 800.0):
    import time

    from interp import jobs

    t0 = time.time()
    while time.time() - t0 < timeout:
        j = jobs.get(job_id)
        if j.state != "running":
            return j
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def _page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=900)
    at.run()
    at.switch_page("pages/unlearning.py").run()
    assert not at.exception, at.exception
    return at


def test_unlearning_page_runs_and_links_to_features(sae_root):
    at = _page()
    assert at.title[0].value == "Unlearning"
    assert at.multiselect(key="unl_concepts").value == ["colors"]
    assert at.multiselect(key="unl_saes").value[0].endswith("tiny")
    assert at.toggle(key="unl_auto").value is True  # the page's default is the CLI's: chosen on validation
    assert at.number_input(key="unl_n").disabled
    at.toggle(key="unl_auto").set_value(False).run()
    at.number_input(key="unl_n").set_value(3)
    at.number_input(key="unl_thr").set_value(1.0)  # the tiny SAE's features are dense
    at.button(key="unl_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("background job" in i.value for i in at.info)  # the page is usable while it runs
    job = _wait_job(at.session_state["unl_job"])
    assert job.state == "done", job.reason
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    labels = [m.label for m in at.metric]
    assert {"Forget accuracy", "Adversarial accuracy", "Retain, in-domain", "Retain, cross-domain"} <= set(labels)
    # numbers audit: what the page shows is the job's report (run_unlearning's own numbers)
    test = job.result()["report"]["test"]
    shown = {m.label: m.value for m in at.metric}
    for label, key in (("Forget accuracy", "forget_acc"), ("Retain, in-domain", "retain_acc"), ("Retain, cross-domain", "corpus_acc")):
        assert shown[label] == ("n/a" if test[key] != test[key] else f"{100 * test[key]:.1f}%"), label
    assert shown["KL vs unmodified"] == f"{test['kl']:.4f}"
    assert any("Unlearning · model embedded · SAEs tiny" in h.proto.body for h in at.get("html"))
    assert "3 features per SAE, strength 2 (set by hand)" in at.subheader[0].value
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    frames = [df.value for df in at.dataframe]
    assert any(list(f.columns[:3]) == ["prompt", "before", "after"] for f in frames)
    feats = next(f for f in frames if "feature" in f.columns)
    assert len(feats) == 3 and {"score", "freq_forget", "freq_retain", "label"} <= set(feats.columns)
    at.button(key="unl_open").click().run()
    assert at.session_state["feature_id"] == int(feats.iloc[0]["feature"])
    assert at.session_state["sae_dir"].endswith("tiny")


def test_unlearning_page_errors_without_concept(sae_root):
    at = _page()
    at.multiselect(key="unl_concepts").set_value([]).run()
    at.button(key="unl_run").click().run()
    assert any("pick at least one concept" in e.value for e in at.error) and not at.exception


def test_unlearning_page_runs_with_the_cli_defaults(sae_root):
    """Untouched widgets give exactly `UnlearnConfig()` (the CLI's defaults) in the job's parameters,
    and the CLI's flags default to it too."""
    from interp import jobs
    from interp.cli import build_parser
    from interp.unlearn import UnlearnConfig

    at = _page()
    at.button(key="unl_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = jobs.get(at.session_state["unl_job"])
    try:
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in job.params["config"].items()}
        assert UnlearnConfig(**cfg) == UnlearnConfig()
        assert job.params["baselines"] == [] and job.params["concepts"] == ["colors"]
        assert job.params["sae_dirs"][0].endswith("tiny") and "SAEs tiny" in job.header
    finally:
        jobs.cancel(job.id)
    args = build_parser().parse_args(["unlearn", "--sae", "x", "--concept", "colors"])
    d = UnlearnConfig()
    assert (args.method, args.n_features, args.value, args.retain_threshold, args.score, args.positions, args.condition,
            args.split_by, args.split_seed, args.min_base_acc) == (
        d.method, d.n_features, d.value, d.retain_threshold, d.score, d.positions, d.condition, d.split_by, d.split_seed, d.min_base_acc)
