"""Sweeps: a grid of SAE trainings, or of any `interp` command's settings (unlearning, circuits),
run as Ray tasks or in a local process pool; one results table, resumable.

    trials (grid)  ->  Ray tasks (`ray="auto"`: a local instance; `ray="HOST:PORT"`: a cluster)
                       or a local process pool (`ray=None`)
                   ->  OUT/trials/<id>.json (one per trial, atomic)  ->  OUT/results.json, results.md

A trial's id is a hash of its kind and settings, so a rerun skips every trial whose result is
already on disk (failed trials are retried). SAE trials share one activation collection, made
once by the driver before any trial starts (`OUT/acts`, or `acts_dir`); on a multi-node Ray
cluster OUT must be on a filesystem every node sees.

Ray schedules the trials, not us: each is a `ray.remote` task asking for `cpus_per_trial` CPUs
(and `gpus_per_trial` GPUs), so a cluster runs as many at once as it has room for.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from interp.errors import InterpError
from interp.io import atomic_write_json, atomic_write_text, check_output_dir, check_parent_writable, refuse_package_path

log = logging.getLogger(__name__)

KINDS = ("sae", "cmd")  # an SAE training (SAETrainConfig fields), or an `interp` subcommand with --json output
RAY_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Trial:
    """One point of a sweep."""

    kind: str  # "sae": params are SAETrainConfig fields; "cmd": params are flags of `command`
    params: dict  # the settings that vary (and the fixed ones), JSON-serialisable
    command: tuple[str, ...] = ()  # kind "cmd": the `interp` argv before the swept flags, e.g. ("unlearn", "--concept", "x")

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InterpError(f"unknown trial kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind == "cmd" and not self.command:
            raise InterpError("a command trial needs the interp subcommand to run")

    @property
    def id(self) -> str:
        blob = json.dumps({"kind": self.kind, "params": self.params, "command": list(self.command)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class SweepResult:
    """What `run_sweep` did: every trial's row, and which ran now."""

    rows: list[dict]  # one per trial, in grid order: id, status, settings, metrics, seconds
    ran: list[str]  # ids trained in this call
    skipped: list[str]  # ids already finished on disk
    failed: list[str]  # ids whose trial raised
    out: Path
    seconds: float = 0.0
    backend: str = "process pool"


def grid(**axes: Sequence) -> list[dict]:
    """Every combination of the axes' values, e.g. grid(arch=["topk"], d_sae=[256, 512])."""
    axes = {k: list(v) for k, v in axes.items() if v is not None and len(list(v))}
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def sae_trials(base: dict, **axes: Sequence) -> list[Trial]:
    """SAE trials: `base` SAETrainConfig fields (hook, model, tokens, ...) with every combination of
    `axes` (arch, d_sae, k, l1, lr, ...). `k` is dropped for the L1 architectures and `l1` for the
    k ones, so a mixed grid does not ask for impossible combinations; each config is checked here,
    before anything runs."""
    from interp.sae.config import K_ARCHS, SAETrainConfig

    trials, seen = [], set()
    for point in grid(**axes):
        p = {**base, **point}
        arch = p.get("arch", "topk")
        if arch in K_ARCHS:
            p.pop("l1", None)
        else:
            p.pop("k", None)
        SAETrainConfig(**p)  # one-line error for an impossible point
        t = Trial("sae", p)
        if t.id not in seen:
            seen.add(t.id)
            trials.append(t)
    if not trials:
        raise InterpError("the sweep grid is empty")
    return trials


def cmd_trials(command: Sequence[str], **axes: Sequence) -> list[Trial]:
    """Trials that run `interp COMMAND ... --FLAG VALUE ... --json FILE` for every combination of
    `axes` (flag name -> values; a value of True is a bare flag)."""
    if not command:
        raise InterpError("give the interp subcommand to sweep, e.g. unlearn --concept animals")
    from interp.cli import build_parser

    for name, values in axes.items():  # a path that is not there fails every trial: say so now
        for v in values:
            if isinstance(v, str) and os.sep in v and not os.path.exists(v):
                raise InterpError(f"--grid {name}: {v} does not exist (nothing was run)")
    parser = build_parser()
    for point in grid(**axes):
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                parser.parse_args(_cmd_argv(tuple(command), point, "x.json"))
        except SystemExit:
            raise InterpError(f"interp {' '.join(command)} does not accept the swept settings {point}") from None
    return [Trial("cmd", point, tuple(command)) for point in grid(**axes)]


