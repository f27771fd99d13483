"""`rules-engine status`: what a running engine (or worker) is doing, per rule and overall.

Asks the service's HTTP API (`GET /api/status`) at `--url`, else at the config's
`server.host`/`server.port`; when it does not answer, reads the engine's state dir instead
(the saved rule states, open orders, kill file and the audit log's tail) and says the engine
is down.

Exit codes: 0 healthy, 1 degraded, not ready, or not running, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from rules_engine.commands.cluster import render as render_cluster
from rules_engine.config import ConfigError, load_config
from rules_engine.service.killswitch import default_state_dir
from rules_engine.service.status_offline import offline_status
from rules_engine.service.status_report import NOT_A_RULE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show what a running engine is doing (rules, feeds, orders, kill switch, health)",
        description="Show the state of each rule (armed, holding, cooling down, running, waiting, disabled, "
                    "error), its last fire and error, feeds, the kill switch, open orders, risk usage, recent "
                    "signals, the last reload and readiness. Reads the running service; falls back to its state "
                    "dir when it is down.",
        epilog="Exit codes: 0 healthy, 1 degraded / not ready / not running, 2 usage error.",
    )
    parser.add_argument("--url", metavar="URL", help="the engine's HTTP address (default: the config's server "
                                                     "host and port, else http://127.0.0.1:8080)")
    parser.add_argument("--config", metavar="FILE", type=Path, help="engine config: its server address and state dir")
    parser.add_argument("--state-dir", metavar="DIR", type=Path,
                        help="state dir to read when the engine does not answer (default: the config's, else "
                             "$RULES_ENGINE_STATE_DIR, else ./state)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=5.0, help="HTTP timeout (default: 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"rules-engine status: {exc}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("rules-engine status: --timeout must be positive", file=sys.stderr)
        return 2
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    url = (args.url or f"http://{'[' + host + ']' if ':' in host else host}:{config.port}").rstrip("/")
    doc, reason = _fetch(url, args.timeout)
    if doc is None:
        state_dir = args.state_dir or (config.state_dir if args.config is not None else default_state_dir())
        doc = offline_status(config, Path(state_dir))
        doc["unreachable"] = {"url": url, "reason": reason}
    print(json.dumps(doc, indent=2, default=str) if args.format == "json" else render_text(doc))
    return 0 if doc.get("health") == "ok" else 1


def _fetch(url: str, timeout: float) -> tuple[dict[str, Any] | None, str]:
    try:
        response = requests.get(f"{url}/api/status", timeout=timeout)
    except requests.RequestException as exc:
        return None, f"cannot reach {url}: {type(exc).__name__}"
    if response.status_code != 200:
        return None, f"{url}/api/status answered HTTP {response.status_code}"
    try:
        doc = response.json()
    except ValueError:
        return None, f"{url}/api/status did not answer JSON"
    return (doc, "") if isinstance(doc, dict) else (None, f"{url}/api/status did not answer a status document")


def _time(value: Any, now: float) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    stamp = datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")
    delta = now - float(value)
    ago = f"{delta:.0f}s ago" if delta >= 0 else f"in {-delta:.0f}s"
    return f"{stamp} ({ago})"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_text(doc: dict[str, Any]) -> str:
    """The status as an operator reads it in a terminal."""
    if doc.get("kind") == "worker":
        return render_worker_text(doc)
    now = float(doc.get("time") or 0)
    lines = [f"engine: {doc.get('health')}  mode={doc.get('mode')}"
             + (f"  uptime={doc['uptime']:.0f}s" if isinstance(doc.get("uptime"), (int, float)) else "")]
    standby = doc.get("standby")
    if standby:
        lines.append(f"standing by for key {standby.get('key')}: "
                     + (f"held by {standby['holder']} (epoch {standby.get('epoch')})" if standby.get("holder")
                        else "no engine holds it yet"))
    if not doc.get("running"):
        unreachable = doc.get("unreachable") or {}
        source = f"the store {doc['store']}" if doc.get("store") else f"state dir {doc.get('state_dir')}"
        lines.append(f"  not running ({unreachable.get('reason', 'no answer')}); from {source}, "
                     f"last audit record {_time(doc.get('last_audit_record'), now)}")
        lines.extend(f"  ! {p}" for p in doc.get("problems", []))
    readiness = doc.get("readiness") or {}
    lines.append(f"readiness: {readiness.get('status')}")
    lines.extend(f"  - {p['name']} ({p['severity']}): {p['reason']}" for p in readiness.get("problems", []))
    rows = [["RULE", "STATE", "LAST FIRE", "OUTCOME", "NEXT BEAT", "FIRES", "LAST ERROR"]]
    for rule in doc.get("rules", []):
        last = rule.get("last_fire") or {}
        fires = rule.get("fires") or {}
        count = str(fires.get("count", 0)) + (f"/{fires['max']}" if fires.get("max") is not None else "")
        error = rule.get("last_error") or {}
        rows.append([rule["id"], rule["state"] + (f" ({rule['state_detail']})" if rule.get("state_detail") else ""),
                     _time(last.get("time"), now) if last else "-", str(last.get("outcome") or "-"),
                     _time(rule.get("next_beat"), now) if rule.get("next_beat") else "-", count,
                     str(error.get("reason") or "-")[:60]])
    lines.append("")
    lines.extend(_table(rows) if len(rows) > 1 else ["no rules loaded"])
    lines.append("")
    feeds = doc.get("feeds") or {}
    if feeds:
        lines.append("feeds:")
        for market, feed in feeds.items():
            age = feed.get("last_message_age")
            lines.append(f"  {market}: {'connected' if feed.get('connected') else 'DISCONNECTED'}"
                         f"{' STALE' if feed.get('stale') else ''}, last message "
                         f"{'-' if age is None else f'{age:.1f}s'} ago")
            for symbol, info in (feed.get("symbols") or {}).items():
                tick = info.get("last_tick_age")
                lines.append(f"    {symbol}: last tick {'never' if tick is None else f'{tick:.1f}s ago'}"
                             f"{' STALE' if info.get('stale') else ''}")
    switch = doc.get("kill_switch") or {}
    lines.append(f"kill switch: {switch.get('describe') or ('engaged' if switch.get('engaged') else 'clear')}")
    orders = doc.get("orders") or []
    lines.append(f"open orders: {len(orders)}")
    for order in orders:
        lines.append(f"  {order.get('rule_id') or NOT_A_RULE}: {order.get('pair') or order.get('market')} "
                     f"{order.get('status')} "
                     f"volume={order.get('volume')} price={order.get('price')} "
                     f"{','.join(order.get('txids') or []) or order.get('cl_ord_id')}")
    risk = doc.get("risk") or {}
    usage = [f"{name}={v['value']}" + (f"/{v['limit']}" if v.get("limit") is not None else "")
             for name, v in risk.items() if isinstance(v, dict) and "value" in v]
    lines.append("risk: " + (" ".join(usage) or "-"))
    lines.extend(_signal_lines(doc.get("signals"), now))
    reload = doc.get("last_reload")
    if reload:
        lines.append(f"last reload: {'applied' if reload.get('ok') else 'REFUSED'} {_time(reload.get('time'), now)}")
        lines.extend(f"  {e}" for e in reload.get("errors", [])[:5])
    else:
        lines.append("last reload: none since start")
    if doc.get("cluster"):
        lines.extend(["", *_cluster_lines(doc["cluster"])])
    return "\n".join(lines)


def _signal_lines(signals: Any, now: float, shown: int = 10) -> list[str]:
    """The recent signals, newest first, as the page lists them (none when the engine is down)."""
    if not isinstance(signals, list):
        return []
    lines = [f"recent signals: {len(signals) or 'none'}"]
    for signal in signals[:shown]:
        why = " ".join(str(x) for x in (signal.get("status"), signal.get("code")) if x)
        if signal.get("reason"):
            why += f": {signal['reason']}"
        outcome = "accepted" if signal.get("accepted") else "rejected"
        detail = " ".join(x for x in (str(signal.get("signal_id") or ""), why) if x)
        lines.append(f"  {_time(signal.get('time'), now)}  {signal.get('source')}  {outcome}  {detail}".rstrip())
    return lines


def _cluster_lines(report: dict[str, Any]) -> list[str]:
    if report.get("error"):
        return [f"cluster: cannot be read: {report['error']}"]
    return render_cluster(report).splitlines()


def render_worker_text(doc: dict[str, Any]) -> str:
    """A worker's status document (`rules-engine worker`): its cells, feeds and cluster."""
    now = float(doc.get("time") or 0)
    lines = [f"worker: {doc.get('health')}  {doc.get('worker')}  uptime={float(doc.get('uptime') or 0):.0f}s  "
             f"holding {len(doc.get('holding', []))} of {len(doc.get('cells', []))} keys"]
    rows = [["KEY", "API KEY", "STATE", "EPOCH", "LEASE HOLDER", "LAST DECISION", "KILL SWITCH", "NOT READY BECAUSE"]]
    for cell in doc.get("cells", []):
        last = cell.get("last_decision") or {}
        switch = cell.get("kill_switch") or {}
        rows.append([str(cell.get("key")), str(cell.get("fingerprint") or "-"), str(cell.get("state")),
                     str(cell.get("epoch") or "-"),
                     f"{cell['holder']} (epoch {cell.get('holder_epoch')})" if cell.get("holder") else "-",
                     f"{last.get('decision_id')} {_time(last.get('time'), now)}" if last else "-",
                     "ENGAGED" if switch.get("engaged") else "clear", str(cell.get("why_not_ready") or "-")[:80]])
    lines.extend(["", *_table(rows), ""])
    for market, feed in (doc.get("feeds") or {}).items():
        lines.append(f"feed {market}: {'connected' if feed.get('connected') else 'DISCONNECTED'}, "
                     f"{feed.get('subscribed')} of {feed.get('symbols')} symbols subscribed")
    for report in doc.get("clusters", []):
        lines.extend(["", *_cluster_lines(report)])
    return "\n".join(lines)
