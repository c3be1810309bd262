"""The only code that writes or replaces a user's path: atomic files and directories, locks,
checksums, and the user data directory.

Guarantees:
* a file is written to a temporary sibling, flushed, fsync'd and renamed over the target, so a
  reader sees the old file or the new one, never half of one;
* a directory output is built in a sibling `.<name>.tmp-<pid>` directory and renamed into place;
  an existing directory is replaced only with `overwrite=True` and only if it is this kind of run
  (its marker file is there) unless the caller says otherwise; the old directory is renamed aside
  first and deleted last, so a crash never leaves neither;
* a run directory written by several processes is guarded by `RunLock` (`.lock` naming the holder).

The output policy (`check_output_file`, `check_output_dir`), checked by every writing command
before any work starts:
* a path is written only when it is new, or is a regular file / a directory interp made (its
  marker file is there) and the user passed `--overwrite`;
* a device, FIFO, socket or symbolic link is never renamed over, with or without `--overwrite`
  (`_atomic_file` checks again right before its rename);
* an output never replaces an input of the same command, nor anything inside an input directory.

Generated state (references, caches) lives under `user_data_dir()` (`$INTERP_HOME`, default
`~/.cache/interp`), never inside the installed package.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

from interp.errors import InterpError

PACKAGE_DIR = Path(__file__).resolve().parent


def model_id(name: str) -> str:
    """The directory name used for a model name under saes/ and the user data directory (here, not in
    interp.models, so that callers that only need the name do not import TransformerLens)."""
    return Path(name).name if Path(name).is_dir() else name.replace("/", "__")


def user_data_dir(*parts: str) -> Path:
    """`$INTERP_HOME/parts...` (default `~/.cache/interp`), created on demand."""
    root = Path(os.environ.get("INTERP_HOME") or Path.home() / ".cache" / "interp").expanduser()
    p = root.joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def refuse_package_path(path: str | Path) -> None:
    """One-line error if `path` lies inside the installed `interp` package (the library never writes there)."""
    p = Path(path).expanduser().resolve()
    if p == PACKAGE_DIR or PACKAGE_DIR in p.parents:
        raise InterpError(f"refusing to write into the installed package ({p}); give a path outside {PACKAGE_DIR}")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(str(d), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_parent_writable(path: str | Path, what: str = "output") -> Path:
    """The resolved `path` after checking that its parent exists (or can be made) and is a writable
    directory, and that its name is UTF-8 text (SAELens and safetensors cannot open other names, so
    interp never creates one)."""
    p = Path(path).expanduser()
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(p).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise InterpError(f"{what} {shown}: the path is not UTF-8 text; give a UTF-8 name (nothing was changed)") from None
    parent = p.parent if str(p.parent) else Path(".")
    anc = parent
    while not anc.exists():
        if anc.parent == anc:
            break
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise InterpError(f"{what} {p}: {anc} is a file, not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InterpError(f"{what} {p}: {anc} is not writable")
    return p


def _kind(p: Path) -> str | None:
    """What is at `p` without following a final symlink: None (nothing), 'file', 'dir', or the
    name of anything interp never replaces ('symbolic link', 'device', 'FIFO', 'socket')."""
    import stat

    try:
        m = os.lstat(p).st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return "unreadable entry"
    if stat.S_ISLNK(m):
        return "symbolic link"
    if stat.S_ISREG(m):
        return "file"
    if stat.S_ISDIR(m):
        return "dir"
    if stat.S_ISCHR(m) or stat.S_ISBLK(m):
        return "device"
    if stat.S_ISFIFO(m):
        return "FIFO"
    if stat.S_ISSOCK(m):
        return "socket"
    return "special file"


def _refuse_special(p: Path, what: str) -> None:
    k = _kind(p)
    if k not in (None, "file", "dir"):
        raise InterpError(f"{what} {p} is a {k}; interp never writes over one (give a new path; nothing was changed)")


def _refuse_inputs(p: Path, inputs, what: str, is_dir: bool) -> None:
    """Refuse an output that would replace an input (a file given as input, anything existing inside
    an input directory, or, for a directory output, a directory holding an input)."""
    rp = p.resolve()
    for inp in inputs or ():
        if inp is None or str(inp) == "":
            continue
        ip = Path(inp).expanduser()
        if not ip.exists():
            continue
        ri = ip.resolve()
        clash = rp == ri or (ri.is_dir() and ri in rp.parents and (p.exists() or p.is_symlink())) \
            or (is_dir and ri in rp.parents) or (is_dir and rp in ri.parents)
        if clash:
            raise InterpError(f"{what} {p} would replace the input {inp} of this command; give another path (nothing was changed)")


def check_output_file(path: str | Path, *, overwrite: bool = False, inputs=(), what: str = "output file",
                      allow_package: bool = False) -> Path:
    """The output policy for one file, before any work starts: a new path, or an existing regular
    file with `overwrite`; never a directory, device, FIFO, socket or symlink; never an input of the
    same command; the parent must be (or become) a writable directory. Returns the path."""
    p = check_parent_writable(path, what)
    if not allow_package:
        refuse_package_path(p)
    k = _kind(p)
    if k == "dir":
        raise InterpError(f"{what} {p} is a directory; give a file path (nothing was changed)")
    _refuse_special(p, what)
    _refuse_inputs(p, inputs, what, is_dir=False)
    if k == "file" and not overwrite:
        raise InterpError(f"{what} {p} exists; pass --overwrite to replace it (nothing was changed)")
    return p


def _atomic_file(path: str | Path, write) -> Path:
    """The one atomic file writer: `write(tmp)` fills a temporary sibling, which is fsync'd and
    renamed over `path`; on any error the temporary file is removed and `path` is untouched. It
    renames only onto nothing or a regular file (never a device, FIFO, socket, symlink or folder)."""
    p = check_parent_writable(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if _kind(p) == "dir":
        raise InterpError(f"{p} is a directory; expected a file path")
    _refuse_special(p, "output")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _refuse_special(p, "output")  # again: something may have appeared there while we wrote
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)
    return p


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp sibling, fsync, rename)."""
    return _atomic_file(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """`obj` with every non-finite float (NaN, inf) replaced by None, so strict JSON can hold it
    (a metric that is undefined, e.g. an accuracy over zero prompts, is written as null)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False, default=str) + "\n")


def atomic_save_safetensors(tensors: dict, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """`safetensors.torch.save_file` through a temp sibling and a rename."""
    from safetensors.torch import save_file

    return _atomic_file(path, lambda tmp: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                                                    metadata=metadata))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify_checksum(path: str | Path, expected: str, what: str = "file") -> None:
    """One-line error naming the file when it is missing, truncated or altered."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"{what} {p} is missing")
    got = sha256_file(p)
    if got != expected:
        raise InterpError(f"{what} {p} is corrupt or truncated (sha256 {got[:12]} != recorded {expected[:12]})")


def check_output_dir(out: str | Path, *, marker: str | None, overwrite: bool, what: str = "output directory",
                     allow_package: bool = False, inputs=()) -> Path:
    """Validate an output directory before any work starts.

    * does not exist: fine;
    * exists and is a file: error (never replaced);
    * exists, empty: fine;
    * exists and holds `marker` (it is this kind of run): fine only with `overwrite` (or the caller resumes);
    * exists and is anything else: refused even with `overwrite` unless `marker` is None;
    * a symlink, device, FIFO or socket, or a path holding / inside an input of the command: refused.

    A path inside the installed package is refused unless `allow_package` (only the builders of
    shipped weights pass it)."""
    p = check_parent_writable(out, what)
    if not allow_package:
        refuse_package_path(p)
    _refuse_special(p, what)
    _refuse_inputs(p, inputs, what, is_dir=True)
    if not p.exists():
        return p
    if not p.is_dir():
        raise InterpError(f"{what} {p} is a file; give a directory path (nothing was changed)")
    if not any(c.name != ".lock" for c in p.iterdir()):  # empty, or only the lock of a run that never started
        return p
    ours = marker is None or (p / marker).exists()
    if not ours:
        raise InterpError(f"{what} {p} exists and is not an interp output of this kind (no {marker} in it); "
                          "choose another path (nothing was changed)")
    if not overwrite:
        raise InterpError(f"{what} {p} exists; pass --overwrite to replace it (nothing was changed)")
    return p


def _tmp_sibling(out: Path, tag: str = "tmp") -> Path:
    return out.with_name(f".{out.name}.{tag}-{os.getpid()}-{int(time.time() * 1000) % 10**9}")


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = False, marker: str | None = None,
               allow_package: bool = False) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it into place when the block succeeds.

        with atomic_dir("saes/x", overwrite=args.overwrite, marker="cfg.json") as tmp:
            (tmp / "cfg.json").write_text(...)

    On error the temporary directory is removed and `out` is untouched. An existing `out` is
    checked with `check_output_dir` first, then renamed aside, replaced, and deleted last."""
    out = check_output_dir(out, marker=marker, overwrite=overwrite, allow_package=allow_package)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(out)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)


def clean_stale_siblings(out: str | Path) -> list[Path]:
    """Tidy what a killed `atomic_dir` / `replace_dir` of a dead process left beside `out`.

    A temporary build (``.<name>.tmp-<pid>-*``) is removed. A renamed-aside old directory
    (``.<name>.old-<pid>-*``) is moved back to `out` when `out` is missing (the kill fell between
    the two renames), else removed. Siblings of live processes are left alone. Returns what was removed."""
    out = Path(out)
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    for sib in sorted(out.parent.glob(f".{out.name}.*-*-*")):
        tag, _, rest = sib.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if tag not in ("tmp", "old") or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if tag == "old" and not out.exists():
            os.rename(sib, out)
            continue
        shutil.rmtree(sib, ignore_errors=True) if sib.is_dir() else sib.unlink(missing_ok=True)
        removed.append(sib)
    return removed


def remove_stale_temp_files(d: str | Path) -> None:
    """Delete the ``.<name>.<random>.tmp`` files that atomic writes of a killed process left in `d`
    (call it only while holding the directory's `RunLock`)."""
    d = Path(d)
    if d.is_dir():
        for f in d.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                f.unlink()


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished directory `tmp` to `out`; an existing `out` is renamed aside and removed last."""
    old = None
    if out.exists():
        old = _tmp_sibling(out, "old")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.rename(old, out)
        raise
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class RunLock:
    """An exclusive lock file `DIR/.lock` naming its holder (host, pid, command).

    A second writer gets a one-line error naming the holder. A lock left by a dead process on
    this host is taken over."""

    def __init__(self, run_dir: str | Path, what: str = "run"):
        self.dir = Path(run_dir)
        self.path = self.dir / ".lock"
        self.what = what
        self._held = False

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        self.dir.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                h = self._holder()
                if h.get("host") == me["host"] and isinstance(h.get("pid"), int) and not _pid_alive(h["pid"]):
                    with contextlib.suppress(OSError):
                        self.path.unlink()
                    continue
                raise InterpError(
                    f"{self.what} {self.dir} is in use by pid {h.get('pid', '?')} on {h.get('host', '?')} since "
                    f"{h.get('since', '?')}; wait for it or remove {self.path} if that process is gone"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            return self
        raise InterpError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self._held:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def os_error_message(e: OSError) -> str:
    """One line for an OSError: what happened to which path."""
    what = {
        errno.ENOSPC: "no space left on the device",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOTDIR: "not a directory",
        errno.EISDIR: "is a directory",
        errno.ENOENT: "no such file or directory",
        errno.EROFS: "read-only file system",
        errno.EDQUOT: "disk quota exceeded",
    }.get(e.errno or -1, e.strerror or type(e).__name__)
    return f"{e.filename}: {what}" if e.filename else what
