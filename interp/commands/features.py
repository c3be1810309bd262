"""CLI: `interp features` (build feature statistics) and `interp report` (export feature reports).

Every input is checked before any work starts: output paths, numbers, the SAE (NaN weights are
refused), the feature list (its size is checked before the list is built)."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.errors import InterpError


def _check_stats_dir(d: str, what: str) -> Path:
    """An SAE directory the statistics are written into (their documented home)."""
    from interp.io import check_parent_writable

    p = Path(d)
    if p.exists() and not p.is_dir():
        raise InterpError(f"{what} {p} is a file, not a directory")
    if p.is_dir():
        import os

        if not os.access(p, os.W_OK | os.X_OK):
            raise InterpError(f"{what} {p} is not writable")
        return p
    check_parent_writable(p / "x", what)
    return p


def _check_out_dir(d: str, overwrite: bool, marker: str, inputs=()) -> Path:
    """--out: a new or empty directory, or statistics interp wrote there (with --overwrite); never a
    folder of someone else's files (`interp.io.check_output_dir`)."""
    import json

    from interp.features.store import META_FILE
    from interp.io import check_output_dir

    p = check_output_dir(d, marker=marker, overwrite=overwrite, what="--out", inputs=inputs)
    meta = p / META_FILE
    if meta.is_file():  # "ours" means our format, not just the name
        try:
            ok = isinstance(json.loads(meta.read_text()), dict) and "format_version" in json.loads(meta.read_text())
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise InterpError(f"--out {p} holds a {META_FILE} that interp did not write; choose another path (nothing was changed)")
    return p


def cmd_features(args) -> int:
    import torch

    from interp import features as Fm
    from interp.device import resolve_device

    if (args.sae is None) == (args.neurons is None):
        raise InterpError("give exactly one of --sae DIR or --neurons LAYER")
    if args.threads is not None and args.threads < 1:
        raise InterpError(f"--threads must be >= 1, got {args.threads}")
    from interp.data.sources import open_source

    cfg = Fm.StatsConfig(n_tokens=args.tokens, source=args.source, seq_len=args.context_size, batch_size=args.batch_size,
                         top_k=args.top_k, seed=args.seed, text_field=args.text_field, split=args.split,
                         prepend_bos=args.prepend_bos)
    from interp.data.sources import check_token_budget

    check_token_budget(open_source(cfg.source_spec), cfg.n_tokens)  # a missing file, a text field, too few tokens: now
    device = str(resolve_device(getattr(args, "device", None)))
    from interp.sae.io import REGISTRY_PREFIX

    registry = bool(args.sae) and args.sae.startswith(REGISTRY_PREFIX)
    if registry:
        if not args.out:
            raise InterpError(f"--sae {args.sae} needs --out DIR: the registry SAE is saved there (SAELens format) "
                              "with its statistics, for `interp report --sae DIR` and the dashboard")
        out = _check_out_dir(args.out, args.overwrite, marker="cfg.json")
    elif args.sae:
        if not Path(args.sae).is_dir():
            raise InterpError(f"--sae {args.sae}: not an SAE directory")
        out = _check_stats_dir(args.sae, "--sae")
    else:
        if not args.out:
            raise InterpError("--neurons needs --out DIR (where to store the statistics)")
        from interp.features.store import META_FILE

        out = _check_out_dir(args.out, args.overwrite, marker=META_FILE)
    if args.threads:
        torch.set_num_threads(args.threads)
    if registry:
        from interp.sae.io import load_sae, save_sae

        save_sae(load_sae(args.sae, device="cpu"), out)  # a local copy: statistics live next to their SAE
        stats = Fm.build_for_sae_dir(out, cfg, model_name=args.model, device=device)
    elif args.sae:
        stats = Fm.build_for_sae_dir(args.sae, cfg, model_name=args.model, device=device)
    else:
        from interp.models import load_model

        model = load_model(args.model or "embedded", device=device)
        src = Fm.NeuronSource(model, args.neurons)
        stats = Fm.build_feature_stats(model, src, cfg, model_name=args.model or "embedded", source_name=f"neurons L{args.neurons}")
        Fm.save_stats(stats, out)
    labelled = sum(1 for lab in stats.labels if "(F1" in lab)
    dead = sum(1 for lab in stats.labels if lab.startswith("dead"))
    print(f"{stats.n_features} features over {stats.meta['n_tokens']} tokens in {stats.meta['seconds']:.1f}s: "
          f"{labelled} with a concept label, {dead} dead -> {out}")
    return 0


def cmd_report(args) -> int:
    from interp.features import load_stats, parse_feature_range
    from interp.reports import FORMATS, check_report_path, write_report

    if args.format not in FORMATS:
        raise InterpError(f"unknown report format {args.format!r}; use one of {', '.join(FORMATS)}")
    from interp.io import check_output_file

    check_output_file(args.out, overwrite=args.overwrite, inputs=[args.sae], what="--out")
    check_report_path(args.out)
    stats = load_stats(args.sae)
    ids = parse_feature_range(args.features, stats.n_features)
    out = write_report(stats, ids, args.format, args.out, title=args.title or f"Features of {args.sae}")
    print(f"{len(ids)} features -> {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="build feature statistics next to an SAE (for the dashboard and reports)")
    p.add_argument("--sae", help="SAE directory (SAELens format; the statistics are stored in it) or "
                                  "sae-lens:RELEASE/SAE_ID (saved with its statistics into --out)")
    p.add_argument("--neurons", type=int, metavar="LAYER", help="instead of an SAE: the MLP neurons of this layer")
    p.add_argument("--out", help="with --neurons or a registry --sae: directory for the statistics")
    p.add_argument("--model", help="model name (default: the SAE's metadata.model_name, else embedded)")
    p.add_argument("--tokens", type=int, default=200_000, help="corpus tokens to stream")
    from interp.data.sources import add_source_args

    add_source_args(p, context_help="tokens per row (default: the model's n_ctx); concept labels need --source corpus")
    p.add_argument("--batch-size", type=int, default=32, help="rows per forward")
    p.add_argument("--top-k", type=int, default=20, help="top-activating contexts kept per feature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true", help="replace the statistics (or registry SAE) interp wrote in --out before")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("report", help="export feature reports (HTML, JSON, Markdown) from stored statistics")
    p.add_argument("--sae", required=True, help="SAE directory holding feature_stats.*")
    p.add_argument("--features", default="0-99", help="ids, e.g. 0-99 or 3,7,10-12")
    p.add_argument("--format", default="html", choices=["html", "json", "md"])
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--title", help="report title")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_report)
