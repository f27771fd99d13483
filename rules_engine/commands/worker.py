"""`rules-engine worker --config WORKER.yaml`: one process hosting many key cells (see
`rules_engine.service.worker`).

Exit codes: 0 stopped cleanly (SIGTERM / SIGINT), 1 refused to start (invalid worker config,
an engine config it names, the HTTP port), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rules_engine.execution import LiveModeRefused, check_live_allowed
from rules_engine.rules import load_rules
from rules_engine.service.logs import LOG_FORMATS, setup_logging
from rules_engine.service.startup import StartupError, load_problems
from rules_engine.service.worker import Worker
from rules_engine.service.worker_config import WorkerConfig, WorkerConfigError, load_worker_config

log = logging.getLogger("rules_engine.worker")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run many key cells (one per API key) in one process on the PostgreSQL store",
        description="Run every key cell of the worker config in one process: each cell is an engine on the "
                    "PostgreSQL store (`store: {standby: true, exclusive: true}`) that holds its key's lease or "
                    "stands by for it; the cells share one public market-data feed and one HTTP server "
                    "(/healthz, /readyz, /metrics labelled by key). Dry-run unless a cell's engine config says "
                    "`mode: live` AND --live is given. SIGHUP reloads every cell's rules, SIGTERM stops cleanly.",
        epilog="Exit codes: 0 clean stop, 1 refused to start, 2 usage error.",
    )
    parser.add_argument("--config", metavar="FILE", type=Path, required=True,
                        help="the worker config (schemas/worker.schema.json)")
    parser.add_argument("--live", action="store_true",
                        help="allow real orders; each cell's engine config must also say `mode: live`")
    parser.add_argument("--check", action="store_true",
                        help="validate the worker config, its cells' engine configs and rules (with --live: "
                             "each cell's mode too), then exit")
    parser.add_argument("--host", metavar="HOST", help="HTTP listen address (default: the worker config's server.host)")
    parser.add_argument("--port", metavar="PORT", type=int, help="HTTP port; 0 picks a free one (default: server.port)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="log lines as key=value text or JSON")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 <= args.port <= 65535:
        print("rules-engine worker: --port must be 0-65535", file=sys.stderr)
        return 2
    try:
        config = load_worker_config(args.config)
    except WorkerConfigError as exc:
        print(f"rules-engine worker: refusing to start:\n{exc}", file=sys.stderr)
        return 1
    if args.check:
        return _check(args.config, config, args.live)
    setup_logging(args.log_format, getattr(logging, args.log_level.upper()))
    worker = Worker(config, cli_live=args.live, host=args.host, port=args.port, handle_signals=True)
    return asyncio.run(_serve(worker))


def _check(path: Path, config: WorkerConfig, live: bool) -> int:
    """Validate every cell's rules too (as `rules-engine validate`), and with --live each cell's
    mode as the start would; 1 if any has errors."""
    failed = refused = 0
    for cell in config.cells:
        if live:
            try:
                check_live_allowed(cell.config.mode, live)
            except LiveModeRefused as exc:
                refused += 1
                print(f"cell {cell.key}: {exc}", file=sys.stderr)
        result = load_rules(list(cell.rules))
        if result.errors or result.ruleset is None:
            failed += 1
            print(f"cell {cell.key}: {load_problems(result)}", file=sys.stderr)
    print(f"{path}: {len(config.cells)} cells: {', '.join(c.key for c in config.cells)}"
          + (f"; {failed} with invalid rules" if failed else "")
          + (f"; {refused} refused by --live" if refused else ""))
    return 1 if failed or refused else 0


async def _serve(worker: Worker) -> int:
    try:
        port = await worker.start()
    except StartupError as exc:
        print(f"rules-engine worker: refusing to start: {exc}", file=sys.stderr)
        return 1
    log.info("listening on http://%s:%d (healthz, readyz, metrics)", worker.host, port)
    await worker.wait_stopped()
    return 0
