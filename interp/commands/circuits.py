"""`interp circuits`: find a task's circuit with discrete-sae / patching / EAP / EAP-IG / ACDC, score
it by the reference-free faithfulness curves (CPR / CMD) and, where one exists, against the
reference circuit; print a table and optionally write JSON."""

from __future__ import annotations

import argparse

MAX_PROMPTS = 100_000  # prompt pairs per method and seed (patching runs one forward per head and pair)
MAX_SEEDS = 1_000
METHOD_CHOICES = ["discrete-sae", "patching", "eap", "eap-ig", "acdc", "all"]  # mirrors run.METHODS (kept literal: fast --help)


def cmd_circuits(args) -> int:
    from dataclasses import replace

    from interp.circuits.acdc import ACDCConfig
    from interp.circuits.discrete_sae import preset
    from interp.circuits.run import METHODS, CircuitConfig, format_table, load_named_model, run_circuits
    from interp.circuits.tasks import check_task_source
    from interp.errors import InterpError

    from interp.fields import check_count

    # counts first: a typo such as --prompts 100000000 is answered before the model loads
    check_count("--prompts", args.prompts, MAX_PROMPTS)
    check_count("--eval-prompts", args.eval_prompts, MAX_PROMPTS, lo=0)
    check_count("--seeds", args.seeds, MAX_SEEDS)
    for flag, v in (("--n-train", args.n_train), ("--top-k-codes", args.top_k_codes), ("--sae-steps", args.sae_steps)):
        if v is not None:
            check_count(flag, v, 10**7)
    check_task_source(args.task)  # bad task files fail before the model loads
    from interp.io import check_output_dir, check_output_file

    if args.reference_dir:  # a folder (or a new path) for references, never a file
        check_output_dir(args.reference_dir, marker=None, overwrite=True, what="--reference-dir")
    if args.json:
        check_output_file(args.json, overwrite=args.overwrite, inputs=[args.task, args.reference_dir], what="--json")
    methods = list(METHODS) if args.method == "all" else [args.method]
    try:
        over = {k: v for k, v in dict(n_train=args.n_train, position=args.position, arch=args.arch, top_k_codes=args.top_k_codes,
                                      steps=args.sae_steps).items() if v is not None}
        sae = replace(preset(args.sae_preset), **over, per_layer=args.per_layer, qkv_edges=args.qkv_edges)
        ac = ACDCConfig(tau=args.tau, objective=args.objective, level=args.acdc_level, progress=True)
    except (ValueError, TypeError) as e:
        raise InterpError(str(e)) from None
    cfg = CircuitConfig(n_prompts=args.prompts, seeds=args.seeds, threshold=args.threshold, keep=args.keep, sae=sae, acdc=ac,
                        n_eval=args.eval_prompts, ablation=args.ablation)
    model = load_named_model(args.model, getattr(args, "device", None))
    if args.build_reference:
        from interp.circuits.reference import REFERENCE_PROMPTS, build_reference, save_reference
        from interp.circuits.tasks import make_task

        ref = build_reference(model, make_task(model, args.task, n=REFERENCE_PROMPTS), args.model, keep=args.keep,
                              ablation=args.ablation)
        path = save_reference(ref, args.reference_dir)
        print(f"reference circuit for {ref.task}: {ref.size} heads {ref.heads}, faithfulness {ref.faithfulness:.3f}, "
              f"stability (mean Jaccard over {len(ref.stability['variants'])} variants) {ref.stability['jaccard_mean']:.2f} "
              f"({ref.n_forward} forwards, {ref.seconds:.1f}s) -> {path}")
        return 0
    res = run_circuits(args.model, args.task, methods, cfg, model=model, reference=args.reference,
                       reference_root=args.reference_dir)
    ref = res.reference
    print(f"{res.task} on {res.model}: metric {res.full_metric:.3f} (positive) vs {res.negative_metric:.3f} (negative)")
    if not res.separates:
        print("warning: the metric does not separate positive from negative prompts on this model: there is no circuit to find")
    if ref is None:
        print("no reference circuit: node AUC / F1 are n/a; CPR / CMD need none")
    else:
        print(f"reference {len(ref['heads'])} heads, faithfulness {ref['faithfulness']:.2f}")
    print(format_table(res))
    for m in res.summary:
        last = [r for r in res.runs if r.method == m][0]
        print(f"{m} circuit (seed 0): {' '.join(f'{l}.{h}' for l, h in last.circuit) or '(empty)'}")
    if args.json:
        print(f"wrote {res.save(args.json)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("circuits", help="find a task circuit (discrete SAE codes, patching, EAP, EAP-IG, ACDC) and score it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="embedded", help="model name or directory (embedded, embedded-attn, ...)")
    p.add_argument("--task", required=True, help="ioi, greater-than, docstring, or a FILE.jsonl (positive, negative, answer, wrong_answer)")
    p.add_argument("--method", default="discrete-sae", choices=METHOD_CHOICES)
    p.add_argument("--seeds", type=int, default=1, help="repeats (prompt draw; discrete-sae: SAE init and training subset)")
    p.add_argument("--json", help="write the full result (scores, curves, circuits, metrics, timings) here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--prompts", type=int, default=20, help="prompt pairs for patching, EAP, EAP-IG and ACDC")
    p.add_argument("--eval-prompts", type=int, default=40, help="held-out pairs of the CPR / CMD curves (0 = skip them)")
    p.add_argument("--ablation", default="resample", choices=["resample", "mean"],
                   help="how faithfulness, the faithful cut and a built reference ablate heads")
    p.add_argument("--threshold", default="auto", choices=["auto", "positive", "faithful"], help="how the circuit is cut from scores")
    p.add_argument("--keep", type=float, default=0.9, help="faithfulness the faithful threshold / reference must keep")
    p.add_argument("--reference", default="stored", choices=["stored", "build", "none"],
                   help="stored: a reference whose content matches (else reference-free metrics only); "
                        "build: build one now (slow, with progress) and store it; none: skip")
    p.add_argument("--reference-dir", help="where built references are stored and looked up (default: the user data dir)")
    p.add_argument("--sae-preset", default="paper", choices=["paper", "legacy"],
                   help="discrete-sae: the authors' protocol, or this package's earlier default")
    p.add_argument("--n-train", type=int, help="discrete-sae: prompts (paper) / pairs (legacy) the SAE trains on")
    p.add_argument("--position", choices=["mean", "last"], help="discrete-sae: average head outputs over positions, or last")
    p.add_argument("--arch", choices=["paper", "standard", "topk"], help="discrete-sae: the authors' SAE or a SAELens architecture")
    p.add_argument("--top-k-codes", type=int, help="discrete-sae: codes per (prompt, head); 1 = argmax")
    p.add_argument("--per-layer", action="store_true", help="discrete-sae: one SAE per layer instead of one shared")
    p.add_argument("--qkv-edges", action="store_true", help="discrete-sae: score edges into each head's q, k and v input separately")
    p.add_argument("--sae-steps", type=int, help="discrete-sae: SAE training steps (preset's default)")
    p.add_argument("--tau", type=float, default=0.01, help="ACDC: pruning threshold")
    p.add_argument("--objective", default="kl", choices=["kl", "metric"], help="ACDC: what tau thresholds")
    p.add_argument("--acdc-level", default="edge", choices=["edge", "node"], help="ACDC: prune edges or whole heads")
    p.add_argument("--build-reference", action="store_true",
                   help="build the reference circuit for --task and store it (--reference-dir or the user data dir), then exit")
    p.set_defaults(func=cmd_circuits)
