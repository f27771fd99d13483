"""`rules-engine run RULES... [--config FILE]`: the engine as a long-running service.

Exit codes: 0 stopped cleanly (SIGTERM / SIGINT), 1 refused to start (invalid rules,
live mode refused, bad config, state dir in use), 2 usage error, 3 stopped because another
engine took the key over (high availability: fenced, or Kraken refused its nonce).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rules_engine.config import ConfigError, load_config
from rules_engine.service.app import EngineService
from rules_engine.service.logs import LOG_FORMATS, setup_logging
from rules_engine.service.startup import StartupError

log = logging.getLogger("rules_engine.run")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the engine as a service (feeds, webhook, timers, HTTP /healthz /metrics)",
        description="Run the rules as a long-running service. Dry-run unless the engine config says "
                    "`mode: live` AND --live is given. SIGHUP reloads the rules, SIGUSR1 engages the kill "
                    "switch, SIGTERM stops cleanly.",
        epilog="Exit codes: 0 clean stop, 1 refused to start, 2 usage error, 3 another engine took the key.",
    )
    parser.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders (searched for *.yaml)")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="engine config (default: dry-run, built-in settings)")
    parser.add_argument("--live", action="store_true",
                        help="allow real orders; the engine config must also say `mode: live`")
    parser.add_argument("--state-dir", metavar="DIR", type=Path,
                        help="state dir (default: $RULES_ENGINE_STATE_DIR, else the config's state_dir, else ./state)")
    parser.add_argument("--host", metavar="HOST", help="HTTP listen address (default: the config's server.host)")
    parser.add_argument("--port", metavar="PORT", type=int, help="HTTP port; 0 picks a free one (default: server.port)")
    parser.add_argument("--accept-damaged-audit", action="store_true",
                        help="if the audit log's chain is damaged, keep it aside as evidence and start a new "
                             "chain segment that records the break (default: refuse to start)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="log lines as key=value text or JSON")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 <= args.port <= 65535:
        print("rules-engine run: --port must be 0-65535", file=sys.stderr)
        return 2
    setup_logging(args.log_format, getattr(logging, args.log_level.upper()))
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _refuse(str(exc))
    service = EngineService(config, args.rules, cli_live=args.live, state_dir=args.state_dir, host=args.host,
                            port=args.port, handle_signals=True, accept_damaged_audit=args.accept_damaged_audit,
                            freeze_gc=True)
    return asyncio.run(_serve(service))


async def _serve(service: EngineService) -> int:
    try:
        port = await service.start()
    except StartupError as exc:
        return _refuse(str(exc))
    if service.http_bound:
        kill = "kill" if service.kill_token is not None else "kill disabled: no admin token"
        log.info("listening on http://%s:%d (status page, healthz, readyz, metrics, signals, %s)",
                 service.host, port, kill)
    else:  # a standby that took its key while its port is still held (by the key's other engine here)
        log.info("leading; http://%s:%d is still in use, served once it is free", service.host, port)
    await service.wait_stopped()
    return service.exit_code


def _refuse(message: str) -> int:
    print(f"rules-engine run: refusing to start: {message}", file=sys.stderr)
    return 1
