"""The shipped weights stay within DESIGN.md's budget: the embedded models, the MoE-X chess models,
the SAEs and the transcoders together <= 100 MB. (Feature statistics next to the SAEs are derived data the `features`
command rebuilds; they are counted separately and not part of the weights budget.)"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ("interp/embedded/*.safetensors", "interp/embedded_attn/*.safetensors", "interp/moex/shipped/*/model.safetensors",
           "saes/**/sae_weights.safetensors", "transcoders/**/sae_weights.safetensors")


def test_shipped_weights_fit_the_100_mb_budget():
    files = [p for pat in WEIGHTS for p in ROOT.glob(pat)]
    names = {p.relative_to(ROOT).as_posix() for p in files}
    # every kind is found (a renamed directory would otherwise pass with nothing counted)
    assert {"interp/embedded/model.safetensors", "interp/embedded_attn/model.safetensors",
            "interp/moex/shipped/moex/model.safetensors", "saes/embedded/resid_post_L3_topk/sae_weights.safetensors",
            "transcoders/embedded/L3/sae_weights.safetensors"} <= names
    total = sum(p.stat().st_size for p in files)
    assert total <= 100 * 2**20, f"shipped weights {total / 2**20:.1f} MiB > 100 MiB"
