"""`features` and `eval-sae` read text through the shared source options (`--source`,
`--text-field`, `--split`, `--context-size`, `--no-prepend-bos`, as `collect` and `train-sae` do):
a JSONL file's named field is what they read, and a missing field is one line before any model work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_features_fixtures import save_tiny_sae  # noqa: E402

from interp.cli import main  # noqa: E402

BODY = "The color of a ripe banana is yellow. The animal that says moo is the cow."
DECOY = "When Mary and John went to the store, John gave a drink to Mary."


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory, model):
    return save_tiny_sae(model, tmp_path_factory.mktemp("src") / "sae", d_sae=8, k=2)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _one_error(capsys, argv) -> str:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_features_reads_the_named_jsonl_field(tmp_path, sae_dir, model, capsys, monkeypatch):
    """Every token in the top contexts comes from the `body` field (plus BOS); none is only in `text`."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    src = _jsonl(tmp_path / "docs.jsonl", [{"body": BODY, "text": DECOY, "id": i} for i in range(40)])
    assert main(["features", "--sae", str(sae_dir), "--model", "embedded", "--source", str(src), "--text-field", "body",
                 "--context-size", "32", "--tokens", "256", "--batch-size", "4", "--top-k", "3"]) == 0
    capsys.readouterr()
    from interp.features import load_stats

    st = load_stats(sae_dir)
    cfg = st.meta["config"]
    assert (cfg["source"], cfg["text_field"], cfg["seq_len"]) == (str(src), "body", 32)
    assert st.meta["n_tokens"] == 256 and st.meta["corpus"].startswith("jsonl-")
    body_ids = set(model.tokenizer(BODY, add_special_tokens=False)["input_ids"])
    decoy_only = set(model.tokenizer(DECOY, add_special_tokens=False)["input_ids"]) - body_ids
    bos = model.tokenizer.bos_token_id if model.tokenizer.bos_token_id is not None else model.tokenizer.eos_token_id
    seen = {int(i) for i in st.t["top_tokens"].flatten().tolist() if int(i) >= 0}
    assert seen and seen <= body_ids | {bos}, seen - body_ids
    assert decoy_only and not (seen & decoy_only)
    assert not any("(F1" in lab for lab in st.labels)  # no concept labels off the embedded corpus


def test_eval_sae_reads_jsonl_at_the_context_size(tmp_path, sae_dir, capsys):
    src = _jsonl(tmp_path / "docs.jsonl", [{"body": BODY} for _ in range(40)])
    assert main(["eval-sae", str(sae_dir), "--model", "embedded", "--source", str(src), "--text-field", "body",
                 "--context-size", "32", "--tokens", "256", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["eval_tokens"] == 256  # 8 rows of 32 tokens, not rows of the model's n_ctx


@pytest.mark.parametrize("command", ["features", "eval-sae"])
def test_missing_text_field_is_one_line_before_the_model_loads(command, tmp_path, sae_dir, capsys, monkeypatch):
    import interp.models

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the source was checked")

    monkeypatch.setattr(interp.models, "load_model", no_model)
    src = _jsonl(tmp_path / "docs.jsonl", [{"body": BODY, "id": 1}])
    before = sorted(p.name for p in sae_dir.iterdir())
    argv = (["features", "--sae", sae_dir] if command == "features" else ["eval-sae", sae_dir]) + [
        "--model", "embedded", "--source", src, "--tokens", 64]
    line = _one_error(capsys, argv)
    assert line == f"error: {src} line 1 has no text field 'text' (it has: body, id); pass --text-field"
    assert sorted(p.name for p in sae_dir.iterdir()) == before


def test_features_of_a_registry_sae_go_into_out_and_report_reads_them(tmp_path, model, capsys, monkeypatch):
    """`--sae sae-lens:RELEASE/SAE_ID` (SAELens' `SAE.from_pretrained`, replaced here by a tiny SAE:
    no hub offline) is saved into --out in SAELens format with its statistics beside it."""
    import interp.sae.io as sio
    from test_features_fixtures import make_tiny_sae

    monkeypatch.setenv("TQDM_DISABLE", "1")
    asked = []
    monkeypatch.setattr(sio, "_from_registry", lambda ref, device: asked.append(ref) or make_tiny_sae(model, d_sae=8, k=2))
    assert "needs --out DIR" in _one_error(capsys, ["features", "--sae", "sae-lens:rel/id", "--tokens", 64])
    out = tmp_path / "reg"
    assert main(["features", "--sae", "sae-lens:rel/id", "--out", str(out), "--model", "embedded", "--tokens", "256",
                 "--context-size", "32", "--batch-size", "4", "--top-k", "3"]) == 0
    assert asked == ["sae-lens:rel/id"] and (out / "cfg.json").exists()
    assert main(["report", "--sae", str(out), "--features", "0-3", "--format", "md", "--out", str(tmp_path / "r.md")]) == 0
    capsys.readouterr()
    assert sio.load_sae(out, device="cpu").cfg.d_sae == 8 and "# " in (tmp_path / "r.md").read_text()
