"""SAE training throughput: ours (cached activations -> SAELens trainer) vs SAELens' own
`LanguageModelSAETrainingRunner`, same model, hook, SAE config and token count, in one run.
Also the peak memory (RSS) of training from an activation store, at two store sizes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sae_bench.py [--tokens 200000] [--mem-tokens 500000 2000000]

Writes the "sae" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402

D_SAE_MULT, K, BATCH, LR = 4, 32, 4096, 1e-3


def ours(model, hooks: list[str], tokens: int, work: Path) -> float:
    """Wall seconds of `train_saes` for one SAE per hook: collect once + train each + save."""
    from interp.sae.config import SAETrainConfig
    from interp.sae.train import train_saes

    cfgs = [SAETrainConfig(hook=h, d_sae=D_SAE_MULT * model.cfg.d_model, k=K, tokens=tokens, batch_size=BATCH, lr=LR,
                           checkpoint_every=0) for h in hooks]
    t0 = time.time()
    train_saes(cfgs, [work / f"ours_{i}" for i in range(len(hooks))], acts_dir=work / f"acts_{len(hooks)}",
               act_tokens=tokens, eval_tokens=128, model=model)
    return time.time() - t0


def saelens_runner(model, hook: str, tokens: int, work: Path) -> float:
    """Wall seconds of SAELens' LanguageModelSAETrainingRunner (construction + run) for one SAE."""
    from datasets import Dataset
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig, TopKTrainingSAEConfig

    from interp.activations import text_source, token_rows

    n_rows = tokens // model.cfg.n_ctx + 64 * 32  # enough rows for the runner's buffer refills
    docs, _ = text_source("corpus", 0)
    rows = [r.tolist() for _, r in zip(range(n_rows), token_rows(model, docs, model.cfg.n_ctx))]
    ds = Dataset.from_dict({"input_ids": rows})
    cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=model.cfg.d_model, d_sae=D_SAE_MULT * model.cfg.d_model, k=K,
                                  normalize_activations="expected_average_only_in"),
        model_name="embedded", hook_name=hook, dataset_path="unused", is_dataset_tokenized=True, streaming=False,
        context_size=model.cfg.n_ctx, prepend_bos=False, training_tokens=tokens, train_batch_size_tokens=BATCH,
        store_batch_size_prompts=32, n_batches_in_buffer=32, lr=LR, device="cpu", n_batches_for_norm_estimate=8,
        logger=LoggingConfig(log_to_wandb=False), checkpoint_path=None, output_path=str(work / "saelens_out"), verbose=False,
    )
    t0 = time.time()
    LanguageModelSAETrainingRunner(cfg, override_dataset=ds, override_model=model).run()
    return time.time() - t0


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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens per SAE")
    p.add_argument("--model", default="embedded", help="model to benchmark on (a directory or name)")
    p.add_argument("--mem-tokens", type=int, nargs="*", default=[500_000, 10_000_000])
    p.add_argument("--mem-steps", type=int, default=40)
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if a.memory_child:
        memory_child(a.memory_child, a.mem_steps, a.work)
        return

    from interp.models import load_model

    model = load_model(a.model)
    L = model.cfg.n_layers
    mid = f"blocks.{L // 2}.hook_resid_post"
    all_resid = [f"blocks.{l}.hook_resid_post" for l in range(L)]
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT / "runs" if (ROOT / "runs").exists() else None) as tmp:
        work = Path(tmp)
        t_lens = saelens_runner(model, mid, a.tokens, work)
        t_one = ours(model, [mid], a.tokens, work)
        t_many = ours(model, all_resid, a.tokens, work)
        lens_tps = a.tokens / t_lens
        rows.append({"setup": f"SAELens LanguageModelSAETrainingRunner, 1 SAE ({mid})", "SAEs": 1, "wall s": t_lens,
                     "tokens/s per SAE": lens_tps, "ratio vs SAELens": 1.0})
        rows.append({"setup": f"ours: collect once + train, 1 SAE ({mid})", "SAEs": 1, "wall s": t_one,
                     "tokens/s per SAE": a.tokens / t_one, "ratio vs SAELens": (a.tokens / t_one) / lens_tps})
        rows.append({"setup": f"ours: collect once + train, {L} SAEs (resid_post of every layer)", "SAEs": L, "wall s": t_many,
                     "tokens/s per SAE": L * a.tokens / t_many, "ratio vs SAELens": (L * a.tokens / t_many) / lens_tps})
        mem = []
        for n in a.mem_tokens:
            r = subprocess.run([sys.executable, __file__, "--memory-child", str(n), "--mem-steps", str(a.mem_steps), "--work", tmp],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            mem.append(json.loads(r.stdout.strip().splitlines()[-1]))
    cfg = (f"Model `{a.model}` ({L} layers, d_model {model.cfg.d_model}); TopK SAE d_sae={D_SAE_MULT * model.cfg.d_model}, k={K}, "
           f"batch {BATCH}, lr {LR}, {a.tokens} training tokens per SAE, activation normalisation on both sides. "
           "Our wall time counts everything: the model pass that writes float16 activation shards, reading them back, "
           "training, saving (and a 128-token eval). SAELens' runner does its own model passes into its mixing buffer "
           "(n_batches_in_buffer=32).")
    mem_rows = [{"cached tokens in the store": m["tokens"], "shards on disk (MiB)": m["disk_mib"], "steps trained": m["steps"],
                 "peak RSS (MiB)": m["rss_mib"], "train s": m["train_s"]} for m in mem]
    body = ("### SAE training throughput\n\n" + cfg + "\n\n" + markdown_table(rows) +
            "\n\n### Peak memory training from cached activations\n\nOne process writes an activation store (float16 shards "
            "of 32768 x 256 in the store's format; random values, because a model pass over 10M tokens takes hours on this "
            f"CPU), then trains a TopK SAE (d_sae 1024, k {K}, batch {BATCH}) streaming shuffled batches from it for the "
            "steps shown; peak RSS of that process. The reader holds at most two shards, so memory does not grow with "
            "the store.\n\n"
            + markdown_table(mem_rows))
    update_section("sae", body)
    print(body)


if __name__ == "__main__":
    main()
