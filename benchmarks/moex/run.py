"""MoE-X on chess: val loss, legal-move rate, coverage, reconstruction, L0 and training time of every
architecture over several seeds, the dense+SAE baseline, and MoE-X on the embedded language model.

    OMP_NUM_THREADS=1 python benchmarks/moex/run.py --scale cpu --seeds 3          # hours per model on a CPU
    python benchmarks/moex/run.py --scale full --seeds 3 --device cuda --workers 16  # the issue's target size
    python benchmarks/moex/run.py --scale tiny --seeds 2                           # a smoke run (numbers meaningless)

Scales (`interp.moex.suite.SuiteScale.preset`): tiny; cpu = 4 layers, d_model 256, 10k Stockfish games;
full = 8 layers, d_model 512, n_ctx 512, 100k Stockfish games (Karvonen et al.'s size). Games come from
the resumable game store (`interp moex games`, generated here with --workers if missing). Models train
into ROOT/seed<N>/<name>/ with checkpoints, so a killed run continues where it stopped. For each seed:
dense-GELU, dense-ReLU, Switch, MoE-X from scratch, MoE-X upcycled from dense-ReLU, and a TopK SAE (interp's
SAELens training) on dense-GELU's last MLP. Rows are mean +/- std over seeds. Writes benchmarks/moex/results.json
(results_<scale>.json for other scales) and, for --scale cpu/full, the "moex" section of benchmarks/README.md.
`--ship` copies seed 0's models and the table into interp/moex/shipped/ (a repository build step).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table as _markdown_table, update_section  # noqa: E402
from interp.device import resolve_device  # noqa: E402
from interp.moex.evaluate import evaluate_chess_model, evaluate_features, feature_activations, train_dense_sae  # noqa: E402
from interp.moex.layer import ACTS, hidden_hook_name  # noqa: E402
from interp.moex.model import SHIPPED_DIR, load_chess_model, read_cfg  # noqa: E402
from interp.moex.suite import SCALES, SuiteScale, build_suite, ship, suite_configs  # noqa: E402
from interp.moex.train import games_to_tensor, lm_loss, split_games  # noqa: E402

log = logging.getLogger("benchmarks.moex")
PAPER = {"dense-gelu": (0.213, 0.356, 0.608), "dense-relu": (0.215, 0.312, 0.581), "switch": (0.212, 0.424, 0.734),
         "moex": (0.211, 0.428, 0.840)}
METRICS = ("val_loss", "legal_move_rate", "coverage", "reconstruction", "l0", "train_seconds", "tokens")


def markdown_table(rows: list[dict]) -> str:
    return _markdown_table(rows) if rows else "(none finished)"


def _time(fn, reps: int, device=None) -> float:
    from interp.device import synchronize

    fn()
    synchronize(device or "cpu")
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    synchronize(device or "cpu")
    return (time.perf_counter() - t) / reps


@torch.no_grad()
def router_cost(model_dir: Path, n_tokens: int = 4096, rounds: int = 5, device=None) -> dict:
    """Time of the sparsity router vs running all E experts densely vs the real sparse layer, one layer."""
    model, _, mlp, _ = load_chess_model(model_dir, device=device)
    layer = model.blocks[0].mlp
    x = torch.randn(n_tokens, mlp.d_model, device=layer.W_enc.device)
    act = ACTS[mlp.act]

    def all_experts():
        return act(torch.einsum("nd,edh->neh", x, layer.W_enc) + layer.b_enc)

    route, full, sparse = [], [], []
    for _ in range(rounds):  # interleaved so that machine load hits all three alike
        route.append(_time(lambda: layer.route(x), 5, device))
        full.append(_time(all_experts, 2, device))
        sparse.append(_time(lambda: layer(x), 2, device))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"route_s": med(route), "all_experts_s": med(full), "moex_layer_s": med(sparse), "n_tokens": n_tokens}


def train_throughput(cfgs: dict, names: list[str], steps: int = 6, rounds: int = 3, device=None) -> dict:
    """Training tokens/s of each model's architecture, interleaved in one process (fresh optimizer)."""
    from interp.moex.model import build_chess_model

    tr, _ = split_games(cfgs[names[0]])
    n_ctx = cfgs[names[0]].model.n_ctx
    toks = games_to_tensor(tr[:64], n_ctx, device)
    lens = torch.tensor([min(len(g), n_ctx + 1) for g in tr[:64]], device=device)
    models = {n: build_chess_model(cfgs[n].model, cfgs[n].mlp, device=device).train() for n in names}
    opts = {n: torch.optim.AdamW(m.parameters(), 1e-4) for n, m in models.items()}
    bs = cfgs[names[0]].batch_size
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names:
            def step():
                i = torch.randint(len(toks), (bs,), device=device)
                loss = lm_loss(models[n], toks[i], lens[i])
                opts[n].zero_grad()
                loss.backward()
                opts[n].step()
            times[n].append(_time(step, steps, device))
    tok = float((lens[:bs] - 1).sum())
    return {n: tok / sorted(v)[len(v) // 2] for n, v in times.items()}


def _ms(vals) -> str:
    v = np.asarray([x for x in vals if x is not None], dtype=float)
    if len(v) == 0:
        return "-"
    return f"{v.mean():.4g}" if len(v) == 1 else f"{v.mean():.4g} ± {v.std(ddof=1):.2g}"


def sae_row(root: Path, cfgs: dict, seed: int, scale: SuiteScale, dense: dict, device) -> dict:
    """The dense+SAE baseline of one seed: a TopK SAE as wide as MoE-X's hidden vector on dense-GELU's last MLP.
    `dense`: dense-GELU's own evaluation (its loss and legal-move rate are the baseline's)."""
    d = root / f"seed{seed}" / "dense-gelu"
    model, mcfg, mlp, cfg = load_chess_model(d, device=device)
    hook = hidden_hook_name(mlp, mcfg.n_layers - 1)
    tr, va = split_games(cfgs["dense-gelu"])
    t0 = time.perf_counter()
    sae = train_dense_sae(model, hook, tr[: scale.sae_games], mcfg.n_ctx, d_sae=scale.n_experts * scale.expert_width,
                          k=scale.sae_k, steps=scale.sae_steps, seed=seed)
    secs = time.perf_counter() - t0
    a_tr, p_tr = feature_activations(model, hook, tr[: scale.n_metric_games], mcfg.n_ctx, sae=sae)
    a_te, p_te = feature_activations(model, hook, va, mcfg.n_ctx, sae=sae)
    cov, rec = evaluate_features(a_tr, p_tr, a_te, p_te)
    return dict(dense, arch="dense-gelu+sae", coverage=cov.score, reconstruction=rec.score, n_features=a_te.shape[1],
                l0=float((a_te > 0).float().sum(1).mean()), feature_source=f"TopK SAE k={scale.sae_k} on {hook}",
                train_seconds=cfg.get("train_seconds", float("nan")) + secs, tokens=cfg.get("tokens"))


LM_SETTINGS = {"tiny": {"steps": 3, "batch_size": 4, "eval_rows": 16, "sae_steps": 5, "sae_k": 8},
               "cpu-short": {"steps": 100, "sae_steps": 150}}
"""LMMoEXConfig fields per scale (others: its defaults)"""


def lm_seed(root: Path, scale_name: str, seed: int, device, overrides: dict | None = None) -> dict:
    """MoE-X on the embedded language model, one seed: dense neurons vs upcycled MoE-X units vs TopK SAE latents;
    cached in root/seed<N>/lm-<steps>-<sae_steps>.json. -> {"scores": [...], "details": {...}, "cfg": {...}}.
    `overrides`: LMMoEXConfig fields over the scale's LM_SETTINGS."""
    from interp.io import atomic_write_json
    from interp.models import load_model
    from interp.moex.lm import LMMoEXConfig, lm_moex_comparison

    cfg = LMMoEXConfig(seed=seed, **(LM_SETTINGS.get(scale_name, {}) | (overrides or {})))
    from interp.circuits.reference import fingerprint

    cache = root / f"seed{seed}" / f"lm-{cfg.steps}-{cfg.sae_steps}.json"
    model = load_model("embedded", device=str(resolve_device(device)))
    weights = fingerprint(model)  # a cached row of other embedded weights (before a rebuild) is not reused
    if cache.is_file() and json.loads(cache.read_text()).get("cfg") == asdict(cfg) and \
            json.loads(cache.read_text()).get("model_fingerprint") == weights:
        return json.loads(cache.read_text())
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    scores, det = lm_moex_comparison(model, cfg)
    out = {"cfg": asdict(cfg), "model_fingerprint": weights, "scores": [sc._asdict() for sc in scores], "seconds": time.perf_counter() - t0,
           "details": det | {"seed": seed, "finetune_losses": det["finetune_losses"][-5:]}}
    atomic_write_json(cache, json.loads(json.dumps(out, default=float)))
    return out


def lm_table(per_seed: list[list[dict]]) -> list[dict]:
    by_src: dict[str, list[dict]] = {}
    for scores in per_seed:
        for sc in scores:
            by_src.setdefault(sc["source"], []).append(sc)
    return [{"feature source (embedded LM, last layer)": src, "features": r[0]["n_features"], "L0": _ms([x["l0"] for x in r]),
             "held-out loss": _ms([x["eval_loss"] for x in r]), "labelled share (F1 >= 0.2)": _ms([x["labelled_share"] for x in r]),
             "mean best concept F1": _ms([x["mean_best_f1"] for x in r]), "concept coverage": _ms([x["concept_coverage"] for x in r]),
             "seeds": len(r)} for src, r in by_src.items()]


def curve_points(cfg: dict, legal: str = "legal moves") -> list[dict]:
    """The learning-curve points a training run recorded in its cfg.json, as table rows (`legal`: that column's name)."""
    return [{"step": pt["step"], "tokens": pt["tokens"], "val loss": pt["val_loss"], legal: pt["legal_move_rate"],
             "held-out games": pt.get("n_val_games")} for pt in cfg.get("curve", [])]


def curve_rows(seed_dir: Path, names: list[str]) -> list[dict]:
    """The learning-curve points each model's training recorded in its cfg.json."""
    return [{"model": n, **row} for n in names if (seed_dir / n / "cfg.json").is_file() for row in curve_points(read_cfg(seed_dir / n))]


def model_eval(root: Path, scale: SuiteScale, seed: int, name: str, device, tiny: bool, cached_only: bool = False) -> dict | None:
    """One trained model's evaluation (name "dense-gelu+sae": the SAE baseline on that seed's dense-GELU),
    cached in root/seed<N>/eval-<name>.json, so that models can be scored by separate processes and a rerun is free."""
    from interp.io import atomic_write_json

    key = {"scale": asdict(scale), "format": 1}
    cache = root / f"seed{seed}" / f"eval-{name}.json"
    if cache.is_file() and json.loads(cache.read_text()).get("key") == key:
        return json.loads(cache.read_text())["eval"]
    if cached_only:
        return None
    cfgs = suite_configs(scale, seed)
    if name == "dense-gelu+sae":
        ev = sae_row(root, cfgs, seed, scale, model_eval(root, scale, seed, "dense-gelu", device, tiny), device)
    else:
        d = root / f"seed{seed}" / name
        ev = evaluate_chess_model(d, n_metric_games=scale.n_metric_games, n_legal=8 if tiny else 100, device=device,
                                  recorded=True).to_dict()
        rec = read_cfg(d)
        ev |= {"train_seconds": rec.get("train_seconds"), "tokens": rec.get("tokens")}
    ev["seed"] = seed
    log.info("%s seed %d: %s", name, seed, ev)
    atomic_write_json(cache, {"key": key, "eval": json.loads(json.dumps(ev, default=float))})
    return ev


def finished(seed_dir: Path, scale: SuiteScale) -> list[str]:
    """The suite's models that finished training in seed_dir (+ the SAE baseline where dense-GELU did)."""
    names = [n for n in suite_configs(scale) if (seed_dir / n / "cfg.json").is_file() and not (seed_dir / n / "checkpoint").exists()]
    return names + (["dense-gelu+sae"] if "dense-gelu" in names else [])


def seed_results(root: Path, scale: SuiteScale, seed: int, device, tiny: bool, names=None, cached_only: bool = False) -> dict:
    """name -> evaluation of one seed's models (all of the suite and the SAE baseline, or `names`);
    `cached_only`: only those already scored."""
    names = names or [*suite_configs(scale, seed), "dense-gelu+sae"]
    got = {n: model_eval(root, scale, seed, n, device, tiny, cached_only) for n in names}
    return {n: ev for n, ev in got.items() if ev is not None}


def target_rows(mean: dict) -> list[dict]:
    """The issue's targets (the paper's direction) on the means over seeds."""
    g, m, sw, up = mean["dense-gelu"], mean["moex"], mean["switch"], mean["moex-upcycled"]
    legal_min = min(v["legal_move_rate"] for v in mean.values())
    return [
        {"target": "legal-move rate >= 0.9 for every architecture", "measured": f"lowest mean {legal_min:.3f}", "met": legal_min >= 0.9},
        {"target": "MoE-X val loss within 3% of dense-GELU", "measured": f"{m['val_loss']:.4f} vs {g['val_loss']:.4f} ({100 * (m['val_loss'] / g['val_loss'] - 1):+.1f}%)",
         "met": m["val_loss"] <= 1.03 * g["val_loss"]},
        {"target": "MoE-X coverage > Switch", "measured": f"{m['coverage']:.3f} vs {sw['coverage']:.3f}", "met": m["coverage"] > sw["coverage"]},
        {"target": "MoE-X coverage >= dense-GELU + 0.05", "measured": f"{m['coverage']:.3f} vs {g['coverage']:.3f}", "met": m["coverage"] >= g["coverage"] + 0.05},
        {"target": "MoE-X reconstruction > Switch", "measured": f"{m['reconstruction']:.3f} vs {sw['reconstruction']:.3f}", "met": m["reconstruction"] > sw["reconstruction"]},
        {"target": "MoE-X reconstruction >= dense-GELU + 0.05", "measured": f"{m['reconstruction']:.3f} vs {g['reconstruction']:.3f}", "met": m["reconstruction"] >= g["reconstruction"] + 0.05},
        {"target": "upcycled >= scratch (coverage, reconstruction)", "measured": f"{up['coverage']:.3f} / {up['reconstruction']:.3f} vs {m['coverage']:.3f} / {m['reconstruction']:.3f}",
         "met": up["coverage"] >= m["coverage"] and up["reconstruction"] >= m["reconstruction"]},
    ]


def speed_rows(root: Path, cfgs: dict, scale: SuiteScale, device, tiny: bool) -> list[dict]:
    """Router and training-throughput ratios, measured side by side in this process."""
    rc = router_cost(root / "seed0" / "moex", device=device)
    tps = train_throughput(cfgs, ["dense-gelu", "switch", "moex"], steps=2 if tiny else 6, device=device)
    return [
        {"measurement": f"sparsity router vs running all {scale.n_experts} experts ({rc['n_tokens']} tokens, one layer)",
         "ratio": rc["route_s"] / rc["all_experts_s"], "detail": f"route {1e3 * rc['route_s']:.2f} ms, all experts {1e3 * rc['all_experts_s']:.2f} ms"},
        {"measurement": f"MoE-X layer (route + {scale.top_k} of {scale.n_experts} experts) vs running all experts",
         "ratio": rc["moex_layer_s"] / rc["all_experts_s"], "detail": f"layer {1e3 * rc['moex_layer_s']:.2f} ms"},
        {"measurement": "training tokens/s, MoE-X / dense-GELU (equal active params)", "ratio": tps["moex"] / tps["dense-gelu"],
         "detail": f"{tps['moex']:.0f} vs {tps['dense-gelu']:.0f} tokens/s"},
        {"measurement": "training tokens/s, Switch / dense-GELU", "ratio": tps["switch"] / tps["dense-gelu"],
         "detail": f"{tps['switch']:.0f} vs {tps['dense-gelu']:.0f} tokens/s"},
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu", choices=SCALES)
    ap.add_argument("--tiny", action="store_true", help="= --scale tiny")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    ap.add_argument("--only-seed", type=int, default=None,
                    help="train and score this one seed (cached in ROOT/seed<N>/eval-<name>.json), then stop: run one process "
                         "per seed in parallel, then the plain command for the table")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help="with --only-seed: train and score only these models of the seed (more processes per seed; "
                         "moex-upcycled needs dense-relu first)")
    ap.add_argument("--no-train", action="store_true",
                    help="table only what has finished training and been scored (rows say how many seeds they have); nothing is "
                         "trained or scored")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed ratios (meaningless on an overloaded machine)")
    ap.add_argument("--note", default=None, help="a sentence for the table's notes (how the machine was loaded, what was cut)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps or auto (default: $INTERP_DEVICE or auto)")
    ap.add_argument("--workers", type=int, default=2, help="game-generation processes if the store lacks games")
    ap.add_argument("--root", default=None, help="where the models are trained (default runs/moex-bench-<scale>)")
    ap.add_argument("--no-lm", action="store_true", help="skip the language-model MoE-X row")
    ap.add_argument("--lm-seeds", type=int, default=None, help="run the language-model comparison for seeds < N only (default: all)")
    ap.add_argument("--lm-steps", type=int, default=None, help="fine-tune steps of the language-model comparison (default: the scale's)")
    ap.add_argument("--lm-sae-steps", type=int, default=None, help="its TopK SAE steps (default: the scale's)")
    ap.add_argument("--lm-only", action="store_true", help="only the language-model comparison of the seeds (cached in ROOT/seed<N>/lm.json)")
    ap.add_argument("--ship", action="store_true", help="copy seed 0's models + the comparison into interp/moex/shipped/")
    ap.add_argument("--no-readme", action="store_true", help="do not touch benchmarks/README.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scale_name = "tiny" if args.tiny else args.scale
    tiny = scale_name == "tiny"
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    scale = SuiteScale.preset(scale_name)
    seeds = [args.only_seed] if args.only_seed is not None else list(range(args.seeds))
    root = Path(args.root or f"runs/moex-bench-{scale_name}")
    lm_seeds = [] if args.no_lm else [s for s in seeds if args.lm_seeds is None or s < args.lm_seeds]
    lm_over = {k: v for k, v in (("steps", args.lm_steps), ("sae_steps", args.lm_sae_steps)) if v is not None}
    if args.lm_only:
        for seed in lm_seeds:
            lm_seed(root, scale_name, seed, device, lm_over)
        return 0
    if args.only and args.only_seed is None:
        ap.error("--only needs --only-seed")
    if not args.no_train:
        build_suite(root, scale, only=args.only, seeds=seeds, device=device, workers=args.workers)
    if args.only:  # score what this process trained (dense-gelu brings its SAE baseline)
        seed_results(root, scale, seeds[0], device, tiny, args.only + (["dense-gelu+sae"] if "dense-gelu" in args.only else []))
        return 0
    n_metric = scale.n_metric_games
    cfgs = suite_configs(scale)
    done = [seed_results(root, scale, seed, device, tiny, finished(root / f"seed{seed}", scale) if args.no_train else None,
                         cached_only=args.no_train) for seed in seeds]
    if args.only_seed is not None:
        log.info("seed %d scored into %s", args.only_seed, root / f"seed{args.only_seed}")
        return 0
    lm_runs = [lm_seed(root, scale_name, seed, device, lm_over) for seed in lm_seeds
               if not args.no_train or list((root / f"seed{seed}").glob("lm-*.json"))]
    per = {}  # name -> [row dict per seed]
    for d in done:
        for name, ev in d.items():
            per.setdefault(name, []).append(ev)

    order = [n for n in ["dense-gelu", "dense-relu", "dense-gelu+sae", "switch", "moex", "moex-upcycled",
                         "relu-experts+softmax-router", "gelu-experts+sparsity-router"] if n in per]
    rows = []
    for n in order:
        r = per[n]
        c = cfgs.get(n, cfgs["dense-gelu"])
        paper = PAPER.get(n)
        rows.append({"model": n, "experts (act, router)": "-" if not c.mlp.is_moe else f"E={c.mlp.n_experts} k={c.mlp.top_k} ({c.mlp.act}, {c.mlp.router})",
                     "active MLP params/layer": c.mlp.active_params(), "features": r[0]["n_features"],
                     "L0": _ms([x["l0"] for x in r]), "val loss": _ms([x["val_loss"] for x in r]),
                     "legal moves": _ms([x["legal_move_rate"] for x in r]), "coverage": _ms([x["coverage"] for x in r]),
                     "reconstruction": _ms([x["reconstruction"] for x in r]),
                     "train time (s)": _ms([x["train_seconds"] for x in r]), "tokens": _ms([x["tokens"] for x in r]),
                     "seeds": len(r), "paper (loss / cov / rec)": "-" if paper is None else f"{paper[0]} / {paper[1]} / {paper[2]}"})
    mean = {n: {k: float(np.mean([x[k] for x in per[n] if x.get(k) is not None])) for k in METRICS} for n in order}
    missing = [n for n in ("dense-gelu", "switch", "moex", "moex-upcycled") if n not in mean]
    targets = [] if not missing else [{"target": "every comparison below", "measured": f"not measured: no finished {', '.join(missing)}",
                                       "met": False}]
    targets += [] if missing else target_rows(mean)
    speed = [] if args.no_speed else speed_rows(root, cfgs, scale, device, tiny)

    lm = lm_table([r["scores"] for r in lm_runs])
    lm_details = [r["details"] | {"seconds": r["seconds"]} for r in lm_runs]
    c0 = cfgs["moex"]
    scale_note = (
        f"Scale `{scale_name}`: {c0.model.n_layers} layers, d_model {c0.model.d_model}, n_ctx {c0.model.n_ctx} characters, "
        f"{c0.n_games} training / {c0.n_val_games} held-out {c0.engine} games, {c0.steps} steps x {c0.batch_size} games from "
        f"scratch (upcycled: dense-ReLU + {cfgs['moex-upcycled'].steps} steps), seeds {seeds}, device {device} "
        "(train time: wall time of each model's training steps). Mean ± std over seeds. Metrics at the last layer over the '.' "
        "before each white move; coverage and reconstruction over the 64 x 13 square/piece cells (Karvonen et al.), "
        "thresholds t = 0, 0.1, ..., 0.9; legal moves: greedy continuation after a random move number of each held-out game "
        "(random play would be far below 0.1). Active params = k experts' W_enc, b_enc, W_dec + b_dec + router per layer.")
    parts = [f"### MoE-X on chess (held-out games, {len(seeds)} seed(s))", scale_note + (f" {args.note}" if args.note else ""),
             markdown_table(rows), "Targets (the paper's direction):", markdown_table(targets)]
    if speed:
        parts += ["Speed (ratios measured side by side in the same process):", markdown_table(speed)]
    parts += ["Learning curves recorded during training (seed 0; intermediate points on the first 64 held-out games, "
             "the last on all of them):", markdown_table(curve_rows(root / "seed0", order))]
    if lm:
        parts += ["### MoE-X on the embedded language model (`interp.moex.lm`)",
                  "Last-layer MLP replaced by MoE-X upcycled from it (E=8, k=2, D = d_mlp / 2), fine-tuned "
                  f"{lm_runs[0]['cfg']['steps']} steps x {lm_runs[0]['cfg']['batch_size']} rows, TopK SAE {lm_runs[0]['cfg']['sae_steps']} steps, "
                  f"{lm_runs[0]['seconds']:.0f} s for seed 0 on the embedded corpus; concept F1 = the feature browser's concept "
                  "categories (tokens inside a fact sentence of a category), best F1 of 'fires above t x max' per feature, "
                  "features firing >= 10 times.", markdown_table(lm)]
    body = "\n\n".join(parts)
    results = {"rows": rows, "targets": targets, "speed": speed, "per_seed": per, "lm": lm, "lm_details": lm_details,
               "scale": scale_note, "scale_name": scale_name, "tiny": tiny}
    from interp.io import atomic_write_json

    out_json = ROOT / "benchmarks" / "moex" / ("results.json" if scale_name == "cpu" else f"results_{scale_name}.json")
    atomic_write_json(out_json, json.loads(json.dumps(results, default=float)))
    if not args.no_readme and not tiny:
        update_section("moex", body)
    if args.ship:
        ship(root / "seed0")
        atomic_write_json(SHIPPED_DIR / "comparison.json", json.loads(json.dumps(results, default=float)))
        tr, va = split_games(cfgs["dense-gelu"])
        atomic_write_json(SHIPPED_DIR / "games.json", {"train": tr[:n_metric], "val": va}, indent=None)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
