"""Is the TopK default recipe (sparsify's SignSGD + schedule-free) better than the shipped SAEs'
(SAELens' Adam recipe) at the shipped SAEs' own settings? Issue 15 asks to retrain the shipped
SAEs with the new default only if it is better.

    python benchmarks/sae_shipped_recipe.py --run      # retrain the 8 TopK SAEs with the default
                                                        # into runs/sae_recipe/default (~40 min on 2 cores)
    python benchmarks/sae_shipped_recipe.py --aux 1 4   # + resid_post_L3 with the default and AuxK on
    python benchmarks/sae_shipped_recipe.py             # table only, from benchmarks/sae_shipped_recipe.json

The retrain uses `interp.sae.build.build_default_saes` (the shipped spec: same hooks, k, d_sae,
training tokens, activation pass and held-out evaluation as `saes/embedded/`), so each row
compares the two recipes at equal tokens and L0. The shipped side is read from
`saes/embedded/<name>/metrics.json`. Results go to benchmarks/sae_shipped_recipe.json and the
"sae_shipped_recipe" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402

RESULTS = Path(__file__).with_suffix(".json")
NAMES = ["resid_post_L0_topk", "resid_post_L1_topk", "resid_post_L2_topk", "resid_post_L3_topk",
         "mlp_out_L1_topk", "mlp_out_L2_topk", "attn_out_L1_topk", "attn_out_L2_topk"]
KEYS = ["explained_variance", "ce_loss_score", "kl_div_score", "frac_alive", "mse", "l0", "train_tokens"]


def _metrics(d: Path) -> dict:
    m = json.loads((d / "metrics.json").read_text())
    return {k: m.get(k) for k in KEYS}


def run_default(out_root: Path) -> dict:
    """Retrain the shipped TopK SAEs with today's TopK default into `out_root`; their metrics."""
    from interp.sae.build import ShippedSpec, build_default_saes

    build_default_saes(out_root=out_root, spec=ShippedSpec(topk_recipe="default"), only=NAMES,
                       acts_dir=str(ROOT / "runs/acts/shipped"))
    return {n: _metrics(out_root / n) for n in NAMES}


def run_aux(out_root: Path, coefs: list[float]) -> dict:
    """resid_post_L3_topk with the default recipe plus SAELens' AuxK loss at each coefficient."""
    from dataclasses import replace

    from interp.models import load_model
    from interp.sae.build import ShippedSpec, shipped_configs
    from interp.sae.train import train_saes

    spec, model = ShippedSpec(topk_recipe="default"), load_model("embedded")
    base = shipped_configs(model.cfg.n_layers, model.cfg.d_model, "embedded", spec)["resid_post_L3_topk"]
    cfgs = [replace(base, aux_coef=c) for c in coefs]
    outs = [out_root / f"resid_post_L3_topk_aux{c:g}" for c in coefs]
    train_saes(cfgs, outs, acts_dir=str(ROOT / "runs/acts/shipped"), act_tokens=spec.act_tokens,
               eval_tokens=spec.eval_tokens, model=model, overwrite=True)
    return {f"resid_post_L3_topk + AuxK {c:g}": _metrics(o) for c, o in zip(coefs, outs)}


def table(res: dict) -> str:
    rows = []
    for name, new in res["default"].items():
        old = res["shipped"][name]
        rows.append({"SAE": f"`{name}`", "train tokens": old["train_tokens"],
                     "EV shipped (adam)": f"{old['explained_variance']:.3f}", "EV default (signum)": f"{new['explained_variance']:.3f}",
                     "kl_div_score shipped / default": f"{old['kl_div_score']:.3f} / {new['kl_div_score']:.3f}",
                     "ce_loss_score shipped / default": f"{old['ce_loss_score']:.3f} / {new['ce_loss_score']:.3f}",
                     "alive shipped / default": f"{old['frac_alive']:.3f} / {new['frac_alive']:.3f}",
                     "better": "default" if (new["explained_variance"] > old["explained_variance"]
                                             and new["frac_alive"] >= old["frac_alive"] - 0.02) else "shipped"})
    for name, m in res.get("aux", {}).items():
        old = res["shipped"]["resid_post_L3_topk"]
        rows.append({"SAE": f"`{name}`", "train tokens": m["train_tokens"],
                     "EV shipped (adam)": f"{old['explained_variance']:.3f}", "EV default (signum)": f"{m['explained_variance']:.3f}",
                     "kl_div_score shipped / default": f"{old['kl_div_score']:.3f} / {m['kl_div_score']:.3f}",
                     "ce_loss_score shipped / default": f"{old['ce_loss_score']:.3f} / {m['ce_loss_score']:.3f}",
                     "alive shipped / default": f"{old['frac_alive']:.3f} / {m['frac_alive']:.3f}",
                     "better": "shipped" if m["explained_variance"] < old["explained_variance"] else "default"})
    n_def = sum(r["better"] == "default" for r in rows[: len(res["default"])])
    return ("### The TopK default recipe at the shipped SAEs' settings\n\n"
            "`python benchmarks/sae_shipped_recipe.py --run --aux 1 4`: each shipped TopK SAE retrained with today's "
            "TopK default (sparsify's SignSGD + schedule-free, no AuxK) on the same hook, k 32, 1,024 latents, training "
            "tokens and activation pass, evaluated on the same held-out tokens (SAEBench core metrics), beside the "
            "shipped SAE (SAELens' Adam recipe with AuxK). 'better' = higher explained variance without losing more than "
            "2 points of alive latents.\n\n" + markdown_table(rows) + "\n\n"
            f"The default wins on {n_def} of {len(res['default'])}. At the speed benchmark's 200k tokens it reaches a lower "
            "FVU than Adam (the `sae_bench.py` recipe table); at the shipped MLP/attention SAEs' 246k tokens it still "
            "explains a little more variance on 3 of 4 but leaves 7-27 points more latents dead; at the residual SAEs' "
            "0.5-1.5M tokens Adam with AuxK ends higher on every metric and keeps nearly every latent alive, while the "
            "constant-lr sign updates leave 4-28% dead (AuxK added to the default does not revive them: the AuxK rows). "
            "So the shipped SAEs keep the Adam recipe (`ShippedSpec`), and for runs of more than ~0.5M tokens the "
            "shipped settings, `--optimizer adam --lr 2e-3 --aux-coef 4 --normalize --shuffle --data-init "
            "--no-unit-norm-decoder`, are the better choice on this model.\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="store_true", help="retrain the 8 shipped TopK SAEs with the default recipe")
    ap.add_argument("--aux", type=float, nargs="*", default=[], help="AuxK coefficients for extra resid_post_L3 runs")
    ap.add_argument("--out", default=str(ROOT / "runs/sae_recipe"), help="where the retrained SAEs go")
    a = ap.parse_args()
    res = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    res["shipped"] = {n: _metrics(ROOT / "saes/embedded" / n) for n in NAMES}
    if a.run:
        res["default"] = run_default(Path(a.out) / "default")
    if a.aux:
        res["aux"] = run_aux(Path(a.out) / "aux", a.aux)
    if "default" not in res:
        raise SystemExit("error: no results yet; run with --run")
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    update_section("sae_shipped_recipe", table(res))


if __name__ == "__main__":
    main()
