"""Background jobs: one library call in a child process, with progress, cancel and a history.

The dashboard (and anything else) starts long work as a job so that the page never blocks::

    job = start("circuits", {"model": "embedded", "task": "ioi", "methods": ["patching"]}, title="IOI circuit")
    job.read().progress      # Progress(done, total, message, elapsed_s, eta_s)
    cancel(job.id)           # the whole process group is killed; no result is left
    history()                # every job under INTERP_HOME/jobs, newest first (survives a restart)

Layout of one job, ``$INTERP_HOME/jobs/<id>/``:

* ``job.json``: kind, params, title, header, created, pid (written once, atomically, before the child starts);
* ``progress.json``: overall done/total, message, elapsed, ETA (rewritten atomically, at most ~4 times a second);
* ``result.json``: the call's result (written atomically, only when the call returned);
* ``status.json``: the end state: done / cancelled / crashed, with the reason (one line).

A job is a child process (``python -m interp.jobs DIR``) in its own process group, started with
`interp.procs.die_with_parent` so it ends with the server. `cancel` kills that group, then writes
``cancelled`` and removes any result, so a cancelled job leaves nothing half-written. A job whose
process is gone without a status is reported as crashed (``state()`` checks the pid).

The runners (`RUNNERS`) are thin: they call the same library function the CLI calls, with the
job's progress callback; several calls in a row (unlearning with baselines) report one overall
progress. Nothing here imports streamlit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from interp.errors import InterpError

log = logging.getLogger(__name__)

STATES = ("running", "done", "cancelled", "crashed")
PROGRESS_EVERY_S = 0.25  # the child rewrites progress.json at most this often


def jobs_root() -> Path:
    """``$INTERP_HOME/jobs`` (created on demand)."""
    from interp.io import user_data_dir

    return user_data_dir("jobs")


@dataclass
class Progress:
    """Where a job stands over its whole run (not per stage)."""

    done: float = 0.0  # units of work done, over all stages
    total: float | None = None  # units of work in all (None: not known yet)
    message: str = ""
    elapsed_s: float = 0.0
    eta_s: float | None = None  # time left: elapsed * (1 - f) / f at fraction f; None while f == 0

    @property
    def fraction(self) -> float:
        return min(max(self.done / self.total, 0.0), 1.0) if self.total else 0.0


@dataclass
class JobInfo:
    """One job as read from its directory."""

    id: str
    kind: str
    title: str
    header: str  # the selection the result is about (model, SAE, hook, settings, seed)
    params: dict
    created: float  # unix time
    state: str  # running | done | cancelled | crashed
    reason: str = ""  # why it was cancelled or crashed (one line)
    progress: Progress = field(default_factory=Progress)
    finished: float | None = None
    pid: int | None = None
    dir: str = ""

    @property
    def result_path(self) -> Path:
        return Path(self.dir) / "result.json"

    def result(self) -> dict:
        """The result JSON of a finished job; InterpError otherwise."""
        if self.state != "done" or not self.result_path.is_file():
            raise InterpError(f"job {self.id} has no result ({self.state}{': ' + self.reason if self.reason else ''})")
        return json.loads(self.result_path.read_text())


# ----------------------------------------------------------------------------- the parent side
def start(kind: str, params: dict, title: str = "", header: str = "", root: str | Path | None = None,
          python: str | None = None) -> JobInfo:
    """Start `kind` (a key of `RUNNERS`) with JSON-able `params` in a child process; returns at once.
    Bad input (unknown kind, params that are not JSON) is a one-line InterpError before anything starts."""
    from interp.io import atomic_write_json
    from interp.procs import die_with_parent

    if kind not in RUNNERS:
        raise InterpError(f"unknown job kind {kind!r}; known: {', '.join(RUNNERS)}")
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InterpError(f"job parameters must be plain JSON values: {e}") from None
    root = Path(root) if root is not None else jobs_root()
    job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    d = root / job_id
    d.mkdir(parents=True)
    info = {"id": job_id, "kind": kind, "title": title or kind, "header": header, "params": params, "created": time.time()}
    atomic_write_json(d / "job.json", info)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log_f = open(d / "log.txt", "ab")
    try:
        p = _spawn(lambda: subprocess.Popen([python or sys.executable, "-m", "interp.jobs", str(d)], stdout=log_f,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                            preexec_fn=die_with_parent))
    finally:
        log_f.close()
    atomic_write_json(d / "pid.json", {"pid": p.pid})
    _CHILDREN[job_id] = p  # reaped by `read` (no zombie holds the pid)
    return read(d)


_CHILDREN: dict[str, subprocess.Popen] = {}
_SPAWNER: list = []  # [queue] of the one long-lived spawning thread


def _spawn(popen: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Run `popen` on one long-lived daemon thread and return its process.

    Why: PR_SET_PDEATHSIG (`die_with_parent`) fires when the *thread* that forked the child exits,
    not the process; Streamlit runs each page script on a short-lived thread, so a job forked there
    would be killed as soon as the page finished drawing."""
    import queue
    import threading

    if not _SPAWNER:
        q: queue.Queue = queue.Queue()

        def loop():
            while True:
                fn, box, done = q.get()
                try:
                    box.append(fn())
                except BaseException as e:  # noqa: BLE001 - handed back to the caller
                    box.append(e)
                done.set()

        threading.Thread(target=loop, name="interp-job-spawner", daemon=True).start()
        _SPAWNER.append(q)
    import threading

    box: list = []
    done = threading.Event()
    _SPAWNER[0].put((popen, box, done))
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _read_json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def read(d: str | Path) -> JobInfo:
    """The job in directory `d`, with its current state (a running job whose process is gone is crashed)."""
    d = Path(d)
    info = _read_json(d / "job.json")
    if info is None:
        raise InterpError(f"{d} is not a job directory (no readable job.json)")
    child = _CHILDREN.get(info["id"])
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(info["id"], None)
    pid = (_read_json(d / "pid.json") or {}).get("pid")
    status = _read_json(d / "status.json")
    prog = _read_json(d / "progress.json") or {}
    progress = Progress(**{k: prog[k] for k in ("done", "total", "message", "elapsed_s", "eta_s") if k in prog})
    if status is None and pid is not None and not _pid_alive(pid):
        status = _read_json(d / "status.json")  # it may have finished between the two reads
        if status is None:
            status = {"state": "crashed", "reason": "the job's process ended without a result"
                      + (f" (last log line: {_last_line(d / 'log.txt')})" if _last_line(d / "log.txt") else "")}
    if status is None:
        state, reason, finished = "running", "", None
    else:
        state, reason, finished = status["state"], status.get("reason", ""), status.get("finished")
    if state == "running" and pid is None:
        progress.message = progress.message or "starting..."
    return JobInfo(info["id"], info["kind"], info["title"], info.get("header", ""), info["params"], info["created"], state, reason,
                   progress, finished, pid, str(d))


