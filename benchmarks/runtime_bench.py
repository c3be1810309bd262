"""The model runtime (issue 24): TransformerLens' TransformerBridge vs a bare Hugging Face forward
and vs the legacy HookedTransformer path, on random-weight models of GPT-2-small size, built offline.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/runtime_bench.py [--repeats 3] [--rows 8] [--seq 128]

Models (written once with `save_pretrained` under --work, random weights from each family's own
initialiser, seed 0): ``gpt2-small`` (GPT2LMHeadModel, 12 layers, d_model 768, 12 heads, vocab
50257) and ``llama-small`` (LlamaForCausalLM, 12 layers, d_model 768, 12 heads, 4 key/value heads,
d_mlp 2048, vocab 32000).

Parts, each side timed in the same process, interleaved, fastest of --repeats kept, one thread:

* ``collect``: activations at ``blocks.5.hook_resid_post`` (the middle) for --rows x --seq tokens.
  interp: `interp.hooks.collect` on `load_model(dir)` (the bridge's forward, stopped after the hook).
  Bare Hugging Face: the same checkpoint's base model with its layer list cut to the first 6 blocks
  (so it stops at the same layer; it also runs the final norm), default attention (sdpa) and eager.
  Legacy: TransformerLens' HookedTransformer built from the same weights (its own converters, no
  processing), ``run_with_cache``-style hooks with ``stop_at_layer=6``: the path interp used for
  every non-GPT-2 family before the bridge (GPT-2 used a hand copy into GPT2Model, whose speed is
  the bare Hugging Face row).
* ``load``: wall time and peak RSS of loading in a fresh process that has imported everything:
  `interp.models.load_model(dir)` vs `AutoModelForCausalLM.from_pretrained(dir)`; the RSS
  high-water mark is reset after the imports (Linux ``/proc/self/clear_refs``), so the peak is the
  load's own (above the RSS after imports); every weight is then touched (safetensors maps the file
  lazily), so the peak holds the whole model.

Writes benchmarks/runtime_bench.json and the "runtime" section of benchmarks/README.md, with the
1-minute load average at start and end (2 shared cores: compare ratios, not seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MODELS = ("gpt2-small", "llama-small")
HOOK_LAYER = 5


def build(name: str, out: Path) -> Path:
    """Write the random model `name` to `out` (once)."""
    if (out / "config.json").exists():
        return out
    import transformers as T

    from tiny_models import write_tiny_tokenizer

    if name == "gpt2-small":
        cfg = T.GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    else:
        cfg = T.LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                            num_key_value_heads=4, max_position_embeddings=1024, vocab_size=32000)
    torch.manual_seed(0)
    m = T.AutoModelForCausalLM.from_config(cfg).eval()
    m.save_pretrained(str(out))
    write_tiny_tokenizer(out, prepends_bos=True)  # ids < 2304: any text works on both vocabularies
    return out


def legacy_model(path: Path, hf):
    """HookedTransformer with the checkpoint's weights through TransformerLens' own converters (no
    processing): interp's path before the bridge."""
    import warnings

    from transformer_lens import HookedTransformer, HookedTransformerConfig
    import transformer_lens.pretrained.weight_conversions as W

    c = hf.config
    if c.architectures[0] == "GPT2LMHeadModel":
        cfg = dict(d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head, d_mlp=4 * c.n_embd, n_layers=c.n_layer,
                   n_ctx=c.n_positions, eps=c.layer_norm_epsilon, d_vocab=c.vocab_size, act_fn="gelu_new",
                   normalization_type="LN", original_architecture="GPT2LMHeadModel")
        conv = W.convert_gpt2_weights
    else:
        cfg = dict(d_model=c.hidden_size, d_head=c.hidden_size // c.num_attention_heads, n_heads=c.num_attention_heads,
                   d_mlp=c.intermediate_size, n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings,
                   eps=c.rms_norm_eps, d_vocab=c.vocab_size, act_fn="silu", n_key_value_heads=c.num_key_value_heads,
                   normalization_type="RMS", positional_embedding_type="rotary", rotary_adjacent_pairs=False,
                   rotary_dim=c.hidden_size // c.num_attention_heads, final_rms=True, gated_mlp=True,
                   original_architecture="LlamaForCausalLM")
        conv = W.convert_llama_weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tcfg = HookedTransformerConfig(**cfg, device="cpu")
        ht = HookedTransformer(tcfg)
    ht.load_and_process_state_dict(conv(hf, tcfg), fold_ln=False, center_writing_weights=False, center_unembed=False,
                                   fold_value_biases=False, refactor_factored_attn_matrices=False)
    return ht.eval()


