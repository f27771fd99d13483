"""`rules-engine replay RULES... --data FILE`: what would these rules have done over this
market history? Runs them in dry-run through the offline loop with a paper wallet, prints a
table of every fire and a summary per rule, and writes report.md, report.json and chart.png
to `--out` (default `replay-report/`). `--format json` prints the JSON report instead.

Exit codes: 0 the replay ran; 1 the rules are invalid or the data cannot be played;
2 usage error (a path that does not exist, a bad --wallet or --interval).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from rules_engine.commands.replay_sweep import add_arguments as add_sweep_arguments
from rules_engine.commands.replay_sweep import run_sweep, sweep_usage_problem
from rules_engine.config import ConfigError, load_config
from rules_engine.core import RiskLimits
from rules_engine.durations import parse_duration
from rules_engine.execution.base import keep_rule_output_in_reports
from rules_engine.pairs import default_registry
from rules_engine.paper.assets import Assets
from rules_engine.replay.data import FORMATS, DataError, open_data
from rules_engine.replay.replay import ReplayResult, run_replay
from rules_engine.replay.report import write_json, write_markdown, write_text
from rules_engine.risk_pairs import with_risk_pairs
from rules_engine.rules import find_rule_files, load_rules

_T = TypeVar("_T")

DEFAULT_WALLET = {"ZUSD": Decimal(10000)}
PROGRESS_MIN_TICKS = 100_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="run rules in dry-run over recorded market data and report what they would have done",
        description="Replay recorded market data (Kraken OHLCVT/OHLC CSV, REST OHLC JSON, WebSocket frames as JSONL) "
                    "through rules in dry-run with a paper wallet. No network is used.",
    )
    parser.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders")
    parser.add_argument("--data", action="extend", nargs="+", required=True, metavar="FILE", type=Path,
                        help="market data files (several are merged by time)")
    parser.add_argument("--data-format", choices=FORMATS, help="the data format (default: from the file)")
    parser.add_argument("--pair", help="the pair of candle files (default: from the file name, e.g. XBTUSD_60.csv)")
    parser.add_argument("--interval", help="candle interval, e.g. 1m, 1h (default: from the file name or the data)")
    parser.add_argument("--wallet", action="append", default=[], metavar="ASSET=AMOUNT",
                        help="paper balance (repeat; default ZUSD=10000, or the config's paper balances)")
    parser.add_argument("--futures-wallet", action="append", default=[], metavar="CURRENCY=AMOUNT",
                        help="paper Futures collateral, e.g. USD=5000 (repeat; default: the config's "
                             "paper_wallet.futures_balances, else none: Futures orders are refused for margin)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="engine config: its risk limits, paper balances and balance cache are used")
    parser.add_argument("--no-timers", action="store_true", help="do not beat timer triggers during the replay")
    parser.add_argument("--out", type=Path, default=Path("replay-report"), metavar="DIR",
                        help="folder for report.md, report.json and chart.png (default: replay-report)")
    parser.add_argument("--no-chart", action="store_true", help="do not draw chart.png")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep the replay's state database and audit log (audit.jsonl, the records a dry run "
                             "writes; read it with `rules-engine audit show --state-dir DIR`); the folder must be "
                             "new or empty")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="what to print (default: text)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar "
                             f"(default: on a terminal, for more than {PROGRESS_MIN_TICKS:,} ticks)")
    add_sweep_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    keep_rule_output_in_reports()
    try:
        rule_files = find_rule_files(args.rules)
        interval = parse_duration(args.interval) if args.interval else None
        wallet = _wallet(args.wallet)
        futures_wallet = _futures_wallet(args.futures_wallet)
        config = load_config(args.config) if args.config else None
    except (FileNotFoundError, ValueError, ConfigError) as exc:
        return _fail(str(exc), 2)
    if not rule_files:
        return _fail(f"no rule files (*.yaml, *.yml) under {' '.join(args.rules)}", 2)
    if (problem := sweep_usage_problem(args)) is not None:
        return _fail(problem, 2)
    if args.state_dir is not None and args.state_dir.exists() and any(args.state_dir.iterdir()):
        return _fail(f"--state-dir {args.state_dir} is not empty: a replay writes a new audit log", 2)
    missing = [str(p) for p in args.data if not p.is_file()]
    if missing:
        return _fail(f"no such data file: {', '.join(missing)}", 2)
    loaded = load_rules(rule_files)
    if loaded.ruleset is None:
        for diagnostic in loaded.errors:
            print(diagnostic, file=sys.stderr)
        return _fail(f"the rules are invalid ({len(loaded.errors)} errors); see `rules-engine validate`", 1)
    if config is not None:  # the risk limits' pair names as the engine reads them (BTC/USD: XBTUSD)
        try:
            config = with_risk_pairs(config, default_registry())
        except ConfigError as exc:
            return _fail(str(exc), 1)
    limits = RiskLimits(**dataclasses.asdict(config.risk)) if config else None
    if not wallet:
        wallet = dict(config.paper_balances) if config and config.paper_balances else dict(DEFAULT_WALLET)
    if not futures_wallet and config is not None:
        futures_wallet = {c.upper(): a for c, a in config.paper_futures_balances.items()}
    if args.sweep is not None:
        return run_sweep(args, rule_files, wallet, futures_wallet, limits, config.balance_cache if config else 10.0,
                         interval)
    try:
        data = [open_data(p, data_format=args.data_format, pair=args.pair, interval=interval) for p in args.data]
        result = run_replay(loaded.ruleset, data, wallet=wallet, futures_wallet=futures_wallet, limits=limits,
                            timers=not args.no_timers,
                            balance_max_age=config.balance_cache if config else 10.0,
                            progress=lambda ticks, total: _progress(ticks, total, args.progress),
                            state_dir=args.state_dir)
    except DataError as exc:
        return _fail(str(exc), 1)
    try:
        written, chart_note = _write(args.out, result, chart=not args.no_chart)
    except OSError as exc:
        return _fail(f"cannot write the report to {args.out}: {exc.strerror or exc}", 2)
    chart_name = "chart.png" if any(p.name == "chart.png" for p in written) else None
    if args.format == "json":
        write_json(result, sys.stdout, chart_name)
    else:
        write_text(result, sys.stdout, [p.as_posix() for p in written])
    if chart_note:
        print(chart_note, file=sys.stderr)
    return 0


def _write(folder: Path, result: ReplayResult, chart: bool) -> tuple[list[Path], str | None]:
    """report.md, report.json and chart.png; without the chart extra, a note saying how to get it."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    note = None
    if chart:
        try:
            from rules_engine.replay.chart import write_chart  # matplotlib loads only when a chart is drawn
        except ImportError:
            note = ("rules-engine replay: no chart: matplotlib is not installed; "
                    "install the chart extra (pip install 'rules-engine[chart]') to get chart.png")
        else:
            written.append(write_chart(result, folder / "chart.png"))
    chart_name = "chart.png" if written else None
    markdown = folder / "report.md"
    with open(markdown, "w", encoding="utf-8") as handle:
        write_markdown(result, handle, chart_name)
    document = folder / "report.json"
    with open(document, "w", encoding="utf-8") as handle:
        write_json(result, handle, chart_name)
    return [markdown, document] + written, note