def _last_line(p: Path) -> str:
    try:
        lines = [x for x in p.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def history(root: str | Path | None = None, kind: str | None = None, limit: int | None = None) -> list[JobInfo]:
    """Jobs under `root` (default `jobs_root()`), newest first; unreadable directories are skipped.
    With `limit`, only the newest `limit` finished ones are read, plus every job still without an end
    state (a panel polling each second never reads the whole history)."""
    root = Path(root) if root is not None else jobs_root()
    out, n_done = [], 0
    for d in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True) if root.is_dir() else []:
        ended = (d / "status.json").exists()
        if limit is not None and ended and n_done >= limit:
            continue
        try:
            j = read(d)
        except InterpError:
            continue
        if kind is None or j.kind == kind:
            out.append(j)
            n_done += j.state != "running"
    return out


def get(job_id: str, root: str | Path | None = None) -> JobInfo:
    root = Path(root) if root is not None else jobs_root()
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise InterpError(f"bad job id {job_id!r}")
    return read(root / job_id)


def cancel(job_id: str, root: str | Path | None = None, grace_s: float = 3.0) -> JobInfo:
    """Kill the job's process group (SIGTERM, then SIGKILL after `grace_s`), mark it cancelled and
    remove any result it wrote. A job that already ended is left as it is."""
    from interp.io import atomic_write_json

    j = get(job_id, root)
    if j.state != "running":
        return j
    d = Path(j.dir)
    if j.pid:
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(j.pid, sig)
            except ProcessLookupError:
                break
            t0 = time.time()
            while _pid_alive(j.pid) and time.time() - t0 < wait:
                child = _CHILDREN.get(job_id)
                if child is not None:
                    child.poll()
                time.sleep(0.05)
            if not _pid_alive(j.pid):
                break
    child = _CHILDREN.pop(job_id, None)
    if child is not None:
        child.poll()
    for p in d.iterdir():  # the result and any temporary file of an atomic write in progress
        if p.name.startswith("result") or p.name.startswith(".result") or p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
    atomic_write_json(d / "status.json", {"state": "cancelled", "reason": "cancelled by the user", "finished": time.time()})
    return read(d)


