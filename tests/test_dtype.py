"""bfloat16 end to end on the CPU: collect -> train-sae -> eval-sae -> features through the CLI, and
a prompt-lab ablation (two heads zeroed plus an SAE latent clamp), with the model in bfloat16 while
SAEs stay float32, checked against the same run in float32.

The model is the embedded one (4 layers, d_model 256; trained, so its activations, losses and logit
differences are not noise). bfloat16 keeps 8 bits of mantissa (a relative rounding step of
2^-8 = 0.0039 per operation), so after 2 blocks the tolerances are stated relative to the float32
value: activations 3% (relative Frobenius error), SAE metrics 0.05 absolute on fractions and 3%
relative on losses, feature max activations 10%, logits 0.3 absolute on values of size ~10, the
ablation's KL 25%. Observed (2026-12-01): activations within the 3%, eval explained variance 0.4608
vs 0.4605, clean CE 0.880 vs 0.879 (0.15%), feature max activations 0.16% apart, logit difference
5.895 vs 5.906, KL 0.0093 vs 0.0098.
float16 on the CPU is refused with one line (`tests/test_faults.py`, `tests/test_io_device.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
import torch

from interp.cli import main

HOOK = "blocks.1.hook_resid_post"
PROMPT = "When Mary and John went to the store, John gave a drink to"


def _cli(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    assert rc == 0, f"interp {' '.join(map(str, args[:6]))} failed: {err.getvalue()[-1500:]}"
    return out.getvalue()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The pipeline once per dtype. eval-sae and features of both use the float32-trained SAE, so
    they differ only by the model's dtype; each dtype also trains its own SAE."""
    mp = pytest.MonkeyPatch()  # the CLI exports --dtype to INTERP_DTYPE; undone at the end
    mp.setenv("INTERP_DTYPE", "float32")
    mp.setenv("TQDM_DISABLE", "1")
    root = tmp_path_factory.mktemp("dtype")
    mp.setenv("INTERP_HOME", str(root / "home"))
    out = {}
    try:
        for dt in ("float32", "bfloat16"):
            d = root / dt
            g = ["--device", "cpu", "--dtype", dt]
            _cli(*g, "collect", "--hooks", HOOK, "--tokens", 2048, "--context-size", 32, "--out", d / "acts")
            _cli(*g, "train-sae", "--hook", HOOK, "--arch", "topk", "--d-sae", 64, "--k", 4, "--tokens", 4096,
                 "--batch-size", 256, "--act-tokens", 2048, "--eval-tokens", 1024, "--checkpoint-every", 0,
                 "--context-size", 32, "--acts-dir", d / "sae_acts", "--out", d / "sae")
            sae = root / "float32" / "sae"
            ev = json.loads(_cli(*g, "eval-sae", sae, "--tokens", 1024, "--context-size", 32, "--json"))
            shutil.copytree(sae, d / "sae_f32")
            for f in (d / "sae_f32").glob("feature_stats*"):
                f.unlink()
            _cli(*g, "features", "--sae", d / "sae_f32", "--tokens", 2048, "--context-size", 32, "--batch-size", 8)
            out[dt] = {"dir": d, "eval": ev}
    finally:
        mp.undo()
    return out


def test_collect_in_bf16_matches_float32(runs):
    from interp.activations import ActivationStore

    a, b = ActivationStore(runs["bfloat16"]["dir"] / "acts"), ActivationStore(runs["float32"]["dir"] / "acts")
    assert a.manifest.loading["dtype"] == "bfloat16" and b.manifest.loading["dtype"] == "float32"
    assert torch.equal(a.tokens(0), b.tokens(0))
    xa, xb = a.shard(HOOK, 0), b.shard(HOOK, 0)
    assert torch.isfinite(xa).all() and _rel(xa, xb) < 0.03


def test_sae_trained_on_a_bf16_model_is_float32_and_as_good(runs):
    from interp.sae.io import load_sae

    f32, bf = (json.loads((runs[dt]["dir"] / "sae" / "cfg.json").read_text()) for dt in ("float32", "bfloat16"))
    assert bf["dtype"] == "float32" and bf["d_in"] == f32["d_in"] == 256
    sae = load_sae(runs["bfloat16"]["dir"] / "sae", device="cpu")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in sae.parameters())
    mf, mb = (json.loads((runs[dt]["dir"] / "sae" / "metrics.json").read_text()) for dt in ("float32", "bfloat16"))
    print("train", {k: (mf[k], mb[k]) for k in ("explained_variance", "l0", "ce_loss_score")})
    assert abs(mb["explained_variance"] - mf["explained_variance"]) < 0.05


