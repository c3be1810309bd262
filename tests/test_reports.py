"""Reports: escaping (a <script> token), Neuronpedia-style JSON fields, Markdown, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from interp import features as F
from interp.errors import InterpError
from interp.reports import render, write_report


def _fake_stats(evil: str = "<script>alert(1)</script>") -> F.FeatureStore:
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
    return F.FeatureStore(t, meta)


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


def test_csp_forbids_inline_script_but_the_pinned_filter():
    import base64
    import hashlib
    import re

    from interp.reports import _JS

    html = render(_fake_stats(), [0], "html")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1]
    pinned = "sha256-" + base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    assert f"script-src '{pinned}'" in csp
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert scripts == [_JS]  # the one script in the page is exactly the hashed one


def test_crafted_feature_stats_json_cannot_inject_markup(tmp_path):
    """Every string in feature_stats.json (labels, vocabulary, model/hook/source names, even the
    numbers) reaches the report escaped."""
    from interp.features import load_stats, save_stats

    evil = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    st = _fake_stats(evil)
    st.meta |= {"model": evil, "hook": evil, "source": evil, "corpus": evil, "n_tokens": evil, "n_features": 2}
    st.meta["labels"] = [evil, evil]
    st.meta["label_inputs"], st.meta["label_outputs"] = [[evil], []], [[evil], []]
    save_stats(st, tmp_path)
    import re

    md = render(load_stats(tmp_path), [0, 1], "md", title=evil)
    assert not re.search(r"(?<!\\)<", md)  # Markdown: every '<' backslash-escaped
    html = render(load_stats(tmp_path), [0, 1], "html", title=evil)
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 8


def test_crafted_or_damaged_stats_are_refused(tmp_path):
    from interp.features import load_stats, save_stats

    st = _fake_stats()
    save_stats(st, tmp_path)
    meta = json.loads((tmp_path / F.META_FILE).read_text())
    for bad, msg in ((dict(meta, labels=["x"]), "wrong length"), (dict(meta, labels=[1, 2]), "must be strings"),
                     (dict(meta, label_f1=[float("nan"), 0.0]), "finite"), (dict(meta, vocab=["a"]), "past the vocabulary"),
                     (dict(meta, n_features="2"), "do not match"), ([1, 2], "another version")):
        (tmp_path / F.META_FILE).write_text(json.dumps(bad))
        with pytest.raises(InterpError, match=msg):
            load_stats(tmp_path)
    (tmp_path / F.META_FILE).write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InterpError, match="corrupt"):
        load_stats(tmp_path)


def test_report_path_checked_before_rendering(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep")
    with pytest.raises(InterpError, match="is a file, not a directory"):
        write_report(_fake_stats(), [0], "md", f / "r.md")
    assert f.read_text() == "keep"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not __import__("os").access(ro, __import__("os").W_OK):  # root can write anywhere
            with pytest.raises(InterpError, match="not writable"):
                write_report(_fake_stats(), [0], "md", ro / "r.md")
    finally:
        ro.chmod(0o700)
