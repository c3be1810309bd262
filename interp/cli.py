"""The `interp` command: one subcommand per workflow, each a thin wrapper over one library function.

Each module in `COMMAND_MODULES` adds its subcommands through `register(subparsers)`; a handler
gets the parsed `argparse.Namespace`. Global options, accepted before or after the subcommand:

* ``--device {auto,cpu,cuda,cuda:N,mps}`` (env ``INTERP_DEVICE``) and
  ``--dtype {float32,bfloat16,float16}`` (env ``INTERP_DTYPE``): the model's device and dtype.
  Handlers read ``args.device`` / ``args.dtype`` (strings, or None = the env / auto / float32) and
  pass them to `load_model`; they are checked here before any handler runs.
* ``--processing {none,tl-default,FLAG,...}`` (env ``INTERP_PROCESSING``): weight processing when a
  model is loaded (`interp.models.parse_processing`).
* ``--debug``: show the traceback of an unexpected error instead of one line.

The resolved values are also exported as ``INTERP_DEVICE`` / ``INTERP_DTYPE`` /
``INTERP_PROCESSING`` so that every `load_model` call of the run (and the dashboard's Streamlit
child) follows them even where a handler does not pass them on.

No traceback reaches a user: `InterpError`, OS errors, undecodable text, bad JSON and memory
errors print ``error: <one line>`` and exit 2; anything else prints one line naming the
exception and "rerun with --debug for the traceback", also exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys

from interp.errors import InterpError

COMMAND_MODULES = (
    "interp.commands.core",
    "interp.commands.sae",
    "interp.commands.features",
    "interp.commands.circuits",
    "interp.commands.unlearn",
    "interp.commands.moex",
    "interp.commands.scale",
    "interp.commands.graphs",
)

DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (env INTERP_DEVICE; default auto)"
DTYPE_CHOICES = ("float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def _device_arg(s: str) -> str:
    s = s.strip().lower()
    if not _DEVICE_RE.match(s):
        raise argparse.ArgumentTypeError(f"{s!r}: expected auto, cpu, cuda, cuda:N or mps")
    return s


def _dtype_arg(s: str) -> str:
    s = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(s.strip().lower(), s.strip().lower())
    if s not in DTYPE_CHOICES:
        raise argparse.ArgumentTypeError(f"{s!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    return s


def _add_global_options(p: argparse.ArgumentParser, top: bool) -> None:
    """The global options; on subparsers their default is SUPPRESS so they never undo a value given
    before the subcommand. A subparser that already defines one of them keeps its own."""
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    have = set(p._option_string_actions)
    if "--device" not in have:
        p.add_argument("--device", type=_device_arg, default=d(None), metavar="DEVICE", help=DEVICE_HELP)
    if "--dtype" not in have:
        p.add_argument("--dtype", type=_dtype_arg, default=d(None), metavar="{float32,bfloat16,float16}",
                       help="the model's dtype (env INTERP_DTYPE; default float32); SAEs stay float32")
    if "--processing" not in have:
        p.add_argument("--processing", default=d(None), metavar="SPEC",
                       help="weight processing when loading a model: none (default; the checkpoint's own weights), "
                            "tl-default (fold_ln, center_writing_weights, center_unembed, fold_value_biases, as "
                            "TransformerLens' compatibility mode), or a comma list of those flags (env INTERP_PROCESSING)")
    if "--trust-remote-code" not in have:
        p.add_argument("--trust-remote-code", action="store_true", default=d(False),
                       help="run a Hugging Face model whose config needs its own Python code (auto_map); refused "
                            "without this flag (env INTERP_TRUST_REMOTE_CODE=1)")
    if "--debug" not in have:
        p.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks of unexpected errors")
    if "-v" not in have and "--verbose" not in have:
        p.add_argument("-v", "--verbose", action="store_true", default=d(False), help="log at DEBUG level")


def _subparsers(p: argparse.ArgumentParser):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sp in dict.fromkeys(a.choices.values()):
                yield sp
                yield from _subparsers(sp)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with exactly one `error:` line (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog.removeprefix('interp ')}: {message.splitlines()[0]}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="interp", description="A local interpretability workbench for transformer language models.")
    _add_global_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    for sp in _subparsers(p):
        _add_global_options(sp, top=False)
    return p


def _resolve_globals(args: argparse.Namespace) -> None:
    """Check --device/--dtype (or the env) before any work: `cuda` without CUDA is one line here.

    Imports torch only when a device or dtype was asked for, so `interp --help` stays light."""
    dev_spec = args.device or os.environ.get("INTERP_DEVICE")
    dt_spec = args.dtype or os.environ.get("INTERP_DTYPE")
    if dev_spec and not _DEVICE_RE.match(dev_spec.strip().lower()):
        raise InterpError(f"INTERP_DEVICE={dev_spec!r}: expected auto, cpu, cuda, cuda:N or mps")
    if dt_spec and _dtype_arg_or_none(dt_spec) is None:
        raise InterpError(f"INTERP_DTYPE={dt_spec!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    if dev_spec or dt_spec:
        from interp.device import resolve_device, resolve_dtype

        resolve_dtype(dt_spec, resolve_device(dev_spec))
    proc = args.processing or os.environ.get("INTERP_PROCESSING")
    if proc:
        from interp.models import parse_processing  # noqa: F401 (validates before any work)

        parse_processing(proc)
    for env, value in (("INTERP_DEVICE", args.device), ("INTERP_DTYPE", args.dtype), ("INTERP_PROCESSING", args.processing),
                       ("INTERP_TRUST_REMOTE_CODE", "1" if getattr(args, "trust_remote_code", False) else None)):
        if value:
            os.environ[env] = value


def _dtype_arg_or_none(s: str) -> str | None:
    try:
        return _dtype_arg(s)
    except argparse.ArgumentTypeError:
        return None


def error_message(e: BaseException) -> str:
    """One line for an exception a user should see (no traceback)."""
    from interp.io import os_error_message

    if isinstance(e, InterpError):
        msg = str(e)
    elif isinstance(e, OSError):
        msg = os_error_message(e)
    elif isinstance(e, UnicodeDecodeError):
        msg = f"a file is not UTF-8 text ({e.reason} at byte {e.start})"
    elif isinstance(e, json.JSONDecodeError):
        msg = f"a JSON file is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    elif isinstance(e, MemoryError):
        msg = "out of memory; ask for fewer tokens, a smaller batch or a smaller model"
    else:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        msg = f"unexpected {type(e).__name__}" + (f": {first}" if first else "") + "; rerun with --debug for the traceback"
    msg = " ".join(msg.split())  # one line, whatever the message held
    return msg or type(e).__name__


def _numeric_options(p: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> option string of every single-valued int / float option of `p` and its subcommands."""
    out, other = {}, set()
    for sp in [p, *_subparsers(p)]:
        for a in sp._actions:
            if a.option_strings and a.type in (int, float) and a.nargs is None:
                out[a.dest] = a.option_strings[-1]
            else:
                other.add(a.dest)  # the same name elsewhere takes a list or text: not checked here
    return {d: f for d, f in out.items() if d not in other}


def _check_numeric(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse reads `--seed=--` as the end-of-options marker and stores an empty list in an int
    option (found by tests/test_faults_property.py): refuse anything that is not a number."""
    for dest, flag in _numeric_options(parser).items():
        v = getattr(args, dest, None)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            parser.error(f"argument {flag}: expected a number, got {v!r}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_numeric(parser, args)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `--nproc`, which relaunches this command under torchrun
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _resolve_globals(args)
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as e:  # noqa: BLE001 - the point is that nothing escapes as a traceback
        if isinstance(e, SystemExit):
            raise
        if args.debug:
            raise
        if getattr(e, "quiet", False):  # distributed: rank 0 already printed this error (interp.distributed.RankExit)
            return 2
        try:
            sys.stdout.flush()
        except OSError:
            pass
        print(f"error: {error_message(e)}", file=sys.stderr)
        return getattr(e, "exit_code", 2) if isinstance(e, InterpError) else 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
