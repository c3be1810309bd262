"""Feature-circuit subcommands: train-transcoder, build-transcoders, graph, graph-intervene (thin wrappers
over `interp.transcoders` and `interp.graphs`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.errors import InterpError


def _layers(spec: str, n_layers: int | None = None) -> list[int]:
    if spec == "all":
        if n_layers is None:
            raise InterpError("--layers all needs the model's layer count")
        return list(range(n_layers))
    try:
        out = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise InterpError(f"--layers {spec!r}: expected all or a comma list of layer numbers (0,1,2)") from None
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise InterpError(f"--layers {spec!r}: expected distinct layer numbers >= 0")
    return out


def cmd_train_transcoder(args) -> int:
    from interp.models import load_model
    from interp.transcoders.config import TranscoderTrainConfig
    from interp.transcoders.train import train_transcoders

    if args.layers != "all":
        _layers(args.layers)  # a malformed list is one line before the model loads
    common = dict(model=args.model, arch=args.arch, d_sae=args.d_sae, k=args.k, l0_coef=args.l0_coef, skip=args.skip,
                  tokens=args.tokens, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    TranscoderTrainConfig(layer=0, **common)  # every option checked before the model loads
    model = load_model(args.model, **({"device": args.device} if getattr(args, "device", None) else {}))
    layers = _layers(args.layers, model.cfg.n_layers)
    cfgs = [TranscoderTrainConfig(layer=i, **common) for i in layers]
    outs = [Path(args.out) / f"L{i}" for i in layers]
    results, collect_s = train_transcoders(cfgs, outs, acts_dir=args.acts_dir, act_tokens=args.act_tokens,
                                           eval_tokens=args.eval_tokens, model=model, overwrite=args.overwrite)
    print(f"collected activations in {collect_s:.1f}s")
    for r in results:
        m = r.metrics
        print(f"{r.out_dir}: {r.config.architecture} layer {r.config.layer} d_sae={r.config.d_sae} l0={m['l0']:.1f} "
              f"fvu={m['fvu']:.3f} ce_loss_score={m['ce_loss_score']:.3f} kl_div_score={m['kl_div_score']:.3f} "
              f"[{r.train_seconds:.1f}s]")
    return 0


def cmd_build_transcoders(args) -> int:
    from interp.transcoders.build import build_shipped_transcoders

    out = build_shipped_transcoders(out_root=args.out, model_name=args.model)
    print(f"wrote {out}")
    return 0


def _graph_paths(out: str, overwrite: bool) -> tuple[Path, Path]:
    """(viewer JSON, our graph file) for --out; both checked before any work."""
    from interp.io import check_parent_writable

    p = Path(out)
    if p.suffix != ".json":
        raise InterpError(f"--out {out}: give a .json path (the viewer JSON; the full graph is written beside it)")
    ours = p.with_suffix(".graph.safetensors")
    for q in (p, ours):
        check_parent_writable(q, "graph output")
        if q.is_dir():
            raise InterpError(f"{q} is a directory; give a file path for --out (nothing was changed)")
        if q.exists() and not overwrite:
            raise InterpError(f"{q} exists; pass --overwrite to replace it (nothing was changed)")
    return p, ours


def cmd_graph(args) -> int:
    from interp.graphs import AttributionConfig, attribute, graph_scores, prune_graph, save_graph, write_viewer_json
    from interp.hooks import prompt_tokens
    from interp.models import load_model
    from interp.transcoders.io import check_set_fits, load_transcoder_set

    out, ours = _graph_paths(args.out, args.overwrite)
    for name in ("node_threshold", "edge_threshold"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise InterpError(f"--{name.replace('_', '-')} {v}: must lie in [0, 1]")
    cfg = AttributionConfig(max_n_logits=args.max_n_logits, desired_logit_prob=args.desired_logit_prob,
                            batch_size=args.batch_size, max_feature_nodes=args.max_feature_nodes)
    tset = load_transcoder_set(args.transcoders)
    model = load_model(args.model, **({"device": args.device} if getattr(args, "device", None) else {}))
    check_set_fits(tset, model)
    prompt_tokens(model, args.prompt)  # longer than the context: one line now
    graph = attribute(model, args.prompt, tset, target=args.target, diff=tuple(args.diff) if args.diff else None, config=cfg)
    pr = prune_graph(graph, args.node_threshold, args.edge_threshold)
    sc = graph_scores(graph)
    graph.info.update({"replacement_score": sc.replacement, "completeness_score": sc.completeness})
    save_graph(graph, ours)
    write_viewer_json(graph, out, slug=args.slug or out.stem, node_threshold=args.node_threshold, edge_threshold=args.edge_threshold)
    n_feat_kept = int(pr.node_mask[: graph.n_features].sum())
    print(f"graph of {graph.n_pos} tokens: {graph.n_features} feature nodes, {graph.n_nodes} nodes, "
          f"{int((graph.adjacency != 0).sum())} edges; pruned: {n_feat_kept} features, {int(pr.node_mask.sum())} nodes, "
          f"{int(pr.edge_mask.sum())} edges")
    print(f"logit nodes: {', '.join(f'{t!r} ({float(p):.3f})' for t, p in zip(graph.logit_tokens, graph.logit_probabilities))}")
    print(f"replacement score {sc.replacement:.3f}, completeness score {sc.completeness:.3f} [{graph.info['seconds']['total']:.1f}s]")
    print(f"wrote {out} (viewer JSON) and {ours}")
    return 0


def _edit(spec: str, steer: bool):
    from interp.graphs import FeatureEdit

    try:
        where, _, value = spec.partition("=")
        layer, pos, feat = (int(x) for x in where.split(":"))
        if steer and not value:
            raise ValueError
        return FeatureEdit(layer, pos, feat, float(value) if steer else 0.0)
    except ValueError:
        form = "LAYER:POS:FEATURE=VALUE" if steer else "LAYER:POS:FEATURE"
        raise InterpError(f"{'--steer' if steer else '--ablate'} {spec!r}: expected {form}") from None


def cmd_graph_intervene(args) -> int:
    from interp.graphs import check_intervention, load_graph
    from interp.models import load_model
    from interp.transcoders.io import check_set_fits, load_transcoder_set

    edits = [_edit(s, False) for s in args.ablate or []] + [_edit(s, True) for s in args.steer or []]
    if not edits:
        raise InterpError("give --ablate LAYER:POS:FEATURE and/or --steer LAYER:POS:FEATURE=VALUE")
    graph = load_graph(args.graph)
    for e in edits:
        graph.feature_node(e.layer, e.pos, e.feature)
    tset = load_transcoder_set(args.transcoders)
    model = load_model(args.model, **({"device": args.device} if getattr(args, "device", None) else {}))
    check_set_fits(tset, model)
    res = check_intervention(graph, model, tset, edits, freeze=args.freeze)
    print(f"{'logit node':30s} {'clean':>9s} {'predicted':>10s} {'measured':>10s}   (change; freeze={res.freeze})")
    for lab, c, p, m in zip(res.labels, res.clean, res.predicted, res.measured):
        print(f"{lab[:30]!s:30s} {c:9.4f} {p:10.4f} {m:10.4f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from interp.transcoders.config import ARCHS

    p = sub.add_parser("train-transcoder", help="train per-layer transcoders (MLP input -> MLP output), all layers from one pass")
    p.add_argument("--model", default="embedded", help="embedded, a local directory, or a TransformerLens name")
    p.add_argument("--layers", default="all", help="all, or a comma list of layers (0,2)")
    p.add_argument("--out", required=True, help="output directory; one SAELens transcoder directory L<layer> per layer inside")
    p.add_argument("--arch", default="jumprelu", choices=ARCHS, help="jumprelu (SAELens JumpReLUTranscoder) or topk")
    p.add_argument("--skip", action="store_true", help="add a linear skip connection (SAELens' skip transcoders)")
    p.add_argument("--d-sae", type=int, default=1024, help="number of latents per transcoder")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk)")
    p.add_argument("--l0-coef", type=float, default=2e-3, help="L0 penalty (jumprelu)")
    p.add_argument("--tokens", type=int, default=1_024_000, help="training samples per transcoder")
    p.add_argument("--act-tokens", type=int, default=None, help="activations collected (default: --tokens); more epochs if fewer")
    p.add_argument("--acts-dir", default=None, help="keep the collected activations here (default: a temporary cache)")
    p.add_argument("--eval-tokens", type=int, default=16384, help="held-out tokens for FVU and CE / KL")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace existing transcoder directories")
    p.set_defaults(func=cmd_train_transcoder)

    p = sub.add_parser("build-transcoders", help="rebuild the shipped transcoder set of the embedded model and its table")
    p.add_argument("--model", default="embedded")
    p.add_argument("--out", default=None, help="root directory (default: the repository's transcoders/)")
    p.set_defaults(func=cmd_build_transcoders)

    p = sub.add_parser("graph", help="attribution graph of one prompt over transcoder features (circuit-tracer's definitions)")
    p.add_argument("--model", default="embedded")
    p.add_argument("--transcoders", default="transcoders/embedded", help="a directory with one transcoder per MLP layer")
    p.add_argument("--prompt", required=True)
    p.add_argument("--target", action="append", help="a target token (repeatable; each must be one token); default: the salient logits")
    p.add_argument("--diff", nargs=2, metavar=("A", "B"), help="explain logit(A) - logit(B) instead (e.g. IOI's ' Mary' ' John')")
    p.add_argument("--out", required=True, help="viewer JSON path (g.json); the full graph goes to g.graph.safetensors beside it")
    p.add_argument("--slug", default=None, help="the graph's name in the viewer (default: the file name)")
    p.add_argument("--node-threshold", type=float, default=0.8, help="keep nodes holding this share of influence")
    p.add_argument("--edge-threshold", type=float, default=0.98, help="then keep edges holding this share")
    p.add_argument("--max-n-logits", type=int, default=10)
    p.add_argument("--desired-logit-prob", type=float, default=0.95)
    p.add_argument("--batch-size", type=int, default=256, help="rows per backward pass")
    p.add_argument("--max-feature-nodes", type=int, default=None, help="cap on feature nodes (most influential first)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("graph-intervene", help="ablate / steer graph features; measured logit change vs the graph's prediction")
    p.add_argument("--graph", required=True, help="a .graph.safetensors written by `interp graph`")
    p.add_argument("--model", default="embedded")
    p.add_argument("--transcoders", default="transcoders/embedded")
    p.add_argument("--ablate", action="append", help="LAYER:POS:FEATURE (repeatable)")
    p.add_argument("--steer", action="append", help="LAYER:POS:FEATURE=VALUE (repeatable)")
    p.add_argument("--freeze", default="attention", choices=["attention", "none", "direct", "replacement"],
                   help="attention: patterns fixed to the clean run (circuit-tracer's default); replacement: the graph's local replacement model; direct: also LayerNorm scales and MLPs fixed")
    p.set_defaults(func=cmd_graph_intervene)
