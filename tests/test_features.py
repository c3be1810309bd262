"""Feature statistics: hand-checked counts, window alignment, concept labels, storage round trip."""

from __future__ import annotations

import json

import pytest
import torch

from interp import features as F
from interp.errors import InterpError
from interp.hooks import HookSpec
from interp.models import load_model
from test_features_fixtures import HOOK, make_tiny_sae


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model("embedded")


class TokenIdSource:
    """Feature j = 1.0 exactly where the input token id is j (read from hook_embed's argmax trick):
    a source with hand-computable statistics."""

    def __init__(self, model, ids):
        self.hook = HookSpec("hook_embed")
        self.ids = torch.tensor(ids)
        self.W_E = model.W_E.detach()
        self.n_features = len(ids)

    def encode(self, acts):
        # recover token ids from embeddings (exact row match)
        tok = torch.cdist(acts.reshape(-1, acts.shape[-1]), self.W_E).argmin(-1).reshape(acts.shape[:-1])
        return (tok[..., None] == self.ids).float()

    def directions(self, model):
        return None


@pytest.fixture(scope="module")
def tiny_stats(model):
    sae = make_tiny_sae(model, d_sae=32, k=4)
    return F.build_feature_stats(model, F.SaeSource(sae, model), F.StatsConfig(n_tokens=4096, top_k=5, reservoir=8, n_quantile=4))