def _cmd_argv(command: tuple[str, ...], params: dict, json_out: str) -> list[str]:
    argv = list(command)
    for k, v in params.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v is False or v is None:
            continue
        else:
            argv += [flag, *(str(x) for x in (v if isinstance(v, (list, tuple)) else [v]))]
    return argv + ["--json", json_out]


# ---------------------------------------------------------------------------------------------
# One trial (runs in a worker process: a Ray worker or a pool process)


def run_trial(trial: Trial, out: str, acts_dir: str | None = None, eval_tokens: int = 16384) -> dict:
    """Run one trial and write OUT/trials/<id>.json; returns its row. Errors are recorded in the
    row (status "failed"), never raised, so one bad point does not stop a sweep."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out_p = Path(out)
    t0 = time.time()
    row = {"id": trial.id, "kind": trial.kind, **{k: v for k, v in trial.params.items()}}
    try:
        if trial.kind == "sae":
            metrics = _run_sae_trial(trial, out_p, acts_dir, eval_tokens)
        else:
            metrics = _run_cmd_trial(trial, out_p)
        row.update(status="ok", **metrics)
    except Exception as e:  # noqa: BLE001 - a trial's failure is data for the table
        msg = str(e).strip().splitlines()
        row.update(status="failed", error=f"{type(e).__name__}: {msg[0] if msg else ''}"[:300])
    row["seconds"] = round(time.time() - t0, 2)
    atomic_write_json(out_p / "trials" / f"{trial.id}.json", {"trial": {**asdict(trial), "command": list(trial.command)}, "row": row})
    return row


SAE_COLUMNS = ("l0", "explained_variance", "fvu", "mse", "ce_loss_score", "frac_alive", "train_seconds")


def _run_sae_trial(trial: Trial, out: Path, acts_dir: str | None, eval_tokens: int) -> dict:
    from interp.sae.config import SAETrainConfig
    from interp.sae.train import train_sae

    cfg = SAETrainConfig(**trial.params)
    res = train_sae(cfg, out / "saes" / trial.id, acts_dir=acts_dir, eval_tokens=eval_tokens)
    m = {k: res.metrics[k] for k in SAE_COLUMNS if isinstance(res.metrics.get(k), (int, float))}
    m["sae_dir"] = str(Path("saes") / trial.id)
    return m


def _run_cmd_trial(trial: Trial, out: Path) -> dict:
    from interp.cli import main

    res_file = out / "trials" / f"{trial.id}.out.json"
    log_file = out / "trials" / f"{trial.id}.log"
    res_file.unlink(missing_ok=True)  # a retried trial's earlier result is ours to replace (commands refuse an existing --json)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main(_cmd_argv(trial.command, trial.params, str(res_file)))
    atomic_write_text(log_file, buf.getvalue())
    if rc != 0:
        last = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
        raise RuntimeError(last[-1] if last else f"exit code {rc}")
    if not res_file.exists():
        raise RuntimeError(f"interp {trial.command[0]} wrote no --json result")
    return _scalars(json.loads(res_file.read_text()))


def _scalars(d: dict, prefix: str = "", depth: int = 1) -> dict:
    """Top-level (and one level of nested) numbers and short strings of a JSON result."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool) or isinstance(v, (int, float)) or (isinstance(v, str) and len(v) <= 40):
            out[key] = v
        elif isinstance(v, dict) and depth > 0:
            out.update(_scalars(v, key + ".", depth - 1))
    return out


# ---------------------------------------------------------------------------------------------
# The driver


