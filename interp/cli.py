"""The `interp` command: one subcommand per workflow, each a thin wrapper over one library function.

Each module in `COMMAND_MODULES` adds its subcommands through `register(subparsers)`; a handler
gets the parsed `argparse.Namespace`. User errors (`InterpError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
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
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interp", description="A local interpretability workbench for transformer language models.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `--nproc`, which relaunches this command under torchrun
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except InterpError as e:
        if not getattr(e, "quiet", False):  # quiet: another rank (rank 0) already printed it
            print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
