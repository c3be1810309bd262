"""Data parallelism on torch.distributed: process groups, rank plans, gradient sync for SAELens'
trainer, agreed errors, and the torchrun launcher behind `--nproc`.

Run any `interp` command under torchrun (one node or many) and it reads RANK / WORLD_SIZE from
the environment; `interp train-sae --nproc N` starts torchrun for one node itself:

    torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT] -m interp train-sae ...

Three ways of splitting work, all on one `Parallel` plan:

* **data parallel** (default): every rank trains every SAE on its slice of each global batch
  (``batch_size / world_size`` rows); the gradient of the global loss is the mean of the ranks'
  gradients, all-reduced inside the backward pass (`DataParallelSync`), so W ranks take the
  same optimizer steps as one process on the concatenated batch;
* **distributed hooks** (`--distribute-hooks`, sparsify's ``--distribute_modules``): rank r
  trains only its contiguous block of the SAEs, each on the full global batches;
* **distributed collection**: rank r runs the model over shards r, r+W, r+2W, ... of the
  activation store (`owns_shard`); rank 0 alone writes the manifest.

Rank 0 alone writes checkpoints, metrics, logs and progress bars (with `--distribute-hooks`,
each SAE directory is written by the rank that trains it). Errors that every rank must agree on
(bad input) go through `agree`: rank 0 prints one line, every rank exits 2.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from interp.errors import InterpError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = float(os.environ.get("INTERP_DIST_TIMEOUT", 600))  # seconds before a silent rank fails the job
RENDEZVOUS_TIMEOUT_S = 60  # how long `--nproc` waits for a multi-node rendezvous endpoint to answer


class RankExit(InterpError):
    """An error already reported by rank 0: the other ranks exit 2 without printing it."""

    quiet = True


@dataclass(frozen=True)
class Parallel:
    """Who this process is in a torch.distributed job, and how work is split."""

    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this node (picks the GPU)
    distribute_hooks: bool = False  # each rank trains its own block of SAEs instead of data parallelism

    def __post_init__(self):
        if not (0 <= self.rank < self.world_size):
            raise InterpError(f"rank {self.rank} is outside world size {self.world_size}")

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0: writes manifests, checkpoints, metrics, logs and progress bars."""
        return self.rank == 0

    def owns_shard(self, shard: int) -> bool:
        """Distributed collection: shard i belongs to rank i mod world_size."""
        return shard % self.world_size == self.rank

    def hook_plan(self, n: int) -> list[list[int]]:
        """`--distribute-hooks`: contiguous blocks of SAE indices per rank (as sparsify's
        `distribute_modules`, which asserts n % world_size == 0; here the first n % W ranks get one
        more so any n >= W works)."""
        if n < self.world_size:
            raise InterpError(f"--distribute-hooks needs at least one SAE per rank: {n} SAE(s) for {self.world_size} ranks")
        per, rem = divmod(n, self.world_size)
        plan, start = [], 0
        for r in range(self.world_size):
            size = per + (r < rem)
            plan.append(list(range(start, start + size)))
            start += size
        return plan

    def trains(self, i: int, n: int) -> bool:
        """Whether this rank trains SAE i of n."""
        return not (self.distribute_hooks and self.active) or i in self.hook_plan(n)[self.rank]

    def writes(self, i: int, n: int) -> bool:
        """Whether this rank writes SAE i of n (its checkpoints and directory): rank 0 in data
        parallel, the training rank with `distribute_hooks`."""
        return self.trains(i, n) and (self.distribute_hooks or self.is_writer)

    def local_batch(self, global_batch: int) -> int:
        """Rows of each global batch this rank trains on (data parallel)."""
        if self.distribute_hooks or not self.active:
            return global_batch
        if global_batch % self.world_size:
            raise InterpError(f"uneven token budget across ranks: --batch-size {global_batch} is not divisible by "
                              f"{self.world_size} ranks; use a multiple of {self.world_size}")
        return global_batch // self.world_size

    def rank_slice(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """This rank's contiguous slice of every global batch: rank r gets rows [r*b, (r+1)*b).
        The global batch stream does not depend on the world size, so a checkpoint resumes on
        any number of ranks with exactly the batches a single process would have seen."""
        if self.distribute_hooks or not self.active:
            yield from batches
            return
        for b in batches:
            n = self.local_batch(len(b))
            yield b[self.rank * n : (self.rank + 1) * n]

    def sync(self) -> "DataParallelSync":
        """The gradient/statistics sync for one data-parallel SAE (a no-op on one process or with
        `--distribute-hooks`)."""
        if self.active and not self.distribute_hooks:
            return DataParallelSync(self.world_size, writer=self.is_writer)
        return DataParallelSync(1, writer=True)


LOCAL = Parallel()


def from_env(distribute_hooks: bool = False) -> Parallel:
    """The `Parallel` of this process: torch.distributed's group if one is initialised, else
    torchrun's RANK / WORLD_SIZE / LOCAL_RANK variables, else a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return Parallel(rank=rank, world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                    distribute_hooks=distribute_hooks)


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ


def init(device: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Parallel:
    """Join torchrun's process group (nccl when this rank uses a GPU, gloo on CPUs).

    A no-op outside torchrun. The rendezvous itself is torchrun's; this call connects to its
    store at MASTER_ADDR:MASTER_PORT and fails with one line if that does not answer in time."""
    import torch.distributed as dist

    if not under_torchrun() or dist.is_initialized():
        return from_env()
    from interp.device import resolve_device
    from interp.procs import die_with_parent

    die_with_parent()  # a rank never outlives its launcher (`kill -9` of `interp ... --nproc N` or of torchrun)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints where a rank that stopped answering is waiting
        import faulthandler

        faulthandler.register(signal.SIGUSR1, all_threads=True)

    dev = resolve_device(device)
    # On GPUs, nccl for cuda tensors and gloo for the CPU ones (object collectives, CPU-side state).
    backend = "cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    addr = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError, OSError) as e:
        raise InterpError(f"could not join the process group at {addr} ({backend}): {_first_line(e)}") from None
    p = from_env()
    if p.is_writer:
        log.info("torch.distributed: %d ranks, backend %s, rendezvous %s", p.world_size, backend, addr)
    return p


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def barrier(par: Parallel) -> None:
    if par.active:
        import torch.distributed as dist

        dist.barrier()


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:300]


def agree(par: Parallel, fn: Callable[[], object] | None = None, what: str = "setup"):
    """Run `fn` on every rank and make them agree on its outcome: if any rank raised an
    `InterpError`, rank 0 raises it (naming the rank if it was not rank 0) and the others raise
    `RankExit`, so every rank exits and exactly one line is printed. Returns `fn()`'s value."""
    err, value = None, None
    try:
        value = fn() if fn is not None else None
    except RankExit:
        raise
    except InterpError as e:
        err = str(e)
    if not par.active:
        if err is not None:
            raise InterpError(err)
        return value
    import torch.distributed as dist

    errs: list = [None] * par.world_size
    dist.all_gather_object(errs, err)
    bad = [(r, m) for r, m in enumerate(errs) if m is not None]
    if bad:
        r, m = bad[0]
        if par.is_writer:
            raise InterpError(m if r == 0 else f"rank {r}: {m}")
        raise RankExit(m)
    return value


def broadcast_from_writer(par: Parallel, value):
    """Rank 0's `value` on every rank (others pass None)."""
    import torch.distributed as dist

    box = [value if par.is_writer else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same_config(par: Parallel, config: dict, what: str = "command line") -> None:
    """One-line error when the ranks were started with different settings (e.g. a node given
    other arguments): every rank hashes `config` and rank 0 compares."""
    if not par.active:
        return
    import torch.distributed as dist

    blob = json.dumps(config, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    allcfg: list = [None] * par.world_size
    dist.all_gather_object(allcfg, (digest, config))
    differ = [r for r, (d, _) in enumerate(allcfg) if d != allcfg[0][0]]
    if differ:
        r = differ[0]
        keys = sorted(k for k in set(allcfg[0][1]) | set(allcfg[r][1]) if allcfg[0][1].get(k) != allcfg[r][1].get(k))
        msg = (f"mismatched {what} across ranks: rank {r} differs from rank 0 in {', '.join(keys) or 'its settings'}; "
               f"start every rank with the same arguments")
        if par.is_writer:
            raise InterpError(msg)
        raise RankExit(msg)


@contextlib.contextmanager
def collective_errors(par: Parallel) -> Iterator[None]:
    """Turn a lost peer (a rank killed, a node gone, a collective timed out) into one line."""
    try:
        yield
    except (InterpError, KeyboardInterrupt):
        raise
    except RuntimeError as e:  # torch.distributed.DistError and gloo/nccl failures are RuntimeErrors
        if not par.active:
            raise
        raise InterpError(f"rank {par.rank} lost contact with the other ranks (one died, was killed or timed out): "
                          f"{_first_line(e)}; rerun the same command to resume from the last checkpoint") from None


class DataParallelSync:
    """What makes W data-parallel copies of one SAELens `SAETrainer` take the steps one trainer
    takes on the concatenated batch.

    SAELens' `SAETrainer.step` runs forward, `loss.backward()`, grad-norm clipping and the
    optimizer in one call, and SAELens' losses are means over the batch (MSE, AuxK, L1/L0).
    So the gradient of the global loss is the mean of the ranks' gradients. We reuse the
    trainer unchanged and all-reduce each parameter's gradient in a post-accumulate-grad hook,
    which runs inside `backward()`, before the clipping and the step (`step`). DistributedDataParallel
    cannot be used as-is: it syncs only when its own `forward` is called, and SAETrainer calls
    `training_forward_pass` on the bare SAE.

    Dead-latent statistics are global too: the trainer counts steps since each latent fired and
    how often it fired; `step` sums this step's firing counts over the ranks, so the AuxK
    dead mask (and the l0 / dead counts saved in the SAE's metadata) are those of the global
    batch. BatchTopK's threshold EMA is min-reduced (the min over ranks of each rank's EMA
    update equals the update with the global batch's minimum). BatchTopK / Matryoshka select
    their top k*B over the local batch: that is the one place W ranks differ from one process.
    """

    def __init__(self, world_size: int = 1, writer: bool = True):
        self.world_size = world_size
        self.writer = writer  # this rank writes the checkpoints and shows the progress bar
        self.comm_seconds = 0.0  # time spent in collectives (for the benchmark's communication share)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def _all_reduce(self, t: torch.Tensor, op=None) -> torch.Tensor:
        import torch.distributed as dist

        t0 = time.perf_counter()
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        self.comm_seconds += time.perf_counter() - t0
        return t

    def gather_batches(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        """The global batches from every rank's local ones (rank order), e.g. for the activation
        scaling estimate and the data-based init, so every rank starts from the same SAE."""
        if not self.active:
            return batches
        import torch.distributed as dist

        out = []
        for b in batches:
            parts = [torch.empty_like(b) for _ in range(self.world_size)]
            t0 = time.perf_counter()
            dist.all_gather(parts, b.contiguous())
            self.comm_seconds += time.perf_counter() - t0
            out.append(torch.cat(parts))
        return out

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over ranks (for logged metrics)."""
        if not self.active:
            return t
        return self._all_reduce(t.detach().clone()) / self.world_size

    def step(self, trainer, batch: torch.Tensor):
        """`trainer.step(batch)` with this rank's local batch, gradients averaged over ranks
        during `backward()` and the firing statistics made global afterwards."""
        if not self.active:
            return trainer.step(batch)
        import torch.distributed as dist

        prev = trainer.act_freq_scores.clone()
        self._pending: list = []
        self._queued = False
        handles = [p.register_post_accumulate_grad_hook(self._grad_hook) for p in trainer.sae.parameters() if p.requires_grad]
        try:
            out = trainer.step(batch)
        finally:
            for h in handles:
                h.remove()
            self._finish()  # (a no-op after a normal backward; leaves no collective behind after an error)
        with torch.no_grad():
            delta = self._all_reduce(trainer.act_freq_scores - prev)
            trainer.act_freq_scores = prev + delta
            trainer.n_forward_passes_since_fired[delta > 0] = 0
            thr = getattr(trainer.sae, "topk_threshold", None)
            if isinstance(thr, torch.Tensor):
                self._all_reduce(thr, dist.ReduceOp.MIN)
        return out

    def _grad_hook(self, p: torch.Tensor) -> None:
        """Start the all-reduce of `p`'s gradient as soon as backward has produced it, without
        waiting (async), so it overlaps with the rest of the backward pass, as DDP's buckets do.
        The first hook of a backward queues `_finish` on autograd's engine: it runs when backward
        is done, before SAETrainer's clipping and optimizer step, and waits for every reduction.
        (An SAE has four parameters, W_enc / W_dec and two biases, so each is its own bucket:
        DDP's 25 MB buckets would hold them all in one and start nothing before the end.)"""
        import torch.distributed as dist

        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._finish)
        t0 = time.perf_counter()
        self._pending.append((p.grad, dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, async_op=True)))
        self.comm_seconds += time.perf_counter() - t0

    def _finish(self) -> None:
        """Wait for the gradient reductions started in this backward and average them."""
        pending, self._pending, self._queued = getattr(self, "_pending", []), [], False
        t0 = time.perf_counter()
        for grad, work in pending:
            work.wait()
            grad.div_(self.world_size)
        self.comm_seconds += time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Launching torchrun for `--nproc`


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 < int(port) < 65536):
        raise InterpError(f"--rdzv-endpoint {endpoint!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _is_local(host: str) -> bool:
    if host in ("localhost", "127.0.0.1", "::1", socket.gethostname()):
        return True
    try:
        addr = socket.gethostbyname(host)
    except OSError:
        raise InterpError(f"rendezvous host {host!r} does not resolve") from None
    return addr.startswith("127.") or addr in {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None)}


def wait_for_endpoint(host: str, port: int, timeout_s: float, what: str = "rendezvous",
                      hint: str = "start the first node, check the address and the firewall") -> None:
    """One-line error unless HOST:PORT accepts a TCP connection within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, max(0.1, timeout_s))):
                return
        except OSError as e:
            last = e
        if time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    raise InterpError(f"cannot reach the {what} at {host}:{port} within {timeout_s:g}s ({_first_line(last)}); {hint}")


def strip_launch_args(argv: Sequence[str]) -> list[str]:
    """`argv` without the launcher's own flags (--nproc, --nnodes, --node-rank, --rdzv-endpoint)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in ("--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint"):
            skip = "=" not in a
            continue
        out.append(a)
    return out


def launch(argv: Sequence[str], nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None,
           rdzv_timeout_s: float = RENDEZVOUS_TIMEOUT_S) -> int:
    """Run `python -m interp ARGV` on `nproc` local processes under torchrun's elastic agent
    (what the `torchrun` command does), and turn a failed rank into one line.

    One node: a private c10d rendezvous on a free loopback port. Several nodes: every node runs
    the same command with `--nnodes M --rdzv-endpoint HOST:PORT`; a node that is not HOST first
    checks that the endpoint answers."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    if nproc < 1:
        raise InterpError("--nproc must be at least 1")
    if nnodes < 1:
        raise InterpError("--nnodes must be at least 1")
    if nnodes > 1 and not rdzv_endpoint:
        raise InterpError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the first node's address)")
    targs = [f"--nproc_per_node={nproc}", f"--nnodes={nnodes}", "--max-restarts=0", "--rdzv-backend=c10d",
             f"--rdzv-conf=join_timeout={int(rdzv_timeout_s)}"]
    if rdzv_endpoint:
        host, port = parse_endpoint(rdzv_endpoint)
        if not _is_local(host):
            wait_for_endpoint(host, port, rdzv_timeout_s)
        targs += [f"--rdzv-endpoint={host}:{port}", "--rdzv-id=interp"]
    else:
        targs += [f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--rdzv-id=interp-local", "--local-addr=127.0.0.1"]
    targs += ["-m", "interp", *argv]
    args = torchrun.get_args_parser().parse_args(targs)
    config, cmd, cmd_args = torchrun.config_from_args(args)
    # The agent logs every failure with a traceback; we say it in one line (`_report_failure`).
    for name in [n for n in list(logging.root.manager.loggerDict) if n.startswith("torch.distributed")] + [
            "torch.distributed.elastic", "torch.distributed.elastic.multiprocessing.api", "torch.distributed.run",
            "torch.distributed.launcher.api", "torch.distributed.elastic.agent.server.api"]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    log.info("launching %d process(es) per node on %d node(s): interp %s", nproc, nnodes, " ".join(argv))
    import shutil
    import tempfile

    errs = tempfile.mkdtemp(prefix="interp-rank-errors-")  # each failing rank leaves its one line here (`record_rank_error`)
    os.environ[RANK_ERRORS_ENV] = errs
    try:
        elastic_launch(config=config, entrypoint=cmd)(*cmd_args)
    except ChildFailedError as e:
        return _report_failure(e, _rank_errors(errs))
    except Exception as e:  # rendezvous errors of the elastic agent (RendezvousTimeoutError, ...)
        raise InterpError(f"torchrun could not start the ranks: {_first_line(e)}") from None
    finally:
        os.environ.pop(RANK_ERRORS_ENV, None)
        shutil.rmtree(errs, ignore_errors=True)
    return 0


RANK_ERRORS_ENV = "INTERP_RANK_ERRORS"  # a folder the launcher made: failing ranks write their error there


def record_rank_error(rank: int, message: str, secondary: bool) -> None:
    """Leave this rank's one-line error for the launcher (`--nproc`), which reports it with its text
    instead of "lost contact". `secondary`: the error is a consequence (a peer vanished)."""
    d = os.environ.get(RANK_ERRORS_ENV)
    if not d or not os.path.isdir(d):
        return
    with contextlib.suppress(OSError):
        with open(os.path.join(d, f"rank{rank}.json"), "w") as f:
            json.dump({"rank": rank, "error": message, "secondary": secondary, "time": time.time()}, f)


def _rank_errors(d: str) -> list[dict]:
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(open(os.path.join(d, name)).read())
            if isinstance(rec, dict) and isinstance(rec.get("rank"), int) and isinstance(rec.get("error"), str):
                out.append(rec)
    return out


class RankFailed(InterpError):
    """A rank crashed or was killed (not a user error): the CLI prints the line and exits 1."""

    exit_code = 1


def _report_failure(e, errors: list[dict] | None = None) -> int:
    """A failed job. An error a rank recorded (`record_rank_error`) is reported with its text,
    the first cause before the ranks that only lost contact with it. Otherwise: exit code 2 from
    every failed rank means rank 0 already printed the user error (returns 2); anything else (a
    signal, a crash) raises `RankFailed` naming the rank."""
    import signal

    primary = sorted((r for r in errors or [] if not r.get("secondary")), key=lambda r: (r.get("time", 0), r["rank"]))
    shared = primary and any(r["rank"] == 0 and r["error"] == primary[0]["error"] for r in primary)
    if primary and primary[0]["rank"] != 0 and not shared:  # rank 0 printed only "lost contact": say what happened
        raise RankFailed(f"rank {primary[0]['rank']}: {primary[0]['error']}")
    fails = sorted(e.failures.items())
    # The cause, not the ranks the agent stopped afterwards (SIGTERM).
    cause = [(r, f) for r, f in fails if f.exitcode not in (2, -signal.SIGTERM)]
    if not cause:
        if any(f.exitcode == 2 for _, f in fails):
            return 2  # a user error: rank 0 printed it; the agent stopped the ranks still exiting
        cause = fails
    rank, f = min(cause, key=lambda rf: (rf[1].timestamp, rf[0]))
    if f.exitcode < 0:
        try:
            why = f"was killed by {signal.Signals(-f.exitcode).name}"
        except ValueError:
            why = f"was killed by signal {-f.exitcode}"
    else:
        why = f"exited with code {f.exitcode}"
    raise RankFailed(f"rank {rank} {why}; the other ranks were stopped. Rerun the same command to resume from the "
                     "last checkpoint")
