"""interp/forward.py: the fast activation path equals HookedTransformer's hooks; fallbacks say so."""

import logging

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.forward import FastCapture, gpt2_unsupported, hooked_to_gpt2
from interp.hooks import capture

KINDS = ["hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
         "attn.hook_z", "mlp.hook_pre", "mlp.hook_post"]


def _tiny(**over) -> HookedTransformer:
    torch.manual_seed(0)
    cfg = dict(n_layers=3, d_model=32, n_ctx=24, d_head=8, n_heads=4, d_mlp=64, d_vocab=50, act_fn="gelu_new",
               normalization_type="LN", seed=0)
    cfg.update(over)
    m = HookedTransformer(HookedTransformerConfig(**cfg)).eval()
    with torch.no_grad():  # non-trivial LayerNorm weights and biases, so a wrong mapping shows
        for n, p in m.named_parameters():
            if n.endswith((".w", ".b", "b_Q", "b_K", "b_V", "b_O", "b_in", "b_out")):
                p.add_(torch.randn_like(p) * 0.2)
    return m


@pytest.mark.parametrize("norm,act", [("LN", "gelu_new"), ("LNPre", "gelu"), ("LN", "relu")])
def test_every_served_hook_equals_hookedtransformer(norm, act):
    m = _tiny(normalization_type=norm, act_fn=act)
    hooks = [f"blocks.{l}.{k}" + (":2" if k == "attn.hook_z" else "") for l in range(3) for k in KINDS]
    toks = torch.randint(0, 50, (3, 24), generator=torch.Generator().manual_seed(1))
    fast = FastCapture(m, hooks)
    assert fast.path == "hf-gpt2"
    got = fast(toks)
    with torch.no_grad(), capture(m, hooks) as ref:
        m(toks)
    assert set(got) == set(hooks)
    for h in hooks:
        assert got[h].shape == ref[h].shape, h
        torch.testing.assert_close(got[h], ref[h], atol=2e-5, rtol=1e-4, msg=h)


def test_converted_model_reproduces_the_residual_stream_and_stops_early():
    m = _tiny()
    hf = hooked_to_gpt2(m)
    toks = torch.randint(0, 50, (2, 24), generator=torch.Generator().manual_seed(2))
    _, cache = m.run_with_cache(toks)
    with torch.no_grad():
        hs = hf(input_ids=toks, output_hidden_states=True).hidden_states
    for l in range(3):  # hidden_states[l] is the input of block l
        torch.testing.assert_close(hs[l], cache[f"blocks.{l}.hook_resid_pre"], atol=2e-5, rtol=1e-4)
    # A hook in block 0 only: blocks 1 and 2 never run.
    fast = FastCapture(m, ["blocks.0.hook_mlp_out"])
    ran = []
    for blk in fast.hf.h:
        blk.register_forward_pre_hook(lambda mod, args, ran=ran, blk=blk: ran.append(blk))
    fast(toks)
    assert ran == [fast.hf.h[0]]


def test_fallback_for_unserved_hooks_and_architectures(caplog):
    m = _tiny()
    toks = torch.randint(0, 50, (2, 24), generator=torch.Generator().manual_seed(3))
    with caplog.at_level(logging.INFO, logger="interp.forward"):
        fast = FastCapture(m, ["ln_final.hook_normalized", "blocks.1.hook_resid_post"])
    assert fast.path == "hooked"
    assert [r.message for r in caplog.records if "fast forward unavailable" in r.message] == [
        "fast forward unavailable (hook(s) ln_final.hook_normalized have no module equivalent); collecting through HookedTransformer"]
    got = fast(toks)
    with torch.no_grad(), capture(m, ["ln_final.hook_normalized"]) as ref:
        m(toks)
    torch.testing.assert_close(got["ln_final.hook_normalized"], ref["ln_final.hook_normalized"])

    rot = _tiny(positional_embedding_type="rotary", rotary_dim=8)
    assert "positional embedding 'rotary'" in gpt2_unsupported(rot.cfg)
    assert FastCapture(rot, ["blocks.0.hook_resid_post"]).path == "hooked"
    assert "normalization 'RMS'" in gpt2_unsupported(_tiny(normalization_type="RMS").cfg)
    assert FastCapture(m, ["blocks.0.hook_resid_post"], fast=False).path == "hooked"


def test_collection_through_the_fast_path_matches_the_hooked_forward(tmp_path, model):
    from interp.activations import ActivationStore, CollectConfig, collect_activations

    cfg = CollectConfig(hooks=["blocks.1.hook_resid_post", "blocks.0.attn.hook_z:5"], n_tokens=256, batch_size=2, shard_rows=2)
    collect_activations(model, cfg, tmp_path / "acts")
    store = ActivationStore(tmp_path / "acts")
    toks = torch.cat([store.tokens(i) for i in range(store.n_shards)])
    with torch.no_grad(), capture(model, cfg.hooks) as ref:
        model(toks)
    for h in cfg.hooks:
        got = torch.cat([store.shard(h, i) for i in range(store.n_shards)])
        torch.testing.assert_close(got, ref[h].reshape(len(got), -1), atol=1e-4, rtol=1e-4)
