"""Feature-browser speed, each number next to a peer measured in the same run:

* feature statistics for a 2048-latent SAE over N tokens of the embedded corpus, vs a bare
  forward pass of the model over the same tokens (target: 1M tokens in < 10 min on 2 cores);
* the same statistics vs sae-dashboard 0.8 (SAEDashboard's SaeVisRunner, in its own venv built
  by benchmarks/sae_dashboard_venv.sh, driven by benchmarks/sae_dashboard_peer.py) on the same
  SAE, the same token rows and the same number of features (target: >= 2x faster);
* an HTML report of 100 features (target < 10 s), vs the JSON export of the same features.

Page renders, interactions and the app's start are measured by benchmarks/app_bench.py.

    python benchmarks/features_bench.py [--tokens 1000000] [--sae DIR]
        [--peer-tokens 16384] [--peer-features 2048] [--skip-peer]

With fewer than 1M tokens the 1M figure is extrapolated linearly and labelled so.
Writes the "features" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import load_note, markdown_table, update_section  # noqa: E402
from interp import features as F  # noqa: E402
from interp.activations import text_source, token_rows  # noqa: E402
from interp.models import load_model  # noqa: E402
from interp.reports import render  # noqa: E402


def bench_sae(model, d_sae: int, out: Path) -> Path:
    """A TopK SAE (SAELens) with random unit decoder rows at the middle layer's residual stream:
    speed does not depend on training."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    g = torch.Generator().manual_seed(0)
    hook = f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"
    sae = TopKSAE(TopKSAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, k=32, metadata=SAEMetadata(hook_name=hook, model_name="embedded")))
    with torch.no_grad():
        w = torch.randn(d_sae, model.cfg.d_model, generator=g)
        sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
    out.mkdir(parents=True, exist_ok=True)
    sae.save_model(str(out))
    return out