def collect_part(path: Path, rows: int, seq: int, repeats: int) -> dict:
    from transformers import AutoModelForCausalLM

    from interp.hooks import collect, parse_hook
    from interp.models import load_model

    torch.set_num_threads(1)
    model = load_model(str(path))
    spec = [parse_hook(model, f"blocks.{HOOK_LAYER}.hook_resid_post")]
    g = torch.Generator().manual_seed(0)
    toks = torch.randint(1, 2000, (rows, seq), generator=g)
    sides = {}
    for impl in ("sdpa", "eager"):
        hf = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation=impl).eval()
        base = hf.base_model
        layers = "h" if hasattr(base, "h") else "layers"
        setattr(base, layers, getattr(base, layers)[: HOOK_LAYER + 1])
        base.config.num_hidden_layers = HOOK_LAYER + 1
        if hasattr(base.config, "n_layer"):
            base.config.n_layer = HOOK_LAYER + 1
        sides[f"bare Hugging Face ({impl}), first {HOOK_LAYER + 1} blocks"] = (lambda b=base: b(input_ids=toks, use_cache=False))
    ht = legacy_model(path, AutoModelForCausalLM.from_pretrained(str(path)))
    name = spec[0].name

    def legacy():
        store = {}
        with ht.hooks(fwd_hooks=[(name, lambda a, hook: store.__setitem__("a", a))]):
            ht(toks, stop_at_layer=HOOK_LAYER + 1)
        return store["a"]

    sides[f"legacy HookedTransformer, stop_at_layer={HOOK_LAYER + 1}"] = legacy
    sides["interp: TransformerBridge (collect)"] = lambda: collect(model, spec, toks)
    ref = collect(model, spec, toks)[str(spec[0])]
    with torch.no_grad():
        agree = float((legacy() - ref).abs().max())
    best = {k: float("inf") for k in sides}
    with torch.no_grad():
        for _ in range(repeats):
            for k, f in sides.items():
                t0 = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t0)
    return {"tok_s": {k: rows * seq / v for k, v in best.items()}, "max_abs_diff_legacy_vs_bridge": agree}


LOAD_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
which, path = sys.argv[1], sys.argv[2]
from transformers import AutoModelForCausalLM
from interp.models import load_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
# imports can peak above the load itself: reset the high-water mark (Linux: clear_refs 5), so the
# peak below is the load's own
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
t0 = time.perf_counter()
m = load_model(path) if which == "interp" else AutoModelForCausalLM.from_pretrained(path)
t = time.perf_counter() - t0
# safetensors maps the file lazily: touch every weight (and buffer) so the RSS holds the model
with torch.no_grad():
    float(sum(v.float().sum() for v in m.state_dict().values()))
