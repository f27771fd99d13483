"""The `rules-engine` command line.

Each subcommand lives in its own module under `rules_engine.commands` and exposes
`register(subparsers)`; `register` adds the subparser and sets `func` on it, a callable
taking the parsed namespace and returning the process exit code. Adding a command means
adding one module there: this file discovers them.

Exit codes: 0 success, 1 the command ran and found a problem, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from rules_engine import __version__, commands
from rules_engine.pairs import use_snapshot


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="rules-engine",
        description="Declarative trading rules for the Kraken exchange.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--pairs", dest="pairs_snapshot", metavar="FILE",
                        help="another Kraken AssetPairs response to use instead of the shipped snapshot")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    if args.pairs_snapshot:
        try:
            use_snapshot(args.pairs_snapshot)
        except (OSError, ValueError) as exc:
            print(f"rules-engine: --pairs {args.pairs_snapshot}: {exc}", file=sys.stderr)
            return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, and let nothing flush into the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
