"""Convert the shipped models from the HookedTransformer format to the bridge's formats, once.

    python benchmarks/convert_shipped.py [--check-only]

* ``embedded`` (GPT-2-shaped) becomes a Hugging Face GPT-2 checkpoint (``GPT2LMHeadModel``; the
  trained unembedding bias is stored as ``lm_head.bias``, see `interp.models`);
* ``embedded-attn`` (attention-only) becomes TransformerLens' native model (``TransformerLensNative``).

For each: the old weights are read, mapped (`interp.models.hooked_state_to_native`, then
`interp.models.save_model`), reloaded with `load_model`, and checked against the old model run by
TransformerLens' legacy HookedTransformer (imported here only, never in interp/): the logits must agree
to 1e-4 and the model card, recomputed with `interp.model_card.evaluate` on the same held-out
prompts, must equal the shipped card (accuracies exactly, real numbers to 1e-4). Only then is the
shipped directory's config.json + model.safetensors replaced (the tokenizer and card stay).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp import model_card  # noqa: E402
from interp.data import corpus as C  # noqa: E402
from interp.models import SHIPPED, load_model, n_params, save_model  # noqa: E402

TEXT = ["When Mary and John went to the store, John gave a drink to", "The war lasted from the year 1732 to the year 17"]


def legacy_logits(path: Path, toks: torch.Tensor) -> torch.Tensor:
    """The old model's logits through HookedTransformer (the path this conversion retires)."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = json.loads((path / "config.json").read_text())
    m = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"))
    m.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    with torch.no_grad():
        return m.eval()(toks)


def close(a, b, tol=1e-4) -> bool:
    if isinstance(a, dict):
        return set(a) == set(b) and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= tol
    return a == b


def convert(name: str, check_only: bool) -> dict:
    shipped = SHIPPED[name].path
    old_cfg = json.loads((shipped / "config.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        shutil.copytree(shipped, old)
        if "architectures" in old_cfg or old_cfg.get("architecture"):
            print(f"{name}: already converted ({old_cfg.get('architectures') or old_cfg.get('architecture')})")
            new_dir = old
        else:
            model = load_model(str(old))  # the legacy format, mapped to a native bridge
            new_dir = Path(tmp) / "new"
            save_model(model, new_dir)
            shutil.copy(old / "model_card.json", new_dir / "model_card.json")
        model = load_model(str(new_dir))
        toks = model.to_tokens(TEXT, padding_side="right")
        with torch.no_grad():
            new = model(toks)
        report = {"name": name, "format": json.loads((new_dir / "config.json").read_text()).get("architectures")
                  or json.loads((new_dir / "config.json").read_text()).get("architecture")}
        if not ("architectures" in old_cfg or old_cfg.get("architecture")):
            report["max_logit_diff_vs_legacy"] = float((new - legacy_logits(old, toks)).abs().max())
        card_old = json.loads((shipped / "model_card.json").read_text())
        build = card_old.get("build", {})
        heldout = C.generate_corpus(max(200, build.get("eval_n", 200)), seed=C.HELDOUT_SEED)
        card_new = model_card.evaluate(model, n=build.get("eval_n", 200), docs=heldout)
        keys = [k for k in card_new if k in card_old]
        report["card_diff"] = {k: (card_old[k], card_new[k]) for k in keys if not close(card_old[k], card_new[k])}
        report["params"] = (card_old.get("params"), n_params(model))
        ok = report.get("max_logit_diff_vs_legacy", 0.0) <= 1e-4 and not report["card_diff"]
        report["ok"] = ok
        if ok and not check_only and new_dir != old:
            for f in ("config.json", "model.safetensors"):
                shutil.copy(new_dir / f, shipped / f)
            report["written"] = str(shipped)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check-only", action="store_true", help="compare, write nothing")
    ap.add_argument("names", nargs="*", default=list(SHIPPED))
    a = ap.parse_args()
    reports = [convert(n, a.check_only) for n in a.names]
    print(json.dumps(reports, indent=1))
    sys.exit(0 if all(r["ok"] for r in reports) else 1)


if __name__ == "__main__":
    main()
