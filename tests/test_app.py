"""AppTest for the dashboard's own pages (Home, Features, Prompt lab, Reports), the shared widgets
and the navigation: each test checks what the page shows against the library's own answer."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from interp import features as F
from interp.models import load_model
from test_features_fixtures import save_tiny_sae

os.environ.setdefault("INTERP_VALIDATE_CHARTS", "1")  # the tests validate every chart spec
ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")


@pytest.fixture(scope="module")
def sae_root(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("saes")
    model = load_model("embedded")
    with_stats = save_tiny_sae(model, root / "embedded" / "a_tiny", d_sae=24, k=4, dense_bias=8.0)
    F.build_for_sae_dir(with_stats, F.StatsConfig(n_tokens=2048, top_k=5, reservoir=8, n_quantile=4), model=model)
    save_tiny_sae(model, root / "embedded" / "b_nostats", d_sae=16, k=4, seed=1)
    for name in ("attn_out_L2_topk", "resid_post_L1_batchtopk"):  # real metrics: one uninformative CE score, one BatchTopK
        (root / "embedded" / name).mkdir(parents=True)
        for f in ("cfg.json", "sae_weights.safetensors", "metrics.json"):
            shutil.copy(ROOT / "saes" / "embedded" / name / f, root / "embedded" / name / f)
    old = {k: os.environ.get(k) for k in ("INTERP_SAE_ROOT", "INTERP_HOME")}
    os.environ["INTERP_SAE_ROOT"] = str(root)
    os.environ["INTERP_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=400)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _html(at) -> str:
    return " ".join(h.proto.body for h in at.get("html"))


def _feature_title(at) -> str:
    """The Features page's title line as the user reads it (the page draws it as escaped HTML: labels come from files)."""
    import html as H
    import re

    body = next(h.proto.body for h in at.get("html") if 'data-testid="feature-title"' in h.proto.body)
    return H.unescape(re.sub(r"<[^>]+>", "", body.split('data-testid="feature-title"', 1)[1].split(">", 1)[1].split("</h3>")[0]))


def test_home_table_architectures_and_uninformative_scores(sae_root):
    at = _app()
    assert "interp" in at.title[0].value
    html = _html(at)
    assert 'data-testid="sae-table"' in html and "a_tiny" in html
    assert "batchtopk (saved as jumprelu)" in html  # not "jumprelu"
    flagged = [w.value for w in at.warning if "attn_out_L2_topk" in w.value]
    assert len(flagged) == 1 and "ce_loss_score is uninformative" in flagged[0] and "0.0007 nats" in flagged[0]
    assert not any("resid_post_L1_batchtopk" in w.value for w in at.warning)
    assert "embedded/<wbr>a_tiny" in html  # the path relative to the SAE root, whole (may break only after a '/')
    # the default SAE is the deepest residual-stream one with statistics (here a_tiny: the L1 one has none);
    # with the shipped SAEs that is resid_post_L3_topk (symptom: the L0 default made unlearning forget 0%)
    assert at.session_state["sae_dir"].endswith("a_tiny")
    from app.common import default_sae, list_saes_all
    from interp.sae.io import list_saes

    shipped = [s for s in list_saes(str(ROOT / "saes")) if s.model == "embedded"]
    assert default_sae(shipped).endswith("resid_post_L3_topk") and list_saes_all()
    sb = at.sidebar.selectbox(key="_sae_pick")
    sb.select(next(o for o in sb.options if o.endswith("b_nostats"))).run()
    assert at.session_state["sae_dir"].endswith("b_nostats")
    at.switch_page("pages/reports.py").run()  # the choice survives a page change
    assert at.session_state["sae_dir"].endswith("b_nostats")
    assert any("no feature statistics" in e.value for e in at.error)