def test_counts_match_a_hand_count(model):
    tid_is = int(model.to_tokens(" is", prepend_bos=False)[0, 0])
    tid_the = int(model.to_tokens(" the", prepend_bos=False)[0, 0])
    cfg = F.StatsConfig(n_tokens=2048, top_k=3, reservoir=4, n_quantile=2, left=2, right=1)
    st = F.build_feature_stats(model, TokenIdSource(model, [tid_is, tid_the]), cfg)
    from interp.activations import text_source, token_rows

    docs, _ = text_source("corpus", 0)
    rows = torch.stack([r for _, r in zip(range(2048 // model.cfg.n_ctx), token_rows(model, docs, model.cfg.n_ctx))])
    body = rows[:, 1:]  # the first token of a row is excluded
    n_real = int((body != 0).sum())
    for j, tid in enumerate([tid_is, tid_the]):
        assert st.t["count"][j] == (body == tid).sum()
        assert st.t["freq"][j] == pytest.approx(float((body == tid).sum()) / n_real, rel=1e-5)
    assert st.t["max_act"].tolist() == [1.0, 1.0]
    real = (rows != 0)
    real[:, 0] = False
    x, y = (rows[real] == tid_is).double(), (rows[real] == tid_the).double()
    r = ((x - x.mean()) * (y - y.mean())).mean() / (x.std(unbiased=False) * y.std(unbiased=False))
    assert st.t["corr_ids"][0, 0] == 1 and float(st.t["corr_vals"][0, 0]) == pytest.approx(float(r), abs=1e-5)
    fv = st.feature(0)
    for c in fv.top:  # the activating token sits at the peak of its window
        assert c.token_ids[c.peak] == tid_is and c.values[c.peak] == 1.0
        assert len(c.tokens) <= cfg.left + cfg.right + 1
    assert fv.pos_logits == [] and fv.label.startswith("tokens: ' is'")
    assert F.features_for_token(st, " the")[0][0] == 1


def test_concept_matcher_marks_fact_sentences(model):
    from interp.data import corpus as C

    m = F.ConceptMatcher(model)
    p = C.fact_prompt("colors", 0, 0)
    text = "It was a quiet morning in the village. " + p.text + p.answer + ". Nobody said much after that."
    toks = model.to_tokens(text)
    lab = m(toks)[0]
    strs = model.to_str_tokens(toks[0])
    inside = [s for s, c in zip(strs, lab.tolist()) if c == C.CATEGORIES.index("colors")]
    assert "".join(inside).strip() == p.text + p.answer + "."
    assert (lab >= 0).sum() == len(inside)


def test_stats_round_trip_and_views(tiny_stats, tmp_path):
    F.save_stats(tiny_stats, tmp_path)
    assert F.has_stats(tmp_path) and not list(tmp_path.glob("*.tmp"))
    st = F.load_stats(tmp_path)
    assert st.n_features == 32 and len(st.labels) == 32
    for k, v in tiny_stats.t.items():
        assert torch.equal(st.t[k], v), k
    fv = st.feature(3)
    assert len(fv.pos_logits) == 10 and len(fv.neg_logits) == 10
    assert all(a >= b for (_, a), (_, b) in zip(fv.pos_logits, fv.pos_logits[1:]))
    assert [c.value for c in fv.top] == sorted([c.value for c in fv.top], reverse=True)
    if fv.top:
        assert fv.top[0].value == pytest.approx(fv.max_act, rel=1e-2)
        assert all(q.value <= fv.max_act + 1e-2 for q in fv.quantiles)
    assert sum(fv.hist_counts) == int(st.t["count"][3])
    assert all(j != 3 and -1.0001 <= r <= 1.0001 for j, r, _ in fv.correlated)
    json.loads((tmp_path / F.META_FILE).read_text())


def test_logit_effects_are_direction_through_unembed(model, tiny_stats):
    sae = make_tiny_sae(model, d_sae=32, k=4)
    d = sae.W_dec.detach()[5]
    d = (d - d.mean()) * model.ln_final.w.detach()
    eff = d @ model.W_U.detach()
    assert tiny_stats.t["logit_pos_ids"][5, 0] == eff.argmax()
    assert tiny_stats.t["logit_neg_ids"][5, 0] == eff.argmin()


def test_neuron_source_and_directions(model):
    src = F.NeuronSource(model, 0)
    assert src.n_features == model.cfg.d_mlp and src.hook.name == "blocks.0.mlp.hook_post"
    assert torch.equal(src.directions(model), model.blocks[0].mlp.W_out.detach())
    with pytest.raises(InterpError, match="layer 99 out of range"):
        F.NeuronSource(model, 99)


def test_bad_inputs(tiny_stats, tmp_path):
    with pytest.raises(InterpError, match="feature id 32 out of range"):
        tiny_stats.feature(32)
    with pytest.raises(InterpError, match="no feature statistics yet"):
        F.load_stats(tmp_path)
    (tmp_path / F.STATS_FILE).write_bytes(b"garbage")
    (tmp_path / F.META_FILE).write_text("{}")
    with pytest.raises(InterpError, match="corrupt|another version"):
        F.load_stats(tmp_path)
    assert F.parse_feature_range("0-2,5", 32) == [0, 1, 2, 5]
    with pytest.raises(InterpError, match="out of range"):
        F.parse_feature_range("0-99", 32)
    with pytest.raises(InterpError, match="bad feature list"):
        F.parse_feature_range("a-b", 32)
    with pytest.raises(InterpError, match="not in the vocabulary"):
        F.features_for_token(tiny_stats, "zzzqqq-not-a-token")
    with pytest.raises(InterpError, match="--tokens must be positive"):
        F.StatsConfig(n_tokens=0)


def test_cli_features_and_report(model, tmp_path, capsys):
    from interp.cli import main

    from test_features_fixtures import save_tiny_sae

    d = save_tiny_sae(model, tmp_path / "sae", d_sae=16, k=4)
    assert main(["features", "--sae", str(d), "--tokens", "2048"]) == 0
    assert F.has_stats(d)
    out = tmp_path / "r.md"
    assert main(["report", "--sae", str(d), "--features", "0-3", "--format", "md", "--out", str(out)]) == 0
    assert out.read_text().count("## Feature") == 4
    before = out.read_text()
    assert main(["report", "--sae", str(d), "--features", "0-99", "--format", "md", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err  # the output path is checked first
    assert main(["report", "--sae", str(d), "--features", "0-99", "--format", "md", "--out", str(out), "--overwrite"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["report", "--sae", str(tmp_path), "--features", "0", "--format", "md", "--out", str(tmp_path / "r2.md")]) == 2
    assert out.read_text() == before and not (tmp_path / "r2.md").exists()


# ----------------------------------------------------------------------------- the split package's parts
def test_fires_and_f1_match_a_hand_count():
    from interp.features.firing import f1_from_counts, fires, firing_f1

    acts = torch.tensor([[0.0, 2.0], [1.0, 0.5], [3.0, 0.0], [0.2, 1.9]])
    props = torch.tensor([[0], [1], [1], [0]], dtype=torch.bool)
    assert fires(acts).tolist() == [[False, True], [True, True], [True, False], [True, True]]
    mx = acts.max(0).values  # [3.0, 2.0]
    assert fires(acts, mx, 0.5).tolist() == [[False, True], [False, False], [True, False], [False, True]]
    # feature 0 at t=0: fires at 1,2,3; property at 1,2 -> tp 2, F1 = 4 / (3 + 2)
    assert firing_f1(acts, props)[0, 0] == pytest.approx(0.8)
    # feature 1 at t=0.5: fires at 0,3; tp 0 -> F1 0
    assert firing_f1(acts, props, mx, 0.5)[1, 0] == 0.0
    assert f1_from_counts(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1)).item() == 0.0  # never fires, never true
    assert not fires(torch.ones(2, 1), torch.zeros(1), 0.0).any()  # max 0: never fires, whatever t


def test_interval_samples_bucket_by_fraction_of_max():
    from interp.features.compute import interval_samples

    W = 1
    # one feature, max 10; reservoir values 1, 6, 9.5 (and an empty slot), top contexts 10, 9.5 (dup), 4
    rv = torch.tensor([[1.0], [6.0], [9.5], [float("-inf")]])
    tv = torch.tensor([[10.0], [9.5], [4.0]])
    toks = lambda n: torch.arange(n)[:, None, None].expand(n, 1, W).clone()  # noqa: E731
    out = interval_samples((rv, toks(4), torch.zeros(4, 1, W)), (tv, toks(3) + 10, torch.zeros(3, 1, W)), torch.tensor([10.0]), 2, 3)
    vals = out["iv_vals"][0].float()
    # interval 0 = (0, 5]: 1 (reservoir) then 4 (top); interval 1 = (5, 10]: 6, 9.5 (reservoir) then 10 (top; 9.5 is a dup)
    assert vals[0].tolist() == [1.0, 4.0, 0.0] and vals[1].tolist() == [6.0, 9.5, 10.0]
    assert out["iv_share"][0].float().tolist() == pytest.approx([1 / 3, 2 / 3], abs=1e-3)  # from the reservoir only
    assert out["iv_tokens"][0, 1, :, 0].tolist() == [1, 2, 10]


def test_token_specificity_is_share_times_level():
    from interp.features.compute import token_specificity

    # token 0 occurs 10 times; feature 0 is dense (sum 10 on token 0, 100 overall, max 2);
    # feature 1 fires only on token 0 (sum 5, 5 overall, max 1)
    sums = torch.tensor([[10.0, 5.0], [90.0, 0.0]])
    out = token_specificity(sums, torch.tensor([10.0, 90.0]), torch.tensor([100.0, 5.0]), torch.tensor([2.0, 1.0]), 2)
    assert out["token_top_ids"][0].tolist() == [1, 0]  # the specific feature first, although its mean is lower
    assert out["token_top_spec"][0].float().tolist() == pytest.approx([1.0 * 0.5, 0.1 * 0.5], rel=1e-3)
    assert out["token_top_vals"][0].float().tolist() == pytest.approx([0.5, 1.0], rel=1e-3)


def test_labels_name_both_sides_and_concepts_only_on_the_corpus():
    from interp.features.labels import DEAD, make_labels

    vocab = ["<b>", " the", " cat", " horse", " bear", " is"]
    centre = torch.tensor([[1, 1, 5], [2, 2, 2], [0, 0, 0]])
    vals = torch.tensor([[3.0, 2.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    promoted = torch.tensor([[2, 3, 4], [1, 5, 0], [0, 1, 2]])
    lab = make_labels(torch.tensor([5.0, 3.0, 0.0]), centre, vals, vocab, [], None, promoted, 0.2)
    assert lab.text[0] == "' the' ' is' → ' cat' ' horse' ' bear'"
    assert lab.inputs[0] == [" the", " is"] and lab.outputs[0] == [" cat", " horse", " bear"]
    assert lab.text[2] == DEAD
    f1 = torch.tensor([[0.5], [0.1], [0.0]])
    lab = make_labels(torch.tensor([5.0, 3.0, 0.0]), centre, vals, vocab, ["animals"], f1, promoted, 0.2)
    assert lab.text[0] == "animals (F1 0.50)" and lab.text[1].startswith("' cat' →")


def test_text_source_gets_no_concept_labels(model, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n\n".join(f"The color of a ripe banana is yellow. Paragraph {i} talks about Mary and John." for i in range(60)))
    sae = make_tiny_sae(model, d_sae=16, k=4)
    st = F.build_feature_stats(model, F.SaeSource(sae, model), F.StatsConfig(n_tokens=1024, top_k=3, reservoir=4, n_quantile=2, source=str(text)))
    assert st.meta["categories"] == [] and st.t["cat_f1"].shape == (16, 0)
    assert not any("(F1" in lab for lab in st.labels)
    assert any("→" in lab for lab in st.labels)


def test_nan_sae_is_refused_before_any_work(model, tmp_path):
    from test_features_fixtures import save_tiny_sae
    from safetensors.torch import load_file, save_file

    d = save_tiny_sae(model, tmp_path / "nan", d_sae=8, k=2)
    w = load_file(str(d / "sae_weights.safetensors"))
    w["W_enc"][0, 0] = float("nan")
    save_file(w, str(d / "sae_weights.safetensors"))
    with pytest.raises(InterpError, match="NaN"):
        F.build_for_sae_dir(d, F.StatsConfig(n_tokens=256), model=model)
    assert not F.has_stats(d)


def test_parse_feature_range_checks_size_before_building():
    with pytest.raises(InterpError, match="out of range"):
        F.parse_feature_range("0-999999999", 1024)
    with pytest.raises(InterpError, match="at most 100,000"):
        F.parse_feature_range("0-999999999", 10**9)
    with pytest.raises(InterpError, match="end is before the start"):
        F.parse_feature_range("5-3", 10)
    assert F.parse_feature_range(" 3 , 1-2,3", 10) == [3, 1, 2]