print(json.dumps({"seconds": t, "peak_mb": status("VmHWM") - base, "base_mb": base, "after_mb": status("VmRSS") - base}))
"""


def load_part(path: Path, repeats: int) -> dict:
    out = {}
    for _ in range(repeats):
        for which in ("interp", "hf"):
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            r = subprocess.run([sys.executable, "-c", LOAD_CHILD, which, str(path)], capture_output=True, text=True, env=env)
            if r.returncode:
                raise RuntimeError(r.stderr[-2000:])
            d = json.loads(r.stdout.strip().splitlines()[-1])
            prev = out.get(which)
            out[which] = d if prev is None else {k: min(prev[k], d[k]) for k in d}
    return out


def table(res: dict) -> str:
    lp = res.get("loadavg_parts") or {"collect": res["loadavg"], "load": res["loadavg"]}
    la = "; ".join(f"{k}: {v[0]:.1f} at the start, {v[1]:.1f} at the end" for k, v in lp.items())
    lines = [f"Random-weight models built offline (`{Path(__file__).name}`): GPT-2-small-sized GPT2LMHeadModel "
             "(12 layers, d_model 768, vocab 50257) and a Llama of the same size (4 key/value heads, d_mlp 2048, vocab 32000). "
             f"Collection: {res['rows']} x {res['seq']} tokens, activations at blocks.{HOOK_LAYER}.hook_resid_post, one thread, "
             f"fastest of {res['repeats']} interleaved runs in one process. 1-minute load average on 2 cores ({la}; above 1, "
             "other work shared the machine: the ratios, not the seconds, are the result).",
             "",
             "| model | forward | tokens/s | interp / this |",
             "|---|---|---:|---:|"]
    for m in MODELS:
        r = res["collect"][m]["tok_s"]
        ours = r["interp: TransformerBridge (collect)"]
        for k, v in r.items():
            lines.append(f"| {m} | {k} | {v:,.0f} | {ours / v:.2f}x |")
        lines.append(f"| {m} | (legacy vs bridge activations, max abs diff) | {res['collect'][m]['max_abs_diff_legacy_vs_bridge']:.1e} | |")
    lines += ["", "Loading in a fresh process (imports done first; the peak-RSS high-water mark is reset after them, so "
              "the peak is the load's own, above the RSS after imports, with every weight touched; fastest/lowest of "
              f"{res['repeats']}; the float32 weights are about 500 MB for gpt2-small, 430 MB for llama-small):", "",
              "| model | loader | seconds | peak RSS during load, MB | RSS held after, MB | interp / Hugging Face (peak) |",
              "|---|---|---:|---:|---:|---:|"]
    for m in MODELS:
        d = res["load"][m]
        for k, label in (("interp", "interp.models.load_model"), ("hf", "AutoModelForCausalLM.from_pretrained")):
            ratio = d[k]["peak_mb"] / d["hf"]["peak_mb"]
            lines.append(f"| {m} | {label} | {d[k]['seconds']:.2f} | {d[k]['peak_mb']:,.0f} | {d[k]['after_mb']:,.0f} | {ratio:.2f}x |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    p = ROOT / "benchmarks" / "README.md"
    s = p.read_text()
    head = "### The model runtime: TransformerBridge vs Hugging Face vs the legacy HookedTransformer"
    start = s.find(head)
    block = f"{head} (`python benchmarks/runtime_bench.py`)\n\n{text}\n"
    if start < 0:
        s = s.rstrip("\n") + "\n\n" + block
    else:
        end = s.find("\n### ", start + len(head))
        s = s[:start] + block + (s[end + 1:] if end >= 0 else "")
    p.write_text(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--work", default="/tmp/interp_runtime_bench")
    ap.add_argument("--parts", nargs="*", default=["collect", "load"])
    a = ap.parse_args()
    res = {"loadavg": [os.getloadavg()[0]], "rows": a.rows, "seq": a.seq, "repeats": a.repeats, "collect": {}, "load": {}}
    old = ROOT / "benchmarks" / "runtime_bench.json"
    if old.exists() and set(a.parts) != {"collect", "load"}:  # a rerun of one part keeps the other's results
        prev = json.loads(old.read_text())
        res.update({k: prev[k] for k in ("collect", "load") if k not in a.parts})
        res["loadavg_parts"] = {k: prev.get("loadavg_parts", {}).get(k, prev["loadavg"]) for k in ("collect", "load")
                                if k not in a.parts}
    paths = {m: build(m, Path(a.work) / m) for m in MODELS}
    res.setdefault("loadavg_parts", {})
    for part in ("collect", "load"):
        if part not in a.parts:
            continue
        start = os.getloadavg()[0]
        for m, p in paths.items():
            res[part][m] = collect_part(p, a.rows, a.seq, a.repeats) if part == "collect" else load_part(p, a.repeats)
            print(m, part, json.dumps(res[part][m]), flush=True)
        res["loadavg_parts"][part] = [start, os.getloadavg()[0]]
    res["loadavg"].append(os.getloadavg()[0])
    (ROOT / "benchmarks" / "runtime_bench.json").write_text(json.dumps(res, indent=1))
    if res["collect"] and res["load"]:
        write_readme(table(res))
    print(table(res) if res["collect"] and res["load"] else json.dumps(res))


if __name__ == "__main__":
    main()
