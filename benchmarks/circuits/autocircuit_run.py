"""Peer cross-check: auto-circuit's EAP and ACDC on the same weights and prompts as ours.

Runs in the SEPARATE venv built by `autocircuit_env.sh` (auto-circuit 1.0.1 needs transformer-lens
2.x; the main package never imports it). It loads the embedded weights into a transformer-lens
2.18 HookedTransformer built from config.json (use_attn_result, use_split_qkv_input,
use_hook_mlp_in set), wraps it with auto-circuit's `patchable_model`, and runs

* EAP:  `mask_gradient_prune_scores(grad_function="logit", answer_function="avg_diff", mask_val=0)`
        (auto-circuit's fast, test-verified equivalent of its EAP);
* ACDC: `acdc_prune_scores(faithfulness_target="kl_div")` over the given tau values.

Head (node) score = over the head's outgoing edges, the sum of |score| (EAP) or the max score
(ACDC: an edge kept at every tau scores +inf, else the largest tau that pruned it).

    /tmp/ac-venv/bin/python benchmarks/circuits/autocircuit_run.py IN.json OUT.json

IN.json: {"model_dir", "tasks": [{"task", "seed", "reference": [[l, h], ...], "clean": [[ids]],
"corrupt": [[ids]], "answers": [[ids]], "wrong": [[ids]], "acdc": true}], "taus": [..]} ("acdc":
false runs only EAP on that entry, since ACDC is the slow one). All prompts of one
entry must have the same token count. OUT.json: one row per (task, seed, method) with node
scores, node ROC AUC against the reference, and wall seconds.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """Mann-Whitney ROC AUC (ties count 1/2), the same formula as interp.circuits.metrics.roc_auc."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def load_tl2_model(model_dir: Path):
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = json.loads((model_dir / "config.json").read_text())
    cfg.update(use_attn_result=True, use_split_qkv_input=True, use_hook_mlp_in=True, device="cpu")
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    state = {k: v for k, v in load_file(str(model_dir / "model.safetensors")).items() if not k.endswith(("attn.mask", "IGNORE"))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.endswith(("IGNORE", "mask"))]
    if bad or unexpected:
        raise SystemExit(f"weights do not match the transformer-lens 2.18 model: missing {bad[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def node_scores(model, prune_scores, reduce: str) -> list[list[float]]:
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = [[0.0] * H for _ in range(L)]
    for e in model.edges:
        src = e.src
        if src.head_idx is None or ".attn" not in src.module_name:
            continue
        layer = int(src.module_name.split(".")[1])
        v = float(e.prune_score(prune_scores))
        v = 1e9 if math.isinf(v) else abs(v)
        out[layer][src.head_idx] = out[layer][src.head_idx] + v if reduce == "sum" else max(out[layer][src.head_idx], v)
    return out


def main(inp: str, outp: str) -> None:
    torch.set_num_threads(1)
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.ACDC import acdc_prune_scores
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.utils.graph_utils import patchable_model

    spec = json.loads(Path(inp).read_text())
    rows = []
    for entry in spec["tasks"]:
        model = load_tl2_model(Path(spec["model_dir"]))
        if "check_logits" in entry:  # same weights, same numbers as transformer-lens 3 gave
            with torch.no_grad():
                got = model(torch.tensor(entry["clean"][:1]))[0, -1]
            if not torch.allclose(got, torch.tensor(entry["check_logits"]), atol=1e-3):
                raise SystemExit("transformer-lens 2.18 and 3 disagree on the same weights; not comparable")
        L, H = model.cfg.n_layers, model.cfg.n_heads
        t0 = time.perf_counter()
        model = patchable_model(model, factorized=True, slice_output="last_seq", separate_qkv=True, device=torch.device("cpu"))
        wrap_s = time.perf_counter() - t0
        ds = PromptDataset(torch.tensor(entry["clean"]), torch.tensor(entry["corrupt"]),
                           [torch.tensor(a) for a in entry["answers"]], [torch.tensor(w) for w in entry["wrong"]])
        dl = PromptDataLoader(ds, seq_len=None, diverge_idx=0, batch_size=len(ds), shuffle=False)
        ref = {tuple(h) for h in entry["reference"]}
        labels = [(l, h) in ref for l in range(L) for h in range(H)]
        runs = {
            "auto-circuit eap": (lambda: mask_gradient_prune_scores(model, dl, None, grad_function="logit",
                                                                   answer_function="avg_diff", mask_val=0.0), "sum"),
            "auto-circuit acdc": (lambda: acdc_prune_scores(model, dl, None, tao_exps=spec.get("tau_exps", [-2]),
                                                            tao_bases=spec.get("tau_bases", [1]), faithfulness_target="kl_div"), "max"),
        }
        if not entry.get("acdc", True):
            runs.pop("auto-circuit acdc")
        for name, (fn, reduce) in runs.items():
            t0 = time.perf_counter()
            ps = fn()
            secs = time.perf_counter() - t0 + wrap_s
            ns = node_scores(model, ps, reduce)
            rows.append({"task": entry["task"], "seed": entry["seed"], "method": name, "node_scores": ns,
                         "node_auc": roc_auc([s for r in ns for s in r], labels), "seconds": secs})
            print(f"{entry['task']} seed {entry['seed']} {name}: AUC {rows[-1]['node_auc']:.3f} in {secs:.1f}s", flush=True)
    tmp = Path(outp).with_suffix(".tmp")
    tmp.write_text(json.dumps(rows))
    tmp.replace(outp)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
