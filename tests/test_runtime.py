"""The model runtime: TransformerLens' TransformerBridge under every module (issue 24).

* no module of interp/ or app/ names the legacy class (removed in TransformerLens 4);
* bad model input is one line (exit 2 from the CLI) before any work;
* the shipped models load as Hugging Face checkpoints with the legacy model's numbers;
* hooks the bridge only fires behind a switch are turned on for a block and restored after.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_hf_model  # noqa: E402

from interp.errors import InterpError  # noqa: E402
from interp.models import ModelLoadError, architecture, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LEGACY = "Hooked" + "Transformer"  # spelled in two parts so this file does not match itself


def test_no_module_of_interp_or_app_names_the_legacy_model_class():
    hits = [f"{p.relative_to(ROOT)}:{i}" for d in ("interp", "app") for p in (ROOT / d).rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if LEGACY in line]
    assert hits == [], hits


def test_no_process_wide_warning_filter_in_the_library():
    """Warnings are silenced only inside `warnings.catch_warnings()` blocks, never for the whole process."""
    bad = []
    for p in [*(ROOT / "interp").rglob("*.py"), *(ROOT / "app").rglob("*.py")]:
        lines = p.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if re.search(r"warnings\.(filterwarnings|simplefilter)\(", line):
                above = "\n".join(lines[max(0, i - 6):i])
                if "catch_warnings()" not in above:
                    bad.append(f"{p.relative_to(ROOT)}:{i + 1}")
    assert bad == [], bad


def test_pytest_turns_deprecation_warnings_from_interp_into_errors():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "error::DeprecationWarning:interp" in cfg["filterwarnings"]
    assert not any(f.startswith("ignore::") for f in cfg["filterwarnings"])


def test_shipped_models_are_hugging_face_checkpoints_on_the_bridge(model):
    from transformer_lens.model_bridge import TransformerBridge

    from interp.models import SHIPPED

    for name, shipped in SHIPPED.items():
        cfg = json.loads((shipped.path / "config.json").read_text())
        assert cfg["architectures"] == ["GPT2LMHeadModel"] and cfg["interp"]["model_name"] == name
    assert isinstance(model, TransformerBridge) and architecture(model) == "GPT2LMHeadModel"
    attn = load_model("embedded-attn")
    assert attn.cfg.attn_only and architecture(attn) == "GPT2LMHeadModel"
    # the attention-only model's MLP slot is inert: it adds exactly zero
    toks = attn.to_tokens("When Mary and John went to the store")
    _, cache = attn.run_with_cache(toks)
    assert all(float(cache[f"blocks.{l}.hook_mlp_out"].abs().max()) == 0.0 for l in range(attn.cfg.n_layers))


def test_unembedding_bias_of_the_checkpoint_is_loaded(model):
    """GPT2LMHeadModel has no lm_head bias; the embedded model's trained b_U is loaded into the bridge's."""
    from safetensors import safe_open

    from interp.models import EMBEDDED_DIR

    with safe_open(str(EMBEDDED_DIR / "model.safetensors"), "pt") as f:
        b_U = f.get_tensor("lm_head.bias")
    assert float(b_U.abs().max()) > 0.1
    assert torch.equal(model.unembed.b_U.detach(), b_U)


def test_per_head_result_switch_is_restored_after_capture(model):
    from interp.hooks import capture, intervene

    toks = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    assert not model.cfg.use_attn_result
    with torch.no_grad(), capture(model, ["blocks.1.attn.hook_result", "blocks.1.attn.hook_z", "blocks.1.hook_attn_out"]) as a:
        model(toks)
    assert not model.cfg.use_attn_result and not model.cfg.use_split_qkv_input
    r, z = a["blocks.1.attn.hook_result"], a["blocks.1.attn.hook_z"]
    W_O, b_O = model.blocks[1].attn.W_O, model.blocks[1].attn.b_O
    assert torch.allclose(r, torch.einsum("bphd,hdm->bphm", z, W_O), atol=1e-5)
    assert torch.allclose(r.sum(2) + b_O, a["blocks.1.hook_attn_out"], atol=1e-5)
    # zeroing head 1.3's result moves the attention output by exactly that head's result
    def zero(act, hook):
        act = act.clone()
        act[:, :, 3] = 0
        return act

    with torch.no_grad(), intervene(model, [("blocks.1.attn.hook_result", zero)]), capture(model, ["blocks.1.hook_attn_out"]) as b:
        model(toks)
    assert torch.allclose(b["blocks.1.hook_attn_out"], a["blocks.1.hook_attn_out"] - r[:, :, 3], atol=1e-5)
    assert not model.cfg.use_attn_result


def test_native_model_gives_per_head_result_from_z_and_refuses_to_edit_it():
    """TransformerLens' native attention has no per-head result; capture computes it from z and W_O."""
    from interp.hooks import capture, intervene
    from interp.models import build_from_config

    m = build_from_config(dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=16, d_vocab=50,
                               act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary", seed=0))
    assert architecture(m) == "TransformerLensNative"
    toks = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), capture(m, ["blocks.1.attn.hook_result", "blocks.1.hook_attn_out"]) as a:
        m(toks)
    b_O = m.blocks[1].attn.b_O
    assert torch.allclose(a["blocks.1.attn.hook_result"].sum(2) + (0 if b_O is None else b_O), a["blocks.1.hook_attn_out"], atol=1e-5)
    with pytest.raises(InterpError, match=r"^cannot edit blocks\.0\.attn\.hook_result: this model's attention"):
        with intervene(m, [("blocks.0.attn.hook_result", lambda a, hook: a)]):
            pass


