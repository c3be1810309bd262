"""Every supported model family, offline, on a tiny random-weight Hugging Face checkpoint
(`tests/tiny_models.py`): logits equal to Hugging Face's, and the whole pipeline through the CLI
(collect, train-sae, eval-sae, features, report, circuits on a custom JSONL task, unlearning of a
concept file) plus a prompt-lab ablation through the Python API, on the ten dense families
(`tiny_models.FAMILIES`); the mixture-of-experts families (Mixtral, Qwen3-MoE) run collect,
train-sae and features on ``hook_mlp_out``. Every model runs on TransformerLens' TransformerBridge.

The CLI runs in-process (`interp.cli.main`) so the suite does not pay a Python start-up per
stage; `tests/test_faults.py` covers the subprocess path. Sizes are tiny: a few thousand tokens,
a 64-latent SAE, a handful of prompt pairs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import FAMILIES, MOE_FAMILIES, hf_logits, make_tiny_hf_model  # noqa: E402

from interp.cli import main  # noqa: E402
from interp.models import load_model, loading_info  # noqa: E402

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f: make_tiny_hf_model(f, root / f) for f in FAMILIES + MOE_FAMILIES}


@pytest.mark.parametrize("family", FAMILIES + MOE_FAMILIES)
def test_logits_equal_hugging_face(family, tiny_dirs):
    """Tolerance 1e-4 absolute on logits of size ~0.1 (float32; the observed maximum is ~5e-7)."""
    model = load_model(str(tiny_dirs[family]), device="cpu")
    info = loading_info(model)
    assert info["family"] == family and info["processing"] == dict.fromkeys(info["processing"], False)
    toks = model.to_tokens(PROMPT)
    assert int(toks[0, 0]) == 0 and toks.shape[1] == len(model.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]) + 1
    with torch.no_grad():
        ours = model(toks)
    theirs = hf_logits(tiny_dirs[family], toks)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4
    # processing changes weights, never the next-token distribution
    processed = load_model(str(tiny_dirs[family]), processing="tl-default")
    with torch.no_grad():
        lp = processed(toks).log_softmax(-1)
    assert (lp - theirs.log_softmax(-1)).abs().max().item() < 1e-4


def test_sources_pack_rows_like_sae_lens():
    from sae_lens.tokenization_and_batching import concat_and_batch_sequences

    from interp.data.sources import pack_rows

    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(1, 50, (int(n),), generator=g).tolist() for n in torch.randint(1, 40, (60,), generator=g)]
    docs[3][0] = 0  # a document that already starts with BOS gets no second one
    for bos_first in (0, None):
        ref = [r.tolist() for r in concat_and_batch_sequences(iter(torch.tensor(d) for d in docs), 16,
                                                               begin_batch_token_id=bos_first, sequence_separator_token_id=0)]
        assert list(pack_rows(iter(docs), 16, bos_first, 0)) == ref and len(ref) > 20


def _cli(capsys, *args) -> str:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    err_lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 0, f"interp {' '.join(map(str, args[:2]))} failed: {err_lines or err[-1500:]}"
    return out


def _run(capsys, *args) -> tuple[int, str]:
    """(exit code, the error line) of `interp ARGS` in-process; a failure must still be one clean line."""
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "Traceback" not in err and (rc == 0 or len(lines) == 1), err[-1500:]
    return rc, lines[-1] if lines else ""


def _task_file(path: Path, model) -> Path:
    """IOI-shaped pairs; a random model has no IOI behaviour, so each pair's answer is the name the
    model already prefers (the task then has a positive metric to find a circuit for)."""
    names = ["Mary", "John", "Anna", "Paul", "Laura", "Peter", "Susan", "David"]
    rows = []
    for i in range(8):
        a, b, c = names[i % 8], names[(i + 1) % 8], names[(i + 2) % 8]
        pos = f"When {a} and {b} went to the store, {b} gave a drink to"
        with torch.no_grad():
            lg = model(model.to_tokens(pos))[0, -1]
        ia, ib = model.to_single_token(f" {a}"), model.to_single_token(f" {b}")
        ans, wrong = (a, b) if lg[ia] > lg[ib] else (b, a)
        rows.append({"positive": pos, "negative": f"When {a} and {b} went to the store, {c} gave a drink to",
                     "answer": f" {ans}", "wrong_answer": f" {wrong}"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _concept_file(path: Path) -> Path:
    from interp.data import corpus as C

    lines = ["# forget"] + [f"{p.text}\t{p.answer}" for p in C.fact_prompts("colors")[:12]]
    lines += ["# retain"] + [f"{p.text}\t{p.answer}" for p in C.fact_prompts("animals")[:12]]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_runs_on_every_family(family, tiny_dirs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    mdir = str(tiny_dirs[family])
    hook = "blocks.1.hook_resid_post"
    acts, sae = tmp_path / "acts", tmp_path / "sae"

    out = _cli(capsys, "--device", "cpu", "collect", "--model", mdir, "--hooks", hook, "--tokens", 2048,
               "--context-size", 32, "--out", acts)
    man = json.loads((acts / "manifest.json").read_text())
    assert man["complete"] and man["loading"]["family"] == family and man["seq_len"] == 32 and "2048 tokens" in out

    _cli(capsys, "train-sae", "--model", mdir, "--hook", hook, "--arch", "topk", "--d-sae", 64, "--k", 4,
         "--tokens", 4096, "--batch-size", 256, "--act-tokens", 2048, "--eval-tokens", 512, "--checkpoint-every", 0,
         "--acts-dir", tmp_path / "sae_acts", "--out", sae)
    cfg = json.loads((sae / "cfg.json").read_text())
    assert cfg["d_in"] == 64 and cfg["d_sae"] == 64

    metrics = json.loads(_cli(capsys, "eval-sae", sae, "--model", mdir, "--tokens", 512, "--json"))
    assert 0 <= metrics["frac_alive"] <= 1 and metrics["l0"] <= 4 + 1e-6

    _cli(capsys, "features", "--sae", sae, "--model", mdir, "--tokens", 1024, "--batch-size", 8)
    assert (sae / "feature_stats.json").exists()
    _cli(capsys, "report", "--sae", sae, "--features", "0-3", "--format", "html", "--out", tmp_path / "r.html")
    assert "<html" in (tmp_path / "r.html").read_text().lower()

    model = load_model(mdir)
    concept = _concept_file(tmp_path / "colors.txt")
    # Stages of other packages that fail on a random tiny model are collected in `deferred` and the
    # test ends as xfail naming them (after every other stage ran); a refusal that is right for a
    # random model (nothing to forget) counts as a pass.
    deferred = []
    rc, err = _run(capsys, "unlearn", "--model", mdir, "--sae", sae, "--concept", concept, "--method", "clamp",
                   "--n-features", 4, "--min-base-acc", 0, "--json", tmp_path / "u.json")
    if rc == 0:
        assert json.loads((tmp_path / "u.json").read_text())
    elif "fires more on the forget set than on retain data" not in err:
        deferred.append(f"unlearn: {err} (interp/unlearn)")

    from interp import prompt_lab as L

    toks = model.to_tokens(PROMPT)
    cmp = L.compare(model, toks, L.Ablation(heads=[(0, 1), (1, 2)]), target=(" Mary", " John"))
    with torch.no_grad():
        clean = model(toks)[0, -1]
    assert cmp.kl > 0 and abs(cmp.clean_logit_diff - float(clean[model.to_single_token(" Mary")] - clean[model.to_single_token(" John")])) < 1e-4

    # circuits last, so that a failure of the circuits package on a family still lets the stages above run
    task = _task_file(tmp_path / "task.jsonl", model)
    gqa = model.cfg.n_key_value_heads not in (None, model.cfg.n_heads)
    for method in ("discrete-sae", "eap"):
        args = ["circuits", "--model", mdir, "--task", task, "--method", method, "--json", tmp_path / f"c-{method}.json"]
        args += ["--sae-steps", 100] if method == "discrete-sae" else ["--prompts", 6]
        rc, err = _run(capsys, *args)
        if rc != 0 and gqa:
            deferred.append(f"circuits --method {method} on grouped-query attention: {err} (interp/circuits)")
            continue
        assert rc == 0, err
        assert json.loads((tmp_path / f"c-{method}.json").read_text())
    if deferred:
        pytest.xfail("; ".join(deferred))


@pytest.mark.slow
@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_mixture_of_experts_families_collect_train_and_compute_features(family, tiny_dirs, tmp_path, capsys, monkeypatch):
    """Mixtral / Qwen3-MoE: collect, train-sae and features on the MoE block's output (hook_mlp_out)."""
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    mdir = str(tiny_dirs[family])
    hook = "blocks.1.hook_mlp_out"
    acts, sae = tmp_path / "acts", tmp_path / "sae"
    _cli(capsys, "--device", "cpu", "collect", "--model", mdir, "--hooks", hook, "--tokens", 1024,
         "--context-size", 32, "--out", acts)
    man = json.loads((acts / "manifest.json").read_text())
    assert man["complete"] and man["loading"]["family"] == family and man["d"][hook] == 64
    _cli(capsys, "train-sae", "--model", mdir, "--hook", hook, "--arch", "topk", "--d-sae", 64, "--k", 4,
         "--tokens", 2048, "--batch-size", 256, "--act-tokens", 1024, "--eval-tokens", 512, "--checkpoint-every", 0,
         "--acts-dir", tmp_path / "sae_acts", "--out", sae)
    assert json.loads((sae / "cfg.json").read_text())["d_in"] == 64
    _cli(capsys, "features", "--sae", sae, "--model", mdir, "--tokens", 512, "--batch-size", 8)
    stats = json.loads((sae / "feature_stats.json").read_text())
    assert stats
