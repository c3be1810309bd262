"""Scaling out: `interp sweep` (Ray or a process pool), and the `--nproc` / torchrun plumbing that
`train-sae` and `collect` share (`add_launch_args`, `parallel_command`)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys

from interp.errors import InterpError

# Arguments that may legitimately differ between ranks (they name where a node is, not the work).
_PER_RANK_ARGS = {"func", "argv", "nproc", "nnodes", "rdzv_endpoint", "verbose"}


def add_launch_args(p: argparse.ArgumentParser, distribute_hooks: bool = False) -> None:
    """--nproc N (start torchrun on this node), --nnodes / --rdzv-endpoint (several nodes)."""
    g = p.add_argument_group("scaling out (torch.distributed; or run this command under torchrun)")
    g.add_argument("--nproc", type=int, help="processes on this node: launches torchrun (gloo on CPUs, nccl on GPUs)")
    g.add_argument("--nnodes", type=int, default=1, help="nodes in the job (with --nproc; every node runs the same command)")
    g.add_argument("--rdzv-endpoint", help="HOST:PORT of the first node, for --nnodes > 1")
    if distribute_hooks:
        g.add_argument("--distribute-hooks", action="store_true",
                       help="each rank trains its own block of the SAEs on every batch (sparsify's --distribute_modules) "
                            "instead of every rank training every SAE on part of each batch")


def parallel_command(handler):
    """Wrap a command handler: with --nproc, launch torchrun on this command; under torchrun,
    join the process group, check that every rank got the same arguments, let only rank 0
    print and log, and turn a lost rank into one line."""

    @functools.wraps(handler)
    def run(args) -> int:
        from interp import distributed as dist

        nnodes = getattr(args, "nnodes", 1)
        if nnodes is not None and nnodes < 1:  # --nnodes 0 without --nproc used to run
            raise InterpError(f"--nnodes {nnodes}: must be at least 1")
        if getattr(args, "nproc", None) is not None and not dist.under_torchrun():
            if args.nproc < 1:
                raise InterpError("--nproc must be at least 1")
            argv = dist.strip_launch_args(getattr(args, "argv", None) or sys.argv[1:])
            return dist.launch(argv, args.nproc, nnodes=args.nnodes, rdzv_endpoint=args.rdzv_endpoint)
        if (getattr(args, "nnodes", 1) or 1) > 1 or getattr(args, "rdzv_endpoint", None):
            if not getattr(args, "nproc", None):
                raise InterpError("--nnodes / --rdzv-endpoint go with --nproc (or give them to torchrun instead)")
        if not dist.under_torchrun():
            if getattr(args, "distribute_hooks", False):
                logging.getLogger(__name__).info("--distribute-hooks has no effect in a single process")
            return handler(args)
        par = dist.init(getattr(args, "device", None))
        try:
            if not par.is_writer:
                logging.getLogger().setLevel(logging.WARNING)
            cfg = {k: v for k, v in vars(args).items() if k not in _PER_RANK_ARGS}
            dist.check_same_config(par, cfg)
            with _recorded(par), dist.collective_errors(par), _quiet_unless(par.is_writer):
                try:
                    return handler(args)
                except InterpError as e:
                    # Bad input fails on every rank alike: rank 0 prints it, the others exit quietly.
                    # (A failure of this rank alone then shows on rank 0 as a lost peer.)
                    if par.is_writer or getattr(e, "quiet", False):
                        raise
                    logging.getLogger(__name__).debug("rank %d: %s", par.rank, e)
                    # recorded for the launcher: if it failed here only, its text is what gets reported
                    msg = " ".join(str(e).split())
                    dist.record_rank_error(par.rank, msg, secondary="lost contact with the other ranks" in msg)
                    raise dist.RankExit(str(e)) from None
        finally:
            dist.shutdown()

    return run


@contextlib.contextmanager
def _recorded(par):
    """Leave this rank's error for the launcher, so rank 0's side reports it with its text
    (`interp.distributed.record_rank_error`); an error every rank shares is not recorded."""
    from interp import distributed as dist

    try:
        yield
    except BaseException as e:
        if isinstance(e, (SystemExit, KeyboardInterrupt)) or getattr(e, "quiet", False):
            raise
        from interp.cli import error_message

        msg = error_message(e)
        dist.record_rank_error(par.rank, msg, secondary="lost contact with the other ranks" in msg)
        raise


@contextlib.contextmanager
def _quiet_unless(writer: bool):
    """Rank 0 prints the command's output; the other ranks' stdout goes nowhere."""
    if writer:
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def parallel_from_args(args):
    """The `Parallel` plan for this process (single process outside torchrun)."""
    from interp.distributed import from_env

    return from_env(distribute_hooks=bool(getattr(args, "distribute_hooks", False)))


def _num(s: str):
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s


def _parse_grid(items: list[str], cls=None) -> dict:
    """--grid NAME=V1,V2 ... -> {NAME: [V1, V2]}. With `cls` (the SAE config dataclass) every NAME
    must be one of its fields and every value is parsed as that field's type (a bare NAME sweeps a
    true/false field over both); without it (command sweeps) numbers are parsed and a bare NAME is
    a flag swept on and off. Every problem is one line naming the item, before any work."""
    from interp.fields import field_names, is_bool_field, parse_value

    axes: dict = {}
    for it in items or []:
        name, sep, vals = it.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not name or not name.isidentifier():
            raise InterpError(f"--grid {it[:60]!r}: expected NAME=V1,V2")
        if name in axes:
            raise InterpError(f"--grid {name} is given twice")
        if cls is not None:
            if name not in field_names(cls):
                raise InterpError(f"--grid {name}: not a field of the SAE config; fields are {', '.join(field_names(cls))}")
            if not sep:
                if not is_bool_field(cls, name):
                    raise InterpError(f"--grid {it[:60]!r}: expected NAME=V1,V2 ({name} is not a true/false field)")
                axes[name] = [True, False]
                continue
            axes[name] = [parse_value(cls, name, v, where="in --grid") for v in vals.split(",") if v.strip()]
        else:
            axes[name] = [_num(v.strip()) for v in vals.split(",") if v.strip()] if sep else [True, False]
        if not axes[name]:
            raise InterpError(f"--grid {it[:60]!r}: no values")
        if len(set(map(repr, axes[name]))) != len(axes[name]):
            raise InterpError(f"--grid {it[:60]!r}: a value is repeated")
    return axes


def sweep_trials(args) -> tuple[list, list | None]:
    """(trials, table columns or None) of an `interp sweep` command line, every value checked."""
    from interp.sweep import cmd_trials, sae_trials

    if args.kind == "sae":
        if not args.hook:
            raise InterpError("an SAE sweep needs --hook")
        from interp.sae.config import SAETrainConfig

        base = dict(hook=args.hook, model=args.model, tokens=args.tokens, batch_size=args.batch_size, seed=args.seed,
                    checkpoint_every=args.checkpoint_every)
        import math

        # k and l1 go only to the architectures that take them, so check every value here (a bad
        # --l1 on a TopK-only sweep was dropped silently and the sweep ran)
        for v in args.l1 or []:
            if not (math.isfinite(v) and v >= 0):
                raise InterpError(f"--l1 {v}: must be a finite number >= 0")
        for v in args.k or []:
            if v < 1:
                raise InterpError(f"--k {v}: must be at least 1")
        axes = dict(arch=args.arch, d_sae=args.d_sae, k=args.k, l1=args.l1, lr=args.lr)
        grid_axes = _parse_grid(args.grid, SAETrainConfig)
        axes.update(grid_axes)  # a --grid axis replaces the flag of the same field (`--grid k=4,8` once failed: k twice)
        base = {k: v for k, v in base.items() if k not in grid_axes}
        trials = sae_trials(base, **axes)
        cols = ["id", "status", "arch", "d_sae", "k", "l1", "lr", "l0", "explained_variance", "ce_loss_score", "frac_alive", "seconds"]
        cols += [k for k in grid_axes if k not in cols]
        return trials, cols
    import shlex

    try:
        command = shlex.split(args.command or "")
    except ValueError as e:
        raise InterpError(f"--command: {e}") from None
    if not command:
        raise InterpError('a command sweep needs --command, e.g. --command "unlearn --concept animals --sae DIR"')
    return cmd_trials(command, **_parse_grid(args.grid)), None


def cmd_sweep(args) -> int:
    from interp.sweep import format_rows, run_sweep

    import math

    if args.workers < 1:
        raise InterpError(f"--workers {args.workers}: must be at least 1")
    if not (math.isfinite(args.cpus_per_trial) and args.cpus_per_trial > 0):
        raise InterpError(f"--cpus-per-trial {args.cpus_per_trial}: must be a finite number > 0")
    if not (math.isfinite(args.gpus_per_trial) and args.gpus_per_trial >= 0):
        raise InterpError(f"--gpus-per-trial {args.gpus_per_trial}: must be a finite number >= 0")
    from interp.fields import check_count

    check_count("--eval-tokens", args.eval_tokens, 10**9)
    trials, cols = sweep_trials(args)
    res = run_sweep(trials, args.out, ray=args.ray, workers=args.workers, cpus_per_trial=args.cpus_per_trial,
                    gpus_per_trial=args.gpus_per_trial, acts_dir=args.acts_dir, eval_tokens=args.eval_tokens)
    if cols is not None:
        cols = [c for c in cols if any(c in r for r in res.rows)]
    print(format_rows(res.rows, cols))
    print(f"\n{len(res.ran)} trial(s) run, {len(res.skipped)} already finished, {len(res.failed)} failed "
          f"[{res.backend}, {res.seconds:.1f}s] -> {res.out / 'results.md'}, {res.out / 'results.json'}")
    for r in res.rows:
        if r.get("status") != "ok":
            print(f"  {r['id']}: {r.get('error', 'failed')}")
    return 1 if res.failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    from interp.sae.config import ARCHS

    p = sub.add_parser("sweep", help="a grid of SAE trainings (or of any interp command) on Ray or a process pool",
                       description="Run a grid of trials as Ray tasks (--ray auto: a local instance; --ray HOST:PORT: a "
                                   "cluster) or in a local process pool. One results table (OUT/results.md, results.json); "
                                   "a rerun skips finished trials. SAE grid: interp sweep sae --hook H --arch topk --d-sae 256 512 "
                                   "--k 16 32. Command grid: interp sweep cmd --grid value=-25,-50 --command 'unlearn --concept animals --sae S'")
    p.add_argument("kind", choices=["sae", "cmd"], help="sae: SAE trainings; cmd: the interp command given by --command")
    p.add_argument("--out", required=True, help="sweep directory (trials/, results.md, results.json)")
    p.add_argument("--ray", help="auto (start a local Ray instance) or HOST:PORT / ray://HOST:PORT of a cluster; "
                                 "default: a local process pool")
    p.add_argument("--workers", type=int, default=2, help="parallel trials (pool size, or the local Ray instance's CPUs)")
    p.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs Ray reserves per trial")
    p.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs Ray reserves per trial")
    p.add_argument("--grid", nargs="+", default=[], metavar="NAME=V1,V2", help="more axes (SAE config fields, or flags of the command)")
    g = p.add_argument_group("SAE sweeps")
    g.add_argument("--model", default="embedded")
    g.add_argument("--hook", help="hook spec the SAEs read")
    g.add_argument("--arch", nargs="+", choices=ARCHS, default=["topk"])
    g.add_argument("--d-sae", type=int, nargs="+", default=[1024])
    g.add_argument("--k", type=int, nargs="+", help="k values (k architectures)")
    g.add_argument("--l1", type=float, nargs="+", help="sparsity coefficients (standard, gated, jumprelu)")
    g.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    g.add_argument("--tokens", type=int, default=1_000_000, help="training activations per SAE")
    g.add_argument("--batch-size", type=int, default=4096)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--checkpoint-every", type=int, default=100)
    g.add_argument("--acts-dir", help="shared activation cache (default: OUT/acts)")
    g.add_argument("--eval-tokens", type=int, default=16384)
    p.add_argument("--command", help='cmd sweeps: the interp command line to sweep, quoted, e.g. "unlearn --concept animals" '
                                     "(it must accept --json FILE)")
    p.set_defaults(func=cmd_sweep)
