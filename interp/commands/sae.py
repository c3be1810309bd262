"""SAE subcommands: train-sae, eval-sae, list."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp.errors import InterpError

MAX_EVAL_TOKENS = 10**9  # held-out tokens of eval-sae (each is a model forward plus the SAE)


def _configs(args) -> tuple[list, list[Path]]:
    from interp.sae.config import K_ARCHS, RECIPE_FIELDS, SAETrainConfig

    hooks = [h if args.head is None else f"{h}:{args.head}" for h in args.hook]
    if args.head is not None and any(":" in h for h in args.hook):
        raise InterpError("give the head either as NAME:HEAD or with --head, not both")
    combos = [(h, a) for h in hooks for a in args.arch]
    cfgs, outs = [], []
    for h, a in combos:
        k, l1 = args.k, args.l1
        if len(args.arch) > 1:  # a mixed sweep: --k goes to the k architectures, --l1 to the others
            k, l1 = (k, None) if a in K_ARCHS else (None, l1)
        recipe = {f: getattr(args, f) for f in RECIPE_FIELDS if getattr(args, f, None) is not None}
        cfgs.append(SAETrainConfig(hook=h, model=args.model, arch=a, d_sae=args.d_sae, k=k, l1=l1, tokens=args.tokens,
                                   lr=args.lr, batch_size=args.batch_size, seed=args.seed, checkpoint_every=args.checkpoint_every,
                                   **recipe))
        outs.append(Path(args.out) if len(combos) == 1 else Path(args.out) / f"{h.replace(':', '.h')}__{a}")
    return cfgs, outs


def cmd_train_sae(args) -> int:
    from interp.commands.scale import parallel_from_args
    from interp.sae.train import train_saes

    cfgs, outs = _configs(args)
    for name in ("tokens", "eval_tokens", "act_tokens"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise InterpError(f"--{name.replace('_', '-')} must be positive, got {v}")
    from dataclasses import replace

    from interp.data.sources import spec_from_args

    if args.acts_dir is None and args.source != "corpus":  # a text source too small for the collection: one line now
        from interp.data.sources import check_token_budget, open_source

        check_token_budget(open_source(spec_from_args(args)), args.act_tokens or max(c.tokens for c in cfgs),
                           "--act-tokens" if args.act_tokens else "--tokens")
    results, collect_s = train_saes(cfgs, outs, acts_dir=args.acts_dir, act_tokens=args.act_tokens,
                                    eval_tokens=args.eval_tokens, overwrite=args.overwrite, device=getattr(args, "device", None),
                                    source=replace(spec_from_args(args), seed=0),  # --seed is the SAE's, not the corpus'
                                    parallel=parallel_from_args(args))
    print(f"collected activations in {collect_s:.1f}s")
    for r in results:
        m = r.metrics
        resumed = f" (resumed from step {r.resumed_from})" if r.resumed_from else ""
        print(f"{r.out_dir}: {r.config.arch} {r.config.hook} d_sae={r.config.d_sae} l0={m['l0']:.1f} "
              f"explained_variance={m['explained_variance']:.3f} ce_loss_score={m['ce_loss_score']:.3f} "
              f"frac_alive={m['frac_alive']:.3f} [{r.train_seconds:.1f}s]{resumed}")
    return 0


def cmd_eval_sae(args) -> int:
    from interp.data.sources import open_source, spec_from_args
    from interp.sae.eval import CORE_KEYS, evaluate_sae_dir

    if args.tokens <= 0:
        raise InterpError(f"--tokens must be positive, got {args.tokens}")
    from interp.data.sources import check_token_budget
    from interp.fields import check_count

    check_count("--tokens", args.tokens, MAX_EVAL_TOKENS)
    spec = spec_from_args(args)  # the embedded corpus is read at its held-out seed (`eval_tokens`)
    check_token_budget(open_source(spec), args.tokens)  # a missing file, a text field, a source too small: one line now
    res = evaluate_sae_dir(args.dir, model_name=args.model, n_tokens=args.tokens, source=spec,
                           device=getattr(args, "device", None))
    if args.json:
        from interp.io import json_safe

        print(json.dumps(json_safe(res.metrics), indent=2))  # an undefined score (NaN) is null
    else:
        for k in CORE_KEYS:
            print(f"{k:30s} {res.metrics[k]:.4f}")
    return 0


def _local_models() -> list[tuple[str, str]]:
    import os

    from interp.models import EMBEDDED_DIR

    out = []
    card = EMBEDDED_DIR / "config.json"
    if card.exists():
        c = json.loads(card.read_text())
        out.append(("embedded", f"{c.get('n_layers')} layers, d_model {c.get('d_model')}, {c.get('n_heads')} heads (shipped)"))
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if hub.is_dir():
        for d in sorted(hub.glob("models--*")):
            out.append((d.name[len("models--"):].replace("--", "/"), "Hugging Face hub cache"))
    return out


def cmd_list(args) -> int:
    from interp.sae.io import list_saes

    if args.root is None:
        args.root = "saes"
    else:  # a folder the user named must be one (a file or a typo listed "0 SAEs" and exited 0)
        root = Path(args.root)
        if not root.exists():
            raise InterpError(f"--root {root} does not exist")
        if not root.is_dir():
            raise InterpError(f"--root {root} is not a directory")
    print("models:")
    for name, what in _local_models():
        print(f"  {name:28s} {what}")
    saes = list_saes(args.root)
    print(f"SAEs under {args.root}/: {len(saes)}")
    if saes:
        print(f"  {'path':44s} {'model':10s} {'hook':30s} {'arch':10s} {'d_sae':>6s} {'l0':>6s} {'EV':>6s} {'CE':>6s} {'alive':>6s}")
    fmt = lambda m, k: f"{m[k]:6.3f}" if isinstance(m.get(k), (int, float)) else f"{'-':>6s}"  # noqa: E731
    for s in saes:
        l0 = f"{s.metrics['l0']:6.1f}" if isinstance(s.metrics.get("l0"), (int, float)) else f"{'-':>6s}"
        print(f"  {s.path:44s} {str(s.model):10s} {s.hook:30s} {s.arch:10s} {s.d_sae:6d} {l0} "
              f"{fmt(s.metrics, 'explained_variance')} {fmt(s.metrics, 'ce_loss_score')} {fmt(s.metrics, 'frac_alive')}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from interp.data.sources import add_source_args
    from interp.sae.config import ARCHS

    p = sub.add_parser("train-sae", help="train SAEs (SAELens) at hooks, several from one activation pass")
    p.add_argument("--model", default="embedded", help="embedded, a local directory, or a TransformerLens name")
    p.add_argument("--hook", nargs="+", required=True, help="hook spec(s) NAME or NAME:HEAD; several train from one pass")
    p.add_argument("--head", type=int, help="attention head index for a per-head hook (attn.hook_z)")
    p.add_argument("--arch", nargs="+", default=["topk"], choices=ARCHS, help="SAELens architecture(s)")
    p.add_argument("--d-sae", type=int, default=1024, help="number of latents")
    p.add_argument("--k", type=int, help="active latents per token (topk, batchtopk, matryoshka)")
    p.add_argument("--l1", type=float, help="sparsity coefficient (standard, gated: L1; jumprelu: L0)")
    p.add_argument("--tokens", type=int, default=1_000_000, help="training activations seen per SAE")
    p.add_argument("--out", required=True, help="output SAE directory (a parent directory when training several)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing SAE directory (never a file or another kind of directory)")
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's rule: adam 1e-3, signum 5e-3/sqrt(d_sae/16384))")
    p.add_argument("--optimizer", choices=["adam", "signum"], help="adam (SAELens) or signum (sparsify's SignSGD + schedule-free; TopK default)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="scale activations to E||x|| = sqrt(d_in) while training (SAELens; folded into the saved weights)")
    p.add_argument("--unit-norm-decoder", action=argparse.BooleanOptionalAction, default=None,
                   help="keep decoder rows at unit norm (sparsify) instead of SAELens' rescaling by ||W_dec||")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                   help="shuffle activation rows (default) or train in the model's order")
    p.add_argument("--data-init", action=argparse.BooleanOptionalAction, default=None,
                   help="start decoder rows at directions of real activations (else sparsify's W_dec = W_enc^T)")
    p.add_argument("--aux-coef", type=float, help="weight of SAELens' AuxK dead-latent loss (0: off)")
    p.epilog = ("Recipe flags left unset take the architecture's default: TopK trains with sparsify's recipe (signum, no "
                "normalisation, unit-norm decoder, W_enc^T init, no AuxK, model order; measured in benchmarks/sae_bench.py), "
                "the other architectures with SAELens' (adam, normalised, rescaled decoder, data init, AuxK 1, shuffled).")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between resumable checkpoints (0: none)")
    p.add_argument("--act-tokens", type=int, help="activations to collect (default: --tokens; fewer means several epochs)")
    p.add_argument("--acts-dir", help="activation cache directory (default: $INTERP_HOME/acts/<model>-<hash>, removed after training)")
    p.add_argument("--eval-tokens", type=int, default=16384, help="held-out tokens for the metrics")
    from interp.commands.scale import add_launch_args, parallel_command

    add_source_args(p)
    add_launch_args(p, distribute_hooks=True)
    p.set_defaults(func=parallel_command(cmd_train_sae))

    p = sub.add_parser("eval-sae", help="SAEBench core metrics of a SAELens-format SAE directory")
    p.add_argument("dir", help="SAE directory (cfg.json + sae_weights.safetensors) or sae-lens:RELEASE/SAE_ID")
    p.add_argument("--model", help="model to evaluate on (default: the one in cfg.json metadata)")
    p.add_argument("--tokens", type=int, default=16384, help="held-out tokens")
    add_source_args(p, context_help="tokens per row (default: the model's n_ctx); the embedded corpus is read at its held-out seed")
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=cmd_eval_sae)

    p = sub.add_parser("list", help="models and SAEs available locally, with key metrics")
    p.add_argument("--root", default=None, help="where to look for SAEs (default: saes)")
    p.set_defaults(func=cmd_list)
