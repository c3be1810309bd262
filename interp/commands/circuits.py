"""`interp circuits`: find a task's circuit with discrete-sae / patching / EAP / ACDC, score it
against the reference circuit, print a table and optionally write JSON."""

from __future__ import annotations

import argparse

DEFAULT_SAE_STEPS = 100  # mirrors DiscreteSAEConfig.steps (not imported: keeps `interp --help` fast)


def cmd_circuits(args) -> int:
    from interp.circuits.acdc import ACDCConfig
    from interp.circuits.discrete_sae import DiscreteSAEConfig
    from interp.circuits.run import METHODS, CircuitConfig, format_table, run_circuits
    from interp.errors import InterpError
    from interp.models import load_model

    model = load_model(args.model)
    if args.build_reference:
        from interp.circuits.reference import REFERENCE_PROMPTS, build_reference, save_reference
        from interp.circuits.tasks import make_task

        ref = build_reference(model, make_task(model, args.task, n=REFERENCE_PROMPTS), args.model, keep=args.keep)
        path = save_reference(ref)
        print(f"reference circuit for {args.task}: {ref.size} heads {ref.heads}, faithfulness {ref.faithfulness:.3f} "
              f"({ref.n_forward} forwards, {ref.seconds:.1f}s) -> {path}")
        return 0
    methods = list(METHODS) if args.method == "all" else [args.method]
    try:
        sae = DiscreteSAEConfig(n_train=args.n_train, position=args.position, arch=args.arch, top_k_codes=args.top_k_codes,
                                per_layer=args.per_layer, steps=args.sae_steps, qkv_edges=args.qkv_edges)
        ac = ACDCConfig(tau=args.tau, objective=args.objective, level=args.acdc_level)
    except ValueError as e:
        raise InterpError(str(e)) from None
    cfg = CircuitConfig(n_prompts=args.prompts, seeds=args.seeds, threshold=args.threshold, keep=args.keep, sae=sae, acdc=ac)
    res = run_circuits(args.model, args.task, methods, cfg, model=model)
    ref = res.reference
    print(f"{res.task} on {res.model}: metric {res.full_metric:.3f} (positive) vs {res.negative_metric:.3f} (negative); "
          f"reference {len(ref['heads'])} heads, faithfulness {ref['faithfulness']:.2f}")
    print(format_table(res))
    for m in res.summary:
        last = [r for r in res.runs if r.method == m][0]
        print(f"{m} circuit (seed 0): {' '.join(f'{l}.{h}' for l, h in last.circuit) or '(empty)'}")
    if args.json:
        print(f"wrote {res.save(args.json)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("circuits", help="find a task circuit (discrete SAE codes, patching, EAP, ACDC) and score it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="embedded", help="model name or directory")
    p.add_argument("--task", required=True, help="ioi, greater-than, docstring, or a FILE.jsonl (positive, negative, answer, wrong_answer)")
    p.add_argument("--method", default="discrete-sae", choices=["discrete-sae", "patching", "eap", "acdc", "all"])
    p.add_argument("--seeds", type=int, default=1, help="repeats (prompt draw and SAE init)")
    p.add_argument("--json", help="write the full result (scores, circuits, metrics, timings) here")
    p.add_argument("--prompts", type=int, default=20, help="prompt pairs for patching, EAP and ACDC")
    p.add_argument("--threshold", default="auto", choices=["auto", "positive", "faithful"], help="how the circuit is cut from scores")
    p.add_argument("--keep", type=float, default=0.9, help="faithfulness the faithful threshold / reference must keep")
    p.add_argument("--n-train", type=int, default=10, help="discrete-sae: prompt pairs the SAE is trained on")
    p.add_argument("--position", default="mean", choices=["mean", "last"], help="discrete-sae: average head outputs over positions, or last")
    p.add_argument("--arch", default="standard", choices=["standard", "topk"], help="discrete-sae: SAELens architecture")
    p.add_argument("--top-k-codes", type=int, default=1, help="discrete-sae: codes per (prompt, head); 1 = argmax")
    p.add_argument("--per-layer", action="store_true", help="discrete-sae: one SAE per layer instead of one shared")
    p.add_argument("--qkv-edges", action="store_true", help="discrete-sae: score edges into each head's q, k and v input separately")
    p.add_argument("--sae-steps", type=int, default=DEFAULT_SAE_STEPS, help="discrete-sae: SAE training steps")
    p.add_argument("--tau", type=float, default=0.01, help="ACDC: pruning threshold")
    p.add_argument("--objective", default="kl", choices=["kl", "metric"], help="ACDC: what tau thresholds")
    p.add_argument("--acdc-level", default="edge", choices=["edge", "node"], help="ACDC: prune edges or whole heads")
    p.add_argument("--build-reference", action="store_true", help="rebuild and store the reference circuit for --task, then exit")
    p.set_defaults(func=cmd_circuits)

