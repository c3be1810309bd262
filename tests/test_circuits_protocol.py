"""The discrete-SAE paper's protocol step by step, MIB's CPR/CMD against hand computations, EAP-IG,
content-keyed references and bad task files, on tiny seeded CPU cases."""

import json

import pytest
import torch

from interp.circuits import faithfulness as F
from interp.circuits.discrete_sae import DiscreteSAEConfig, discrete_sae_scores, to_codes, training_rows
from interp.circuits.paper_sae import PaperSAE, paper_grads, paper_loss, train_paper_sae
from interp.errors import InterpError


from test_circuits import tiny  # noqa: E402,F401  (the same 2-layer random model fixture)


@pytest.fixture(scope="module")
def tiny_attn():
    """The same, attention-only (the shape of `embedded-attn`)."""
    from transformers import AutoTokenizer

    from interp.models import EMBEDDED_DIR, build_from_config

    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer"))
    torch.manual_seed(1)
    m = build_from_config(dict(n_layers=2, d_model=32, n_ctx=128, d_head=8, n_heads=4, d_mlp=None, attn_only=True,
                               d_vocab=len(tok), act_fn="gelu", normalization_type="LN", seed=1), tokenizer=tok)
    return m.eval()


# ---- step 1: the defaults are the authors' protocol ----

def test_defaults_are_the_papers_protocol():
    c = DiscreteSAEConfig()
    assert (c.arch, c.d_sae, c.steps, c.lr, c.n_train, c.train_on, c.n_read) == ("paper", 200, 500, 1e-3, 10, "prompts", 250)
    assert (c.position, c.scale_inputs, c.inactive, c.top_k_codes) == ("mean", False, "zero", 1)
    assert c.l1_for("ioi") == 0.02 and c.l1_for("greater-than") == 0.02 and c.l1_for("docstring") == 0.05
    old = DiscreteSAEConfig.legacy()
    assert (old.arch, old.l1, old.steps, old.lr, old.n_read, old.train_on, old.scale_inputs) == ("standard", 1.0, 100, 1e-2, 0, "pairs", True)
    with pytest.raises(ValueError, match="inactive"):
        DiscreteSAEConfig(inactive="drop")


def test_paper_sae_rows_stay_unit_norm_and_loss_is_the_authors():
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))
    sae = train_paper_sae(x, d_sae=5, lam=0.02, epochs=20, seed=3)
    f, x_hat = sae(x)
    # encoder rows (per latent) and decoder rows (per input dim, the authors' [d_in, d_sae] layout) have norm 1
    assert torch.allclose(sae.W_enc.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(6), atol=1e-5)
    # tied bias: subtracted before the encoder, added after the decoder
    assert torch.allclose(f, torch.relu((x - sae.b) @ sae.W_enc.T + sae.b_enc), atol=1e-6)
    assert torch.allclose(x_hat, f @ sae.W_dec.T + sae.b, atol=1e-6)
    # loss = element-mean MSE + lambda * batch-mean L1 norm, by hand
    hand = ((x_hat - x) ** 2).mean() + 0.02 * f.abs().sum(-1).mean()
    assert paper_loss(x, f, x_hat, 0.02).item() == pytest.approx(hand.item(), rel=1e-6)
    # the global RNG is untouched and the init depends only on the seed
    a, b = PaperSAE(6, 5, seed=7), PaperSAE(6, 5, seed=7)
    assert torch.equal(a.W_enc, b.W_enc) and not torch.equal(a.W_enc, PaperSAE(6, 5, seed=8).W_enc)


