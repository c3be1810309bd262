"""`interp build-default --quick`: the whole build pipeline on a tiny model, end to end."""

import json

from interp.build import BuildConfig, train_embedded_model
from interp.models import load_model


def test_quick_build_writes_a_loadable_model_with_a_model_card(tmp_path):
    _, card = train_embedded_model(BuildConfig.quick(), out_dir=tmp_path / "m", work_dir=tmp_path / "w")
    written = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert written["ioi_accuracy"] == card["ioi_accuracy"]
    for key in ("heldout_loss", "ioi_logit_diff", "greater_than_prob_diff", "docstring_accuracy"):
        assert key in written
    assert set(written["fact_accuracy"]) == {"colors", "animals", "sports", "emotions", "materials", "foods"}
    # the loss went down from the uniform-prediction loss ln(vocab)
    curve = written["train_curve"]
    assert curve[-1][1] < curve[0][1] - 2.0
    m = load_model(str(tmp_path / "m"))
    assert m.cfg.n_layers == 2 and m.to_str_tokens(" 1732", prepend_bos=False) == [" 17", "32"]
