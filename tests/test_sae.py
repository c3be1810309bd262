"""SAE training (SAELens), SAELens-format artifacts, SAEBench metrics, resume, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from interp.errors import InterpError
from interp.sae.config import SAETrainConfig

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random model (2 layers, d_model 32, n_ctx 32) with the embedded tokenizer, saved to disk."""
    from transformers import AutoTokenizer

    from interp.models import EMBEDDED_DIR, build_from_config, load_model, save_model

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer"))
    torch.manual_seed(0)
    m = build_from_config(dict(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4, d_mlp=64,
                               d_vocab=((len(tok) + 63) // 64) * 64, act_fn="gelu", normalization_type="LN",
                               model_name="tiny", seed=0), tokenizer=tok)
    d = tmp_path_factory.mktemp("tiny") / "model"
    save_model(m, d)
    return load_model(str(d)), str(d)


def _lowrank(n=4000, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.rand(n, 24, generator=g) * (torch.rand(n, 24, generator=g) < 0.15)
    return codes @ torch.randn(24, d, generator=g) + 0.5


def _cli(capsys, *args):
    """Run `interp ARGS` in this process (a subprocess would pay the imports again)."""
    from types import SimpleNamespace

    from interp.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)


# --- config -------------------------------------------------------------------------------------


def test_config_rejects_bad_combinations():
    with pytest.raises(InterpError, match="larger than --d-sae"):
        SAETrainConfig(hook="h", arch="topk", d_sae=16, k=32)
    with pytest.raises(InterpError, match="unknown architecture 'relu'"):
        SAETrainConfig(hook="h", arch="relu")
    with pytest.raises(InterpError, match="take --l1, not --k"):
        SAETrainConfig(hook="h", arch="standard", k=4)
    with pytest.raises(InterpError, match="fewer than one batch"):
        SAETrainConfig(hook="h", tokens=10, batch_size=64)
    assert SAETrainConfig(hook="h", arch="topk").k == 32 and SAETrainConfig(hook="h", arch="jumprelu").l1 == 1.0


# --- in-memory training, every architecture, SAELens round trip ---------------------------------


@pytest.mark.parametrize("arch,cls", [("topk", "TopKSAE"), ("batchtopk", "JumpReLUSAE"), ("matryoshka", "JumpReLUSAE"),
                                      ("standard", "StandardSAE"), ("gated", "GatedSAE"), ("jumprelu", "JumpReLUSAE")])
def test_train_sae_on_tensor_every_architecture(arch, cls):
    from interp.sae.train import train_sae_on_tensor

    x = _lowrank()
    sae = train_sae_on_tensor(x, arch=arch, d_sae=48, k=6 if arch in ("topk", "batchtopk", "matryoshka") else None,
                              steps=60, batch_size=256, lr=3e-3, hook_name="blocks.0.hook_resid_post")
    assert type(sae).__name__ == cls and sae.cfg.d_in == 16 and sae.cfg.d_sae == 48
    with torch.no_grad():
        x_hat = sae.decode(sae.encode(x))
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert ev > 0.3, f"{arch}: explained variance {ev:.3f}"
    if arch == "topk":
        assert (sae.encode(x) != 0).sum(-1).max() <= 6


def test_train_sae_on_tensor_is_deterministic():
    from interp.sae.train import train_sae_on_tensor

    x = _lowrank(1000)
    a = train_sae_on_tensor(x, d_sae=32, k=4, steps=10, batch_size=128, seed=3)
    b = train_sae_on_tensor(x, d_sae=32, k=4, steps=10, batch_size=128, seed=3)
    assert torch.equal(a.W_dec, b.W_dec)


@pytest.mark.parametrize("unit_norm", [False, True])
def test_sparse_topk_decoder_matches_saelens_dense_topk(unit_norm, monkeypatch):
    """Our TopK training SAE (embedding_bag decoder) gives SAELens' dense loss and gradients,
    with and without dead latents (AuxK active), with SAELens' decoder-norm rescaling and without."""
    import sae_lens as sl

    from interp.sae.train import make_training_sae

    import torch.nn.functional as F

    cfg = SAETrainConfig(hook="h", d_sae=64, k=4, tokens=4096, unit_norm_decoder=unit_norm, aux_coef=1.0)
    ours = make_training_sae(cfg, 16, {})
    assert ours.cfg.rescale_acts_by_decoder_norm == (not unit_norm)  # the sparse path must follow both
    with torch.no_grad():
        ours.W_dec.mul_(torch.rand(64, 1, generator=torch.Generator().manual_seed(2)) + 0.5)  # unequal decoder norms
    assert type(ours).__name__ == "SparseDecodeTopKTrainingSAE" and isinstance(ours, sl.TopKTrainingSAE)
    dense = sl.TopKTrainingSAE(ours.cfg)
    dense.load_state_dict(ours.state_dict())
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    bags = []
    real_bag = F.embedding_bag
    monkeypatch.setattr(F, "embedding_bag", lambda *a, **k: bags.append(1) or real_bag(*a, **k))  # count sparse decodes
    for dead in (None, torch.arange(64) % 3 == 0):
        outs = []
        for sae in (ours, dense):
            sae.zero_grad()
            step = sl.saes.sae.TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead, n_training_steps=0,
                                                  is_logging_step=False)
            out = sae.training_forward_pass(step)
            out.loss.backward()
            outs.append((out, {n: p.grad.clone() for n, p in sae.named_parameters()}))
        (o1, g1), (o2, g2) = outs
        assert torch.allclose(o1.loss, o2.loss, rtol=1e-5) and torch.allclose(o1.sae_out, o2.sae_out, atol=1e-5)
        assert torch.equal(o1.feature_acts, o2.feature_acts)
        assert (o1.feature_acts != 0).sum(-1).max() <= 4
        for n in g2:
            assert torch.allclose(g1[n], g2[n], atol=1e-5, rtol=1e-4), n
        assert ("auxiliary_reconstruction_loss" in o1.losses) and (o1.losses["auxiliary_reconstruction_loss"] > 0) == (dead is not None)
    assert len(bags) == 2  # one sparse decode per forward of ours; the dense class never uses it


