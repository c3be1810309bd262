"""Scale benchmark: a random-weight GPT-2-small-sized model (12 layers, d_model 768, 12 heads, built
offline from its config) and the embedded model.

* collection (`interp collect`'s library call, shards written to disk) vs a bare HookedTransformer
  forward that stops at the same layer and keeps nothing (target >= 0.9x);
* SAE training tokens/s, `interp.sae.train.train_saes` vs SAELens' `LanguageModelSAETrainingRunner`
  on the same model, hook and SAE config (TopK, d_sae = 4 x d_model, k = 32, batch 4096 tokens;
  the two training functions of `benchmarks/sae_bench.py`) (target >= 1.0x). Both sides do the same
  work (`SAELENS_EQUAL`): one forward pass over the training tokens in batches of 32 rows of n_ctx,
  no activation normalisation (ours' TopK recipe has none, so SAELens gets none and skips its norm
  estimate), activations served in model order (SAELens' mixing fraction 0; ours' TopK recipe does
  not shuffle), and a buffer of one training batch (n_batches_in_buffer x n_ctx = 4096 tokens at
  n_ctx 128), so SAELens never forwards tokens it does not train on;
* peak resident memory of each run (its own child process, `ru_maxrss`).

Each measurement runs in a fresh child process; peer and ours run in the same invocation on the
same (possibly shared) machine, and the table reports ratios.

    nice -n 5 python benchmarks/scale_bench.py [--collect-tokens 16384] [--sae-tokens 16384]
                                               [--big-collect-tokens 4096] [--big-sae-tokens 8192]

(`--big-*`: the GPT-2-small-sized model, sized so its four runs finish in about 5 minutes on one
busy core.)

Writes the `scale` section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402

MODELS = {
    "embedded": None,
    "gpt2-small-size (random)": dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, n_ctx=128,
                                     d_vocab=50257, act_fn="gelu_new", normalization_type="LN", model_name="gpt2-size-random"),
}
GPU_NOTE = ("\n\n**GPU** (`bash benchmarks/gpu_check.sh`: collect, train-sae, eval-sae, features, circuits "
            "discrete-sae and eap, unlearn and a short MoE-X training with `--device cuda` beside the CPU run): "
            "not run yet; the machines these numbers come from have no GPU.")
HOOK_LAYER = {"gpt2-small-size (random)": 6, "embedded": 2}
BIG = "gpt2-small-size (random)"
# SAELens runner settings that make it do the same work as ours (module docstring)
SAELENS_EQUAL = dict(normalize="none", store_batch_size_prompts=32, n_batches_in_buffer=32, activations_mixing_fraction=0.0)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _model(name: str):
    from transformers import AutoTokenizer

    from interp.models import EMBEDDED_DIR, build_from_config, load_model

    if MODELS[name] is None:
        return load_model("embedded", device="cpu")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer"))  # ids < 2304 < d_vocab: any text works
    return build_from_config(MODELS[name], tokenizer=tok).eval()


def child(name: str, part: str, tokens: int) -> None:
    torch.set_num_threads(1)
    model = _model(name)
    hook = f"blocks.{HOOK_LAYER[name]}.hook_resid_post"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if part in ("bare", "collect"):
            from interp.activations import CollectConfig, collect_activations, text_source, token_rows

            seq = model.cfg.n_ctx
            n_rows, bs = -(-tokens // seq), 32
            docs, _ = text_source("corpus", 0)
            rows = torch.stack([r for _, r in zip(range(n_rows), token_rows(model, docs, seq))])
            t0, c0 = time.perf_counter(), time.process_time()
            if part == "bare":
                with torch.no_grad():
                    for i in range(0, n_rows, bs):
                        model(rows[i : i + bs], stop_at_layer=HOOK_LAYER[name] + 1)
            else:
                collect_activations(model, CollectConfig(hooks=[hook], n_tokens=n_rows * seq, batch_size=bs), work / "a")
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = n_rows * seq
        else:
            from benchmarks.sae_bench import run_ours, run_saelens

            c0 = time.process_time()
            dt, _ = (run_ours(model, [hook], tokens, work) if part == "ours"
                     else run_saelens(model, hook, tokens, work, **SAELENS_EQUAL))
            cpu = time.process_time() - c0  # SAELens' includes tokenizing its dataset (~1% of it)
            n = tokens
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tok_s": n / dt, "seconds": dt, "tok_cpu_s": n / cpu, "cpu_seconds": cpu, "peak_mb": peak}))


def _speed(r: dict) -> str:
    return f"{r['tok_cpu_s']:.0f} ({r['tok_s']:.0f})"


def _ratio(a: dict, b: dict) -> str:
    return f"{a['tok_cpu_s'] / b['tok_cpu_s']:.2f} ({a['tok_s'] / b['tok_s']:.2f})"


def _run(name: str, part: str, tokens: int) -> dict:
    load0 = load_average()
    r = subprocess.run([sys.executable, __file__, "--child", name, part, str(tokens)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{name} {part} failed:\n{r.stderr[-3000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["load"] = (load0 + load_average()) / 2
    print(f"{name} {part} {tokens} tokens: {json.dumps(res)}", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--collect-tokens", type=int, default=16384, help="embedded model")
    p.add_argument("--sae-tokens", type=int, default=16384, help="embedded model")
    p.add_argument("--big-collect-tokens", type=int, default=4096, help="GPT-2-small-sized model")
    p.add_argument("--big-sae-tokens", type=int, default=8192, help="GPT-2-small-sized model")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]))
        return
    rows = []
    for name in a.models:
        ct, st = (a.big_collect_tokens, a.big_sae_tokens) if name == BIG else (a.collect_tokens, a.sae_tokens)
        res = {part: _run(name, part, ct if part in ("bare", "collect") else st) for part in ("bare", "collect", "saelens", "ours")}
        print(name, json.dumps(res), flush=True)
        rows.append({
            "model": name,
            "hook": f"blocks.{HOOK_LAYER[name]}.hook_resid_post",
            "tokens collect / SAE": f"{ct} / {st}",
            "bare forward tok/CPU-s (tok/s)": _speed(res["bare"]),
            "collect tok/CPU-s (tok/s)": _speed(res["collect"]),
            "collect / bare (>= 0.9), CPU (wall)": _ratio(res["collect"], res["bare"]),
            "SAELens runner tok/CPU-s (tok/s)": _speed(res["saelens"]),
            "interp train-sae tok/CPU-s (tok/s)": _speed(res["ours"]),
            "ours / SAELens (>= 1.0), CPU (wall)": _ratio(res["ours"], res["saelens"]),
            "peak MB collect / SAELens / ours": f"{res['collect']['peak_mb']:.0f} / {res['saelens']['peak_mb']:.0f} / {res['ours']['peak_mb']:.0f}",
            "load avg bare / collect / SAELens / ours": " / ".join(f"{res[k]['load']:.1f}" for k in ("bare", "collect", "saelens", "ours")),
            "CPU s (wall s)": f"{sum(res[k]['cpu_seconds'] for k in res):.0f} ({sum(res[k]['seconds'] for k in res):.0f})",
        })
    body = ("`nice -n 5 python benchmarks/scale_bench.py` (the token counts are in the table; SAE: TopK d_sae = "
            "4 x d_model, k = 32, batch 4096 tokens, context 128 tokens, forward batches of 32 rows; SAELens' runner with "
            "`normalize_activations='none'`, `n_batches_in_buffer=32` (a 4096-token buffer, one training batch), "
            "`store_batch_size_prompts=32`, `activations_mixing_fraction=0`, so both sides forward and train on the same "
            "tokens, in model order, without normalisation; one torch thread; each number from its own child process, "
            "one after another). The GPT-2-small-sized model is random-weight, 12 layers, d_model 768, 12 heads, "
            "d_mlp 3072, d_vocab 50257, n_ctx 128, hooked at layer 6. The 1-minute load average measured during each "
            "run is in the table; where it exceeds the core count, wall-clock speeds swing with the other work. Each run is "
            "single-threaded, so its CPU seconds (`time.process_time`, all threads of the child) measure its work "
            "far more stably than the wall clock: the ratios are given on CPU time first and on wall time in "
            "brackets.\n\n") + markdown_table(rows) + GPU_NOTE
    update_section("scale", body)
    print(body)


if __name__ == "__main__":
    main()
