"""Write the reference circuits' layers and layer-only AUC into each shipped model card (issue 25).

    python benchmarks/testbed/card_refs.py [--models embedded embedded-attn]

For every model and built-in task with a stored reference (`interp.circuits.reference`, content-keyed,
so only a reference of the shipped weights counts), the card gets
``references[task] = {heads, layers, layer_only_auc, layer_only_target, layer_only_met}``; a task
without a reference gets ``{"reference": null}`` (the model has no behaviour there, or it was not
built). The layer-only AUC is `interp.circuits.metrics.layer_only_auc`: the best node AUC a ranking
by layer alone reaches (target <= 0.75). Run after `python -m interp.circuits.reference`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CARD_DIRS = {"embedded": "interp/embedded", "embedded-attn": "interp/embedded_attn"}


def reference_entry(ref) -> dict:
    from interp.circuits import metrics as M

    if ref is None:
        return {"reference": None}
    auc = M.layer_only_auc(ref.mask)
    if math.isnan(auc):  # an empty (or whole-model) reference: no ranking separates anything
        return {"heads": [list(h) for h in ref.heads], "layers": M.reference_layers(ref.mask), "layer_only_auc": None,
                "layer_only_target": M.LAYER_ONLY_AUC_TARGET, "layer_only_met": None}
    return {"heads": [list(h) for h in ref.heads], "layers": M.reference_layers(ref.mask), "layer_only_auc": round(auc, 4),
            "layer_only_target": M.LAYER_ONLY_AUC_TARGET, "layer_only_met": auc <= M.LAYER_ONLY_AUC_TARGET}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=list(CARD_DIRS), default=list(CARD_DIRS))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from interp import io
    from interp.circuits.run import get_reference, load_named_model
    from interp.circuits.tasks import BUILTIN_TASKS

    for name in a.models:
        model = load_named_model(name)
        card_path = ROOT / CARD_DIRS[name] / "model_card.json"
        card = json.loads(card_path.read_text())
        card["references"] = {t: reference_entry(get_reference(model, name, t, "stored")) for t in BUILTIN_TASKS}
        io.atomic_write_json(card_path, card)
        for t, e in card["references"].items():
            if e.get("reference", 1) is None or e["layer_only_auc"] is None:
                print(f"{name} / {t}: " + ("no reference" if "reference" in e else f"reference of {len(e['heads'])} heads: no layer-only AUC"))
            else:
                print(f"{name} / {t}: layers {e['layers']}, layer-only AUC {e['layer_only_auc']:.3f} "
                      f"({'met' if e['layer_only_met'] else 'missed'}, target <= {e['layer_only_target']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
