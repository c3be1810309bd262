"""Rebuild the transfer check's second SAE: `saes/embedded/resid_post_L3_topk_seed1`, the shipped
`resid_post_L3_topk` config (interp.sae.build.shipped_configs: same hook, size, k, tokens and
recipe) with training seed 1, so the transfer benchmark compares like with like.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/unlearning/build_seed1.py
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

NAME = "resid_post_L3_topk"
OUT = ROOT / "saes" / "embedded" / f"{NAME}_seed1"


def main() -> int:
    import torch

    from interp.models import load_model
    from interp.sae.build import ShippedSpec, shipped_configs
    from interp.sae.train import train_saes

    os.chdir(ROOT)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = ShippedSpec()
    model = load_model("embedded")
    cfg = replace(shipped_configs(model.cfg.n_layers, model.cfg.d_model, "embedded", spec)[NAME], seed=1)
    train_saes([cfg], [OUT], acts_dir="runs/acts/seed1", act_tokens=spec.act_tokens, eval_tokens=spec.eval_tokens, model=model,
               overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