def remove(job_id: str, root: str | Path | None = None) -> None:
    """Delete a finished job's directory from the history (a running job must be cancelled first)."""
    import shutil

    j = get(job_id, root)
    if j.state == "running":
        raise InterpError(f"job {job_id} is still running; cancel it first")
    shutil.rmtree(j.dir)


# ----------------------------------------------------------------------------- the child side
class Stages:
    """One overall progress over several library calls: stage i of n, each with its own
    ``(done, total)``; overall = (i + done/total) / n of the whole, written to progress.json."""

    def __init__(self, d: Path, n_stages: int = 1):
        self.d, self.n, self.i = d, max(n_stages, 1), 0
        self.t0 = time.time()
        self.last = 0.0

    def stage(self, i: int) -> None:
        self.i = i

    def __call__(self, done, total, message: str = "") -> None:
        frac_stage = min(max(float(done) / float(total), 0.0), 1.0) if total else 0.0
        self.write((self.i + frac_stage) / self.n, message)

    def write(self, frac: float, message: str = "", force: bool = False) -> None:
        from interp.io import atomic_write_json

        now = time.time()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        el = now - self.t0
        eta = el * (1 - frac) / frac if frac > 0 else None
        atomic_write_json(self.d / "progress.json", {"done": round(frac * 1000), "total": 1000, "message": message,
                                                     "elapsed_s": el, "eta_s": eta}, indent=None)


def run_child(d: str | Path) -> int:
    """The child process: run the job in `d`, write result.json then status.json. Exit code 0 / 1."""
    from interp.io import atomic_write_json, atomic_write_text

    d = Path(d)
    info = json.loads((d / "job.json").read_text())
    prog = Stages(d)
    prog.write(0.0, "starting...", force=True)

    def _term(signum, frame):  # SIGTERM (cancel, or the server died): leave without a result
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _term)
    try:
        # grad mode left as the CLI leaves it: the library calls set their own (SAE training and EAP need gradients)
        result = RUNNERS[info["kind"]](info["params"], prog)
        atomic_write_text(d / "result.json", json.dumps(result, default=str))  # NaN kept as NaN (json reads it back)
        prog.write(1.0, "done", force=True)
        atomic_write_json(d / "status.json", {"state": "done", "finished": time.time()})
        return 0
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - every failure becomes one line in the history
        if isinstance(e, InterpError):
            reason = str(e).strip().splitlines()[0] if str(e).strip() else "InterpError"
        else:
            traceback.print_exc()
            reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:400]
        (d / "result.json").unlink(missing_ok=True)
        atomic_write_json(d / "status.json", {"state": "crashed", "reason": reason, "finished": time.time()})
        return 1


# ----------------------------------------------------------------------------- runners
def _model(params: dict):
    from interp.models import load_model

    return load_model(params.get("model", "embedded"), device=params.get("device"))


def circuit_config(params: dict):
    """The `CircuitConfig` a circuits job runs with: params seeds and sae (keyword arguments of
    `interp.circuits.discrete_sae.preset`, with ``which`` = paper | legacy). One-line error if bad."""
    from interp.circuits.discrete_sae import preset
    from interp.circuits.run import CircuitConfig

    sae_kw = dict(params.get("sae") or {})
    which = sae_kw.pop("which", "paper")
    try:
        return CircuitConfig(seeds=int(params.get("seeds", 1)), sae=preset(which, **sae_kw))
    except ValueError as e:
        raise InterpError(str(e)) from None


def run_circuits_job(params: dict, prog: Stages) -> dict:
    """params: model, device, task, methods, seeds, reference (stored/none/build), sae (see `circuit_config`)."""
    from interp.circuits.run import run_circuits

    cfg = circuit_config(params)
    prog.write(0.0, "loading the model, the reference and the held-out prompts...", force=True)
    model = _model(params)
    res = run_circuits(params.get("model", "embedded"), params["task"], params["methods"], cfg, model=model,
                       reference=params.get("reference", "stored"), progress=lambda d, t, m="": prog(d, t, f"{m} done ({d}/{t})"))
    # the CircuitResult's own file format (CircuitResult.load reads it); "result*" files go when a job is cancelled
    res.save(prog.d / "result_circuit.json")
    return {"circuit_result": "result_circuit.json", "methods": list(res.summary), "task": res.task}


