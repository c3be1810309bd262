"""AppTest for the dashboard's own pages (Home, Features, Prompt lab, Reports) and the navigation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from interp import features as F
from interp.models import load_model
from test_features_fixtures import save_tiny_sae

os.environ.setdefault("INTERP_VALIDATE_CHARTS", "1")  # the tests validate every chart spec
MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture(scope="module")
def sae_root(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("saes")
    model = load_model("embedded")
    with_stats = save_tiny_sae(model, root / "embedded" / "a_tiny", d_sae=24, k=4)
    F.build_for_sae_dir(with_stats, F.StatsConfig(n_tokens=2048, top_k=5, reservoir=8, n_quantile=4), model=model)
    save_tiny_sae(model, root / "embedded" / "b_nostats", d_sae=16, k=4, seed=1)
    old = os.environ.get("INTERP_SAE_ROOT")
    os.environ["INTERP_SAE_ROOT"] = str(root)
    yield root
    if old is None:
        os.environ.pop("INTERP_SAE_ROOT", None)
    else:
        os.environ["INTERP_SAE_ROOT"] = old


def _app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    return " ".join([m.value for m in at.markdown] + [m.value for m in at.caption] + [t.value for t in at.title]
                    + [s.value for s in at.subheader])


def test_home_lists_saes_and_keeps_choice(sae_root):
    at = _app()
    assert "interp" in at.title[0].value
    assert any("a_tiny" in str(df.value) for df in at.dataframe)
    assert at.session_state["sae_dir"].endswith("a_tiny")
    sb = at.sidebar.selectbox(key="_sae_pick")
    sb.select(next(o for o in sb.options if o.endswith("b_nostats"))).run()
    assert at.session_state["sae_dir"].endswith("b_nostats")
    at.switch_page("pages/reports.py").run()  # the choice survives a page change
    assert at.session_state["sae_dir"].endswith("b_nostats")
    assert any("no feature statistics" in e.value for e in at.error)


def test_features_page_navigation_and_search(sae_root):
    at = _app("pages/features.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    assert at.subheader[0].value.startswith("Feature 0:")
    at.button[1].click().run()  # next
    assert at.subheader[0].value.startswith("Feature 1:")
    at.button[0].click().run()  # previous
    assert at.subheader[0].value.startswith("Feature 0:")
    at.number_input(key="_fid_input").set_value(7).run()
    assert at.subheader[0].value.startswith("Feature 7:") and not at.exception
    at.number_input(key="_fid_input").set_value(500).run()
    assert any("out of range" in e.value for e in at.error) and not at.exception
    at.number_input(key="_fid_input").set_value(2).run()
    at.text_input(key="token_query").input(" the").run()
    assert not at.exception and not at.error
    at.text_input(key="token_query").input("zzqq-nope").run()
    assert any("not in the vocabulary" in e.value for e in at.error)
    at.text_input(key="label_query").input("tokens").run()
    assert at.selectbox(key="label_pick").options
    assert len(at.get("download_button")) == 1


def test_features_page_offers_to_build_missing_stats(sae_root):
    import shutil

    d = sae_root / "embedded" / "c_build"
    shutil.copytree(sae_root / "embedded" / "b_nostats", d)
    from app.common import _list_saes

    _list_saes.clear()  # the SAE listing is cached for 10 s
    at = _app("pages/features.py", sae_dir=str(d))
    assert any("no feature statistics" in w.value for w in at.warning)
    at.number_input[0].set_value(2048)
    at.button[0].click().run()
    assert F.has_stats(d) and not at.exception
    assert at.subheader[0].value.startswith("Feature 0:")


def test_feature_id_sent_from_another_page(sae_root):
    at = _app("pages/features.py", sae_dir=str(sae_root / "embedded" / "a_tiny"), feature_id=5)
    assert at.subheader[0].value.startswith("Feature 5:")


def test_prompt_lab_ablation_and_bad_prompts(sae_root):
    at = _app("pages/prompt_lab.py", sae_dir=str(sae_root / "embedded" / "a_tiny"), ablate_heads=[(0, 1), (1, 2)])
    assert at.multiselect(key="lab_heads").value == ["0.1", "1.2"]  # pre-filled from the Circuits page
    assert any("KL" in m.label for m in at.metric)
    at.radio(key="lab_head_mode").set_value("mean").run()
    assert not at.exception and not at.error
    at.text_input(key="lab_clamp_ids").input("3").run()
    at.radio(key="lab_clamp_op").set_value("set").run()
    assert not at.exception and not at.error
    at.text_input(key="lab_clamp_ids").input("999").run()
    assert any("out of range" in e.value for e in at.error)
    at.text_input(key="lab_tok_a").input(" Mary and").run()
    assert any("not one" in e.value for e in at.error)
    at.text_area(key="_lab_prompt_input").input("word " * 400).run()
    assert any("longer than the model's context" in w.value for w in at.warning) and not at.exception
    at.text_area(key="_lab_prompt_input").input("   ").run()
    assert any("empty" in e.value for e in at.error) and not at.exception


def test_prompt_lab_features_and_attention(sae_root):
    at = _app("pages/prompt_lab.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    assert len(at.dataframe) >= 1
    at.selectbox(key="lab_source").select_index(1).run()  # MLP neurons
    at.selectbox(key="lab_attn_layer").select_index(1).run()
    assert not at.exception and not at.error


def test_reports_page_downloads(sae_root):
    at = _app("pages/reports.py", sae_dir=str(sae_root / "embedded" / "a_tiny"))
    assert len(at.get("download_button")) == 3
    at.text_input(key="report_ids").input("0-999").run()
    assert any("out of range" in e.value for e in at.error)
    at.text_input(key="report_ids").input("1,3").run()
    assert not at.error and len(at.get("download_button")) == 3


@pytest.mark.parametrize("page", ["pages/circuits.py", "pages/unlearning.py", "pages/moex.py"])
def test_other_pages_are_reachable(sae_root, page):
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page(page).run()
    assert at.title, page
