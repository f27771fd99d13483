"""`rules-engine demo` (`make demo`): a narrated dry run of the example rules against the
built-in simulator, offline, in under a minute. Exit codes: 0 done and the audit log
verifies, 1 something went wrong, 2 usage error."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rules_engine.demo import run_demo
from rules_engine.service.logs import setup_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="watch the example rules run against the built-in simulator (dry-run, offline)",
        description="Start the Kraken simulator and the engine on the example rules in dry-run, drive prices "
                    "across their levels, post a signed signal, let a timer fire, and verify the audit log.",
    )
    parser.add_argument("--state-dir", metavar="DIR", type=Path,
                        help="where to keep the demo's state and audit log (new or empty; default: a temp dir)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    demo_logging()
    return run_demo(args.state_dir)


def demo_logging() -> None:
    """Errors only, and not the decision log's lines: the narrator tells every decision record
    (a rule's error included, which the demo's futures scene shows on purpose)."""
    setup_logging("text", logging.ERROR)
    logging.getLogger("rules_engine.decisions").setLevel(logging.CRITICAL)