def run_unlearning_job(params: dict, prog: Stages) -> dict:
    """params: model, concepts, sae_dirs, config (UnlearnConfig fields), baselines (methods run as
    sweeps on the same splits). -> {"report": ..., "baselines": [...]} with one overall progress."""
    from interp.unlearn import UnlearnConfig, builtin_concept, run_unlearning

    model = _model(params)
    concepts = [builtin_concept(c) for c in params["concepts"]]
    cfg_d = {k: tuple(v) if isinstance(v, list) else v for k, v in params.get("config", {}).items()}  # JSON lists -> grid tuples
    cfg = UnlearnConfig(**cfg_d)
    common = {k: v for k, v in params.get("config", {}).items() if k in ("retain_threshold", "score", "positions", "split_by")}
    baselines = [b for b in params.get("baselines", []) if b != cfg.method]
    prog.n = 1 + len(baselines)
    out = {"report": run_unlearning(model, concepts, list(params["sae_dirs"]), cfg, model_name=params.get("model", "embedded"),
                                    progress=lambda d, t, m="": prog(d, t, f"{cfg.method}: {m}")).to_dict(), "baselines": []}
    for i, b in enumerate(baselines, start=1):
        prog.stage(i)
        bcfg = UnlearnConfig(method=b, sweep=True, test_every_setting=False, **common)
        out["baselines"].append(run_unlearning(model, concepts, list(params["sae_dirs"]), bcfg, model_name=params.get("model", "embedded"),
                                               progress=lambda d, t, m="", b=b: prog(d, t, f"{b}: {m}")).to_dict())
    return out


def run_feature_stats_job(params: dict, prog: Stages) -> dict:
    """params: sae_dir, tokens, model, device. Builds and stores the statistics next to the SAE."""
    from interp import features as F

    model = _model(params)
    st = F.build_for_sae_dir(params["sae_dir"], F.StatsConfig(n_tokens=int(params.get("tokens", 50_000))), model=model,
                             model_name=params.get("model", "embedded"), progress=lambda d, t, m="": prog(d, t, "scanning tokens"))
    return {"sae_dir": params["sae_dir"], "n_features": st.n_features, "n_tokens": st.meta.get("n_tokens")}


def run_sae_training_job(params: dict, prog: Stages) -> dict:
    """params: config (SAETrainConfig fields), out (the new SAE directory), overwrite. `train_saes`
    reports no progress of its own: the job says which stage it is in (collect, then train)."""
    from interp.sae.config import SAETrainConfig
    from interp.sae.train import train_saes

    cfg = SAETrainConfig(**params["config"])
    prog.write(0.05, f"collecting activations at {cfg.hook} and training ({cfg.tokens:,} tokens)", force=True)
    results, collect_s = train_saes([cfg], [params["out"]], overwrite=bool(params.get("overwrite")), device=params.get("device"),
                                    eval_tokens=int(params.get("eval_tokens", 4096)))
    r = results[0]
    return {"out_dir": str(r.out_dir), "metrics": {k: v for k, v in r.metrics.items() if isinstance(v, (int, float))},
            "train_seconds": r.train_seconds, "collect_seconds": collect_s}


# the MoE-X training job's defaults: small enough for about a minute on one CPU core (TrainConfig's own
# defaults are hours), on weighted-random games (engine "random": no Stockfish needed)
MOEX_JOB_DEFAULTS = {"arch": "moex", "steps": 150, "seed": 0, "layers": 2, "d_model": 64, "heads": 4, "n_ctx": 128,
                     "experts": 4, "topk": 2, "expert_width": 64, "batch_size": 8, "games": 400, "val_games": 32,
                     "engine": "random", "eval_every": 50}


