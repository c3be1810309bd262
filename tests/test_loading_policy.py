"""One loading policy: the same model gives the same weights and logits whether it is named by a
TransformerLens name (``gpt2``, through the Hugging Face hub cache) or by a local Hugging Face
directory holding the same checkpoint, under the default processing (``none``) and ``tl-default``.

Offline: a fake hub cache in a temp dir (``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1``) holds a tiny
random GPT-2 written by `save_pretrained` (`tests/tiny_models.py`) in the cache's own layout,
``models--gpt2/refs/main`` + ``snapshots/<hash>/{config.json, model.safetensors, tokenizer files}``.
TransformerLens' official-name path needs nothing from the real GPT-2: for a name without
"llama"/"gemma" in it, `convert_hf_model_config` reads the architecture and every size from
``AutoConfig.from_pretrained("gpt2")`` (the cached config.json), `get_pretrained_state_dict` loads
the weights with ``AutoModelForCausalLM.from_pretrained("gpt2")`` and the tokenizer comes from
``AutoTokenizer.from_pretrained("gpt2")``, all of which resolve to the fake snapshot. One field
is added by hand: TransformerLens' GPT-2 branch reads ``hf_config.n_ctx``, which the real gpt2
config.json carries (``"n_ctx": 1024``) but transformers 5's `save_pretrained` does not write.

The loads run in a child process because huggingface_hub and transformers read ``HF_HUB_CACHE`` and
``HF_HUB_OFFLINE`` once, at import, and this test process has imported them already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_hf_model  # noqa: E402

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"

_CHILD = r"""
import json, sys, torch
from interp.models import load_model, loading_info
snapshot = sys.argv[1]
out = {}
for proc in ("none", "tl-default"):
    by_name = load_model("gpt2", device="cpu", processing=proc)
    by_dir = load_model(snapshot, device="cpu", processing=proc)
    a, b = by_name.state_dict(), by_dir.state_dict()
    toks = by_dir.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        la, lb = by_name(toks), by_dir(toks)
    out[proc] = {
        "keys_only_name": sorted(set(a) - set(b)), "keys_only_dir": sorted(set(b) - set(a)),
        "shape_diff": [k for k in a if k in b and a[k].shape != b[k].shape],
        "max_weight_diff": max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k in b and a[k].shape == b[k].shape and a[k].numel()),
        "max_logit_diff": float((la - lb).abs().max()), "logit_scale": float(la.abs().max()),
        "same_tokens": bool(torch.equal(by_name.to_tokens("a red apple"), by_dir.to_tokens("a red apple"))),
        "info": [loading_info(by_name), loading_info(by_dir)],
    }
print("RESULT " + json.dumps(out))
"""


def _fake_hub(root: Path) -> Path:
    """A hub cache holding `gpt2` as one snapshot; returns the snapshot directory."""
    repo = root / "hub" / "models--gpt2"
    snap = make_tiny_hf_model("gpt2", repo / "snapshots" / SNAPSHOT)
    cfg = json.loads((snap / "config.json").read_text())
    cfg["n_ctx"] = cfg["n_positions"]  # the hub's gpt2 config.json has it; transformers 5's save_pretrained drops it
    (snap / "config.json").write_text(json.dumps(cfg, indent=2))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    return snap


def test_tl_name_and_local_dir_give_identical_weights_and_logits(tmp_path):
    snap = _fake_hub(tmp_path)
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parents[1])}
    env.pop("HF_TOKEN", None)
    r = subprocess.run([sys.executable, "-c", _CHILD, str(snap)], env=env, capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    res = json.loads(lines[0][len("RESULT "):])
    for proc, d in res.items():
        assert d["keys_only_name"] == [] and d["keys_only_dir"] == [] and d["shape_diff"] == [], (proc, d)
        assert d["max_weight_diff"] == 0.0, (proc, d["max_weight_diff"])
        assert d["max_logit_diff"] == 0.0 and d["logit_scale"] > 0, (proc, d["max_logit_diff"])
        assert d["same_tokens"]
        name_info, dir_info = d["info"]
        assert name_info["family"] == dir_info["family"] == "gpt2"
        assert name_info["processing"] == dir_info["processing"] == dict.fromkeys(name_info["processing"], proc == "tl-default")