def test_saved_sae_loads_in_plain_saelens_and_lists(tmp_path):
    from sae_lens import SAE

    from interp.sae.io import list_saes, load_sae, save_sae
    from interp.sae.train import train_sae_on_tensor

    x = _lowrank(2000)
    sae = train_sae_on_tensor(x, d_sae=32, k=4, steps=20, batch_size=256, hook_name="blocks.1.attn.hook_z",
                              hook_head_index=2, model_name="embedded")
    save_sae(sae, tmp_path / "saes" / "m" / "one", metrics={"l0": 4.0, "explained_variance": 0.5})
    plain = SAE.load_from_disk(str(tmp_path / "saes" / "m" / "one"))
    assert torch.allclose(plain.encode(x[:50]), sae.encode(x[:50]))
    assert plain.cfg.metadata.hook_name == "blocks.1.attn.hook_z" and plain.cfg.metadata.hook_head_index == 2
    assert torch.allclose(load_sae(tmp_path / "saes" / "m" / "one").W_dec, sae.W_dec)
    (info,) = list_saes(tmp_path / "saes")
    assert (info.arch, info.d_in, info.d_sae, info.hook, info.model) == ("topk", 16, 32, "blocks.1.attn.hook_z:2", "embedded")
    assert info.metrics["l0"] == 4.0
    assert not list((tmp_path / "saes" / "m").glob("*.tmp"))


def test_nan_activations_stop_with_the_step():
    from interp.sae.train import train_sae_on_tensor

    x = _lowrank(500)
    x[123, 3] = float("nan")
    with pytest.raises(InterpError, match=r"non-finite.*row 123"):
        train_sae_on_tensor(x, d_sae=16, k=2, steps=5, batch_size=100)


# --- bad SAE directories -------------------------------------------------------------------------


@pytest.fixture()
def sae_dir(tmp_path):
    from interp.sae.io import save_sae
    from interp.sae.train import train_sae_on_tensor

    sae = train_sae_on_tensor(_lowrank(500), d_sae=16, k=2, steps=3, batch_size=100, hook_name="blocks.0.hook_resid_post")
    return save_sae(sae, tmp_path / "sae")


