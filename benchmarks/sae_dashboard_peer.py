"""The sae-dashboard 0.8 side of benchmarks/features_bench.py. Runs in the peer venv built by
benchmarks/sae_dashboard_venv.sh (transformer-lens 2.x), so it imports nothing from interp:

    .cache/venv-sae-dashboard/bin/python benchmarks/sae_dashboard_peer.py MODEL_DIR SAE_DIR TOKENS.safetensors N_FEATURES OUT.json

It rebuilds the embedded model from its config.json + model.safetensors (the same weights and the
same HookedTransformerConfig fields interp uses), loads the same SAELens-format SAE, and runs
SaeVisRunner (SAEDashboard's pipeline: feature data for every listed feature, activation
quantile groups, logit tables, histograms) on exactly the token rows ours sees. Writes seconds
and what its feature pages hold to OUT.json.
"""

import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file


def main() -> None:
    model_dir, sae_dir, tokens_file, n_features, out = sys.argv[1:6]
    torch.set_num_threads(int(__import__("os").environ.get("BENCH_THREADS", "2")))
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(Path(model_dir) / "tokenizer"))
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"), tokenizer=tok)
    model.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")), strict=False)
    model.eval()
    from sae_lens import SAE

    sae = SAE.load_from_disk(sae_dir, device="cpu")
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner

    tokens = load_file(tokens_file)["tokens"]
    feats = list(range(int(n_features)))
    vis_cfg = SaeVisConfig(hook_point=sae.cfg.metadata.hook_name if hasattr(sae.cfg, "metadata") else sae.cfg.hook_name,
                           features=feats, minibatch_size_features=256, minibatch_size_tokens=64, device="cpu", verbose=False)
    t0 = time.perf_counter()
    data = SaeVisRunner(vis_cfg).run(encoder=sae, model=model, tokens=tokens)
    seconds = time.perf_counter() - t0
    one = data.feature_data_dict[feats[0]]
    shown = sorted(k for k, v in vars(one).items() if v is not None)
    Path(out).write_text(json.dumps({"seconds": seconds, "n_features": len(feats), "n_tokens": int(tokens.numel()),
                                     "page_parts": shown}))


if __name__ == "__main__":
    main()