def check_ray_address(address: str, timeout_s: float | None = None) -> None:
    """One-line error unless a Ray head answers at ADDRESS (HOST:PORT or ray://HOST:PORT) within
    `timeout_s`; Ray's own `ray.init` would wait much longer before failing."""
    from interp.distributed import parse_endpoint, wait_for_endpoint

    target = address.split("://", 1)[-1]
    try:
        host, port = parse_endpoint(target)
    except InterpError:
        raise InterpError(f"--ray {address!r}: expected auto, HOST:PORT or ray://HOST:PORT") from None
    try:
        wait_for_endpoint(host, port, RAY_CONNECT_TIMEOUT_S if timeout_s is None else timeout_s, what="Ray cluster",
                          hint="start it with `ray start --head`, check the address and the firewall")
    except InterpError as e:
        raise InterpError(f"--ray {address}: {e}") from None


def _prepare_sae_activations(trials: list[Trial], out: Path, acts_dir: Path | None) -> Path | None:
    """Collect, once, every hook the SAE trials need with the most tokens any asks for."""
    sae = [t for t in trials if t.kind == "sae"]
    if not sae:
        return None
    from interp.activations import CollectConfig, collect_activations
    from interp.hooks import parse_hook
    from interp.models import load_model
    from interp.sae.config import SAETrainConfig

    cfgs = [SAETrainConfig(**t.params) for t in sae]
    models = {c.model for c in cfgs}
    if len(models) != 1:
        raise InterpError("the SAE trials of one sweep must share a model (run one sweep per model)")
    model_name = models.pop()
    model = load_model(model_name)
    hooks = list(dict.fromkeys(str(parse_hook(model, c.hook)) for c in cfgs))
    acts = acts_dir or out / "acts"
    ccfg = CollectConfig(hooks=hooks, n_tokens=max(c.tokens for c in cfgs), dtype="float16")
    collect_activations(model, ccfg, acts, model_name=model_name)
    return acts


def _ray_backend(ray_address: str, workers: int):
    try:
        import ray
    except ImportError:
        raise InterpError("--ray needs Ray: pip install 'interp[ray]'") from None
    if ray_address != "auto":
        check_ray_address(ray_address)
    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    env = {"env_vars": {k: os.environ[k] for k in ("PYTHONPATH", "INTERP_HOME", "OMP_NUM_THREADS") if k in os.environ}}
    for attempt in range(3):
        try:
            if ray_address == "auto":
                # "auto" here means: start a private local instance (Ray's own address="auto" would join
                # an existing one, which is what --ray HOST:PORT is for).
                ray.init(num_cpus=workers, runtime_env=env, **kw)
            else:
                ray.init(address=ray_address, runtime_env=env, **kw)
            return ray
        except Exception as e:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ValueError...
            msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            # Ray waits a fixed 30 s for a new local node's raylet; a busy machine can miss that, so try again.
            if ray_address == "auto" and "timed out during startup" in msg and attempt < 2:
                log.warning("Ray's local node did not start in time (a busy machine?); retrying")
                ray.shutdown()
                continue
            raise InterpError(f"--ray {ray_address}: could not start or join Ray: {msg}") from None
    raise AssertionError("unreachable")