def test_load_sae_rejects_broken_directories(sae_dir, tmp_path):
    from interp.sae.io import load_sae

    with pytest.raises(InterpError, match="not an SAE directory"):
        load_sae(tmp_path)
    w = sae_dir / "sae_weights.safetensors"
    good = w.read_bytes()
    w.write_bytes(good[: len(good) // 2])
    with pytest.raises(InterpError, match="corrupt or truncated"):
        load_sae(sae_dir)
    w.write_bytes(good)
    cfg = json.loads((sae_dir / "cfg.json").read_text())
    (sae_dir / "cfg.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "d_sae"}))
    with pytest.raises(InterpError, match="missing field.*d_sae"):
        load_sae(sae_dir)
    (sae_dir / "cfg.json").write_text(json.dumps({**cfg, "architecture": "hyperbolic"}))
    with pytest.raises(InterpError, match="unknown architecture 'hyperbolic'"):
        load_sae(sae_dir)
    (sae_dir / "cfg.json").write_text(json.dumps(cfg))
    assert load_sae(sae_dir).cfg.d_sae == 16


def test_cli_bad_input_is_one_line_exit_2(sae_dir, tmp_path, capsys):
    w = sae_dir / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    r = _cli(capsys, "eval-sae", str(sae_dir))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "corrupt or truncated" in r.stderr
    r = subprocess.run([sys.executable, "-m", "interp", "train-sae", "--hook", "blocks.0.hook_resid_post", "--d-sae", "8", "--k", "16", "--tokens", "10000",
             "--out", str(tmp_path / "new")], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 2 and "larger than --d-sae" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "new").exists()


# --- metrics against a hand computation --------------------------------------------------------


def test_eval_matches_hand_computation(tiny):
    from interp.sae.eval import CORE_KEYS, eval_tokens, evaluate_sae
    from interp.sae.train import train_sae_on_tensor
    from interp.hooks import capture

    model, _ = tiny
    hook = "blocks.0.hook_resid_post"
    toks = eval_tokens(model, 24 * 32)
    with torch.no_grad(), capture(model, [hook]) as acts:
        model(toks)
    x_all = acts[hook]
    sae = train_sae_on_tensor(x_all.reshape(-1, 32), d_sae=64, k=8, steps=40, batch_size=128, hook_name=hook)
    res = evaluate_sae(sae, model, tokens=toks, batch_rows=8)
    assert set(CORE_KEYS) <= set(res.metrics)

    special = torch.tensor(sorted({model.tokenizer.bos_token_id, model.tokenizer.eos_token_id, model.tokenizer.pad_token_id} - {None}))
    mask = ~torch.isin(toks, special)
    with torch.no_grad():
        x = x_all[mask]
        x_hat = sae.decode(sae.encode(x))
        ev = 1 - (x - x_hat).pow(2).sum(-1).mean() / (x - x.mean(0)).pow(2).sum(-1).mean()

        def loss(fn=None):
            hooks = [] if fn is None else [(hook, fn)]
            return model.run_with_hooks(toks, return_type="loss", loss_per_token=True, fwd_hooks=hooks)[mask[:, :-1]].mean()

        clean = loss()
        with_sae = loss(lambda a, hook: torch.where(mask[..., None], sae.decode(sae.encode(a)), a))
        zero = loss(lambda a, hook: torch.zeros_like(a))
    assert res.metrics["explained_variance"] == pytest.approx(float(ev), abs=1e-4)
    assert res.metrics["ce_loss_score"] == pytest.approx(float((zero - with_sae) / (zero - clean)), abs=1e-4)
    assert res.metrics["l0"] == pytest.approx(float((sae.encode(x) != 0).sum(-1).float().mean()), abs=1e-4)
    density = (sae.encode(x) != 0).float().mean(0)
    assert res.metrics["frac_alive"] == pytest.approx(float((density > 0).float().mean()))
    assert res.metrics["freq_over_10_percent"] == pytest.approx(float((density > 0.1).float().mean()))


def test_eval_rejects_sae_whose_d_in_does_not_match_the_hook(tiny):
    from interp.sae.eval import evaluate_sae
    from interp.sae.train import train_sae_on_tensor

    model, _ = tiny
    sae = train_sae_on_tensor(_lowrank(300), d_sae=16, k=2, steps=2, batch_size=100, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(InterpError, match="d_in 16 does not match hook blocks.0.hook_resid_post.*width 32"):
        evaluate_sae(sae, model, n_tokens=64)
    sae.cfg.metadata.hook_name = "blocks.0.hook_resid_pots"
    with pytest.raises(InterpError, match="unknown hook"):
        evaluate_sae(sae, model, n_tokens=64)


# --- training from one activation pass, resume, NaN in the store --------------------------------


def test_several_saes_from_one_activation_pass(tiny, tmp_path):
    from interp.activations import ActivationStore
    from interp.sae.eval import CORE_KEYS
    from interp.sae.io import load_sae
    from interp.sae.train import train_saes

    model, path = tiny
    cfgs = [SAETrainConfig(hook="blocks.1.hook_resid_post", model=path, d_sae=64, k=8, tokens=16384, batch_size=512, lr=5e-3),
            SAETrainConfig(hook="blocks.1.hook_resid_post", model=path, arch="batchtopk", d_sae=64, k=8, tokens=16384, batch_size=512, lr=5e-3),
            SAETrainConfig(hook="blocks.0.attn.hook_z:1", model=path, d_sae=32, k=4, tokens=16384, batch_size=512, lr=5e-3)]
    outs = [tmp_path / "out" / n for n in ("resid_topk", "resid_btk", "head")]
    results, collect_s = train_saes(cfgs, outs, acts_dir=tmp_path / "acts", act_tokens=8192, eval_tokens=1024, model=model)
    assert ActivationStore(tmp_path / "acts").manifest.hooks == ["blocks.1.hook_resid_post", "blocks.0.attn.hook_z:1"]
    for r, o in zip(results, outs):
        assert set(CORE_KEYS) <= set(json.loads((o / "metrics.json").read_text()))
        assert json.loads((o / "training_curve.json").read_text())[-1]["step"] == 31
        assert not o.with_name(o.name + ".partial").exists()
    head = load_sae(outs[2])
    assert (head.cfg.d_in, head.cfg.metadata.hook_name, head.cfg.metadata.hook_head_index) == (8, "blocks.0.attn.hook_z", 1)
    assert results[0].metrics["explained_variance"] > 0.3
    assert type(load_sae(outs[1])).__name__ == "JumpReLUSAE"


def test_nan_in_cached_activations_stops_at_that_step(tiny, tmp_path):
    from interp.activations import ActivationStore, CollectConfig, collect_activations
    from interp.sae.train import train_saes

    model, path = tiny
    ccfg = CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=4096, dtype="float16")
    collect_activations(model, ccfg, tmp_path / "acts", model_name=path)
    store = ActivationStore(tmp_path / "acts")
    for i in range(store.n_shards):
        f = tmp_path / "acts" / "blocks.0.hook_resid_post" / f"shard_{i:05d}.safetensors"
        a = load_file(str(f))["acts"]
        a[:] = float("nan")
        save_file({"acts": a}, str(f))
    cfg = SAETrainConfig(hook="blocks.0.hook_resid_post", model=path, d_sae=32, k=4, tokens=8192, batch_size=512)
    with pytest.raises(InterpError, match=r"non-finite \(NaN/inf\) activations at step 0"):
        train_saes([cfg], [tmp_path / "sae"], acts_dir=tmp_path / "acts", act_tokens=4096, model=model)
    assert not (tmp_path / "sae").exists()


def test_cli_list_and_eval(tiny, tmp_path, capsys):
    _, path = tiny
    r = _cli(capsys, "train-sae", "--model", path, "--hook", "blocks.0.hook_mlp_out", "--d-sae", "64", "--k", "4", "--tokens", "4096",
             "--batch-size", "512", "--out", str(tmp_path / "saes" / "tiny" / "mlp0"), "--acts-dir", str(tmp_path / "acts"),
             "--eval-tokens", "512")
    assert r.returncode == 0, r.stderr[-500:]
    r = _cli(capsys, "eval-sae", str(tmp_path / "saes" / "tiny" / "mlp0"), "--json", "--tokens", "512")
    assert r.returncode == 0, r.stderr[-500:]
    assert json.loads(r.stdout)["l0"] <= 4
    r = _cli(capsys, "list", "--root", str(tmp_path / "saes"))
    assert r.returncode == 0 and "blocks.0.hook_mlp_out" in r.stdout and "embedded" in r.stdout
    r = _cli(capsys, "train-sae", "--model", path, "--hook", "blocks.0.hook_mlp_output", "--tokens", "4096", "--batch-size", "512",
             "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown hook 'blocks.0.hook_mlp_output'" in r.stderr and not (tmp_path / "x").exists()


def test_shipped_set_and_generated_readme(tmp_path):
    from interp.sae.build import shipped_configs, write_readme
    from interp.sae.io import save_sae
    from interp.sae.train import train_sae_on_tensor

    cfgs = shipped_configs(4, 256, "embedded", __import__("interp.sae.build", fromlist=["ShippedSpec"]).ShippedSpec())
    assert sorted(cfgs) == sorted([f"resid_post_L{l}_topk" for l in range(4)] + ["mlp_out_L1_topk", "mlp_out_L2_topk",
                                   "attn_out_L1_topk", "attn_out_L2_topk", "resid_post_L1_batchtopk"])
    assert all(c.d_sae == 1024 and c.k <= 32 for c in cfgs.values())
    sae = train_sae_on_tensor(_lowrank(300), d_sae=16, k=2, steps=2, batch_size=100, hook_name="blocks.0.hook_resid_post")
    save_sae(sae, tmp_path / "embedded" / "resid_post_L0_topk",
             metrics={"l0": 2.0, "explained_variance": 0.95, "ce_loss_score": 0.97, "frac_alive": 0.93})
    text = write_readme(tmp_path).read_text()
    assert "| `embedded/resid_post_L0_topk` | `blocks.0.hook_resid_post` | topk" in text and "| 0.950 | 0.970 |" in text
    assert text.rstrip().endswith("| yes |")


def test_shipped_spec_reproduces_the_shipped_saes_configs():
    """`interp build-default` must rebuild what ships: every setting a shipped SAE recorded in its
    metrics.json equals the shipped spec's, and the TopK default recipe stays a separate choice."""
    import json

    from interp.sae.build import SAES_ROOT, ShippedSpec, shipped_configs

    cfgs = shipped_configs(4, 256, "embedded", ShippedSpec())
    for name, cfg in cfgs.items():
        recorded = json.loads((SAES_ROOT / "embedded" / name / "metrics.json").read_text())["config"]
        for key, value in recorded.items():
            assert getattr(cfg, key) == value, (name, key)
    default = shipped_configs(4, 256, "embedded", ShippedSpec(topk_recipe="default"))["resid_post_L3_topk"]
    assert (default.optimizer, default.aux_coef, cfgs["resid_post_L3_topk"].optimizer) == ("signum", 0.0, "adam")
    with pytest.raises(InterpError, match="topk_recipe must be"):
        ShippedSpec(topk_recipe="sparsify")


def test_listing_saes_does_not_import_sae_lens_and_its_arch_list_is_sae_lens_own():
    """Listing SAEs (the dashboard's first page) checks architectures against a static list so that it
    does not import SAELens/TransformerLens; that list must only name architectures SAELens has."""
    from pathlib import Path

    from interp.sae.io import COMMON_ARCHS, _known_archs

    assert COMMON_ARCHS <= set(_known_archs())
    code = ("import sys; from interp.sae.io import list_saes; n = len(list_saes('saes')); "
            "print(n, 'sae_lens' in sys.modules, 'transformer_lens' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[1])).stdout.split()
    assert int(out[0]) >= 9 and out[1:] == ["False", "False"]
