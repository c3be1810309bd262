"""interp.prompt_lab: truncation, identity edits change nothing, ablations match a hand-made hook."""

from __future__ import annotations

import pytest
import torch

from interp import prompt_lab as P
from interp.errors import InterpError
from interp.models import load_model
from test_features_fixtures import make_tiny_sae


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model("embedded")


def test_prepare_truncates_keeping_bos_and_the_end(model):
    long = "word " * (model.cfg.n_ctx * 2)
    p = P.prepare(model, long + "end")
    full = model.to_tokens(long + "end", truncate=False)
    assert p.truncated and p.n_original == full.shape[1] and p.tokens.shape[1] == model.cfg.n_ctx
    assert p.tokens[0, 0] == full[0, 0] and torch.equal(p.tokens[0, 1:], full[0, -(model.cfg.n_ctx - 1):])
    assert not P.prepare(model, "The color of").truncated
    with pytest.raises(InterpError, match="empty"):
        P.prepare(model, "  \n")


def test_empty_ablation_and_identity_clamp_change_nothing(model):
    toks = P.prepare(model, "When Mary and John went to the store, John gave a drink to").tokens
    c = P.compare(model, toks, P.Ablation(), target=(" Mary", " John"))
    assert c.kl == pytest.approx(0.0, abs=1e-6) and c.clean_logit_diff == pytest.approx(c.ablated_logit_diff)
    sae = make_tiny_sae(model, d_sae=16, k=4)
    c = P.compare(model, toks, P.Ablation(clamps=[P.LatentEdit("scale", [3], 1.0)]), sae=sae)
    assert c.kl == pytest.approx(0.0, abs=1e-5)
    c = P.compare(model, toks, P.Ablation(clamps=[P.LatentEdit("set", [3], 50.0)]), sae=sae)
    assert c.kl > 1e-4


def test_zero_head_matches_a_hand_hook(model):
    toks = P.prepare(model, "The color of a ripe banana is").tokens

    def hand(z, hook):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    with torch.no_grad():
        want = model.run_with_hooks(toks, fwd_hooks=[("blocks.0.attn.hook_z", hand)])[0, -1].softmax(-1)
    c = P.compare(model, toks, P.Ablation(heads=[(0, 1)]), k=5)
    assert [t.token_id for t in c.ablated] == want.topk(5).indices.tolist()
    assert c.ablated[0].prob == pytest.approx(float(want.max()), rel=1e-5)
    mz = P.mean_z(model, 0)  # [H, d_head]

    def hand_mean(z, hook):
        z = z.clone()
        z[:, :, 1] = mz[1]
        return z

    with torch.no_grad():
        want_m = model.run_with_hooks(toks, fwd_hooks=[("blocks.0.attn.hook_z", hand_mean)])[0, -1].softmax(-1)
    m = P.compare(model, toks, P.Ablation(heads=[(0, 1)], head_mode="mean"), k=5)
    assert [t.token_id for t in m.ablated] == want_m.topk(5).indices.tolist()
    assert m.ablated[0].prob == pytest.approx(float(want_m.max()), rel=1e-5)


def test_bad_ablation_inputs(model):
    toks = P.prepare(model, "hello there").tokens
    with pytest.raises(InterpError, match="does not exist"):
        P.compare(model, toks, P.Ablation(heads=[(99, 0)]))
    with pytest.raises(InterpError, match="needs an SAE"):
        P.compare(model, toks, P.Ablation(clamps=[P.LatentEdit("zero", [0])]))
    with pytest.raises(InterpError, match="not one"):
        P.compare(model, toks, P.Ablation(), target=(" Mary and", " John"))
    with pytest.raises(InterpError, match="LAYER.HEAD"):
        P.parse_heads("1-3")
    assert P.parse_heads("0.1, 1.3") == [(0, 1), (1, 3)]
    assert P.attention(model, toks, 0).shape == (model.cfg.n_heads, toks.shape[1], toks.shape[1])