def moex_train_config(params: dict):
    """The `TrainConfig` of a MoE-X training job: `params` are `interp moex train`'s option names
    (arch, steps, seed, layers, d_model, heads, n_ctx, experts, topk, expert_width, batch_size, games,
    val_games, engine, eval_every), missing ones from `MOEX_JOB_DEFAULTS`, built by the CLI's own
    `train_config_from_args` (so a dense model gets the same active width as on the command line).
    No checkpoints: a cancelled job leaves nothing behind. One-line InterpError if bad."""
    import argparse

    from interp.commands.moex import train_config_from_args

    unknown = set(params) - set(MOEX_JOB_DEFAULTS) - {"out", "device"}
    if unknown:
        raise InterpError(f"unknown MoE-X training parameter(s): {', '.join(sorted(unknown))}")
    p = {**MOEX_JOB_DEFAULTS, **{k: v for k, v in params.items() if k not in ("out", "device")}}
    moe = p["arch"] in ("switch", "moex")
    args = argparse.Namespace(data="chess", workers=1, upcycle_from=None, act=None, router=None, d_mlp=None, balance=None,
                              warmup=None, lr=None, nodes=None, store=None, checkpoint_every=0,
                              **{k: v for k, v in p.items() if moe or k not in ("experts", "topk")})
    if not moe:  # the CLI gives a dense model d_mlp = k x expert width (equal active MLP params)
        args.experts = args.topk = None
    if "eval_every" not in params:  # three learning-curve points whatever the steps
        args.eval_every = max(int(p["steps"]) // 3, 1)
    args.warmup = min(100, max(int(p["steps"]) // 10, 1))  # TrainConfig's 100 warmup steps would be most of a short run
    return train_config_from_args(args)


def run_moex_train_job(params: dict, prog: Stages) -> dict:
    """params: see `moex_train_config`, plus out (a new model directory; default: ``model`` in the job's
    own directory) and device. Trains with `interp.moex.train.train_chess_model` (what `interp moex
    train` calls), never over an existing directory. -> model directory, validation loss, legal-move
    rate, learning curve."""
    from interp.moex.train import train_chess_model

    cfg = moex_train_config(params)
    out = Path(params.get("out") or prog.d / "model")
    prog.write(0.0, f"{cfg.n_games + cfg.n_val_games} {cfg.engine} games (generated once into the game store)...", force=True)
    res = train_chess_model(cfg, out, resume=False, overwrite=False, device=params.get("device"),
                            progress=lambda d, t: prog(d, t, f"{cfg.mlp.arch}: step {d}/{t}" + (" (then the final evaluation)" if d == t else "")))
    last = res.curve[-1] if res.curve else {}
    return {"model_dir": str(res.out_dir), "arch": cfg.mlp.arch, "val_loss": res.val_loss,
            "legal_move_rate": last.get("legal_move_rate"), "steps": res.steps, "tokens": res.tokens,
            "train_seconds": res.train_seconds, "engine": cfg.engine, "n_games": cfg.n_games, "seed": cfg.seed,
            "curve": [{k: c.get(k) for k in ("step", "val_loss", "legal_move_rate")} for c in res.curve]}


def run_graph_job(params: dict, prog: Stages) -> dict:
    """params: model, device, transcoders (a directory with one transcoder per MLP layer), prompt, target
    (tokens) or diff ([a, b]), config (`AttributionConfig` fields). Builds the attribution graph as
    `interp graph` does and saves it with `interp.graphs.save_graph` (safetensors) as result_graph.safetensors."""
    from interp.graphs import AttributionConfig, attribute, graph_scores, save_graph
    from interp.transcoders.io import check_set_fits, load_transcoder_set

    prog.write(0.0, "loading the model and the transcoders...", force=True)
    tset = load_transcoder_set(params["transcoders"])
    model = _model(params)
    check_set_fits(tset, model)
    diff = tuple(params["diff"]) if params.get("diff") else None
    graph = attribute(model, params["prompt"], tset, target=list(params.get("target") or []) or None, diff=diff,
                      config=AttributionConfig(**params.get("config", {})),
                      progress=lambda d, t: prog(d, t, f"rows of the adjacency matrix: {d} of {t}"))
    sc = graph_scores(graph)
    graph.info.update({"replacement_score": sc.replacement, "completeness_score": sc.completeness})  # as `interp graph` records them
    save_graph(graph, prog.d / "result_graph.safetensors")  # "result*" files go when a job is cancelled
    return {"graph": "result_graph.safetensors", "prompt": graph.prompt, "n_features": graph.n_features, "n_nodes": graph.n_nodes,
            "logit_tokens": graph.logit_tokens, "replacement_score": sc.replacement, "completeness_score": sc.completeness}


def run_sleep_job(params: dict, prog: Stages) -> dict:
    """A job that only waits (tests and the benchmark): params seconds, steps; fails if `fail` is set."""
    n = int(params.get("steps", 10))
    for i in range(n):
        time.sleep(float(params.get("seconds", 1.0)) / n)
        prog(i + 1, n, f"step {i + 1}/{n}")
        if params.get("fail") and i + 1 == n // 2:
            raise InterpError(str(params["fail"]))
    return {"slept": params.get("seconds", 1.0), "steps": n}


RUNNERS: dict[str, Callable[[dict, Stages], dict]] = {
    "circuits": run_circuits_job,
    "unlearning": run_unlearning_job,
    "feature-stats": run_feature_stats_job,
    "sae-training": run_sae_training_job,
    "moex-train": run_moex_train_job,
    "graph": run_graph_job,
    "sleep": run_sleep_job,
}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.exit(run_child(sys.argv[1]))