def test_paper_sae_hand_gradients_equal_autograd_through_its_hooks():
    """`train_paper_sae` steps on `paper_grads`; they must be autograd's gradients of the authors' loss
    (unit rows, row-tangent projection hooks), including off-unit rows before the step's renormalisation."""
    x = torch.randn(40, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, b = PaperSAE(6, 5, seed=1, dtype=torch.float64), PaperSAE(6, 5, seed=1, dtype=torch.float64)
    with torch.no_grad():
        a.b.normal_(generator=torch.Generator().manual_seed(2))
        a.W_enc.mul_(3.0)
        a.W_dec.mul_(0.5)
        b.load_state_dict(a.state_dict())
    f, x_hat = a(x)
    loss = paper_loss(x, f, x_hat, 0.02)
    loss.backward()
    assert paper_grads(b, x, 0.02).item() == pytest.approx(loss.item(), rel=1e-12)
    got = dict(b.named_parameters())
    for name, p in a.named_parameters():
        assert torch.allclose(p.grad, got[name].grad, atol=1e-12), name
        assert p.grad.abs().max() > 1e-3, name  # every parameter really gets a gradient
    # tangent to the unit rows: nothing along each row
    assert (b.W_enc.grad * b.W_enc).sum(-1).abs().max() < 1e-12


def test_vectorised_code_scores_equal_python_sets():
    """node/edge scores (int64 key sets) against the definition written with Python sets, on random
    codes with 2 codes per head, inactive (-1) slots and separate receiver codes."""
    from interp.circuits.discrete_sae import edge_scores, node_scores

    g = torch.Generator().manual_seed(5)
    pos, neg = torch.randint(-1, 6, (7, 3, 2, 2), generator=g), torch.randint(-1, 6, (7, 3, 2, 2), generator=g)
    rp, rn = torch.randint(-1, 4, (7, 3, 2, 1), generator=g), torch.randint(-1, 4, (7, 3, 2, 1), generator=g)

    def codes_of(c, l, h):
        return {x for x in c[:, l, h].flatten().tolist() if x >= 0}

    def pairs_of(c, r, u, v):
        return {(a, b) for i in range(len(c)) for a in c[i, u[0], u[1]].tolist() for b in r[i, v[0], v[1]].tolist()
                if a >= 0 and b >= 0}

    heads = [(l, h) for l in range(3) for h in range(2)]
    nodes, edges = node_scores(pos, neg), edge_scores(pos, neg, rp, rn)
    for u in heads:
        assert nodes[u] == len(codes_of(pos, *u) - codes_of(neg, *u))
        for v in heads:
            want = len(pairs_of(pos, rp, u, v) - pairs_of(neg, rn, u, v)) if u[0] < v[0] else 0
            assert edges[u + v] == want, (u, v)
    assert edges.sum() > 0 and nodes.sum() > 0


def test_inactive_vectors_get_code_zero():
    sae = PaperSAE(4, 3, seed=0)
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)  # nothing fires
    codes = to_codes(sae, 1.0, torch.randn(5, 4), 1, inactive="zero")
    assert codes.flatten().tolist() == [0] * 5
    assert to_codes(sae, 1.0, torch.randn(5, 4), 1, inactive="skip").flatten().tolist() == [-1] * 5


def test_training_subset_is_drawn_from_pooled_prompts_by_seed():
    c = DiscreteSAEConfig(n_train=10, seed=4)
    p, n = training_rows(c, 250)
    assert len(p) + len(n) == 10 and p.max() < 250 and n.max() < 250
    p2, n2 = training_rows(DiscreteSAEConfig(n_train=10, seed=4), 250)
    p3, _ = training_rows(DiscreteSAEConfig(n_train=10, seed=5), 250)
    assert torch.equal(p, p2) and not torch.equal(torch.sort(p).values, torch.sort(p3).values) or len(p) != len(p3)
    pp, nn = training_rows(DiscreteSAEConfig.legacy(n_train=3), 250)
    assert pp.tolist() == nn.tolist() == [0, 1, 2]


