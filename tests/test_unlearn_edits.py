"""interp.edits: the one vocabulary for SAE latent edits (zero / scale / set / clamp, conditional)."""

from __future__ import annotations

import pytest
import torch

from interp.edits import Condition, LatentEdit, apply_edits, edit_hook
from interp.errors import InterpError
from interp.hooks import intervene


def test_modes_on_a_hand_example():
    f = torch.tensor([[0.5, 1.0, 0.0, 4.0]])
    assert LatentEdit("clamp", [0, 2], 3.0, [1.0, 2.0]).apply(f.clone()).tolist() == [[-3.0, 1.0, 0.0, 4.0]]  # inactive 2 stays 0
    assert LatentEdit("clamp", [3], 2.0).apply(f.clone()).tolist() == [[0.5, 1.0, 0.0, -2.0]]  # typical defaults to 1
    assert LatentEdit("zero", [1, 3]).apply(f.clone()).tolist() == [[0.5, 0.0, 0.0, 0.0]]
    assert LatentEdit("scale", [3], -0.5).apply(f.clone()).tolist() == [[0.5, 1.0, 0.0, -2.0]]
    assert LatentEdit("set", [2], 7.0).apply(f.clone()).tolist() == [[0.5, 1.0, 7.0, 4.0]]  # set acts on inactive latents too


def test_condition_edits_only_where_a_detector_fires_before_editing():
    f = torch.tensor([[1.0, 2.0, 0.0], [0.0, 2.0, 5.0]])  # two positions; detector = latent 0
    out = apply_edits(f.clone(), [LatentEdit("zero", [0], condition=Condition((0,))), LatentEdit("set", [1], 9.0, condition=Condition((0,)))])
    # position 0: detector active -> latent 0 zeroed, and the second edit still sees the unedited detector
    assert out.tolist() == [[0.0, 9.0, 0.0], [0.0, 2.0, 5.0]]
    out = LatentEdit("scale", [2], 2.0, condition=Condition((2,), threshold=4.0)).apply(f.clone())
    assert out.tolist() == [[1.0, 2.0, 0.0], [0.0, 2.0, 10.0]]


@pytest.mark.parametrize("kw, msg", [
    (dict(mode="erase", features=[0]), "unknown latent edit 'erase'"),
    (dict(mode="zero", features=[]), "names no features"),
    (dict(mode="clamp", features=[0, 1], typical=[1.0]), "2 features but 1 typical"),
    (dict(mode="scale", features=[0], value=float("nan")), "finite number"),
])
def test_bad_edits_are_one_line_errors(kw, msg):
    with pytest.raises(InterpError, match=msg):
        LatentEdit(**kw)


def test_edit_hook_keeps_the_error_term_and_checks_indices(model):
    from test_unlearn import HOOK, TEXT, make_sae

    sae = make_sae(model)
    toks = model.to_tokens(TEXT)
    clean = model(toks)
    with intervene(model, [(HOOK, edit_hook(sae, [LatentEdit("scale", list(range(16)), 1.0)]))]):
        same = model(toks)
    assert torch.allclose(clean, same, atol=1e-4)  # identity edit: the error term restores x exactly
    with intervene(model, [(HOOK, edit_hook(sae, [LatentEdit("set", [3], 5.0)]))]):
        moved = model(toks)
    assert not torch.allclose(clean, moved, atol=1e-3)
    with pytest.raises(InterpError, match="feature 16 does not exist: this SAE has 16 features"):
        edit_hook(sae, [LatentEdit("zero", [16])])
    with pytest.raises(InterpError, match="feature 99 does not exist"):
        edit_hook(sae, [LatentEdit("zero", [0], condition=Condition((99,)))])
