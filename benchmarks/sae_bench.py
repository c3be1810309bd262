"""SAE training, side by side: ours (bridge forward -> cached activations -> SAELens trainer) vs
EleutherAI sparsify (`eai-sparsify`) and SAELens' own `LanguageModelSAETrainingRunner`, on the
same weights, corpus rows, hook, k, latents, batch and token count. Four parts:

* ``speed``: each setup's tokens/s and held-out FVU, L0 and dead fraction, for 1 SAE and for
  4 SAEs from one model pass (each run a fresh process, interleaved repeats, fastest kept);
* ``split``: where the time goes per batch of 4,096 tokens (model forward of each side);
* ``recipe``: sparsify's training choices applied one at a time to ours (held-out FVU at equal
  L0 and tokens, mean +/- std over seeds);
* ``memory``: peak RSS training from an activation store of 0.5M and 10M tokens.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sae_bench.py [--parts speed split recipe memory] [--tokens 200000] [--repeats 2]

Writes the "sae" section of benchmarks/README.md; each part's table is kept in
benchmarks/sae_bench.json so a rerun of one part regenerates the whole section.
sparsify runs on the same checkpoint loaded as a plain Hugging Face GPT2Model (the embedded model is
a Hugging Face GPT-2 checkpoint), hooking ``h.L`` (= ``blocks.L.hook_resid_post``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402

RESULTS = Path(__file__).with_name("sae_bench.json")
D_SAE_MULT, K, BATCH, SEQS = 4, 32, 4096, 32  # SEQS x n_ctx(128) = BATCH tokens
HELDOUT_TOKENS = 16384


# --- shared helpers (child processes) -----------------------------------------------------------


def _rows(model, n_rows: int) -> list[list[int]]:
    """The first `n_rows` context rows of the embedded corpus (seed 0): every side trains on these."""
    from interp.activations import text_source, token_rows

    docs, _ = text_source("corpus", 0)
    return [r.tolist() for _, r in zip(range(n_rows), token_rows(model, docs, model.cfg.n_ctx))]


def _heldout(model, hooks: list[str]) -> dict[str, torch.Tensor]:
    """Held-out activations (the bridge's own hooks, BOS position dropped)."""
    from interp.hooks import capture
    from interp.sae.eval import eval_tokens

    toks = eval_tokens(model, HELDOUT_TOKENS)
    with torch.no_grad(), capture(model, hooks) as st:
        model(toks)
    return {h: st[h][:, 1:].reshape(-1, st[h].shape[-1]).float() for h in hooks}


@torch.no_grad()
def _quality(encode_decode, x: torch.Tensor) -> dict:
    """Held-out FVU = sum ||x - x_hat||^2 / sum ||x - mean x||^2, L0, fraction of latents that never fire."""
    x_hat, codes = encode_decode(x)
    fvu = ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
    return {"fvu": fvu, "l0": (codes != 0).float().sum(-1).mean().item(), "dead": (codes.abs().sum(0) == 0).float().mean().item()}


def _sae_lens_quality(sae, x):
    def f(x):
        codes = sae.encode(x)
        return sae.decode(codes), codes
    return _quality(f, x)


def _sparsify_quality(sae, x):
    def f(x):
        enc = sae.encode(x)
        codes = torch.zeros(len(x), sae.num_latents).scatter_(-1, enc.top_indices, enc.top_acts)
        return sae.decode(enc.top_acts, enc.top_indices), codes
    return _quality(f, x)


# --- setups -------------------------------------------------------------------------------------


def hf_gpt2():
    """The embedded checkpoint as a plain Hugging Face GPT2Model (float32, eval)."""
    from transformers import GPT2Model

    from interp.models import EMBEDDED_DIR

    return GPT2Model.from_pretrained(str(EMBEDDED_DIR)).eval()


def run_ours(model, hooks: list[str], tokens: int, work: Path, **recipe) -> tuple[float, dict]:
    """`train_saes` for one SAE per hook: the bridge's forward once -> float16 store -> train each -> save."""
    from interp.sae.config import SAETrainConfig
    from interp.sae.io import load_sae
    from interp.sae.train import train_saes

    cfgs = [SAETrainConfig(hook=h, d_sae=D_SAE_MULT * model.cfg.d_model, k=K, tokens=tokens, batch_size=BATCH,
                           checkpoint_every=0, **recipe) for h in hooks]
    outs = [work / f"ours_{i}" for i in range(len(hooks))]
    t0 = time.time()
    train_saes(cfgs, outs, acts_dir=work / "acts", act_tokens=tokens, eval_tokens=128, model=model)
    t = time.time() - t0
    return t, {h: load_sae(o) for h, o in zip(hooks, outs)}


def run_sparsify(model, hooks: list[str], tokens: int, work: Path) -> tuple[float, dict]:
    """sparsify's `Trainer` with its defaults (SignSGD + schedule-free, its lr rule, FVU loss) on the
    converted GPT-2, `tokens // BATCH` batches of SEQS rows, one SAE per hook from one pass."""
    from datasets import Dataset
    from sparsify import SaeConfig, TrainConfig, Trainer

    hf = hf_gpt2()
    steps = tokens // BATCH
    ds = Dataset.from_dict({"input_ids": _rows(model, steps * SEQS)}).with_format("torch")
    points = [f"h.{h.split('.')[1]}" for h in hooks]
    cfg = TrainConfig(SaeConfig(k=K, num_latents=D_SAE_MULT * model.cfg.d_model), batch_size=SEQS, hookpoints=points,
                      log_to_wandb=False, save_dir=str(work / "sparsify"), save_every=10**9)
    t0 = time.time()
    tr = Trainer(cfg, ds, hf)
    tr.fit()
    t = time.time() - t0
    return t, {h: tr.saes[p] for h, p in zip(hooks, points)}


def run_saelens(model, hook: str, tokens: int, work: Path, normalize: str = "expected_average_only_in",
                **runner) -> tuple[float, dict]:
    """SAELens' LanguageModelSAETrainingRunner (construction + run), its defaults for TopK (Adam).
    `normalize` and `runner` (LanguageModelSAERunnerConfig fields) override them (benchmarks/scale_bench.py)."""
    from datasets import Dataset
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig, TopKTrainingSAEConfig

    ds = Dataset.from_dict({"input_ids": _rows(model, tokens // model.cfg.n_ctx + 64 * 32)})
    cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=model.cfg.d_model, d_sae=D_SAE_MULT * model.cfg.d_model, k=K,
                                  normalize_activations=normalize),
        model_name="embedded", hook_name=hook, dataset_path="unused", is_dataset_tokenized=True, streaming=False,
        context_size=model.cfg.n_ctx, prepend_bos=False, training_tokens=tokens, train_batch_size_tokens=BATCH,
        lr=1e-3, device="cpu", n_batches_for_norm_estimate=8,
        logger=LoggingConfig(log_to_wandb=False), checkpoint_path=None, output_path=str(work / "saelens_out"), verbose=False,
        **{"store_batch_size_prompts": 32, "n_batches_in_buffer": 32, **runner},
    )
    t0 = time.time()
    sae = LanguageModelSAETrainingRunner(cfg, override_dataset=ds, override_model=model).run()
    return time.time() - t0, {hook: sae}


def speed_child(kind: str, tokens: int, work: str) -> None:
    """(Child process) one timed training run; prints JSON {seconds, quality per hook}."""
    import sae_lens  # noqa: F401  (imports are not timed: every setup pays them before its clock starts)
    import sparsify  # noqa: F401

    from interp.models import load_model

    torch.set_num_threads(1)
    model = load_model("embedded")
    L = model.cfg.n_layers
    mid = f"blocks.{L // 2}.hook_resid_post"
    hooks = [mid] if kind.endswith("1") or kind == "saelens" else [f"blocks.{l}.hook_resid_post" for l in range(L)]
    w = Path(work)
    if kind == "saelens":
        t, saes = run_saelens(model, mid, tokens, w)
        q = {h: _sae_lens_quality(s, x) for (h, s), x in zip(saes.items(), _heldout(model, hooks).values())}
    elif kind.startswith("sparsify"):
        t, saes = run_sparsify(model, hooks, tokens, w)
        q = {h: _sparsify_quality(s, x) for (h, s), x in zip(saes.items(), _heldout(model, hooks).values())}
    else:
        from interp.sae.config import RECIPES

        recipe = RECIPES["saelens"] if kind == "ours1_adam" else {}
        t, saes = run_ours(model, hooks, tokens, w, **recipe)
        q = {h: _sae_lens_quality(s, x) for (h, s), x in zip(saes.items(), _heldout(model, hooks).values())}
    print(json.dumps({"seconds": t, "quality": q}))


def split_child(reps: int) -> None:
    """(Child process) ms per batch of SEQS x n_ctx tokens for each side's model forward."""
    from interp.hooks import Collector
    from interp.models import load_model

    torch.set_num_threads(1)
    model = load_model("embedded")
    mid = f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"
    stop = model.cfg.n_layers // 2 + 1
    toks = torch.tensor(_rows(model, SEQS))
    hf = hf_gpt2()
    fast = Collector(model, [mid])
    runs = {
        f"TransformerBridge run_with_cache, stop_at_layer={stop} (SAELens' runner)":
            lambda: model.run_with_cache(toks, names_filter=[mid], stop_at_layer=stop),
        f"Hugging Face GPT2Model, all {model.cfg.n_layers} blocks (sparsify)": lambda: hf(input_ids=toks, use_cache=False),
        f"interp.hooks.Collector (TransformerBridge, stops after block {stop - 1}) (interp now)": lambda: fast(toks),
    }
    best = {k: float("inf") for k in runs}
    with torch.no_grad():
        for _ in range(reps):
            for k, f in runs.items():  # interleaved
                t0 = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t0)
    print(json.dumps({k: v * 1000 for k, v in best.items()}))


def recipe_child(tokens: int, seeds: int, work: str) -> None:
    """(Child process) sparsify's choices one at a time on ours, on one cached store; held-out quality."""
    from interp.activations import ActivationStore, CollectConfig, collect_activations
    from interp.models import load_model
    from interp.sae.config import RECIPES, SAETrainConfig
    from interp.sae.io import to_inference
    from interp.sae.train import fit_sae, store_batches

    torch.set_num_threads(1)
    model = load_model("embedded")
    hook = f"blocks.{model.cfg.n_layers // 2}.hook_resid_post"
    acts = Path(work) / "recipe_acts"
    collect_activations(model, CollectConfig(hooks=[hook], n_tokens=tokens, dtype="float16"), acts)
    store = ActivationStore(acts)
    x = _heldout(model, [hook])[hook]
    d = model.cfg.d_model
    common = dict(hook=hook, d_sae=D_SAE_MULT * d, k=K, tokens=tokens, batch_size=BATCH, checkpoint_every=0)
    before = SAETrainConfig(**common, **RECIPES["saelens"])
    variants = {
        "interp before (SAELens recipe: Adam lr 1e-3 + warm-up/decay, normalised input, decoder-norm rescaling, data init, AuxK 1, shuffled)": before,
        "+ sparsify's optimiser (SignSGD + schedule-free, lr 5e-3/sqrt(d_sae/2^14) = 0.02)": replace(before, optimizer="signum", lr=None),
        "+ no input normalisation": replace(before, normalize=False),
        "+ explicit unit-norm decoder rows (with Adam)": replace(before, unit_norm_decoder=True),
        "+ AuxK off": replace(before, aux_coef=0.0),
        "+ model-order data (no shuffle)": replace(before, shuffle=False),
        "+ sparsify's init (W_dec = W_enc^T) instead of data init": replace(before, data_init=False),
        "interp now = all of sparsify's choices (the new TopK default)": SAETrainConfig(**common),
    }
    out = {}
    for name, c in variants.items():
        qs = []
        for seed in range(seeds):
            cs = replace(c, seed=seed)
            r = fit_sae(cs, d, store_batches(store, hook, cs.batch_size, cs.seed, cs.shuffle), {"hook_name": hook})
            qs.append(_sae_lens_quality(to_inference(r.sae), x))
        out[name] = qs
        print(name, [round(q["fvu"], 4) for q in qs], file=sys.stderr, flush=True)
    print(json.dumps(out))


def memory_child(n_tokens: int, steps: int, work: str) -> None:
    """(Child process) write an activation store of `n_tokens` float16 vectors (d_model 256, the
    store's own shard format; random values, since a model pass over 10M tokens takes hours on
    this CPU), then train a shipped-size TopK SAE streaming from it for `steps` steps; print the
    peak RSS in MiB as JSON."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    from interp.activations import ActivationStore, CollectConfig, Manifest
    from interp.sae.config import SAETrainConfig
    from interp.sae.train import fit_sae, store_batches

    torch.set_num_threads(1)
    d, seq, rows = 256, 128, 256
    hook = "blocks.2.hook_resid_post"
    acts = Path(work) / f"mem_acts_{n_tokens}"
    n_shards = -(-n_tokens // (rows * seq))
    ccfg = CollectConfig(hooks=[hook], n_tokens=n_tokens, dtype="float16")
    (acts / hook).mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n_shards):
        save_file({"acts": (torch.randn(rows * seq, d, generator=g) + 1.0).half()}, str(acts / hook / f"shard_{i:05d}.safetensors"))
    Manifest(model="synthetic", hooks=[hook], d={hook: d}, dtype="float16", seq_len=seq, n_tokens=n_shards * rows * seq,
             corpus="synthetic", config=asdict(ccfg), shards_done=n_shards, n_shards=n_shards, shard_rows=rows, complete=True).write(acts)
    store = ActivationStore(acts)
    cfg = SAETrainConfig(hook=hook, d_sae=4 * d, k=K, tokens=steps * BATCH, batch_size=BATCH, checkpoint_every=0)
    t0 = time.time()
    fit_sae(cfg, d, store_batches(store, hook, BATCH, 0), {"hook_name": hook})
    print(json.dumps({"tokens": store.manifest.n_tokens, "steps": steps, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "train_s": time.time() - t0, "disk_mib": sum(f.stat().st_size for f in acts.rglob("*.safetensors")) / 2**20}))
    shutil.rmtree(acts)


def _child(args: list[str]) -> dict:
    return _finish(subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(err[-3000:])
    return json.loads(out.strip().splitlines()[-1])


# --- parts (parent) -----------------------------------------------------------------------------

SPEED_KINDS = {
    "saelens": "SAELens LanguageModelSAETrainingRunner (Adam)",
    "sparsify1": "sparsify 1.3.3 Trainer, its defaults (SignSGD + schedule-free)",
    "ours1_adam": "interp, before-recipe settings (Adam) + bridge forward",
    "ours1": "interp train-sae (new default recipe + bridge forward)",
    "sparsify4": "sparsify 1.3.3 Trainer, its defaults",
    "ours4": "interp train-sae (new default recipe + bridge forward)",
}


def part_speed(a, tmp: Path) -> str:
    best: dict[str, dict] = {}
    kinds = [k for k in SPEED_KINDS if k in a.kinds]
    for rep in range(a.repeats):  # interleaved, so a slow spell of the machine hits every setup alike
        ws = {k: tmp / f"{k}_{rep}" for k in kinds}
        for w in ws.values():
            w.mkdir()
        args = {k: ["--speed-child", k, "--tokens", str(a.tokens), "--work", str(ws[k])] for k in kinds}
        if a.parallel:  # every setup at once: each process gets the same share of a busy machine
            procs = {k: subprocess.Popen([sys.executable, __file__, *args[k]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True) for k in kinds}
            res = {k: _finish(p) for k, p in procs.items()}
        else:
            res = {k: _child(args[k]) for k in kinds}
        for k, r in res.items():
            print(f"run {rep} {k}: {r['seconds']:.1f} s", flush=True)
            if k not in best or r["seconds"] < best[k]["seconds"]:
                best[k] = r
            shutil.rmtree(ws[k], ignore_errors=True)
        _save_part("speed", _speed_table(a, best, rep + 1))  # each finished round is kept, should a later one be cut short
    return _speed_table(a, best, a.repeats)


def _speed_table(a, best: dict, rounds: int) -> str:
    lens_tps = a.tokens / best["saelens"]["seconds"]
    sp1 = a.tokens / best["sparsify1"]["seconds"]
    mid = "blocks.2.hook_resid_post"
    rows = []
    for k, label in SPEED_KINDS.items():
        if k not in best:
            continue
        n = 4 if k.endswith("4") else 1
        tps = n * a.tokens / best[k]["seconds"]
        q = best[k]["quality"]
        qm = q[mid]
        rows.append({"setup": label, "SAEs from one pass": n, "wall s": round(best[k]["seconds"], 1),
                     "tokens/s per SAE": round(tps), "x SAELens runner": round(tps / lens_tps, 2),
                     "x sparsify (1 SAE)": round(tps / sp1, 2), f"held-out FVU ({mid})": round(qm["fvu"], 4),
                     "mean FVU over its SAEs": round(statistics.mean(v["fvu"] for v in q.values()), 4),
                     "L0": round(qm["l0"], 1), "dead latents": f"{100 * qm['dead']:.1f}%"})
    return ("### SAE training: interp vs sparsify vs SAELens\n\n"
            f"Embedded model (4 layers, d_model 256), TopK k={K}, {D_SAE_MULT * 256} latents, batches of {BATCH} tokens "
            f"({SEQS} rows of 128), {a.tokens} training tokens per SAE ({a.tokens // BATCH} steps), the same corpus rows "
            "(seed 0), one torch thread. Every run is a fresh process (imports done before the clock starts); fastest of "
            f"{rounds} round(s){', the setups of a round run side by side' if a.parallel else ' of interleaved runs'}. 1-minute load "
            f"average {a.load[0]:.1f} on 2 cores when the part started, {os.getloadavg()[0]:.1f} when it ended (above 1, other "
            "work shared the machine): the ratios, not the seconds, are the result. Quality on "
            f"{HELDOUT_TOKENS} held-out tokens (the bridge's own activations, BOS dropped): FVU = "
            "sum ||x - x_hat||^2 / sum ||x - mean||^2 (random reconstruction by the mean: 1.0), L0, fraction of latents "
            "that never fire. Our wall time counts everything: the bridge forward (interp.hooks.Collector) writing float16 activation shards, "
            "reading them back, training, saving and a 128-token eval. sparsify trains on the same checkpoint (a Hugging "
            "Face GPT-2) loaded as a plain `GPT2Model`, hooking `h.L`"
            + ("; the 4-SAE rows hook every layer's residual stream." if any(k.endswith("4") for k in best) else
               ". The 4-SAEs-from-one-pass setups were not part of this run (`--kinds`).")
            + "\n\n" + markdown_table(rows))


def part_split(a, tmp: Path) -> str:
    r = _child(["--split-child", str(max(3, a.repeats * 2))])
    rows = [{"forward per batch of 4096 tokens": k, "ms (best)": round(v)} for k, v in r.items()]
    return ("### Where the forward time goes\n\nOne process, the three forwards interleaved, best of "
            f"{max(3, a.repeats * 2)}; one thread; shared machine.\n\n" + markdown_table(rows))


def part_recipe(a, tmp: Path) -> str:
    w = tmp / "recipe"
    w.mkdir()
    r = _child(["--recipe-child", str(a.seeds), "--tokens", str(a.tokens), "--work", str(w)])
    base = statistics.mean(q["fvu"] for q in next(iter(r.values())))
    rows = []
    for name, qs in r.items():
        f = [q["fvu"] for q in qs]
        rows.append({"recipe": name, "held-out FVU (mean ± std)": f"{statistics.mean(f):.4f} ± {statistics.pstdev(f):.4f}",
                     "change vs before": f"{statistics.mean(f) - base:+.4f}", "L0": round(statistics.mean(q['l0'] for q in qs), 1),
                     "dead latents": f"{100 * statistics.mean(q['dead'] for q in qs):.1f}%"})
    return ("### Which of sparsify's choices help (ours, one change at a time)\n\n"
            f"blocks.2.hook_resid_post, TopK k={K}, {D_SAE_MULT * 256} latents, {a.tokens // BATCH} steps of {BATCH} "
            f"tokens from one cached float16 store; seeds 0-{a.seeds - 1} (init and batch order); held-out FVU as above "
            "(the mean's FVU is 1.0). Each '+' row changes one thing from the first row.\n\n" + markdown_table(rows))


def part_memory(a, tmp: Path) -> str:
    mem = [_child(["--memory-child", str(n), "--mem-steps", str(a.mem_steps), "--work", str(tmp)]) for n in a.mem_tokens]
    rows = [{"cached tokens in the store": m["tokens"], "shards on disk (MiB)": round(m["disk_mib"]), "steps trained": m["steps"],
             "peak RSS (MiB)": round(m["rss_mib"]), "train s": round(m["train_s"], 1)} for m in mem]
    return ("### Peak memory training from cached activations\n\nOne process writes an activation store (float16 shards "
            "of 32768 x 256 in the store's format; random values, because a model pass over 10M tokens takes hours on this "
            f"CPU), then trains a TopK SAE (d_sae 1024, k {K}, batch {BATCH}) streaming shuffled batches from it for the "
            "steps shown; peak RSS of that process. The reader holds at most two shards, so memory does not grow with "
            "the store.\n\n" + markdown_table(rows))


def _save_part(part: str, text: str) -> None:
    """Store one part's table and regenerate the section (re-read first: two invocations with
    different --parts may run side by side)."""
    done = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    done[part] = text
    RESULTS.write_text(json.dumps(done, indent=1))
    update_section("sae", "\n\n".join(done[k] for k in PARTS if k in done))


PARTS = {"speed": part_speed, "split": part_split, "recipe": part_recipe, "memory": part_memory}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens per SAE")
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each setup (the fastest is reported)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per recipe variant")
    p.add_argument("--kinds", nargs="+", default=list(SPEED_KINDS), choices=list(SPEED_KINDS), help="setups of the speed part")
    p.add_argument("--parallel", action="store_true",
                   help="run a round's setups side by side (on a machine busy with other work each gets an equal share)")
    p.add_argument("--mem-tokens", type=int, nargs="*", default=[500_000, 10_000_000])
    p.add_argument("--mem-steps", type=int, default=40)
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--speed-child", help=argparse.SUPPRESS)
    p.add_argument("--split-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--recipe-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.load = os.getloadavg()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if a.memory_child:
        return memory_child(a.memory_child, a.mem_steps, a.work)
    if a.speed_child:
        return speed_child(a.speed_child, a.tokens, a.work)
    if a.split_child:
        return split_child(a.split_child)
    if a.recipe_child:
        return recipe_child(a.tokens, a.recipe_child, a.work)

    (ROOT / "runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "runs") as tmp:
        for part in a.parts:
            text = PARTS[part](a, Path(tmp))
            _save_part(part, text)
            print(text, flush=True)


if __name__ == "__main__":
    main()
