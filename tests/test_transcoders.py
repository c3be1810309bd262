"""Transcoders: the trainer learns a known map, the saved directories load with plain SAELens, the
metrics match a hand computation, bad input is one line before any work, the shipped set loads."""

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _linear_pairs(n=4096, d=16, seed=0):
    """x ~ N(0, I); y = relu(x M1) M2: a sparse-ish MLP-like map to learn."""
    g = torch.Generator().manual_seed(seed)
    M1, M2 = torch.randn(d, 64, generator=g) / d ** 0.5, torch.randn(64, d, generator=g) / 8
    x = torch.randn(n, d, generator=g)
    return x, torch.relu(x @ M1 - 1.0) @ M2


def _batches(x, y, bs=256):
    while True:
        for i in range(0, len(x) - bs + 1, bs):
            yield x[i : i + bs], y[i : i + bs]


@pytest.mark.parametrize("arch,skip", [("topk", False), ("jumprelu", True)])
def test_fit_transcoder_learns_a_sparse_map_and_round_trips_through_saelens(tmp_path, arch, skip):
    import sae_lens

    from interp.transcoders.config import TranscoderTrainConfig
    from interp.transcoders.io import load_transcoder, register, save_transcoder
    from interp.transcoders.train import fit_transcoder

    x, y = _linear_pairs()
    cfg = TranscoderTrainConfig(layer=0, arch=arch, d_sae=128, k=16, skip=skip, tokens=256 * 150, batch_size=256, lr=3e-3,
                                init_threshold=0.5, l0_coef=1e-3)
    meta = {"model_name": "toy", "hook_name": "blocks.0.ln2.hook_normalized", "hook_name_out": "blocks.0.hook_mlp_out", "hook_layer": 0}
    res = fit_transcoder(cfg, _batches(x, y), meta)
    tc = res.transcoder
    with torch.no_grad():
        fvu = ((tc(x) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum()).item()
    assert fvu < 0.6, fvu  # a constant predictor has FVU 1
    assert res.curve[-1]["fvu"] < res.curve[0]["fvu"]
    out = save_transcoder(tc, tmp_path / "tc", metrics={"fvu": fvu})
    cfg_json = json.loads((out / "cfg.json").read_text())
    assert cfg_json["architecture"] == cfg.architecture
    assert cfg_json["metadata"]["hook_name_out"] == "blocks.0.hook_mlp_out"
    if arch == "jumprelu":  # SAELens' own class and registry entry (interp registers only the TopK ones)
        loaded = sae_lens.JumpReLUSkipTranscoder.load_from_disk(str(out))
        assert type(loaded) is sae_lens.JumpReLUSkipTranscoder and loaded.cfg.d_out == 16
        assert float(loaded.W_skip.abs().sum()) > 0
    else:  # registered with SAELens' registry: SAELens' loader dispatches to it
        register()
        loaded = sae_lens.Transcoder.load_from_disk(str(out))
        assert type(loaded).__name__ == "TopKTranscoder"
        f = loaded.encode(x[:8])
        assert ((f != 0).sum(-1) <= 16).all()
    again = load_transcoder(out)
    with torch.no_grad():
        assert torch.allclose(again(x[:64]), tc(x[:64]), atol=1e-6)


def test_transcoder_metrics_match_a_hand_computation(model):
    """FVU of an identity-free transcoder that predicts only the mean (b_dec = E y) is 1; CE score of
    a transcoder equal to zero-ablation is 0."""
    from graph_fixtures import random_transcoders

    from interp.hooks import capture
    from interp.sae.eval import eval_tokens
    from interp.transcoders.eval import evaluate_transcoder

    toks = eval_tokens(model, 1024)
    tc = random_transcoders(model, d_sae=8)[1]
    with capture(model, ["blocks.1.hook_mlp_out"]) as acts:
        model(toks, stop_at_layer=2)
    y = acts["blocks.1.hook_mlp_out"][:, 1:].reshape(-1, model.cfg.d_model)
    with torch.no_grad():
        tc.W_dec.zero_()
        tc.b_dec.copy_(y.mean(0))
    m = evaluate_transcoder(tc, model, tokens=toks)
    assert m["fvu"] == pytest.approx(1.0, abs=1e-4)
    assert m["l0"] >= 0 and m["layer"] == 1
    with torch.no_grad():
        tc.b_dec.zero_()  # T(x) = 0: exactly the zero ablation
    m0 = evaluate_transcoder(tc, model, tokens=toks)
    assert m0["ce_loss_score"] == pytest.approx(0.0, abs=1e-6)
    assert m0["ce_loss_with_tc"] == pytest.approx(m0["ce_loss_with_ablation"], abs=1e-6)


def test_train_transcoder_cli_refuses_bad_input_in_one_line_before_work(tmp_path, capsys, monkeypatch):
    from interp.cli import main

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    cases = [(["--layers", "1,x"], "--layers '1,x': expected all or a comma list"),
             (["--arch", "topk", "--k", "0"], "--k 0: must be between 1 and --d-sae (1024)"),
             (["--layers", "7", "--tokens", "2048"], "--layers 7: the model has 4 layers (0-3)")]
    for extra, msg in cases:
        out = tmp_path / "out"
        assert main(["train-transcoder", "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and msg in lines[0], err[-400:]
        assert not out.exists() and not (tmp_path / "home" / "transcoder-acts").exists()


def test_shipped_transcoders_load_with_plain_saelens_and_fit_the_embedded_model(model):
    import sae_lens

    from interp.transcoders.io import check_set_fits, load_transcoder_set

    root = ROOT / "transcoders" / "embedded"
    for L in range(4):
        tc = sae_lens.JumpReLUTranscoder.load_from_disk(str(root / f"L{L}"))
        assert tc.cfg.metadata.hook_name == f"blocks.{L}.ln2.hook_normalized"
        m = json.loads((root / f"L{L}" / "metrics.json").read_text())
        assert m["fvu"] < 0.5 and m["l0"] < 100, (L, m["fvu"], m["l0"])
    check_set_fits(load_transcoder_set(root), model)
    table = (ROOT / "transcoders" / "README.md").read_text()
    assert "interp build-transcoders" in table and "| L3 |" in table


def test_train_transcoder_cli_trains_two_layers_from_one_pass(tmp_path, capsys, monkeypatch):
    import sae_lens

    from interp.cli import main

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    out = tmp_path / "tc"
    assert main(["train-transcoder", "--layers", "0,2", "--arch", "topk", "--k", "8", "--skip", "--d-sae", "64", "--tokens", "4096",
                 "--act-tokens", "4096", "--eval-tokens", "512", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{out / 'L0'}: topk_skip_transcoder layer 0" in text and f"{out / 'L2'}: topk_skip_transcoder layer 2" in text
    from interp.transcoders.io import register

    register()
    for L in (0, 2):
        tc = sae_lens.SAE.load_from_disk(str(out / f"L{L}"))
        assert type(tc).__name__ == "TopKSkipTranscoder" and tc.cfg.metadata.hook_name == f"blocks.{L}.ln2.hook_normalized"
        m = json.loads((out / f"L{L}" / "metrics.json").read_text())
        assert m["l0"] <= 8 and 0 < m["fvu"] < 2 and m["train_tokens"] == 4096
    assert not any((tmp_path / "home" / "transcoder-acts").iterdir())  # the activation cache is removed
