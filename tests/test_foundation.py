"""Foundation: corpus, tokenizer, model loading, hooks, activation store, CLI errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interp.activations import ActivationStore, CollectConfig, collect_activations
from interp.data import corpus as C
from interp.errors import InterpError
from interp.hooks import capture, intervene, parse_hook, patch_heads
from interp.models import ModelLoadError, load_model, n_params, save_model


def test_corpus_is_deterministic_and_covers_the_patterns():
    assert C.generate_corpus(20, seed=3) == C.generate_corpus(20, seed=3)
    assert C.generate_corpus(20, seed=3) != C.generate_corpus(20, seed=4)
    assert len(C.IOI_TEMPLATES) >= 15 and len(set(C.NAMES)) >= 50
    assert set(C.CATEGORIES) == {"colors", "animals", "sports", "emotions", "materials", "foods"}
    for cat in C.CATEGORIES:
        assert len({d for d, _ in C.FACTS[cat]}) >= 30, cat
    # both name orders occur, and the answer is always the non-repeated name
    ps = C.ioi_prompts(200, seed=1)
    assert {p.meta["order"] for p in ps} == {"ABBA", "BABA"}
    for p in ps:
        assert p.text.count(p.meta["s"]) == 2 and p.text.count(p.meta["io"]) == 1 and p.answer == " " + p.meta["io"]
    for p in C.year_prompts(100, seed=1):
        assert int(p.answer) > p.meta["start"] and p.text.endswith(f" {p.meta['century']}")
    for p in C.docstring_prompts(50, seed=1):
        assert p.text.endswith(":param") and p.answer.strip() == p.meta["args"][-1]


def test_tokenizer_splits_years_like_gpt2_and_keeps_names_whole(model):
    assert model.to_str_tokens(" from the year 1732", prepend_bos=False)[-2:] == [" 17", "32"]
    for name in C.NAMES:
        assert len(model.to_tokens(" " + name, prepend_bos=False)[0]) == 1, name
    assert model.to_str_tokens("When Mary and John")[0] == C.EOT


def test_hf_directory_loads_offline_with_identical_logits(tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, n_ctx=64, vocab_size=2304)).eval()
    hf.save_pretrained(tmp_path)
    from interp.models import EMBEDDED_DIR

    AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer")).save_pretrained(tmp_path)
    m = load_model(str(tmp_path))
    toks = m.to_tokens("When Mary and John went to the store")
    with torch.no_grad():
        assert torch.allclose(m(toks), hf(toks).logits, atol=1e-4)
    assert m.to_str_tokens(" Mary")[-1] == " Mary"


def test_saved_model_round_trips(model, tmp_path):
    save_model(model, tmp_path / "m")
    m2 = load_model(str(tmp_path / "m"))
    toks = model.to_tokens("The color of a ripe banana is")
    with torch.no_grad():
        assert torch.equal(model(toks), m2(toks))
    assert not (tmp_path / "m.tmp").exists()


@pytest.mark.parametrize("name,needle", [("gpt3", "unknown model 'gpt3'"), ("/nonexistent/dir/x", "does not exist")])
def test_bad_model_names_fail_in_one_line(name, needle):
    with pytest.raises(ModelLoadError) as e:
        load_model(name)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_hook_suggests_close_names(model):
    with pytest.raises(InterpError, match=r"closest valid: blocks\.0\.hook_resid_post"):
        parse_hook(model, "blocks.0.hook_resid_pots")
    with pytest.raises(InterpError, match="out of range"):
        parse_hook(model, f"blocks.0.attn.hook_z:{model.cfg.n_heads}")


def test_capture_and_intervene_leave_the_model_unchanged(model):
    toks = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        clean = model(toks)
        with capture(model, ["blocks.0.hook_resid_post", "blocks.0.attn.hook_z:1", "blocks.0.attn.hook_z"]) as acts:
            model(toks)
        clean_z = acts["blocks.0.attn.hook_z"]
        assert acts["blocks.0.hook_resid_post"].shape == (1, toks.shape[1], model.cfg.d_model)
        assert acts["blocks.0.attn.hook_z:1"].shape == (1, toks.shape[1], model.cfg.d_head)
        with intervene(model, {"blocks.0.attn.hook_z": patch_heads([1])}):
            ablated = model(toks)
            with capture(model, ["blocks.0.attn.hook_z"]) as z:
                model(toks)
        assert torch.all(z["blocks.0.attn.hook_z"][:, :, 1] == 0)
        assert not torch.allclose(ablated, clean)
        # the other two forms: a per-head mean [H, d_head] and another run's z [batch, pos, H, d_head]
        mean = torch.arange(model.cfg.n_heads * model.cfg.d_head, dtype=torch.float32).reshape(model.cfg.n_heads, -1)
        other = torch.randn(1, toks.shape[1], model.cfg.n_heads, model.cfg.d_head, generator=torch.Generator().manual_seed(0))
        for src, want in ((mean, mean[2].expand(1, toks.shape[1], -1)), (other, other[:, :, 2])):
            with intervene(model, {"blocks.0.attn.hook_z": patch_heads([2], src)}), capture(model, ["blocks.0.attn.hook_z"]) as z:
                model(toks)
            got = z["blocks.0.attn.hook_z"]
            assert torch.equal(got[:, :, 2], want.to(got.dtype))
            assert torch.equal(got[:, :, 1], clean_z[:, :, 1])  # other heads untouched
        assert torch.equal(model(toks), clean)  # hooks removed on exit
    assert all(len(h.fwd_hooks) == 0 for h in model.hook_dict.values())


def test_collect_writes_no_more_rows_than_asked(model, tmp_path):
    cfg = CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=(2 * 8 + 3) * 32 - 5, seq_len=32, batch_size=4, shard_rows=8)
    man = collect_activations(model, cfg, tmp_path / "a")
    store = ActivationStore(tmp_path / "a")
    assert man.n_shards == 3 and man.n_tokens == 19 * 32
    assert [len(store.tokens(i)) for i in range(3)] == [8, 8, 3]
    assert store.shard("blocks.0.hook_resid_post", 2).shape == (3 * 32, model.cfg.d_model)
    assert sum(len(b) for b in store.iter_batches("blocks.0.hook_resid_post", 7, seed=0)) == 19 * 31


def test_collect_writes_exact_activations_and_resumes(model, tmp_path):
    cfg = CollectConfig(hooks=["blocks.1.hook_resid_post", "blocks.0.attn.hook_z:2"], n_tokens=3 * 8 * 32, seq_len=32,
                        batch_size=4, shard_rows=8)
    out = tmp_path / "acts"
    man = collect_activations(model, cfg, out)
    assert man.complete and man.n_shards == 3 and man.n_tokens == 3 * 8 * 32
    store = ActivationStore(out)
    toks = store.tokens(1)
    with torch.no_grad(), capture(model, ["blocks.1.hook_resid_post"]) as acts:
        model(toks[:2])
    assert torch.allclose(store.shard("blocks.1.hook_resid_post", 1)[:64], acts["blocks.1.hook_resid_post"].reshape(64, -1), atol=1e-5)
    # interrupt: forget the last shard, then rerun -> resumes and rebuilds it identically
    last = store.shard("blocks.0.attn.hook_z:2", 2).clone()
    m = json.loads((out / "manifest.json").read_text())
    m["shards_done"], m["complete"] = 2, False
    (out / "manifest.json").write_text(json.dumps(m))
    (out / "blocks.0.attn.hook_z.h2" / "shard_00002.safetensors").unlink()
    man2 = collect_activations(model, cfg, out)
    assert man2.complete and torch.allclose(ActivationStore(out).shard("blocks.0.attn.hook_z:2", 2), last)
    # shuffled batches cover every non-BOS position exactly once
    rows = torch.cat(list(store.iter_batches("blocks.1.hook_resid_post", 50, seed=1)))
    assert rows.shape == (3 * 8 * 31, model.cfg.d_model)
    full = torch.cat([store.shard("blocks.1.hook_resid_post", i).view(-1, 32, model.cfg.d_model)[:, 1:].reshape(-1, model.cfg.d_model) for i in range(3)])
    assert torch.allclose(rows.sum(0), full.sum(0), atol=1e-2)
    # a different run into the same directory is refused unless overwrite
    other = CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=64, seq_len=32, batch_size=4, shard_rows=8)
    with pytest.raises(InterpError, match="different collect run .*hooks"):
        collect_activations(model, other, out)
    assert collect_activations(model, other, out, overwrite=True).hooks == ["blocks.0.hook_resid_post"]


def test_collect_rejects_bad_sources(model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02abc")
    for src, msg in [(empty, "is empty"), (binary, "not text"), (tmp_path / "nope.txt", "does not exist")]:
        with pytest.raises(InterpError, match=msg):
            collect_activations(model, CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=10, source=str(src)), tmp_path / "o")
    with pytest.raises(InterpError, match="longer than the model.s context"):
        collect_activations(model, CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=10, seq_len=model.cfg.n_ctx + 1), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_collect_from_a_text_file(model, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("When Mary and John went to the store.\n\nThe color of a ripe banana is yellow.")
    man = collect_activations(model, CollectConfig(hooks=["blocks.0.hook_resid_post"], n_tokens=16, source=str(f), seq_len=8, batch_size=2, shard_rows=2), tmp_path / "o")
    assert man.corpus.startswith("file-")
    assert model.to_string(ActivationStore(tmp_path / "o").tokens(0)[0, 1:4]) == "When Mary and"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "interp", *args], capture_output=True, text=True, timeout=300)


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    r = _cli("demo", "--model", "gpt3")
    assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown model") and len(r.stderr.strip().splitlines()) == 1
    r = _cli("collect", "--hooks", "blocks.0.hook_resid_pots", "--tokens", "10", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "closest valid" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_every_subcommand_has_help():
    from interp.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"demo", "build-default", "collect", "app"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: interp " + name), name


def test_demo_prints_predictions():
    r = _cli("demo", "--prompt", "The color of a ripe banana is", "--top", "2")
    assert r.returncode == 0 and r.stdout.startswith("'The color of a ripe banana is' -> ")


def test_shipped_model_card_is_true_and_meets_targets(model):
    from interp import model_card
    from interp.models import EMBEDDED_DIR

    card = json.loads((EMBEDDED_DIR / "model_card.json").read_text())
    corpus = card.get("corpus", "v1")
    if corpus == "v1":
        assert all(card["meets_targets"].values()), card["meets_targets"]
        # recompute a slice of the card on the shipped weights: the numbers are the model's, not typed in
        again = model_card.evaluate(model, n=40)
        assert again["ioi_accuracy"] >= 0.95 and again["docstring_accuracy"] >= 0.8
    else:  # a corpus-v2 card (issue 25): every missed target is stated with its shortfall, and the numbers are recomputed
        missed = {k for k, ok in card["meets_targets"].items() if not ok}
        assert missed == set(card["target_misses"]) and ("MISSES" in card["target_line"]) == bool(missed)
        again = model_card.evaluate(model, n=card["build"]["eval_n"], corpus=corpus)
        for split in ("seen", "heldout"):
            for k, v in card["templates"][split].items():
                assert again["templates"][split][k] == pytest.approx(v, abs=1e-4), (split, k)
    assert again["fact_accuracy"] == card["fact_accuracy"]  # every fact prompt, same set both times
    assert n_params(model) == card["params"]


def test_building_the_cli_parser_stays_light():
    """Regression: a subcommand module imported TransformerLens in register(), slowing every
    `interp` call and the dashboard start-up."""
    code = "import sys, interp.cli; interp.cli.build_parser(); print('transformer_lens' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_cli_unlearn_methods_match_the_library():
    from interp.commands.unlearn import METHODS
    from interp.unlearn.pipeline import ALL_METHODS

    assert METHODS == ALL_METHODS
