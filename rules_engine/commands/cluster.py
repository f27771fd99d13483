"""`rules-engine cluster status|prune --store URL`.

`status`: every key in a PostgreSQL store: who holds its
lease, with which epoch, since when and until when, and its signal deliveries (pending, taken
but not decided, done, expired; the oldest still waiting; intake -> decision lag over the last
hour). `--format json` for machines. `prune --older-than 7d`: delete fanned-out signals that old
whose deliveries are all final.

Exit codes of `status` (as `rules-engine status`): 0 healthy, 1 degraded (a key has deliveries waiting
longer than `--max-wait`; a key with deliveries, or named by a `--worker-config`, whose lease has
expired or that no engine ever held) or the store cannot be read, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rules_engine.durations import parse_duration
from rules_engine.pgstore.connection import PASSWORD_ENV, StoreSettings
from rules_engine.pgstore.fanout import cluster_overview, prune_signals
from rules_engine.secret_reader import SecretError
from rules_engine.service.cluster_report import status_report, store_name
from rules_engine.service.worker_config import WorkerConfigError, load_worker_config
from rules_engine.state.store import StateStoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cluster", help="engines sharing a PostgreSQL store: keys, leases, deliveries",
                                   description="Commands about the engines that share a PostgreSQL store.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        help="keys, lease holders, epochs, lease ages and signal delivery lag per key",
        description="Show every key of the store: its lease (holder, epoch, age, expiry by the database's clock) "
                    "and its signal deliveries (pending, taken, done, expired, the oldest waiting, the intake -> "
                    "decision lag over the last hour).",
        epilog="Exit codes: 0 healthy, 1 degraded (deliveries waiting longer than --max-wait, or a key with "
               "deliveries, or named by a --worker-config, whose lease has expired or that no engine ever held) "
               "or the store cannot be read, 2 usage error.",
    )
    status.add_argument("--store", metavar="URL", required=True, help="the PostgreSQL store (postgresql://user@host/db)")
    status.add_argument("--password-env", metavar="NAME", default=PASSWORD_ENV,
                        help=f"the variable holding the store's password (NAME_FILE: a file); default {PASSWORD_ENV}")
    status.add_argument("--max-wait", metavar="SECONDS", type=float, default=5.0,
                        help="a delivery waiting longer than this makes the cluster degraded (default 5)")
    status.add_argument("--worker-config", metavar="FILE", type=Path, action="append", default=[],
                        help="a worker config whose keys must be held (repeat for each worker config)")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(func=run_status)
    prune = actions.add_parser(
        "prune",
        help="delete fanned-out signals older than --older-than whose deliveries are all done or expired",
        description="Delete, in one transaction, the signals the intake accepted longer ago than --older-than "
                    "whose every delivery is final (done or expired), with their ids and deliveries. A provider's "
                    "retry of a pruned signal is then a new signal: keep them longer than any retry.",
        epilog="Exit codes: 0 pruned (or nothing to prune), 1 the store cannot be written, 2 usage error.",
    )
    prune.add_argument("--store", metavar="URL", required=True, help="the PostgreSQL store (postgresql://user@host/db)")
    prune.add_argument("--password-env", metavar="NAME", default=PASSWORD_ENV,
                       help=f"the variable holding the store's password (NAME_FILE: a file); default {PASSWORD_ENV}")
    prune.add_argument("--older-than", metavar="DURATION", required=True, help="e.g. 7d or 36h")
    prune.set_defaults(func=run_prune)


def run_status(args: argparse.Namespace) -> int:
    if args.max_wait <= 0:
        print("rules-engine cluster status: --max-wait must be positive", file=sys.stderr)
        return 2
    try:
        settings = StoreSettings.parse(args.store, password_env=args.password_env)
    except (ValueError, SecretError) as exc:
        print(f"rules-engine cluster status: {exc}", file=sys.stderr)
        return 2
    expected: set[str] = set()
    for path in args.worker_config:
        try:
            expected.update(cell.key for cell in load_worker_config(path).cells)
        except WorkerConfigError as exc:
            print(f"rules-engine cluster status: {exc}", file=sys.stderr)
            return 2
    shown = store_name(settings)
    try:
        keys = cluster_overview(settings)
    except StateStoreError as exc:
        print(f"rules-engine cluster status: {exc}", file=sys.stderr)
        return 1
    report = status_report(shown, keys, args.max_wait, expected)
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    return 0 if report["ok"] else 1


def run_prune(args: argparse.Namespace) -> int:
    try:
        older_than = parse_duration(args.older_than)
        settings = StoreSettings.parse(args.store, password_env=args.password_env)
    except (ValueError, SecretError) as exc:
        print(f"rules-engine cluster prune: {exc}", file=sys.stderr)
        return 2
    try:
        signals, deliveries = prune_signals(settings, older_than)
    except StateStoreError as exc:
        print(f"rules-engine cluster prune: {exc}", file=sys.stderr)
        return 1
    print(f"pruned {signals} signal(s) and {deliveries} deliveries older than {args.older_than}")
    return 0


def render(report: dict[str, Any]) -> str:
    totals = report["totals"]
    lines = [f"cluster {report['store']}: {len(report['keys'])} keys, {report['held']} held; deliveries pending "
             f"{totals['pending']}, taken {totals['taken']}, done {totals['done']}, expired {totals['expired']}"]
    lines += [f"  {holder} holds {len(held)} key(s): {', '.join(held)}" for holder, held in report["holders"].items()]
    header = ("key", "holder", "epoch", "lease age", "expires in", "pending", "taken", "done", "expired",
              "oldest waiting", "lag p50", "lag max")
    table = [header]
    for row in report["keys"]:
        lease = row["lease"] or {}
        deliveries = row["deliveries"]
        expires = _seconds(lease.get("expires_in"))
        if lease.get("expired"):
            expires = f"expired {_seconds(-lease['expires_in'])} ago"
        table.append((row["key"], row["holder"] or "-", str(row["epoch"] or "-"), _seconds(lease.get("age")), expires,
                      str(deliveries["pending"]), str(deliveries["taken"]), str(deliveries["done"]),
                      str(deliveries["expired"]), _seconds(row["oldest_waiting"]), _seconds(row["lag"]["p50"]),
                      _seconds(row["lag"]["max"])))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
              for r in table]
    lines += [f"problem: {p}" for p in report["problems"]] or ["ok"]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s" if value < 10 else f"{value:.1f}s"