def test_device_picker_lists_this_machines_devices(sae_root):
    at = _app()
    dev = at.sidebar.selectbox(key="_device_pick")
    assert dev.options[:2] == ["auto", "cpu"] and ("cuda" in dev.options) == torch.cuda.is_available()
    assert any(c.value == f"running on {'cuda' if torch.cuda.is_available() else 'cpu'}" for c in at.sidebar.caption)
    dev.select("cpu").run()  # (AppTest drops the sidebar from its tree after a rerun; the state is what counts)
    assert at.session_state["device"] == "cpu" and not at.exception
    from app.common import _load_model

    at.switch_page("pages/prompt_lab.py").run()
    assert not at.exception and str(next(iter(_load_model("embedded", "cpu").parameters())).device) == "cpu"


def test_features_page_navigation_and_search(sae_root):
    d = str(sae_root / "embedded" / "a_tiny")
    stats = F.load_stats(d)
    at = _app("pages/features.py", sae_dir=d)
    assert _feature_title(at).startswith(f"Feature 0: {stats.labels[0]}")
    assert "dense" in _feature_title(at)  # latent 0 fires on most tokens: flagged
    at.button[1].click().run()  # next
    assert _feature_title(at).startswith("Feature 1:")
    at.button[0].click().run()  # previous
    assert _feature_title(at).startswith("Feature 0:")
    at.number_input(key="_fid_input").set_value(7).run()
    assert _feature_title(at).startswith("Feature 7:") and not at.exception
    at.number_input(key="_fid_input").set_value(500).run()
    assert any("out of range" in e.value for e in at.error) and not at.exception
    at.number_input(key="_fid_input").set_value(2).run()
    at.text_input(key="p:features:token_query").input(" Mary").run()
    hits = F.features_for_token(stats, " Mary")
    buttons = {b.key: b for b in at.button if b.key and b.key.startswith("tokhit")}
    assert set(buttons) == {f"tokhit{h.feature}" for h in hits}
    for h in hits:  # every hit button carries the label, not only a tooltip
        # the label as text: Markdown characters escaped (a label from a file never renders as Markdown or LaTeX)
        from app.style import md_text

        assert buttons[f"tokhit{h.feature}"].label.startswith(f"#{h.feature} {md_text(stats.labels[h.feature][:20])}")
    at.text_input(key="p:features:token_query").input("zzqq-nope").run()
    assert any("not in the vocabulary" in e.value for e in at.error)
    at.text_input(key="p:features:label_query").input("→").run()
    pick = at.selectbox(key=f"label_pick:sae:{d}")
    assert pick.options and all("→" in o for o in pick.options)
    assert len(at.get("download_button")) == 1
    html = _html(at)
    assert "interval-head" in html and "chip pos" in html


def test_features_search_across_sources(sae_root):
    d = str(sae_root / "embedded" / "a_tiny")
    at = _app("pages/features.py", sae_dir=d)
    at.text_input(key="p:features:search_all").input("#3").run()
    hits = [b for b in at.button if b.key and b.key.startswith("allhit")]
    assert len(hits) == 1 and hits[0].label.startswith("a\\_tiny #3: ")  # only a_tiny has statistics (the label Markdown-escaped)
    hits[0].click().run()
    assert _feature_title(at).startswith("Feature 3:")


def test_features_page_builds_missing_stats_as_a_job(sae_root):
    import time

    from interp import jobs

    d = sae_root / "embedded" / "c_build"
    shutil.copytree(sae_root / "embedded" / "b_nostats", d)
    from app.common import _list_saes

    _list_saes.clear()  # the SAE listing is cached for 10 s
    at = _app("pages/features.py", sae_dir=str(d))
    assert any("no feature statistics" in w.value for w in at.warning)
    at.number_input(key="build_tokens").set_value(2048)
    at.button(key="build_stats").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = [j for j in jobs.history(kind="feature-stats") if j.params["sae_dir"] == str(d)]
    assert job.params["tokens"] == 2048 and "c_build" in job.header
    assert any("background job" in i.value for i in at.info)  # the page stays usable meanwhile
    t0 = time.time()
    while jobs.get(job.id).state == "running" and time.time() - t0 < 300:
        time.sleep(0.3)
    assert jobs.get(job.id).state == "done", jobs.get(job.id).reason
    at.run()
    assert F.has_stats(d) and not at.exception
    assert _feature_title(at).startswith("Feature 0:")
    meta = json.loads((d / F.META_FILE).read_text())  # written in the newest format: intervals and token specificity
    assert meta["format_version"] == F.FORMAT_VERSION == 2 and "iv_vals" in F.load_stats(d).t
    assert "predate activation intervals" not in " ".join(c.value for c in at.caption)


