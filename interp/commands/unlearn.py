"""`interp unlearn`: forget concepts with SAE features (or a baseline) and print what was kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.errors import InterpError


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(rows: list[dict], cols: list[str]) -> str:
    cells = [[c for c in cols]] + [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    w = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(s.ljust(w[i]) for i, s in enumerate(row)) for row in cells)


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _drop(after: float, base: float) -> str:
    return "n/a" if base != base or after != after or base <= 0 else f"{100 * (1 - after / base):.0f}%"


def cmd_unlearn(args) -> int:
    from interp.models import load_model
    from interp.unlearn import UnlearnConfig, UnlearnSpec, evaluate_spec, resolve_concept, run_unlearning, save_report_json
    from interp.unlearn.concepts import split_concept
    from interp.unlearn.pipeline import check_output_file

    # every bad input fails here, before the model loads
    if not args.concept:
        raise InterpError("give at least one --concept (a category name or a concept file)")
    inputs = [args.spec, *(args.sae or []), *(c for c in args.concept if c and not c.isidentifier())]
    for flag, path in (("--json", args.json), ("--save-spec", args.save_spec)):
        if path:
            check_output_file(path, f"{flag} file", overwrite=args.overwrite, inputs=inputs)
    if args.json and args.save_spec and Path(args.json).resolve() == Path(args.save_spec).resolve():
        raise InterpError("--json and --save-spec name the same file; give two paths")
    if args.save_spec and args.method not in ("clamp", "zero", "scale"):
        raise InterpError(f"--save-spec needs an SAE method (clamp, zero, scale), not {args.method!r}")
    if args.n_features is not None and args.n_features < 1:
        raise InterpError("--n-features must be at least 1")
    concepts = [resolve_concept(c) for c in args.concept]
    spec = UnlearnSpec.load(args.spec) if args.spec else None
    cfg = None
    if spec is None:
        cfg = UnlearnConfig(method=args.method, n_features=args.n_features, value=args.value, sweep=args.sweep,
                            retain_threshold=args.retain_threshold, score=args.score, positions=args.positions,
                            condition=args.condition, split_by=args.split_by, split_seed=args.split_seed, min_base_acc=args.min_base_acc)
    for c in concepts:
        split_concept(c, seed=args.split_seed, by=args.split_by)  # enough prompts for the three parts?
    model = load_model(args.model, device=getattr(args, "device", None), dtype=getattr(args, "dtype", None))
    if spec is not None:
        report = evaluate_spec(model, concepts, spec, split_seed=args.split_seed)
    else:
        report = run_unlearning(model, concepts, args.sae or [], cfg, model_name=args.model, hooks=args.hook)
    d = report.to_dict()
    how = {"auto": "chosen on the validation split", "fixed": "fixed by hand", "sweep": "best of the full sweep on the validation split"}[report.search]
    print(f"concept: {report.concept}   method: {report.method}   ({report.seconds:.1f} s)")
    sz = report.split_sizes
    if "selection" in sz:
        print(f"prompts: selection {sz['selection']}, validation {sz['validation']}, test {sz['test']} (held out), "
              f"paraphrase {sz['paraphrase']}, adversarial {sz['adversarial']}, retain (test) {sz.get('retain_test', 0)}")
    if d["features"]:
        print("\nselected features (top ones used):")
        n = report.best.n_features
        rows = [r for r in d["features"]][: max(n, 1) * max(len(report.selections), 1)]
        print(_table(rows, ["hook", "feature", "score", "freq_forget", "freq_retain", "typical_act", "label"]))
    cols = ["method", "n_features", "value", "forget_acc", "forget_prob", "retain_acc", "loss_change", "kl"]
    if len(report.rows) > 1:
        print(f"\nsettings tried ({report.search} search; validation split):")
        print(_table(d["rows"], cols))
    b, t = report.base, report.test
    print(f"\nsetting: {report.best.n_features} features per SAE, value {report.best.value:g} ({how})")
    print("\non the held-out test split (unmodified -> unlearned):")
    lines = [("forget accuracy", b.forget_acc, t.forget_acc, _drop(t.forget_acc, b.forget_acc) + " drop"),
             ("paraphrase accuracy", b.paraphrase_acc, t.paraphrase_acc, _drop(t.paraphrase_acc, b.paraphrase_acc) + " drop"),
             ("adversarial accuracy", b.adversarial_acc, t.adversarial_acc, _drop(t.adversarial_acc, b.adversarial_acc) + " drop"),
             ("retain, in-domain", b.retain_acc, t.retain_acc, "other concepts' prompts"),
             ("retain, cross-domain", b.corpus_acc, t.corpus_acc, "next-token accuracy on corpus text")]
    for name, x, y, note in lines:
        print(f"  {name:22s} {_pct(x):>7s} -> {_pct(y):>7s}   {note}")
    print(f"  {'corpus loss':22s} {b.retain_loss:7.3f} -> {t.retain_loss:7.3f}   {100 * t.loss_change:+.2f}%   KL {t.kl:.4f}")
    verdict = "meets" if report.meets_bar else "MISSES"
    print(f"\n{verdict} the bar (retain >= 0.95 x base and corpus loss +<= 5%) on the test split")
    if report.search != "fixed":
        print(f"unlearning score (SAEBench-style, over the settings tried): {report.score:.3f}")
    print("\ngreedy completions before -> after:")
    for smp in report.samples:
        print(f"  {smp['prompt']!r}: {smp['before']!r} -> {smp['after']!r}")
    if args.json:
        print(f"\nreport written to {save_report_json(report, args.json)}")
    if args.save_spec and report.spec is not None:
        print(f"spec written to {report.spec.save(args.save_spec)}")
    return 0


# The same tuple as interp.unlearn.pipeline.ALL_METHODS (a test keeps them equal); written out here
# so that building the CLI parser does not import TransformerLens (it made `interp --help` and
# `interp app` start-up seconds slower).
METHODS = ("clamp", "zero", "scale", "direction", "finetune")
SCORES = ("contrast", "dir", "freq", "act")  # interp.unlearn.select.SCORES; the first is UnlearnConfig's default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("unlearn", help="forget concepts by editing SAE features at inference (or a baseline)",
                       description="Select the SAE features of a concept, edit them inside hooks (the model never changes) "
                                   "and measure forget / retain accuracy, retain loss and KL.")
    p.add_argument("--model", default="embedded", help="embedded, a local directory, or a TransformerLens name")
    p.add_argument("--sae", nargs="+", metavar="DIR", help="SAE directories, or anything interp.sae.io.load_sae accepts "
                                                          "(their cfg metadata names the hook); several are used together")
    p.add_argument("--concept", action="append", metavar="NAME|FILE",
                   help="a built-in category (colors, animals, sports, emotions, materials, foods) or a concept file "
                        "(.jsonl or text); repeat to forget several at once")
    p.add_argument("--method", default="clamp", choices=METHODS)
    p.add_argument("--n-features", type=int, help="features per SAE and concept (default: chosen on the validation split)")
    p.add_argument("--value", type=float, help="clamp multiplier / scale factor / direction strength / finetune steps "
                                               "(default: chosen on the validation split)")
    p.add_argument("--sweep", action="store_true", help="evaluate the whole n-features x value grid instead of the early-stopping search")
    p.add_argument("--retain-threshold", type=float, default=0.2, help="drop features active on more retain tokens than this")
    p.add_argument("--score", default=SCORES[0], choices=SCORES, help="feature ranking (see interp.unlearn.select)")
    p.add_argument("--positions", default="last", choices=["last", "all"],
                   help="forget-prompt tokens counted in selection: the last (predicting) one, or all")
    p.add_argument("--condition", action="store_true", help="edit only where the concept's detector features fire (conditional clamping)")
    p.add_argument("--split-by", default="prompt", choices=["prompt", "fact"],
                   help="cut selection / validation / test by prompt, or by fact (test asks only about unseen facts)")
    p.add_argument("--split-seed", type=int, default=0, help="which prompts go to selection / validation / test")
    p.add_argument("--min-base-acc", type=float, default=0.5,
                   help="refuse a concept the model answers less often than this (nothing to forget)")
    p.add_argument("--hook", nargs="+", help="direction baseline: hooks (default: the SAEs' hooks)")
    p.add_argument("--spec", metavar="FILE", help="evaluate a saved spec instead of selecting features")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("--save-spec", metavar="FILE", help="save the chosen setting as a re-usable spec (SAE methods)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json / --save-spec file")
    p.set_defaults(func=cmd_unlearn)
