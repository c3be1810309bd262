"""MoE-X subcommands: `interp moex train | eval | games | build`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp.errors import InterpError

MAX_GAMES = 10_000_000  # games in one store (each is a few hundred characters; Stockfish plays a handful per second)

_TRAIN_DEFAULTS = {
    "expert_width": "mlp.d_mlp",
    "balance": "mlp.balance_coef",
    "layers": "model.n_layers",
    "d_model": "model.d_model",
    "heads": "model.n_heads",
    "n_ctx": "model.n_ctx",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "warmup": "warmup",
    "games": "n_games",
    "val_games": "n_val_games",
    "engine": "engine",
    "nodes": "stockfish_nodes",
    "store": "store",
    "seed": "seed",
    "checkpoint_every": "checkpoint_every",
    "eval_every": "eval_every",
}


def train_config_from_args(args):
    """The TrainConfig the `moex train` options describe (every default comes from TrainConfig)."""
    from interp.moex.layer import MoEXConfig
    from interp.moex.model import ChessModelConfig
    from operator import attrgetter

    from interp.moex.train import TrainConfig

    td = TrainConfig()
    for dest, path in _TRAIN_DEFAULTS.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, attrgetter(path)(td))
    from interp.fields import check_count

    check_count("--workers", args.workers, 256)
    if args.data != "chess" and not Path(args.data).is_file():
        raise InterpError(f"--data must be 'chess' (generated games) or a text file of PGN lines; {args.data!r} is neither")
    moe = args.arch in ("switch", "moex")
    if not moe and (args.experts is not None or args.topk is not None):
        raise InterpError(f"--experts/--topk need a switch or moex architecture, not {args.arch}")
    for flag, v in (("--experts", args.experts), ("--topk", args.topk), ("--d-mlp", args.d_mlp), ("--expert-width", args.expert_width)):
        if v is not None and v < 1:  # `or` once turned 0 into the default and trained
            raise InterpError(f"{flag} {v}: must be at least 1")
    base = TrainConfig().mlp
    pick = lambda v, d: d if v is None else v  # noqa: E731
    experts, topk = (pick(args.experts, base.n_experts), pick(args.topk, base.top_k)) if moe else (1, 1)
    d_mlp = args.expert_width if moe else pick(args.d_mlp, pick(args.topk, base.top_k) * args.expert_width)
    mlp = MoEXConfig(args.arch, d_model=args.d_model, d_mlp=d_mlp, n_experts=experts, top_k=topk, act=args.act,
                     router=args.router, balance_coef=args.balance)
    model = ChessModelConfig(n_layers=args.layers, d_model=args.d_model, n_heads=args.heads, n_ctx=args.n_ctx, seed=args.seed)
    return TrainConfig(mlp=mlp, model=model, steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                       n_games=args.games, n_val_games=args.val_games, engine=args.engine, stockfish_nodes=args.nodes,
                       seed=args.seed, upcycle_from=args.upcycle_from, games_file=None if args.data == "chess" else args.data,
                       checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, store=args.store)


def cmd_train(args) -> int:
    from interp.moex.train import train_chess_model

    cfg = train_config_from_args(args)
    res = train_chess_model(cfg, args.out, resume=args.resume, overwrite=args.overwrite,
                            device=getattr(args, "device", None), workers=args.workers)
    last = res.curve[-1] if res.curve else {}
    print(f"{args.arch}: validation loss {res.val_loss:.4f}, legal-move rate {last.get('legal_move_rate', float('nan')):.3f} "
          f"after {res.steps} steps ({res.tokens:,} tokens, {res.train_seconds:.0f} s, {res.tokens_per_second:.0f} tokens/s, "
          f"active MLP params/layer {cfg.mlp.active_params():,}) -> {res.out_dir}")
    return 0


def cmd_eval(args) -> int:
    from interp.fields import check_count
    from interp.moex.evaluate import evaluate_chess_model

    check_count("--metric-games", args.metric_games, MAX_GAMES)  # before the model and the games load
    check_count("--legal", args.legal, 100_000)
    if args.layer is not None and args.layer < 0:
        raise InterpError(f"--layer {args.layer}: must be at least 0")
    ev = evaluate_chess_model(args.dir, layer=args.layer, n_metric_games=args.metric_games, n_legal=args.legal,
                              device=getattr(args, "device", None))
    if args.json:
        print(json.dumps(ev.to_dict(), indent=2))
        return 0
    print(f"{args.dir} ({ev.arch}, layer {ev.layer}, {ev.n_features} units, L0 {ev.l0:.1f})")
    print(f"  validation loss   {ev.val_loss:.4f}")
    print(f"  legal-move rate   {ev.legal_move_rate:.3f}")
    print(f"  coverage          {ev.coverage:.3f}  (t = {ev.coverage_threshold})")
    print(f"  reconstruction    {ev.reconstruction:.3f}  (t = {ev.reconstruction_threshold})")
    return 0


def cmd_games(args) -> int:
    from interp.data.chess import ChessDataConfig, build_game_store, read_game_store, read_pgn_lines
    from interp.io import atomic_write_text

    if args.check:
        res = read_pgn_lines(args.check)
        print(f"{len(res.games)} legal games, {res.skipped} skipped")
        for r in res.reasons:
            print(f"  {r}")
        return 0 if not res.skipped else 1
    from interp.fields import check_count

    check_count("--n", args.n, MAX_GAMES)
    check_count("--workers", args.workers, 256)
    cfg = ChessDataConfig(n_games=args.n, seed=args.seed, max_chars=args.max_chars, engine=args.engine,
                          stockfish_nodes=args.nodes, random_fraction=args.random_fraction)
    if args.out:
        from interp.io import check_output_file

        check_output_file(args.out, overwrite=args.overwrite, what="--out")
    store = build_game_store(cfg, args.store, workers=args.workers)
    rate = f" ({store.games_per_second:.2f} games/s)" if store.games_per_second else ""
    print(f"{store.n_available} games in {store.path}{rate}")
    if args.out:
        games = read_game_store(store.path, args.n)
        atomic_write_text(args.out, "\n".join(games) + "\n")
        print(f"{len(games)} games -> {args.out}")
    return 0


def cmd_build(args) -> int:
    from interp.moex.suite import SuiteScale, build_suite, ship

    from interp.fields import check_count

    check_count("--seeds", args.seeds, 100)  # --seeds 0 built nothing and exited 0
    check_count("--workers", args.workers, 256)
    scale = SuiteScale.preset("tiny" if args.tiny else args.scale)
    build_suite(args.root, scale, seeds=range(args.seeds), device=getattr(args, "device", None), workers=args.workers)
    if args.ship:
        for p in ship(f"{args.root}/seed0"):
            print(f"shipped {p}")
    print("for the comparison table run: python benchmarks/moex/run.py --scale " + ("tiny" if args.tiny else args.scale))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from interp.data.chess import ChessDataConfig

    p = sub.add_parser("moex", help="MoE-X sparse experts on chess: train, evaluate, generate games")
    msub = p.add_subparsers(dest="moex_command", metavar="MOEX_COMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    # Defaults left as None are TrainConfig's (filled in by train_config_from_args): importing
    # interp.moex.train here would pull torch into every `interp` call (the parser must stay light).
    t = msub.add_parser("train", help="train a character-level chess model with dense / switch / moex MLPs",
                        description="Defaults are TrainConfig's: 4 layers, d_model 256, Stockfish games "
                                    "(hours on a CPU, minutes on a GPU: --device cuda).")
    t.add_argument("--data", default="chess", help="chess (the generated game store) or a text file with one PGN game per line")
    t.add_argument("--arch", required=True, choices=["dense-gelu", "dense-relu", "switch", "moex"])
    t.add_argument("--out", required=True, help="model directory (new, or one of ours with --resume / --overwrite)")
    t.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    t.add_argument("--overwrite", action="store_true", help="start over, replacing the chess model or checkpoint in --out")
    t.add_argument("--upcycle-from", help="a trained dense chess model directory to upcycle from")
    t.add_argument("--experts", type=int, help="E (default: TrainConfig's)")
    t.add_argument("--topk", type=int, help="k experts per token (default: TrainConfig's)")
    t.add_argument("--expert-width", type=int, default=None, help="D hidden units per expert (dense: d_mlp = k * D)")
    t.add_argument("--d-mlp", type=int, help="dense hidden width (default: k * expert width = equal active params)")
    t.add_argument("--act", choices=["relu", "gelu"], help="expert activation (default: moex relu, switch gelu)")
    t.add_argument("--router", choices=["sparsity", "softmax"], help="router (default: moex sparsity, switch softmax)")
    t.add_argument("--balance", type=float, default=None, help="load-balancing loss weight")
    t.add_argument("--layers", type=int, default=None)
    t.add_argument("--d-model", type=int, default=None)
    t.add_argument("--heads", type=int, default=None)
    t.add_argument("--n-ctx", type=int, default=None)
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--warmup", type=int, default=None)
    t.add_argument("--games", type=int, default=None, help="training games")
    t.add_argument("--val-games", type=int, default=None, help="held-out games (the first of the sequence)")
    t.add_argument("--engine", default=None, choices=["stockfish", "random"], help="game generator for --data chess")
    t.add_argument("--nodes", type=int, default=None, help="Stockfish node limit per move")
    t.add_argument("--store", default=None, help="root of the game stores (default: $INTERP_HOME/chess)")
    t.add_argument("--workers", type=int, default=1, help="game-generation processes if the store lacks games")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--checkpoint-every", type=int, default=None)
    t.add_argument("--eval-every", type=int, default=None, help="steps between learning-curve points (0 = end only)")
    t.set_defaults(func=cmd_train)

    e = msub.add_parser("eval", help="validation loss, legal-move rate, board coverage and reconstruction")
    e.add_argument("dir", help="a chess model directory (e.g. interp/moex/shipped/moex)")
    e.add_argument("--layer", type=int, help="which layer's units (default: last)")
    e.add_argument("--metric-games", type=int, default=300, help="training games used to pick precise features")
    e.add_argument("--legal", type=int, default=100, help="sampled continuations for the legal-move rate")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    gd = ChessDataConfig()
    g = msub.add_parser("games", help="generate chess games into the resumable game store (and --out a PGN file), or --check a file")
    g.add_argument("--n", type=int, default=gd.n_games, help="games the store should hold (it grows; a killed run resumes)")
    g.add_argument("--workers", type=int, default=1, help="parallel generator processes (one Stockfish each)")
    g.add_argument("--store", help="root directory of game stores (default: $INTERP_HOME/chess)")
    g.add_argument("--out", help="also write the first --n games to this text file, one PGN line each")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    g.add_argument("--seed", type=int, default=gd.seed)
    g.add_argument("--max-chars", type=int, default=gd.max_chars, help="cut games at this many characters")
    g.add_argument("--engine", default=gd.engine, choices=["stockfish", "random"])
    g.add_argument("--nodes", type=int, default=gd.stockfish_nodes, help="Stockfish node limit per move")
    g.add_argument("--random-fraction", type=float, default=gd.random_fraction, help="share of weighted-random games mixed in")
    g.add_argument("--check", help="validate a file of PGN lines: count and list the illegal ones")
    g.set_defaults(func=cmd_games)

    b = msub.add_parser("build", help="train the comparison suite (resumable), optionally ship seed 0 into interp/moex/shipped/")
    b.add_argument("--root", default="runs/moex-bench")
    b.add_argument("--scale", default="cpu", choices=["tiny", "cpu-short", "cpu", "full"],
                   help="cpu-short = 4 layers, d_model 256, 60 steps (what a shared CPU allows); full = 8 layers, d_model 512 (a GPU)")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--workers", type=int, default=4, help="game-generation processes")
    b.add_argument("--tiny", action="store_true", help="a seconds-long smoke build (= --scale tiny)")
    b.add_argument("--ship", action="store_true", help="copy seed 0's models into the package (a repository build step)")
    b.set_defaults(func=cmd_build)
