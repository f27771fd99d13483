"""`rules-engine sim`: run the Kraken-compatible simulator until Ctrl-C.

Serves Spot REST, Futures REST and the WebSocket feeds on one port. Accounts come from
`--config` and/or the command line; without `--api-key` (and when the config has no
accounts) a fresh simulator key pair is generated and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.kraken.ratelimit import TIERS
from rules_engine.sim.config import Account, SimConfig, load_config
from rules_engine.sim.server import Simulator
from rules_engine.sim.tls import Certificate, self_signed

DEFAULT_PORT = 8089


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=AMOUNT, e.g. ZUSD=10000")
    try:
        Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None
    return name.strip(), value.strip()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a local Kraken-compatible exchange simulator",
        description="Serve Kraken's Spot REST, Futures REST and WebSocket ticker APIs on one local port, "
        "with simulated accounts, orders and prices. Any Kraken client works against it unchanged "
        "apart from the base URL.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML/JSON file: accounts, balances, prices, timings")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--api-key", help="API key of the command-line account")
    parser.add_argument("--api-secret", help="its base64 secret (with --api-key)")
    parser.add_argument("--balance", action="append", type=_assignment, default=[], metavar="ASSET=AMOUNT",
                        help="a balance of the command-line account, e.g. ZUSD=10000 (repeatable)")
    parser.add_argument("--futures-balance", action="append", type=_assignment, default=[], metavar="CUR=AMOUNT",
                        help="futures collateral of the command-line account, e.g. USD=5000 (repeatable)")
    parser.add_argument("--tier", choices=sorted(TIERS), default="starter", help="rate-limit tier of that account")
    parser.add_argument("--price", action="append", type=_assignment, default=[], metavar="PAIR=PRICE",
                        help="starting price, e.g. XBTUSD=60000 (repeatable)")
    parser.add_argument("--seed", type=int, help="random-walk and id seed")
    parser.add_argument("--replay", action="append", default=[], metavar="FILE",
                        help="replay prices from Kraken OHLC/OHLCVT CSV or recorded WebSocket JSONL (repeatable)")
    parser.add_argument("--replay-pair", metavar="PAIR", help="pair of a CSV replay not named PAIR_INTERVAL.csv")
    parser.add_argument("--speed", type=float, help="replay speed factor (default 1 = recorded pace)")
    parser.add_argument("--tick-interval", type=float, help="seconds between random-walk steps; 0 freezes prices")
    parser.add_argument("--heartbeat-interval", type=float, help="seconds between WebSocket heartbeats")
    parser.add_argument("--tls", action="store_true",
                        help="serve https:// and wss:// with a self-signed certificate made at start")
    parser.add_argument("--tls-dir", metavar="DIR",
                        help="where --tls writes cert.pem and key.pem (default: a new temporary folder)")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> tuple[SimConfig, Account | None, bool]:
    """The config from the file and flags, the command-line account, and whether its key
    was generated here."""
    config = load_config(args.config) if args.config else SimConfig()
    if bool(args.api_key) != bool(args.api_secret):
        raise ValueError("give --api-key and --api-secret together")
    account, generated = None, False
    if args.api_key or args.balance or args.futures_balance or not config.accounts:
        balances = dict(args.balance) or ({} if config.accounts else {"ZUSD": "10000"})
        futures = dict(args.futures_balance) or None
        if args.api_key:
            account = Account(args.api_key, args.api_secret, balances, args.tier, futures)
        else:
            account, generated = Account.generate(balances, args.tier, futures), True
        config.accounts.append(account)
    overrides = {
        "host": args.host,
        "seed": args.seed,
        "speed": args.speed,
        "tick_interval": args.tick_interval,
        "heartbeat_interval": args.heartbeat_interval,
        "replay_pair": args.replay_pair,
    }
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, value)
    config.port = args.port if args.port is not None else (config.port or DEFAULT_PORT)
    config.replay += args.replay
    config.prices = {**config.prices, **{k: Decimal(v) for k, v in args.price}}
    return SimConfig(**vars(config)), account, generated


def _banner(sim: Simulator, account: Account | None, generated: bool, certificate: Certificate | None = None) -> str:
    ep = sim.endpoints
    assert ep is not None
    config = sim.config
    lines = [
        "rules-engine sim: Kraken simulator listening (Ctrl-C to stop)",
        f"  spot REST     {ep.spot_rest}",
        f"  futures REST  {ep.futures_rest}",
        f"  WS v2         {ep.ws_v2}",
        f"  WS v1         {ep.ws_v1}",
        f"  futures WS    {ep.futures_ws}",
        f"  private WS v2 {ep.ws_auth_v2}",
    ]
    if certificate is not None:
        lines.append(f"  TLS           self-signed certificate {certificate.cert_path}")
        lines.append(f"                (trust it: SSL_CERT_FILE={certificate.cert_path} "
                     f"REQUESTS_CA_BUNDLE={certificate.cert_path})")
    if config.replay:
        lines.append(f"  prices        replay of {', '.join(config.replay)} at {config.speed:g}x")
    elif config.tick_interval:
        lines.append(f"  prices        random walk, seed {config.seed}, a step every {config.tick_interval:g} s")
    else:
        lines.append("  prices        fixed (tick interval 0)")
    for acct in config.accounts:
        balances = ", ".join(f"{k}={v}" for k, v in acct.balances.items()) or "none"
        lines.append(f"  account       API key {acct.api_key} ({acct.tier}; balances {balances})")
    if account is not None and generated:
        lines.append(f"  API secret    {account.secret}   (generated for this simulator run)")
    lines.append("rules-engine sim: ready")
    return "\n".join(lines)


async def _serve(sim: Simulator, account: Account | None, generated: bool,
                 certificate: Certificate | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await sim.start(ssl_context=certificate.server_context() if certificate is not None else None)
    try:
        print(_banner(sim, account, generated, certificate), flush=True)
        await stop.wait()
    finally:
        await sim.stop()
        print("rules-engine sim: stopped", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        config, account, generated = build_config(args)
        sim = Simulator(config)
        certificate = None
        if args.tls or args.tls_dir:
            folder = args.tls_dir or tempfile.mkdtemp(prefix="rules-engine-sim-tls-")
            certificate = self_signed(folder, config.host)
    except (OSError, ValueError) as exc:
        print(f"rules-engine sim: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(sim, account, generated, certificate))
    except OSError as exc:
        print(f"rules-engine sim: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