def test_codes_are_read_on_all_prompts_and_vary_across_prompts(tiny_attn):
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny_attn, n=24, seed=1)
    r = discrete_sae_scores(tiny_attn, t, DiscreteSAEConfig(n_train=6, n_read=24, steps=60, d_sae=40, seed=0))
    assert r.codes_pos.shape == (24, 2, 4, 1) and r.codes_neg.shape == (24, 2, 4, 1)
    distinct = [len(set(r.codes_pos[:, l, h, 0].tolist())) for l in range(2) for h in range(4)]
    assert max(distinct) > 1  # a head's codes vary across prompts (they did not with the legacy setup)
    assert (r.codes_pos >= 0).all()  # code 0 for inactive: never -1
    # head score = |positive codes - negative codes|, recomputed by hand for one head
    p, n = set(r.codes_pos[:, 1, 2, 0].tolist()), set(r.codes_neg[:, 1, 2, 0].tolist())
    assert r.node_scores[1, 2] == len(p - n)
    # the seed changes the SAE and training subset only: same prompts give the same shapes, other codes
    r2 = discrete_sae_scores(tiny_attn, t, DiscreteSAEConfig(n_train=6, n_read=24, steps=60, d_sae=40, seed=1))
    assert not torch.equal(r.codes_pos, r2.codes_pos)


def test_docstring_negatives_are_random_random(tiny):
    from interp.circuits.tasks import docstring_task

    t = docstring_task(tiny, n=4, seed=2)
    for pos, neg in zip(t.positive, t.negative):
        pos_params = [l.split(":param ")[1].split(":")[0] for l in pos.splitlines() if ":param " in l and l.count(":") > 1]
        neg_params = [l.split(":param ")[1].split(":")[0] for l in neg.splitlines() if ":param " in l and l.count(":") > 1]
        pos_args = pos[pos.index("(self, ") + 7: pos.index("):")].split(", ")
        neg_args = neg[neg.index("(self, ") + 7: neg.index("):")].split(", ")
        assert not set(neg_params) & set(pos_args) and not set(neg_args) & set(pos_args)
        assert not set(neg_params) & set(neg_args) and len(neg_params) == len(pos_params)
    old = docstring_task(tiny, n=2, seed=2, corruption="random_def")
    assert "random_def" and all(":param" in n for n in old.negative)


# ---- step 2: MIB's CPR / CMD ----

def test_cpr_cmd_match_hand_trapezoids():
    x, f = [0.0, 0.25, 0.5, 1.0], [0.0, 0.5, 1.5, 1.0]
    cpr, cmd = F.areas(x, f)
    # CPR: 0.25*(0+0.5)/2 + 0.25*(0.5+1.5)/2 + 0.5*(1.5+1)/2 = 0.0625 + 0.25 + 0.625
    assert cpr == pytest.approx(0.9375)
    # CMD: |1-f| = 1, 0.5, 0.5, 0 -> 0.25*0.75 + 0.25*0.5 + 0.5*0.25
    assert cmd == pytest.approx(0.4375)


def test_tie_blocks_group_equal_scores():
    s = torch.tensor([[1.0, 3.0], [1.0, 0.0]])
    assert F.tie_blocks(s) == [[1], [0, 2], [3]]


def test_node_curve_endpoints_and_hand_value(tiny):
    from interp.circuits.patching import ablation_source, full_metric, metric_with_ablation
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=6, seed=5)
    scores = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    c = F.node_curve(tiny, t, scores, "resample")
    assert c.fractions == [0.0, 0.25, 0.75, 1.0]
    assert c.f[0] == pytest.approx(0.0) and c.f[-1] == pytest.approx(1.0)
    src = ablation_source(tiny, t, "resample")
    m_full = full_metric(tiny, t)
    m_empty = metric_with_ablation(tiny, t, torch.ones(2, 2, dtype=torch.bool), src)
    keep1 = torch.ones(2, 2, dtype=torch.bool)
    keep1[0, 0] = False  # only head 0.0 kept
    m1 = metric_with_ablation(tiny, t, keep1, src)
    assert c.f[1] == pytest.approx((m1 - m_empty) / (m_full - m_empty), rel=1e-5)
    assert (c.cpr, c.cmd) == pytest.approx(F.areas(c.fractions, c.f))
    cm = F.node_curve(tiny, t, scores, "mean")
    assert cm.f[-1] == pytest.approx(1.0) and cm.m_empty != pytest.approx(c.m_empty)


