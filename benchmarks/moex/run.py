"""MoE-X on chess: validation loss, coverage and reconstruction of every architecture, same run.

    OMP_NUM_THREADS=1 python benchmarks/moex/run.py [--tiny] [--ship] [--root runs/moex-bench]

Trains the suite of `interp.moex.suite` (dense GELU / ReLU, Switch, MoE-X from scratch and
upcycled, the 2x2 ablation of ReLU experts x sparsity router) on the same generated games,
trains a TopK SAE on the dense-GELU MLP (dense+SAE), scores all of them on the same held-out
games, times the router against running every expert and training throughput against the dense
MLP (interleaved, same process), and writes the "moex" section of benchmarks/README.md plus
benchmarks/moex/results.json. `--ship` copies the shipped models and the comparison table into
interp/moex/shipped/ (this is how those files are rebuilt).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks._readme import markdown_table, update_section  # noqa: E402
from interp.moex.evaluate import evaluate_chess_model, evaluate_features, feature_activations, train_dense_sae  # noqa: E402
from interp.moex.layer import ACTS, hidden_hook_name  # noqa: E402
from interp.moex.model import SHIPPED_DIR, load_chess_model  # noqa: E402
from interp.moex.suite import SuiteScale, build_suite, ship, suite_configs  # noqa: E402
from interp.moex.train import lm_loss, games_to_tensor, split_games  # noqa: E402

log = logging.getLogger("benchmarks.moex")
PAPER = {"dense-gelu": (0.213, 0.356, 0.608), "dense-relu": (0.215, 0.312, 0.581), "switch": (0.212, 0.424, 0.734),
         "moex": (0.211, 0.428, 0.840)}


def _time(fn, reps: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


@torch.no_grad()
def router_cost(model_dir: Path, n_tokens: int = 4096, rounds: int = 5) -> dict:
    """Time of the sparsity router vs running all E experts densely vs the real sparse layer, one layer."""
    model, _, mlp, _ = load_chess_model(model_dir)
    layer = model.blocks[0].mlp
    x = torch.randn(n_tokens, mlp.d_model)
    act = ACTS[mlp.act]

    def all_experts():
        return act(torch.einsum("nd,edh->neh", x, layer.W_enc) + layer.b_enc)

    route, full, sparse = [], [], []
    for _ in range(rounds):  # interleaved so that machine load hits all three alike
        route.append(_time(lambda: layer.route(x), 5))
        full.append(_time(all_experts, 2))
        sparse.append(_time(lambda: layer(x), 2))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"route_s": med(route), "all_experts_s": med(full), "moex_layer_s": med(sparse), "n_tokens": n_tokens}


def train_throughput(cfgs: dict, names: list[str], steps: int = 6, rounds: int = 3) -> dict:
    """Training tokens/s of each model's architecture, interleaved in one process (fresh optimizer)."""
    from interp.moex.model import build_chess_model

    tr, _ = split_games(cfgs[names[0]])
    n_ctx = cfgs[names[0]].model.n_ctx
    toks = games_to_tensor(tr[:64], n_ctx)
    lens = torch.tensor([min(len(g), n_ctx + 1) for g in tr[:64]])
    models = {n: build_chess_model(cfgs[n].model, cfgs[n].mlp).train() for n in names}
    opts = {n: torch.optim.AdamW(m.parameters(), 1e-4) for n, m in models.items()}
    bs = cfgs[names[0]].batch_size
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names:
            def step():
                i = torch.randint(len(toks), (bs,))
                loss = lm_loss(models[n], toks[i], lens[i])
                opts[n].zero_grad()
                loss.backward()
                opts[n].step()
            times[n].append(_time(step, steps))
    tok = float((lens[:bs] - 1).sum())
    return {n: tok / sorted(v)[len(v) // 2] for n, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (numbers meaningless)")
    ap.add_argument("--root", default="runs/moex-bench", help="where the suite's models are trained")
    ap.add_argument("--ship", action="store_true", help="copy the shipped models + comparison into interp/moex/shipped/")
    ap.add_argument("--no-readme", action="store_true", help="do not touch benchmarks/README.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    scale = SuiteScale.tiny() if args.tiny else SuiteScale()
    root = Path(args.root)
    t0 = time.time()
    build_suite(root, scale)
    train_s = time.time() - t0
    cfgs = suite_configs(scale)
    n_metric = 24 if args.tiny else 300

    rows = []
    evals = {}
    for name in cfgs:
        ev = evaluate_chess_model(root / name, n_metric_games=n_metric, n_legal=8 if args.tiny else 100)
        evals[name] = ev
        log.info("%s: %s", name, ev)

    # dense + SAE: TopK SAE as wide as the MoE-X hidden vector, on the dense-GELU last-layer MLP
    s = scale
    dense_dir = root / "dense-gelu"
    model, mcfg, mlp, _ = load_chess_model(dense_dir)
    layer = mcfg.n_layers - 1
    hook = hidden_hook_name(mlp, layer)
    tr, va = split_games(cfgs["dense-gelu"])
    sae_k = 4 if args.tiny else 64
    sae = train_dense_sae(model, hook, tr[: (24 if args.tiny else 1000)], mcfg.n_ctx, d_sae=s.n_experts * s.expert_width,
                          k=sae_k, steps=20 if args.tiny else 600)
    a_tr, p_tr = feature_activations(model, hook, tr[:n_metric], mcfg.n_ctx, sae=sae)
    a_te, p_te = feature_activations(model, hook, va, mcfg.n_ctx, sae=sae)
    cov, rec = evaluate_features(a_tr, p_tr, a_te, p_te)
    base = evals["dense-gelu"]
    sae_row = dict(base.to_dict(), arch="dense-gelu+sae", coverage=cov.score, coverage_threshold=cov.threshold,
                   reconstruction=rec.score, reconstruction_threshold=rec.threshold, n_features=a_te.shape[1],
                   l0=float((a_te > 0).float().sum(1).mean()), feature_source=f"TopK SAE k={sae_k} on {hook}")

    order = ["dense-gelu", "dense-relu", "dense-gelu+sae", "switch", "moex", "moex-upcycled",
             "relu-experts+softmax-router", "gelu-experts+sparsity-router"]
    table = {n: e.to_dict() for n, e in evals.items()} | {"dense-gelu+sae": sae_row}
    for n in order:
        r = table[n]
        c = cfgs.get(n, cfgs["dense-gelu"])
        paper = PAPER.get(n)
        rows.append({"model": n, "experts (act, router)": "-" if not c.mlp.is_moe else f"E={c.mlp.n_experts} k={c.mlp.top_k} ({c.mlp.act}, {c.mlp.router})",
                     "active MLP params/layer": c.mlp.active_params(), "features": r["n_features"], "L0": r["l0"],
                     "val loss": r["val_loss"], "legal moves": r["legal_move_rate"], "coverage": r["coverage"],
                     "reconstruction": r["reconstruction"],
                     "paper (loss / cov / rec)": "-" if paper is None else f"{paper[0]} / {paper[1]} / {paper[2]}"})

    rc = router_cost(root / "moex")
    tps = train_throughput(cfgs, ["dense-gelu", "switch", "moex"], steps=2 if args.tiny else 6)
    g, m, sw = table["dense-gelu"], table["moex"], table["switch"]
    targets = [
        {"target": "MoE-X val loss within 3% of dense-GELU", "measured": f"{m['val_loss']:.4f} vs {g['val_loss']:.4f} ({100 * (m['val_loss'] / g['val_loss'] - 1):+.1f}%)",
         "met": abs(m["val_loss"] / g["val_loss"] - 1) <= 0.03 or m["val_loss"] < g["val_loss"]},
        {"target": "MoE-X coverage > Switch", "measured": f"{m['coverage']:.3f} vs {sw['coverage']:.3f}", "met": m["coverage"] > sw["coverage"]},
        {"target": "MoE-X coverage >= dense-GELU + 0.05", "measured": f"{m['coverage']:.3f} vs {g['coverage']:.3f}", "met": m["coverage"] >= g["coverage"] + 0.05},
        {"target": "MoE-X reconstruction > Switch", "measured": f"{m['reconstruction']:.3f} vs {sw['reconstruction']:.3f}", "met": m["reconstruction"] > sw["reconstruction"]},
        {"target": "MoE-X reconstruction >= dense-GELU + 0.05", "measured": f"{m['reconstruction']:.3f} vs {g['reconstruction']:.3f}", "met": m["reconstruction"] >= g["reconstruction"] + 0.05},
        {"target": "upcycled >= scratch (coverage, reconstruction)", "measured": f"{table['moex-upcycled']['coverage']:.3f} / {table['moex-upcycled']['reconstruction']:.3f} vs {m['coverage']:.3f} / {m['reconstruction']:.3f}",
         "met": table["moex-upcycled"]["coverage"] >= m["coverage"] and table["moex-upcycled"]["reconstruction"] >= m["reconstruction"]},
    ]
    speed = [
        {"measurement": f"sparsity router vs running all {s.n_experts} experts ({rc['n_tokens']} tokens, one layer)",
         "ratio": rc["route_s"] / rc["all_experts_s"], "detail": f"route {1e3 * rc['route_s']:.2f} ms, all experts {1e3 * rc['all_experts_s']:.2f} ms"},
        {"measurement": f"MoE-X layer (route + {s.top_k} of {s.n_experts} experts) vs running all experts",
         "ratio": rc["moex_layer_s"] / rc["all_experts_s"], "detail": f"layer {1e3 * rc['moex_layer_s']:.2f} ms"},
        {"measurement": "training tokens/s, MoE-X / dense-GELU (equal active params)", "ratio": tps["moex"] / tps["dense-gelu"],
         "detail": f"{tps['moex']:.0f} vs {tps['dense-gelu']:.0f} tokens/s"},
        {"measurement": "training tokens/s, Switch / dense-GELU", "ratio": tps["switch"] / tps["dense-gelu"],
         "detail": f"{tps['switch']:.0f} vs {tps['dense-gelu']:.0f} tokens/s"},
    ]
    c0 = cfgs["moex"]
    scale_note = (
        f"Scale: {c0.model.n_layers} layers, d_model {c0.model.d_model}, n_ctx {c0.model.n_ctx} characters, "
        f"{c0.n_games} training / {c0.n_val_games} held-out weighted-random games, {c0.steps} steps x {c0.batch_size} games "
        f"from scratch (upcycled: dense-ReLU + {cfgs['moex-upcycled'].steps} steps), all trained on one shared CPU core "
        f"({train_s / 60:.0f} min for the suite). The paper trains 8-layer models on millions of real games, so "
        "absolute numbers are not comparable; the question is only whether the ordering holds. Metrics at layer "
        f"{layer} (last) over the '.' before each white move; coverage and reconstruction over the 64 x 13 "
        "square/piece cells (Karvonen et al.), thresholds t = 0, 0.1, ..., 0.9. Active params = k experts' "
        "W_enc, b_enc, W_dec + b_dec + router weights per layer; dense MLPs have k x D hidden units.")
    body = "\n\n".join([
        "### MoE-X on chess (held-out games, one run)", scale_note, markdown_table(rows),
        "Targets (the paper's direction):", markdown_table(targets),
        "Speed (ratios measured side by side in the same process):", markdown_table(speed),
    ])
    results = {"rows": rows, "targets": targets, "speed": speed, "table": table, "scale": scale_note, "tiny": args.tiny}
    out_json = ROOT / "benchmarks" / "moex" / ("results_tiny.json" if args.tiny else "results.json")
    tmp = out_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=float))
    tmp.replace(out_json)
    if not args.no_readme and not args.tiny:
        update_section("moex", body)
    if args.ship:
        ship(root)
        tmp = SHIPPED_DIR / "comparison.json.tmp"
        tmp.write_text(json.dumps(results, indent=2, default=float))
        tmp.replace(SHIPPED_DIR / "comparison.json")
        games = {"train": tr[:n_metric], "val": va}
        tmp = SHIPPED_DIR / "games.json.tmp"
        tmp.write_text(json.dumps(games))
        tmp.replace(SHIPPED_DIR / "games.json")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
