"""`rules-engine intake --subscriptions FILE --store URL`: the signal fan-out's stateless HTTP
front (`rules_engine.service.intake`); `--check` only validates the subscriptions file.

Exit codes: 0 stopped cleanly (or the file is valid), 1 it could not start (or the file is
invalid), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from rules_engine.pgstore.connection import PASSWORD_ENV, StoreSettings
from rules_engine.secret_reader import SecretError
from rules_engine.service.intake import Intake
from rules_engine.service.subscriptions import SubscriptionsError, load_subscriptions
from rules_engine.state.store import StateStoreError

log = logging.getLogger("rules_engine.intake")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "intake",
        help="accept provider signals and fan them out to every subscribed account (PostgreSQL store)",
        description="Verify each signal POSTed to /signals/{provider} as the engine's webhook does, then store "
                    "it with one delivery per subscribed account in one transaction, and answer 200 only after "
                    "the commit (a retry answers 200 as a duplicate). Stateless: run any number of replicas.",
        epilog="Exit codes: 0 stopped cleanly (--check: the file is valid), 1 cannot start (--check: invalid), "
               "2 usage error.",
    )
    parser.add_argument("--subscriptions", metavar="FILE", type=Path, required=True,
                        help="the subscriptions file: providers, their secrets' variables, accounts and sizing")
    parser.add_argument("--store", metavar="URL", help="the PostgreSQL store (postgresql://user@host:port/db)")
    parser.add_argument("--password-env", metavar="NAME", default=PASSWORD_ENV,
                        help=f"the variable holding the store's password (NAME_FILE: a file); default {PASSWORD_ENV}")
    parser.add_argument("--host", metavar="HOST", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", metavar="PORT", type=int, default=8090, help="HTTP port; 0 picks one (default 8090)")
    parser.add_argument("--name", metavar="NAME", help="this replica's name, stored with each signal "
                                                        "(default: host:pid)")
    parser.add_argument("--check", action="store_true", help="only validate the subscriptions file, then exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        subscriptions = load_subscriptions(args.subscriptions)
    except SubscriptionsError as exc:
        print(f"{exc}\nrules-engine intake: {len(exc.diagnostics)} problem(s) in {args.subscriptions}",
              file=sys.stderr)
        return 1
    if args.check:
        accounts = len(subscriptions.keys)
        print(f"{args.subscriptions}: OK ({len(subscriptions.providers)} provider(s), {accounts} account(s))")
        return 0
    if not args.store:
        print("rules-engine intake: --store URL is required (the PostgreSQL store the engines use)", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("rules-engine intake: --port must be 0-65535", file=sys.stderr)
        return 2
    try:
        settings = StoreSettings.parse(args.store, password_env=args.password_env)
    except (ValueError, SecretError) as exc:
        print(f"rules-engine intake: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    try:
        intake = Intake(subscriptions, settings, host=args.host, port=args.port, name=name)
    except (SecretError, LookupError, ValueError) as exc:
        print(f"rules-engine intake: refusing to start: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(_serve(intake))


async def _serve(intake: Intake) -> int:
    try:
        port = await intake.start()
    except (StateStoreError, OSError) as exc:
        await intake.stop()
        print(f"rules-engine intake: refusing to start: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    providers = intake.subscriptions.providers
    log.info("listening on http://%s:%d (providers: %s; accounts: %d)", intake.host, port,
             ", ".join(sorted(providers)), len(intake.subscriptions.keys))
    print(f"rules-engine intake: ready on http://{intake.host}:{port}", flush=True)
    await stop.wait()
    await intake.stop()
    return 0