def test_edge_curve_full_graph_matches_model(tiny):
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=4, seed=6)
    e = torch.rand(2, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    c = F.edge_curve(tiny, t, e)
    assert c.fractions[0] == 0.0 and c.fractions[-1] == 1.0
    assert c.f[0] == pytest.approx(0.0) and c.f[-1] == pytest.approx(1.0, abs=1e-4)


# ---- step 3: EAP-IG ----

def test_eap_ig_scores_differ_from_eap_and_leave_no_hooks(tiny):
    from interp.circuits.eap import eap_ig_scores, eap_scores
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=3, seed=7)
    eap = eap_scores(tiny, t)
    ig = eap_ig_scores(tiny, t, steps=5)
    assert ig.node_scores.shape == eap.node_scores.shape == (2, 2)
    assert not torch.allclose(ig.node_scores, eap.node_scores)  # the gradient is taken elsewhere
    assert (ig.edge_scores[1, :, 0, :] == 0).all()  # no backward edges
    assert all(not hp.fwd_hooks and not hp.bwd_hooks for hp in tiny.hook_dict.values())  # hooks removed


def test_acdc_runs_on_an_attention_only_model(tiny_attn):
    from interp.circuits.acdc import ACDCConfig, acdc
    from interp.circuits.tasks import ioi_task

    r = acdc(tiny_attn, ioi_task(tiny_attn, n=3, seed=8), ACDCConfig(tau=0.01))
    assert r.node_scores.shape == (2, 4) and r.n_tested > 0


# ---- step 4: references keyed by content; --reference modes ----

def test_reference_key_is_content_not_name(tiny, tmp_path):
    from interp.circuits.reference import reference_key
    from interp.circuits.tasks import ioi_task, load_jsonl_task

    a = ioi_task(tiny, n=4, seed=1)
    b = ioi_task(tiny, n=4, seed=2)
    assert reference_key(tiny, a) == reference_key(tiny, ioi_task(tiny, n=4, seed=1))
    assert reference_key(tiny, a) != reference_key(tiny, b)
    assert reference_key(tiny, a, "mean") != reference_key(tiny, a, "resample")
    # a custom file named ioi.jsonl with other prompts gets another key
    f = tmp_path / "ioi.jsonl"
    f.write_text("\n".join(json.dumps({"positive": p, "negative": n, "answer": " Mary", "wrong_answer": " John"})
                           for p, n in zip(b.positive, b.negative)))
    assert reference_key(tiny, load_jsonl_task(tiny, f)) != reference_key(tiny, a)


def test_reference_modes_and_build_goes_to_given_dir(tiny, tmp_path, monkeypatch):
    from interp.circuits import reference as R
    from interp.circuits.run import get_reference

    monkeypatch.setattr(R, "REFERENCE_PROMPTS", 4)
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    before = sorted(p.name for p in R.REFERENCE_DIR.iterdir())
    assert get_reference(tiny, "tiny", "ioi", "none") is None
    assert get_reference(tiny, "tiny", "ioi", "stored", root=tmp_path / "refs") is None  # none stored: reference-free
    ref = None
    try:
        ref = get_reference(tiny, "tiny", "ioi", "build", root=tmp_path / "refs")
    except InterpError as e:  # a random model may have no behaviour to find a circuit for: said in one line
        assert "no behaviour" in str(e)
    if ref is not None:
        assert len(list((tmp_path / "refs").glob("*.json"))) == 1
        again = get_reference(tiny, "tiny", "ioi", "stored", root=tmp_path / "refs")
        assert again is not None and again.key == ref.key and again.heads == ref.heads
        assert ref.stability["variants"] and 0 <= ref.stability["jaccard_mean"] <= 1
    assert sorted(p.name for p in R.REFERENCE_DIR.iterdir()) == before  # nothing written into the package