def run_sweep(trials: list[Trial], out: str | Path, ray: str | None = None, workers: int = 2, cpus_per_trial: float = 1,
              gpus_per_trial: float = 0, acts_dir: str | Path | None = None, eval_tokens: int = 16384,
              on_result: Callable[[dict], None] | None = None) -> SweepResult:
    """Run `trials` (skipping those already finished in OUT) and write the results table.

    `ray=None`: a local pool of `workers` processes; `ray="auto"`: a private local Ray instance
    with `workers` CPUs; `ray="HOST:PORT"`: join that Ray cluster. `on_result(row)` is called as
    each trial finishes."""
    if not trials:
        raise InterpError("the sweep has no trials")
    if workers < 1:
        raise InterpError("--workers must be at least 1")
    if len({t.id for t in trials}) != len(trials):
        raise InterpError("the sweep grid holds the same trial twice")
    out = check_parent_writable(out, "sweep directory")
    refuse_package_path(out)
    if out.exists() and not out.is_dir():
        raise InterpError(f"sweep directory {out} is a file; give a directory path (nothing was changed)")
    if out.exists() and any(out.iterdir()) and not (out / "sweep.json").exists():
        raise InterpError(f"sweep directory {out} exists and is not an interp sweep; choose another path (nothing was changed)")
    # the shared output policy too (symlinks, devices, inputs): a sweep of ours is resumed, so "overwrite"
    check_output_dir(out, marker="sweep.json", overwrite=True, what="sweep directory")
    if ray is not None and ray != "auto":
        check_ray_address(ray)  # before any work starts

    done, todo = {}, []
    for t in trials:
        f = out / "trials" / f"{t.id}.json"
        row = None
        if f.exists():
            with contextlib.suppress(ValueError, OSError, KeyError):
                row = json.loads(f.read_text())["row"]
        if row is not None and row.get("status") == "ok":
            done[t.id] = row
        else:
            todo.append(t)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", {"trials": [{**asdict(t), "command": list(t.command), "id": t.id} for t in trials]})
    log.info("sweep: %d trials, %d already finished, %d to run", len(trials), len(done), len(todo))

    t0 = time.time()
    backend = "process pool" if ray is None else ("ray (local instance)" if ray == "auto" else f"ray ({ray})")
    new: dict[str, dict] = {}
    if todo:
        acts = _prepare_sae_activations(todo, out, Path(acts_dir) if acts_dir else None)
        args = (str(out), str(acts) if acts else None, eval_tokens)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"sweep ({backend})", unit="trial")
        for row in _execute(todo, args, ray, workers, cpus_per_trial, gpus_per_trial):
            new[row["id"]] = row
            bar.update(1)
            if on_result is not None:
                on_result(row)
        bar.close()
    rows = [done.get(t.id) or new[t.id] for t in trials]
    _write_table(out, rows)
    return SweepResult(rows=rows, ran=[t.id for t in todo], skipped=list(done), out=out,
                       failed=[r["id"] for r in rows if r.get("status") != "ok"], seconds=time.time() - t0, backend=backend)


def _execute(todo: list[Trial], args: tuple, ray_address: str | None, workers: int, cpus: float, gpus: float):
    """Yield each trial's row as it finishes."""
    if ray_address is None:
        import concurrent.futures as cf
        import multiprocessing as mp

        from interp.procs import die_with_parent

        # spawn, not fork: a forked copy of a process holding torch threads can deadlock. Each worker
        # dies with the driver (a `kill -9` of `interp sweep` once left a 686 MB worker behind).
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                    initializer=die_with_parent) as pool:
            futs = [pool.submit(run_trial, t, *args) for t in todo]
            for f in cf.as_completed(futs):
                yield f.result()
        return
    ray = _ray_backend(ray_address, workers)
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_trial)
        pending = [task.remote(t, *args) for t in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        ray.shutdown()


def _esc(v) -> str:
    """A plain-text table cell: numbers rounded, control characters (newlines, terminal escapes) as spaces."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return "".join(" " if (ord(c) < 32 or 127 <= ord(c) < 160) else c for c in str(v))


_MD_SPECIAL = set("\\`*_[]!|~$")  # the HTML characters are entities already (html.escape)


def md_cell(v) -> str:
    """A Markdown table cell that renders as the text it holds, with HTML on or off: HTML's
    characters become entities (`<img onerror>` stays text) and Markdown's punctuation (links,
    code, emphasis, pipes, `$` maths) is backslash-escaped."""
    import html

    text = html.escape(_esc(v), quote=True)
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)


def _write_table(out: Path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r if k not in ("kind",)))
    lines = ["| " + " | ".join(md_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(md_cell(r.get(c, "")) for c in cols) + " |")
    atomic_write_json(out / "results.json", rows)
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def format_rows(rows: list[dict], cols: Sequence[str] | None = None) -> str:
    """A plain-text table of sweep rows (for the CLI)."""
    cols = list(cols or dict.fromkeys(k for r in rows for k in r if k not in ("kind", "sae_dir", "error")))
    cells = [cols] + [[_esc(r.get(c, "")) for c in cols] for r in rows]
    w = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(s.ljust(w[i]) for i, s in enumerate(row)) for row in cells)


__all__ = ["Trial", "SweepResult", "grid", "sae_trials", "cmd_trials", "run_trial", "run_sweep", "check_ray_address",
           "format_rows"]