@torch.no_grad()
def bare_forward(model, n_tokens: int, batch_size: int = 32) -> float:
    docs, _ = text_source("corpus", 0)
    rows = token_rows(model, docs, model.cfg.n_ctx)
    t0, seen = time.perf_counter(), 0
    while seen < n_tokens:
        toks = torch.stack([r for _, r in zip(range(min(batch_size, -(-(n_tokens - seen) // model.cfg.n_ctx))), rows)])
        model(toks)
        seen += toks.numel()
    return time.perf_counter() - t0


PEER_VENV = ROOT / ".cache" / "venv-sae-dashboard"


def vs_sae_dashboard(model, sae_dir: Path, n_tokens: int, n_features: int, tmp: Path) -> dict:
    """Ours and sae-dashboard 0.8 on the same SAE, token rows and number of features.

    Ours always computes every latent of the SAE (it has no per-feature mode), so with
    n_features < d_sae it does more work than the peer; the peer runs in a subprocess of its own
    venv with the same thread count."""
    import json

    from safetensors.torch import save_file

    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"no peer venv at {PEER_VENV.relative_to(ROOT)}; run bash benchmarks/sae_dashboard_venv.sh (or --skip-peer)")
    docs, _ = text_source("corpus", 0)
    n_rows = max(1, n_tokens // model.cfg.n_ctx)
    rows = torch.stack([r for _, r in zip(range(n_rows), token_rows(model, docs, model.cfg.n_ctx))]).contiguous()
    save_file({"tokens": rows}, str(tmp / "peer_tokens.safetensors"))
    sae = F.load_sae_dir(sae_dir)
    t0 = time.perf_counter()
    F.build_feature_stats(model, F.SaeSource(sae, model), F.StatsConfig(n_tokens=rows.numel()), tokens=rows)
    ours = time.perf_counter() - t0
    out = tmp / "peer.json"
    env = {**os.environ, "BENCH_THREADS": str(torch.get_num_threads()), "PYTHONPATH": ""}
    subprocess.run([str(py), str(ROOT / "benchmarks" / "sae_dashboard_peer.py"), str(ROOT / "interp" / "embedded"), str(sae_dir),
                    str(tmp / "peer_tokens.safetensors"), str(n_features), str(out)], check=True, env=env, cwd=ROOT)
    peer = json.loads(out.read_text())
    with torch.no_grad():
        ours_check = model(rows[:2])[:, -1, :8].flatten()
    diff = float((ours_check - torch.tensor(peer["check_logits"])).abs().max())
    assert diff < 1e-3, f"the peer's model differs from ours (max logit difference {diff})"
    return {"ours": ours, "peer": peer["seconds"], "n_tokens": int(rows.numel()), "n_features": n_features,
            "d_sae": int(sae.cfg.d_sae), "peer_parts": peer["page_parts"], "logit_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--sae", help="a 2048-latent SAE dir (default: a random TopK SAE built here)")
    ap.add_argument("--peer-tokens", type=int, default=4096, help="tokens for the sae-dashboard comparison")
    ap.add_argument("--peer-features", type=int, default=512, help="features for the sae-dashboard comparison")
    ap.add_argument("--skip-peer", action="store_true", help="skip the sae-dashboard comparison")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    load0 = os.getloadavg()[0]
    model = load_model("embedded")
    tmp = Path(tempfile.mkdtemp(prefix="features_bench_"))
    try:
        sae_dir = tmp / "saes" / "embedded" / "bench"
        if args.sae:
            shutil.copytree(args.sae, sae_dir)
        else:
            bench_sae(model, 2048, sae_dir)
        sae = F.load_sae_dir(sae_dir)
        d_sae = int(sae.cfg.d_sae)
        rows = []
        peer = None
        if not args.skip_peer:
            peer = vs_sae_dashboard(model, sae_dir, args.peer_tokens, args.peer_features, tmp)
            rows.append({"measurement": f"feature stats, {peer['n_features']} of {peer['d_sae']} latents, {peer['n_tokens']:,} tokens "
                                        f"(ours computes all {peer['d_sae']})",
                         "seconds": peer["ours"], "peer": "sae-dashboard 0.8 SaeVisRunner, same SAE/tokens/features",
                         "peer seconds": peer["peer"], "ratio": peer["ours"] / peer["peer"], "target": "ratio <= 0.5 (>= 2x faster)"})
        t_fwd = bare_forward(model, args.tokens)
        t0 = time.perf_counter()
        stats = F.build_feature_stats(model, F.SaeSource(sae, model), F.StatsConfig(n_tokens=args.tokens), source_name=str(sae_dir))
        t_stats = time.perf_counter() - t0
        F.save_stats(stats, sae_dir)
        scale = 1_000_000 / args.tokens
        ids = list(range(min(100, d_sae)))
        t0 = time.perf_counter()
        (tmp / "r.html").write_text(render(stats, ids, "html"))
        t_html = time.perf_counter() - t0
        t0 = time.perf_counter()
        (tmp / "r.json").write_text(render(stats, ids, "json"))
        t_json = time.perf_counter() - t0
        rows += [
            {"measurement": f"feature stats, {d_sae} latents, {args.tokens:,} tokens", "seconds": t_stats,
             "peer": "bare forward, same tokens", "peer seconds": t_fwd, "ratio": t_stats / t_fwd, "target": "-"},
            {"measurement": "feature stats per 1M tokens" + (" (extrapolated linearly)" if args.tokens != 1_000_000 else ""),
             "seconds": t_stats * scale, "peer": "bare forward per 1M", "peer seconds": t_fwd * scale, "ratio": t_stats / t_fwd,
             "target": "< 600 s"},
            {"measurement": f"HTML report, {len(ids)} features", "seconds": t_html, "peer": "JSON export, same features",
             "peer seconds": t_json, "ratio": t_html / t_json, "target": "< 10 s"},
        ]
        _write(rows, args, d_sae, sae_dir, load0, peer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write(rows: list[dict], args, d_sae: int, sae_dir: Path, load0: float, peer: dict | None) -> None:
    import json

    b = json.loads((ROOT / "interp" / "embedded" / "model_card.json").read_text()).get("build", {})
    hook = json.loads((sae_dir / "cfg.json").read_text())["metadata"]["hook_name"]
    body = (f"Model: embedded ({b.get('n_layers')} layers, d_model {b.get('d_model')}); SAE: {'given' if args.sae else 'random TopK k=32'}, "
            f"{d_sae} latents at {hook}; torch threads {torch.get_num_threads()}; "
            f"{load_note(load0)} (the side-by-side ratios hold better than absolute times).\n\n"
            + markdown_table(rows, ["measurement", "seconds", "peer", "peer seconds", "ratio", "target"]))
    if peer:
        body += ("\n\nWhat a feature page holds: sae-dashboard's feature data has " + ", ".join(f"`{p}`" for p in peer["peer_parts"])
                 + "; ours has top activations with per-token values, samples from each activation interval with headers, "
                 "the activation histogram, the feature's place on the source's frequency histogram, promoted/suppressed logit "
                 "chips and the logit histogram, correlated features, dense/dead flags, input- and output-side labels, "
                 "and token search by specificity.")
    update_section("features", body)
    print(body)


if __name__ == "__main__":
    main()