def test_features_page_neurons_source(sae_root):
    at = _app("pages/features.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    at.radio(key="p:features:kind").set_value("neurons").run()
    assert any("no feature statistics" in w.value for w in at.warning)
    at.number_input(key="build_tokens").set_value(2048)
    at.button(key="build_stats").click().run()
    assert not at.exception and not at.error
    assert _feature_title(at).startswith("Feature 0:")
    home = Path(os.environ["INTERP_HOME"])
    assert (home / "feature_stats" / "embedded" / "neurons_L0" / F.META_FILE).exists()  # never in the package


def test_feature_id_sent_from_another_page(sae_root):
    at = _app("pages/features.py", sae_dir=str(sae_root / "embedded" / "a_tiny"), feature_id=5)
    assert _feature_title(at).startswith("Feature 5:")


def test_crafted_stats_show_one_error_line(sae_root, tmp_path):
    d = sae_root / "embedded" / "d_crafted"
    shutil.copytree(sae_root / "embedded" / "a_tiny", d)
    meta = json.loads((d / F.META_FILE).read_text())
    meta["labels"] = meta["labels"][:3]  # wrong length
    (d / F.META_FILE).write_text(json.dumps(meta))
    from app.common import _list_saes

    _list_saes.clear()
    at = _app("pages/features.py", sae_dir=str(d))
    assert len(at.error) == 1 and "wrong length" in at.error[0].value and "\n" not in at.error[0].value
    assert not at.exception


def test_prompt_lab_answers_ablation_and_bad_prompts(sae_root):
    at = _app("pages/prompt_lab.py", sae_dir=str(sae_root / "embedded" / "a_tiny"), ablate_heads=[(0, 1), (1, 2)])
    assert at.text_input(key="p:lab:tok_a").value == " Mary" and at.text_input(key="p:lab:tok_b").value == " John"
    assert at.multiselect(key="p:lab:heads").value == ["0.1", "1.2"]  # pre-filled from the Circuits page
    assert any("KL" in m.label for m in at.metric)
    html = _html(at)
    assert html.count('class="pbar-row"') == 30  # next token + clean + ablated, 10 labelled bars each
    # numbers audit: the column is the library's change, in the order it is ranked by (symptom: -6.792 below +4.498)
    from interp import prompt_lab as P
    from interp.models import load_model

    m = load_model("embedded")
    lib = P.compare(m, P.prepare(m, at.text_area(key="p:lab:prompt").value).tokens, P.Ablation(heads=[(0, 1), (1, 2)]),
                    target=(" Mary", " John"))
    shown = next(df.value for df in at.dataframe if "logit change (mean removed)" in df.value.columns)
    col = shown["logit change (mean removed)"].tolist()
    assert col == pytest.approx([c.delta for c in lib.changes], abs=1e-4)
    assert [abs(x) for x in col] == sorted((abs(x) for x in col), reverse=True)
    assert shown["raw logit change"].tolist() == pytest.approx([c.raw_delta for c in lib.changes], abs=1e-4)
    at.radio(key="p:lab:head_mode").set_value("mean").run()
    assert not at.exception and not at.error
    at.text_input(key="p:lab:clamp_ids").input("3").run()
    at.radio(key="p:lab:clamp_op").set_value("set").run()
    assert not at.exception and not at.error
    at.radio(key="p:lab:clamp_op").set_value("clamp").run()
    assert not at.exception and not at.error
    at.text_input(key="p:lab:clamp_ids").input("999").run()
    assert any("feature 999 does not exist" in e.value for e in at.error)
    assert html.count('data-testid="token-features"') == 1  # the other tabs still work
    at.text_input(key="p:lab:tok_a").input(" Mary and").run()
    assert any("not one" in e.value for e in at.error)
    at.text_area(key="p:lab:prompt").input("word " * 400).run()
    assert any("longer than the model's context" in w.value for w in at.warning) and not at.exception
    at.text_area(key="p:lab:prompt").input("   ").run()
    assert any("empty" in e.value for e in at.error) and not at.exception


def test_prompt_lab_state_survives_navigation(sae_root):
    at = _app("pages/prompt_lab.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    at.text_input(key="p:lab:tok_b").input(" store").run()
    at.text_input(key="p:lab:clamp_ids").input("3, 5").run()
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/prompt_lab.py").run()
    assert at.text_input(key="p:lab:tok_b").value == " store"
    assert at.text_input(key="p:lab:clamp_ids").value == "3, 5"


def test_prompt_lab_token_view(sae_root, model):
    from interp import prompt_lab as P

    d = str(sae_root / "embedded" / "a_tiny")
    at = _app("pages/prompt_lab.py", sae_dir=d)
    html = _html(at)
    prep = P.prepare(model, "When Mary and John went to the store, John gave a drink to")
    assert html.count('class="tf-row"') == len(prep.str_tokens)  # every position, none hidden
    labels = F.load_stats(d).labels
    per_tok = P.top_features(model, F.SaeSource(F.load_sae_dir(d), model), prep.tokens, 3)
    f_last = per_tok[-1][0][0]
    import html as H

    assert f"#{f_last}: {H.escape(labels[f_last])}" in html  # the last position's features, labelled
    at.number_input(key="p:lab:colour_by").set_value(0).run()
    assert 'data-testid="token-values"' in _html(at)
    at.selectbox(key="p:lab:source").select_index(1).run()  # MLP neurons
    at.selectbox(key="p:lab:attn_layer").select_index(1).run()
    assert not at.exception and not at.error


def test_reports_page_downloads(sae_root):
    at = _app("pages/reports.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    assert len(at.get("download_button")) == 3
    at.text_input(key="p:reports:ids").input("0-999").run()
    assert any("out of range" in e.value for e in at.error)
    at.text_input(key="p:reports:ids").input("0-999999999").run()
    assert any("out of range" in e.value for e in at.error)
    at.text_input(key="p:reports:ids").input("1,3").run()
    assert not at.error and len(at.get("download_button")) == 3


@pytest.mark.parametrize("page,control", [("pages/circuits.py", "Task"), ("pages/unlearning.py", "Concepts to forget"),
                                          ("pages/moex.py", "Chess model")])
def test_other_pages_are_reachable(sae_root, page, control):
    at = AppTest.from_file(MAIN, default_timeout=400)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    labels = [w.label for kind in ("selectbox", "multiselect") for w in at.get(kind)]
    assert control in labels, (page, labels)


def test_features_page_moex_units_with_board(sae_root):
    from interp.moex.model import shipped_models

    if "moex" not in shipped_models():
        pytest.skip("no shipped MoE-X chess model")
    at = _app("pages/features.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    at.radio(key="p:features:kind").set_value("moex").run()
    assert any("no feature statistics" in w.value for w in at.warning)
    at.number_input(key="build_tokens").set_value(5120)  # 20 games
    at.button(key="build_stats").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert _feature_title(at).startswith("Feature 0:")
    assert any("Board view" in m.value and "expert 0" in m.value for m in at.markdown)
    assert any(m.label == "Best board cell (F1)" for m in at.metric)


def test_features_numbers_audit_interval_counts(sae_root):
    """What the Features page shows per activation interval is the library's count (views.interval_counts)."""
    d = str(sae_root / "embedded" / "a_tiny")
    stats = F.load_stats(d)
    fid = int(stats.t["count"].argmax())
    at = _app("pages/features.py", sae_dir=d, feature_id=fid)
    html = _html(at)
    fv = stats.feature(fid)
    assert fv.intervals
    pos = 0
    for iv in fv.intervals:  # highest first, each header with its count and share
        want = (f"{iv.n_firings:,.0f} firings (exact), {100 * iv.share:.1f}% of all" if iv.exact
                else f"≈{iv.n_firings:,.0f} firings, ≈{100 * iv.share:.1f}% of all")
        pos = html.index(want, pos)
    assert _feature_title(at).startswith(f"Feature {fid}:")


def test_sidebar_change_reaches_every_page_and_export_title(sae_root):
    """Symptom: after picking another SAE in the sidebar, Reports still titled its exports after the old one
    and Unlearning kept the old SAE."""
    import html as H

    from interp.reports import render

    two = sae_root / "embedded" / "a_tiny_copy"
    if not two.exists():
        shutil.copytree(sae_root / "embedded" / "a_tiny", two)
    from app.common import _list_saes

    _list_saes.clear()
    at = _app("pages/reports.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    assert at.text_input(key="p:reports:title").value.startswith("Features of a_tiny (blocks.0.hook_resid_post)")
    # what the sidebar's SAE picker does (its on_change, app.state.set_sae); AppTest drops the sidebar from
    # its tree after a page switch, the browser test clicks the real one
    at.session_state["sae_dir"], at.session_state["sae_picked"] = str(two), True
    at.switch_page("pages/reports.py").run()
    title = at.text_input(key="p:reports:title").value
    assert title == "Features of a_tiny_copy (blocks.0.hook_resid_post)"
    head = next(h.proto.body for h in at.get("html") if 'data-testid="result-header"' in h.proto.body)
    assert "SAE a_tiny_copy (blocks.0.hook_resid_post)" in H.unescape(head)
    stats = F.load_stats(two)
    for fmt in ("html", "md", "json"):  # what the download buttons render with this page's title and header
        out = render(stats, [0, 1], fmt, title, H.unescape(head.split(">", 1)[1].rsplit("<", 1)[0]))
        assert "a_tiny_copy" in out.replace("\\_", "_")  # Markdown escapes the underscores
    for page, probe in (("pages/features.py", "SAE a_tiny_copy"), ("pages/prompt_lab.py", "a_tiny_copy")):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        assert probe in H.unescape(_html(at)), page
    at.switch_page("pages/unlearning.py").run()
    assert at.multiselect(key="unl_saes").value == [str(two)]


def test_home_trains_an_sae_as_a_job(sae_root):
    from interp import jobs
    from interp.sae.config import SAETrainConfig

    at = _app()
    at.text_input(key="train_name").input("../evil").run()
    at.button(key="train_go").click().run()
    assert any("bad SAE name" in e.value for e in at.error)
    at.text_input(key="train_name").input("a_tiny").run()  # exists under embedded/: refused, nothing replaced
    at.button(key="train_go").click().run()
    assert any("already exists" in e.value for e in at.error)
    at.text_input(key="train_name").input("ui_trained").run()
    at.number_input(key="train_tokens").set_value(8192).run()
    at.button(key="train_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = jobs.get(at.session_state["train_job"])
    try:
        assert job.kind == "sae-training" and job.params["out"] == str(sae_root / "embedded" / "ui_trained")
        cfg = SAETrainConfig(**job.params["config"])
        assert (cfg.hook, cfg.arch, cfg.d_sae, cfg.k, cfg.tokens) == ("blocks.3.hook_resid_post", "topk", 1024, 32, 8192)
        assert "SAE training · model embedded" in job.header
    finally:
        jobs.cancel(job.id)
    assert not (sae_root / "embedded" / "ui_trained").exists()