def test_collection_stops_after_the_deepest_hook_and_equals_the_full_forward(model):
    from interp.hooks import collect, parse_hook

    toks = model.to_tokens(["When Mary and John went to the store", "The war lasted from the year 1732 to"], padding_side="right")
    specs = [parse_hook(model, h) for h in ("blocks.1.hook_resid_post", "blocks.3.attn.hook_z:2", "blocks.3.mlp.hook_post")]
    seen = []
    handle = model.blocks[3].mlp.out.register_forward_hook(lambda m, a, o: seen.append(1))  # after mlp.hook_post
    try:
        got = collect(model, specs, toks)
    finally:
        handle.remove()
    assert seen == []  # the forward stopped at the last hook, inside block 3
    _, cache = model.run_with_cache(toks)
    assert torch.equal(got["blocks.1.hook_resid_post"], cache["blocks.1.hook_resid_post"])
    assert torch.equal(got["blocks.3.attn.hook_z:2"], cache["blocks.3.attn.hook_z"][:, :, 2])
    assert torch.equal(got["blocks.3.mlp.hook_post"], cache["blocks.3.mlp.hook_post"])


def test_run_from_a_layer_equals_the_full_forward(model):
    from interp.hooks import run_from

    toks = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        full, cache = model.run_with_cache(toks)
        assert torch.allclose(run_from(model, cache["blocks.2.hook_resid_pre"], 2), full, atol=1e-5)
        last = run_from(model, cache["blocks.1.hook_resid_pre"], 1, stop_at_layer=model.cfg.n_layers)
    assert torch.allclose(last, cache["blocks.3.hook_resid_post"], atol=1e-5)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_tiny_hf_model("llama", tmp_path_factory.mktemp("rt") / "llama")


def test_directory_without_config_is_one_line(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=rf"^{re.escape(str(tmp_path))} holds no model \(no config\.json\)$"):
        load_model(str(tmp_path))


def test_architecture_the_bridge_cannot_run_is_named(llama, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(llama, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["LlamaForCausalLMX"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"^TransformerLens' bridge cannot run LlamaForCausalLMX \(no architecture adapter; close: LlamaForCausalLM"):
        load_model(str(d))


def test_remote_code_is_refused_without_the_flag(llama, tmp_path, capsys):
    import shutil

    from interp.cli import main

    d = tmp_path / "m"
    shutil.copytree(llama, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (d / "config.json").write_text(json.dumps(cfg))
    before = sorted(p.name for p in d.iterdir())
    rc = main(["collect", "--model", str(d), "--hooks", "blocks.0.hook_resid_post", "--tokens", "64", "--out", str(tmp_path / "acts")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"error: {d} needs remote code (LlamaForCausalLM via auto_map); interp runs it only with --trust-remote-code"]
    assert not (tmp_path / "acts").exists() and sorted(p.name for p in d.iterdir()) == before


def test_hook_the_bridge_lacks_gets_close_matches(llama):
    from interp.hooks import parse_hook

    m = load_model(str(llama))
    with pytest.raises(InterpError, match=r"^unknown hook 'blocks\.0\.hook_resid_psot' for this model; closest valid: blocks\.0\.hook_resid_post"):
        parse_hook(m, "blocks.0.hook_resid_psot")


def test_shipped_references_are_still_found_after_the_format_conversion():
    """Regression: the references are found by a key over the weights' fingerprint, which hashed the
    legacy state dict's names; after the shipped models became Hugging Face checkpoints no stored
    reference matched, and every circuits run silently fell back to reference-free metrics."""
    from interp.circuits.run import get_reference
    from interp.models import load_model

    for name, tasks in (("embedded", ("ioi", "greater-than", "docstring")), ("embedded-attn", ("greater-than",))):
        model = load_model(name)
        for task in tasks:
            ref = get_reference(model, name, task)
            assert ref is not None and ref.model == name and ref.task == task, (name, task)
