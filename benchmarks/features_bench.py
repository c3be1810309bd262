"""Feature-browser speed, each number next to a peer measured in the same run:

* feature statistics for a 2048-latent SAE over N tokens of the embedded corpus, vs a bare
  forward pass of the model over the same tokens (target: 1M tokens in < 10 min on 2 cores);
* an HTML report of 100 features (target < 10 s), vs the JSON export of the same features;
* a warm Features-page render in AppTest (target < 300 ms), vs a warm Home-page render;
* app ready from launch: `interp app` until /_stcore/health answers, and until the first page
  has rendered in headless Chromium (target < 15 s).

    python benchmarks/features_bench.py [--tokens 1000000] [--sae DIR] [--skip-app]

With fewer than 1M tokens the 1M figure is extrapolated linearly and labelled so.
Writes the "features" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402
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


def page_times(sae_dir: Path, n: int = 7) -> tuple[float, float]:
    """Median warm render (ms) of the Features page (stepping through features) and of Home."""
    from streamlit.testing.v1 import AppTest

    os.environ["INTERP_SAE_ROOT"] = str(sae_dir.parent.parent)
    main = str(ROOT / "app" / "main.py")
    at = AppTest.from_file(main, default_timeout=600)
    at.session_state["sae_dir"] = str(sae_dir)
    at.run()
    at.switch_page("pages/features.py").run()  # cold: loads statistics
    assert not at.exception, at.exception
    feat = []
    for _ in range(n):
        t0 = time.perf_counter()
        at.button[1].click().run()  # next feature
        feat.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, at.exception
    home = []
    at.switch_page("pages/home.py").run()
    for _ in range(n):
        t0 = time.perf_counter()
        at.run()
        home.append((time.perf_counter() - t0) * 1000)
    return statistics.median(feat), statistics.median(home)


def app_ready(sae_root: Path) -> tuple[float, float]:
    """Seconds from launching `interp app` to health 'ok', and to the first page rendered in Chromium."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INTERP_SAE_ROOT": str(sae_root)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "interp", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.1)
        t_health = time.perf_counter() - t0
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                  args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            page = b.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("h1", timeout=120_000)
            page.wait_for_selector("[data-testid='stDataFrame']", timeout=120_000)  # Home's tables drawn
            t_page = time.perf_counter() - t0
            b.close()
        return t_health, t_page
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--sae", help="a 2048-latent SAE dir (default: a random TopK SAE built here)")
    ap.add_argument("--skip-app", action="store_true", help="skip the Chromium app-launch measurement")
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
        feat_ms, home_ms = page_times(sae_dir)
        rows = [
            {"measurement": f"feature stats, {d_sae} latents, {args.tokens:,} tokens", "seconds": t_stats,
             "peer": "bare forward, same tokens", "peer seconds": t_fwd, "ratio": t_stats / t_fwd, "target": "-"},
            {"measurement": "feature stats per 1M tokens" + (" (extrapolated linearly)" if args.tokens != 1_000_000 else ""),
             "seconds": t_stats * scale, "peer": "bare forward per 1M", "peer seconds": t_fwd * scale, "ratio": t_stats / t_fwd,
             "target": "< 600 s"},
            {"measurement": f"HTML report, {len(ids)} features", "seconds": t_html, "peer": "JSON export, same features",
             "peer seconds": t_json, "ratio": t_html / t_json, "target": "< 10 s"},
            {"measurement": "warm Features page render (AppTest, median of 7)", "seconds": feat_ms / 1000,
             "peer": "warm Home page render", "peer seconds": home_ms / 1000, "ratio": feat_ms / home_ms, "target": "< 0.3 s"},
        ]
        if not args.skip_app:
            t_health, t_page = app_ready(tmp / "saes")
            rows.append({"measurement": "app ready: launch to first page rendered (Chromium)", "seconds": t_page,
                         "peer": "launch to /_stcore/health ok", "peer seconds": t_health, "ratio": t_page / t_health,
                         "target": "< 15 s"})
        card = (ROOT / "interp" / "embedded" / "model_card.json").read_text()
        import json

        b = json.loads(card).get("build", {})
        body = (f"Model: embedded ({b.get('n_layers')} layers, d_model {b.get('d_model')}); SAE: {'given' if args.sae else 'random TopK k=32'}, "
                f"{d_sae} latents at {stats.meta['hook']}; torch threads {torch.get_num_threads()}; "
                f"1-min load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end (on {os.cpu_count()} cores: "
                f"above that, other processes shared the CPU and every absolute time is inflated; the ratios hold better).\n\n"
                + markdown_table(rows, ["measurement", "seconds", "peer", "peer seconds", "ratio", "target"]))
        update_section("features", body)
        print(body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