def _wallet(entries: list[str]) -> dict[str, Decimal]:
    """`--wallet ZUSD=10000`: the paper wallet, by Kraken asset."""
    assets, wallet = Assets(default_registry()), {}
    for entry, asset, value in _amounts(entries, "--wallet", "ASSET=AMOUNT, e.g. ZUSD=10000"):
        if assets.get(asset) is None:
            raise ValueError(f"--wallet {entry!r}: unknown asset {asset!r}")
        wallet[asset] = value
    return wallet


def _futures_wallet(entries: list[str]) -> dict[str, Decimal]:
    """`--futures-wallet USD=5000`: the paper Futures account's collateral, by currency."""
    form, wallet = "CURRENCY=AMOUNT, e.g. USD=5000", {}
    for entry, currency, value in _amounts(entries, "--futures-wallet", form):
        if not re.fullmatch(r"[A-Za-z0-9]{2,10}", currency):
            raise ValueError(f"--futures-wallet {entry!r}: write {form}")
        wallet[currency.upper()] = value
    return wallet


def _amounts(entries: list[str], flag: str, form: str) -> Iterator[tuple[str, str, Decimal]]:
    """(entry, name, amount) of each `NAME=AMOUNT` given to `flag`: a ValueError naming `form`
    for one without a name or with an amount that is no number of at least 0."""
    for entry in entries:
        name, _, amount = entry.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal(-1)
        if not name or not value.is_finite() or value < 0:
            raise ValueError(f"{flag} {entry!r}: write {form}")
        yield entry, name.strip(), value


def _progress(ticks: Iterator[_T], total: int, wanted: bool | None) -> Iterable[_T]:
    show = wanted if wanted is not None else (sys.stderr.isatty() and total >= PROGRESS_MIN_TICKS)
    if not show:
        return ticks
    return tqdm(ticks, total=total, unit="tick", unit_scale=True, file=sys.stderr, mininterval=0.5,
                desc="replay", leave=False)


def _fail(message: str, code: int) -> int:
    print(f"rules-engine replay: {message}", file=sys.stderr)
    return code