# ---- bad input ----

def test_bad_task_files_fail_in_one_line(tiny, tmp_path):
    from interp.circuits.tasks import check_task_source, load_jsonl_task

    d = tmp_path / "dir.jsonl"
    d.mkdir()
    with pytest.raises(InterpError, match="is a directory"):
        check_task_source(str(d))
    b = tmp_path / "bin.jsonl"
    b.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(InterpError, match="binary"):
        load_jsonl_task(tiny, b)
    u = tmp_path / "latin.jsonl"
    u.write_bytes(b'{"positive": "caf\xe9"}\n')
    with pytest.raises(InterpError, match="not UTF-8"):
        check_task_source(str(u))
    with pytest.raises(InterpError, match="does not exist"):
        check_task_source(str(tmp_path / "missing.jsonl"))
    with pytest.raises(InterpError, match="unknown task"):
        check_task_source("iox")


def test_cli_bad_task_is_one_line_before_model_load(tmp_path, capsys):
    from interp.cli import main

    d = tmp_path / "t.jsonl"
    d.mkdir()
    assert main(["circuits", "--task", str(d), "--model", str(tmp_path / "no-model")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0]


def test_paper_f1_is_harmonic_mean_of_tpr_and_tnr():
    from interp.circuits.run import best_tpr_tnr_f1, tpr_tnr_f1

    chosen = torch.tensor([[1, 1, 0, 0]]).bool()
    ref = torch.tensor([[1, 0, 0, 0]]).bool()
    # TPR 1, TNR 2/3 -> 2 * 1 * 2/3 / (5/3) = 0.8
    assert tpr_tnr_f1(chosen, ref) == pytest.approx(0.8)
    assert best_tpr_tnr_f1([(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]) == pytest.approx(1.0)


def test_methods_work_with_gradients_off_as_in_the_dashboard(tiny):
    """The dashboard turns gradients off globally; EAP, EAP-IG and the SAE training must still work."""
    from interp.circuits.eap import eap_ig_scores, eap_scores
    from interp.circuits.tasks import ioi_task

    t = ioi_task(tiny, n=3, seed=9)
    with torch.no_grad():
        ref = [p.requires_grad for p in tiny.parameters()]
        for p in tiny.parameters():
            p.requires_grad_(False)
        try:
            assert eap_scores(tiny, t).node_scores.abs().sum() > 0
            assert eap_ig_scores(tiny, t, steps=2).node_scores.abs().sum() > 0
            r = discrete_sae_scores(tiny, t, DiscreteSAEConfig.legacy(n_train=3, steps=3, d_sae=8))
            r2 = discrete_sae_scores(tiny, t, DiscreteSAEConfig(n_train=3, n_read=3, steps=3, d_sae=8))
            assert r.node_scores.shape == r2.node_scores.shape == (2, 2)
        finally:
            for p, g in zip(tiny.parameters(), ref):
                p.requires_grad_(g)


def test_attn_build_phase2_task_mix():
    """embedded-attn's phase 2: only IOI / year sentences and docstring functions, deterministic in the seed."""
    from interp.build_attn import AttnBuildConfig, task_corpus

    docs = task_corpus(40, seed=3, code_frac=0.5)
    assert docs == task_corpus(40, seed=3, code_frac=0.5) and docs != task_corpus(40, seed=4, code_frac=0.5)
    code = [d for d in docs if d.startswith("def ")]
    assert 10 <= len(code) <= 30 and all(":param" in d for d in code)
    prose = " ".join(d for d in docs if not d.startswith("def "))
    assert "to the year" in prose or "from the year" in prose
    assert task_corpus(10, seed=3, code_frac=0.0)[0][:4] != "def "
    with pytest.raises(ValueError, match="phase2_mix"):
        AttnBuildConfig(phase2_mix="facts")
