"""Activation collection vs a bare forward pass, and peak memory of a large collection.

    python benchmarks/collect_bench.py [--tokens 262144] [--big-tokens 2000000]

Side by side in one run, same model, same batch size, same token rows:
* bare forward: `model(tokens)` over the rows, no hooks, nothing stored;
* ours: `collect_activations` with one residual hook, writing shards to disk.
Peak memory is the max RSS of a fresh subprocess that collects `--big-tokens` tokens of one
residual hook (so the model, the tokenizer and Python itself are counted too).
Writes the "collect" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._readme import load_note, markdown_table, update_section  # noqa: E402
from interp.activations import CollectConfig, collect_activations, text_source, token_rows  # noqa: E402
from interp.models import load_model  # noqa: E402

# The last block: collection may stop after the deepest hooked block, so hooking the last one
# keeps the comparison with a full forward fair (only the unembedding is skipped).
HOOK = "blocks.{last}.hook_resid_post"


def _peak_rss_mb(tokens: int, batch_size: int) -> tuple[float, float]:
    code = f"""
import resource, sys, time, tempfile, logging
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import torch
from interp.activations import CollectConfig, collect_activations
from interp.models import load_model
m = load_model("embedded")
t = time.time()
with tempfile.TemporaryDirectory() as d:
    collect_activations(m, CollectConfig(hooks=[{HOOK!r}], n_tokens={tokens}, batch_size={batch_size}, dtype="float16"), d + "/a")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.time() - t)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss, secs = out.stdout.strip().splitlines()[-1].split()
    return float(rss), float(secs)


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256 * 1024)
    ap.add_argument("--big-tokens", type=int, default=2_000_000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    global HOOK
    load0 = _load_average()
    model = load_model("embedded")
    HOOK = HOOK.format(last=model.cfg.n_layers - 1)
    seq = model.cfg.n_ctx
    n_rows = args.tokens // seq
    docs, _ = text_source("corpus", 0)
    rows = torch.stack([r for _, r in zip(range(n_rows), token_rows(model, docs, seq))])

    def bare() -> float:
        t = time.time()
        with torch.no_grad():
            for i in range(0, n_rows, args.batch_size):
                model(rows[i : i + args.batch_size])
        return time.time() - t

    def ours() -> float:
        with tempfile.TemporaryDirectory() as d:
            t = time.time()
            collect_activations(model, CollectConfig(hooks=[HOOK], n_tokens=n_rows * seq, batch_size=args.batch_size), d + "/a")
            return time.time() - t

    bare(), ours()  # warm-up
    # interleave repeats so that machine load affects both sides alike; keep the best of each
    tb = to = float("inf")
    for _ in range(args.repeats):
        tb, to = min(tb, bare()), min(to, ours())
    n_tok = n_rows * seq
    rss, secs = _peak_rss_mb(args.big_tokens, args.batch_size)
    table = [
        {"measure": "bare forward (tokens/s)", "value": n_tok / tb, "target": ""},
        {"measure": f"collect 1 hook to disk (tokens/s), {HOOK}", "value": n_tok / to, "target": ""},
        {"measure": "collect / bare forward", "value": tb / to, "target": ">= 0.9"},
        {"measure": f"peak RSS collecting {args.big_tokens:,} tokens (MB)", "value": rss, "target": "< 1536"},
        {"measure": f"wall time of that collection (s)", "value": secs, "target": ""},
    ]
    cmd = " ".join(["python benchmarks/collect_bench.py", *sys.argv[1:]])
    body = (
        f"### Activation collection (`{cmd}`)\n\n"
        f"Embedded model, batch {args.batch_size} x {seq} tokens, {n_tok:,} tokens, best of {args.repeats} interleaved runs, "
        f"torch threads {torch.get_num_threads()}. Both sides run in one process after a warm-up of each, so both get "
        f"the heap setting collection applies (`interp.alloc.tune_malloc`). {load_note(load0, _load_average())}; the ratio "
        "compares interleaved runs.\n\n"
        + markdown_table(table)
    )
    update_section("collect", body)
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
