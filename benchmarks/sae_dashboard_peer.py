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
    from transformers import PreTrainedTokenizerFast

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    # the tokenizer was saved by transformers 5 (class name TokenizersBackend, unknown to the 4.x
    # this venv has): read its tokenizer.json directly, with the special tokens of its config
    tcfg = json.loads((Path(model_dir) / "tokenizer" / "tokenizer_config.json").read_text())
    special = {k: tcfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if isinstance(tcfg.get(k), str)}
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(model_dir) / "tokenizer" / "tokenizer.json"), **special)
    # TransformerLens 2.x re-loads a tokenizer by name unless it says it adds BOS itself; the token
    # rows given below already start with BOS, so this changes no input
    tok.init_kwargs.update(name_or_path=str(Path(model_dir) / "tokenizer"), add_bos_token=True)
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"), tokenizer=tok)
    state = load_file(str(Path(model_dir) / "model.safetensors"))
    own = model.state_dict()
    # buffers TransformerLens rebuilds (the causal mask, IGNORE) are stored empty by TL 3: keep the model's
    state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    missing = [k for k in own if k not in state and not k.endswith((".mask", ".IGNORE"))]
    assert not missing, f"weights missing for {missing[:5]}"
    model.load_state_dict(state, strict=False)
    model.eval()
    from sae_lens import SAE

    sae = SAE.load_from_disk(sae_dir, device="cpu")
    # SaeVisRunner folds the decoder norms into the encoder first; SAELens refuses that for TopK
    # SAEs. The bench SAE's decoder rows have unit norm, so folding is the identity: skip it.
    norms = sae.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4), "decoder rows must have unit norm to skip the fold"
    sae.fold_W_dec_norm = lambda: None
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner

    tokens = load_file(tokens_file)["tokens"]
    with torch.no_grad():  # the bench checks these against interp's model: same weights, same forward
        check = model(tokens[:2])[:, -1, :8].flatten().tolist()
    feats = list(range(int(n_features)))
    vis_cfg = SaeVisConfig(hook_point=sae.cfg.metadata.hook_name if hasattr(sae.cfg, "metadata") else sae.cfg.hook_name,
                           features=feats, minibatch_size_features=256, minibatch_size_tokens=64, device="cpu", verbose=False)
    t0 = time.perf_counter()
    data = SaeVisRunner(vis_cfg).run(encoder=sae, model=model, tokens=tokens)
    seconds = time.perf_counter() - t0
    one = data.feature_data_dict[feats[0]]
    shown = sorted(k for k, v in vars(one).items() if v is not None)
    Path(out).write_text(json.dumps({"seconds": seconds, "n_features": len(feats), "n_tokens": int(tokens.numel()),
                                     "page_parts": shown, "check_logits": check}))


if __name__ == "__main__":
    main()
