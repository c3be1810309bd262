"""Reports: escaping (a <script> token), Neuronpedia-style JSON fields, Markdown, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from interp import features as F
from interp.errors import InterpError
from interp.reports import render, write_report


def _fake_stats(evil: str = "<script>alert(1)</script>") -> F.FeatureStats:
    """Hand-made statistics for 2 features over a 4-token vocabulary whose token 2 is `evil`."""
    Fn, K, W, V = 2, 2, 3, 4
    t = {
        "freq": torch.tensor([0.5, 0.0]), "count": torch.tensor([2.0, 0.0]), "max_act": torch.tensor([3.0, 0.0]),
        "mean_act": torch.tensor([2.0, 0.0]), "act_hist": torch.tensor([[0, 2], [0, 0]], dtype=torch.int32),
        "top_vals": torch.tensor([[3.0, 1.0], [0.0, 0.0]]).half(),
        "top_tokens": torch.tensor([[[1, 2, 3], [-1, 2, 0]], [[-1] * 3] * 2], dtype=torch.int16),
        "top_acts": torch.tensor([[[0.0, 3.0, 0.5], [0.0, 1.0, 0.0]], [[0.0] * 3] * 2]).half(),
        "q_vals": torch.tensor([[1.0], [0.0]]).half(), "q_tokens": torch.tensor([[[0, 2, 1]], [[-1] * 3]], dtype=torch.int16),
        "q_acts": torch.tensor([[[0.0, 1.0, 0.0]], [[0.0] * 3]]).half(),
        "corr_ids": torch.tensor([[1], [0]], dtype=torch.int32), "corr_vals": torch.tensor([[0.25], [0.25]]),
        "cat_f1": torch.zeros(Fn, 1), "token_count": torch.ones(V),
        "logit_pos_ids": torch.tensor([[2], [1]], dtype=torch.int32), "logit_pos_vals": torch.tensor([[0.5], [0.1]]).half(),
        "logit_neg_ids": torch.tensor([[0], [3]], dtype=torch.int32), "logit_neg_vals": torch.tensor([[-0.5], [-0.1]]).half(),
        "logit_hist": torch.tensor([[1, 3], [2, 2]], dtype=torch.int32), "logit_range": torch.tensor([[-0.5, 0.5], [-0.1, 0.1]]),
    }
    meta = {"format_version": F.FORMAT_VERSION, "n_features": Fn, "model": "m", "hook": "h", "source": "s", "n_tokens": 4,
            "corpus": "c", "config": {"left": 1, "right": 1}, "categories": ["colors"], "hist_edges": [-1.0, 0.0, 1.0],
            "labels": [f"tokens: {evil!r}", "dead (never fired)"], "label_f1": [0.0, 0.0], "vocab": ["<bos>", " a", evil, "\n"]}
    return F.FeatureStats(t, meta)


def test_html_escapes_every_token_and_is_offline():
    html = render(_fake_stats(), [0, 1], "html", title="<b>t</b>")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # only the report's own inline filter script
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<svg" in html and "Feature 0" in html and "Feature 1" in html
    assert "&lt;b&gt;t&lt;/b&gt;" in html


def test_json_follows_neuronpedia_fields():
    doc = json.loads(render(_fake_stats(), [0], "json"))
    f = doc["features"][0]
    for key in ("index", "maxActApprox", "frac_nonzero", "pos_str", "pos_values", "neg_str", "neg_values",
                "freq_hist_data_bar_heights", "freq_hist_data_bar_values", "logits_hist_data_bar_heights",
                "logits_hist_data_bar_values", "correlated_features_indices", "correlated_features_pearson", "activations"):
        assert key in f, key
    top = f["activations"][0]
    assert top["tokens"] == [" a", "<script>alert(1)</script>", "\n"] and top["values"] == [0.0, 3.0, 0.5]
    assert top["maxValueTokenIndex"] == 1 and top["maxValue"] == 3.0
    second = f["activations"][1]  # left edge of a row: the missing token is dropped, the peak moves
    assert second["tokens"] == ["<script>alert(1)</script>", "<bos>"] and second["maxValueTokenIndex"] == 0
    assert f["pos_str"] == ["<script>alert(1)</script>"] and f["correlated_features_indices"] == [1]
    assert f["freq_hist_data_bar_heights"] == [0, 2]
    assert f["freq_hist_data_bar_values"] == pytest.approx([10 ** -0.5, 10 ** 0.5])


def test_markdown_escapes_and_bolds_peak():
    md = render(_fake_stats("*x*"), [0], "md")
    assert "**\\*x\\***" in md and "## Feature 0" in md


def test_write_report_is_atomic_and_checks_input(tmp_path):
    out = write_report(_fake_stats(), [0], "html", tmp_path / "sub" / "r.html")
    assert out.exists() and not list(out.parent.glob("*.tmp"))
    with pytest.raises(InterpError, match="unknown report format"):
        render(_fake_stats(), [0], "pdf")
    with pytest.raises(InterpError, match="out of range"):
        render(_fake_stats(), [2], "md")
    with pytest.raises(InterpError, match="is a directory"):
        write_report(_fake_stats(), [0], "md", tmp_path)