def test_eval_of_one_sae_on_bf16_and_float32_models_agrees(runs):
    ef, eb = runs["float32"]["eval"], runs["bfloat16"]["eval"]
    print("eval", {k: (ef[k], eb[k]) for k in ("explained_variance", "l0", "ce_loss_without_sae", "ce_loss_with_sae", "frac_alive")})
    assert all(v == v and abs(v) != float("inf") for v in eb.values() if isinstance(v, float))
    assert eb["eval_tokens"] == ef["eval_tokens"] == 1024
    for k in ("explained_variance", "frac_alive", "cossim"):
        assert abs(eb[k] - ef[k]) < 0.05, k
    assert abs(eb["l0"] - ef["l0"]) < 0.2
    for k in ("ce_loss_without_sae", "ce_loss_with_sae"):
        assert abs(eb[k] - ef[k]) / ef[k] < 0.03, k


def test_features_on_a_bf16_model_agree(runs):
    from interp.features import load_stats

    sf, sb = (load_stats(runs[dt]["dir"] / "sae_f32") for dt in ("float32", "bfloat16"))
    assert sb.meta["n_tokens"] == sf.meta["n_tokens"] == 2048
    mf, mb = sf.t["max_act"], sb.t["max_act"]
    print("features max_act rel", _rel(mb, mf), "freq", _rel(sb.t["freq"], sf.t["freq"]))
    assert torch.isfinite(mb).all() and _rel(mb, mf) < 0.1 and _rel(sb.t["freq"], sf.t["freq"]) < 0.1


def test_prompt_lab_ablation_on_a_bf16_model(runs):
    from interp import prompt_lab as L
    from interp.edits import LatentEdit
    from interp.models import load_model
    from interp.sae.io import load_sae

    sae = load_sae(runs["float32"]["dir"] / "sae", device="cpu")
    ab = L.Ablation(heads=[(0, 1), (1, 2)], clamps=[LatentEdit("clamp", [0, 1, 2], value=-5.0)])
    res = {}
    for dt in ("float32", "bfloat16"):
        model = load_model("embedded", device="cpu", dtype=dt)
        res[dt] = L.compare(model, model.to_tokens(PROMPT), ab, sae=sae, target=(" Mary", " John"))
    f, b = res["float32"], res["bfloat16"]
    print("ablation", f.clean_logit_diff, b.clean_logit_diff, f.ablated_logit_diff, b.ablated_logit_diff, f.kl, b.kl)
    assert sae.W_enc.dtype == torch.float32
    assert abs(b.clean_logit_diff - f.clean_logit_diff) < 0.3 and abs(b.ablated_logit_diff - f.ablated_logit_diff) < 0.3
    assert f.kl > 1e-3 and abs(b.kl - f.kl) < 0.25 * f.kl
    assert f.clean[0].token == b.clean[0].token


def test_bf16_eval_where_the_ablation_does_not_move_the_loss_is_nan_not_a_crash(tmp_path, caplog):
    """A tiny random GPT-2 in bfloat16: zero-ablating blocks.1.hook_resid_pre leaves the mean CE equal
    at bf16 precision, and SAELens' ce_loss_score divides by that difference (it raised
    ZeroDivisionError through `interp train-sae --dtype bfloat16`)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_features_fixtures import make_tiny_sae
    from tiny_models import make_tiny_hf_model

    from interp.models import load_model
    from interp.sae.eval import evaluate_sae

    model = load_model(str(make_tiny_hf_model("gpt2", tmp_path / "gpt2")), device="cpu", dtype="bfloat16")
    sae = make_tiny_sae(model.float(), d_sae=16, k=2, hook="blocks.1.hook_resid_pre")
    model = model.to(torch.bfloat16, print_details=False)
    with caplog.at_level("WARNING", logger="interp.sae.eval"):
        m = evaluate_sae(sae, model, n_tokens=2048).metrics
    assert "does not change the loss at bfloat16 precision" in caplog.text
    assert m["l0"] == pytest.approx(2.0) and m["explained_variance"] == m["explained_variance"]
    assert m["ce_loss_score"] != m["ce_loss_score"] and m["kl_div_score"] != m["kl_div_score"]  # NaN: undefined
