"""`interp unlearn`: forget concepts with SAE features (or a baseline) and print what was kept."""

from __future__ import annotations

import argparse

from interp.errors import InterpError


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(rows: list[dict], cols: list[str]) -> str:
    cells = [[c for c in cols]] + [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    w = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(s.ljust(w[i]) for i, s in enumerate(row)) for row in cells)


def cmd_unlearn(args) -> int:
    from interp.models import load_model
    from interp.unlearn import UnlearnConfig, UnlearnSpec, evaluate_spec, resolve_concept, run_unlearning, save_report_json

    if not args.concept:
        raise InterpError("give at least one --concept (a category name or a concept file)")
    concepts = [resolve_concept(c) for c in args.concept]
    model = load_model(args.model)
    if args.spec:
        report = evaluate_spec(model, concepts, UnlearnSpec.load(args.spec))
    else:
        cfg = UnlearnConfig(method=args.method, n_features=args.n_features, value=args.value, sweep=args.sweep,
                            retain_threshold=args.retain_threshold, score=args.score, positions=args.positions)
        report = run_unlearning(model, concepts, args.sae or [], cfg, model_name=args.model, hooks=args.hook)
    d = report.to_dict()
    print(f"concept: {report.concept}   method: {report.method}   ({report.seconds:.1f} s)")
    if d["features"]:
        print("\nselected features:")
        print(_table(d["features"], ["hook", "feature", "score", "freq_forget", "freq_retain", "typical_act", "label"]))
    cols = ["method", "n_features", "value", "forget_acc", "paraphrase_acc", "retain_acc", "loss_change", "kl"]
    print("\nunmodified: " + "  ".join(f"{k} {_fmt(v)}" for k, v in d["base"].items() if k in cols or k == "retain_loss"))
    if len(report.rows) > 1:
        print("\nsweep:")
        print(_table(d["rows"], cols))
        print("\nPareto front (lower forget, higher retain):")
        print(_table(d["pareto"], cols))
    print("\nbest setting" + ("" if report.best_meets_bar else " (no setting keeps retain >= 0.95 x base and loss +<= 5%; mildest shown)") + ":")
    print(_table([d["best"]], cols))
    print(f"\nunlearning score (SAEBench-style): {report.score:.3f}")
    print("\ngreedy completions before -> after:")
    for s in report.samples:
        print(f"  {s['prompt']!r}: {s['before']!r} -> {s['after']!r}")
    if args.json:
        print(f"\nreport written to {save_report_json(report, args.json)}")
    if args.save_spec:
        if report.spec is None:
            raise InterpError(f"--save-spec needs an SAE method (clamp, zero, scale), not {report.method!r}")
        print(f"spec written to {report.spec.save(args.save_spec)}")
    return 0


# The same tuple as interp.unlearn.pipeline.ALL_METHODS (a test keeps them equal); written out here
# so that building the CLI parser does not import TransformerLens (it made `interp --help` and
# `interp app` start-up seconds slower).
METHODS = ("clamp", "zero", "scale", "direction", "finetune")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("unlearn", help="forget concepts by editing SAE features at inference (or a baseline)",
                       description="Select the SAE features of a concept, edit them inside hooks (the model never changes) "
                                   "and measure forget / retain accuracy, retain loss and KL.")
    p.add_argument("--model", default="embedded", help="embedded, a local directory, or a TransformerLens name")
    p.add_argument("--sae", nargs="+", metavar="DIR", help="SAE directories (their cfg metadata names the hook)")
    p.add_argument("--concept", action="append", metavar="NAME|FILE",
                   help="a built-in category (colors, animals, sports, emotions, materials, foods) or a concept file "
                        "(.jsonl or text); repeat to forget several at once")
    p.add_argument("--method", default="clamp", choices=METHODS)
    p.add_argument("--n-features", type=int, default=20, help="features per SAE and concept")
    p.add_argument("--value", type=float, help="clamp multiplier / scale factor / direction strength / finetune steps")
    p.add_argument("--sweep", action="store_true", help="sweep n-features x value; print the Pareto front and the score")
    p.add_argument("--retain-threshold", type=float, default=0.2, help="drop features active on more retain tokens than this")
    p.add_argument("--score", default="dir", choices=["dir", "freq", "act"], help="feature ranking (see interp.unlearn.select)")
    p.add_argument("--positions", default="last", choices=["last", "all"],
                   help="forget-prompt tokens counted in selection: the last (predicting) one, or all")
    p.add_argument("--hook", nargs="+", help="direction baseline: hooks (default: the SAEs' hooks)")
    p.add_argument("--spec", metavar="FILE", help="evaluate a saved spec instead of selecting features")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("--save-spec", metavar="FILE", help="save the (best) setting as a re-usable spec (SAE methods)")
    p.set_defaults(func=cmd_unlearn)
