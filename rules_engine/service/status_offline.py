"""The status document of an engine that is not running, read from its state dir (or from the
PostgreSQL store the config names, with the password from the environment): the saved engine
snapshot (rule states, open orders), the kill file, and the tail of the audit log (last fires
and errors, traces, signals, the last reload; which rule files were loaded). Used by
`rules-engine status` when the service's HTTP API does not answer."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rules_engine.config import EngineConfig
from rules_engine.core.model import Rule, RuleSet
from rules_engine.core.risk import DAY
from rules_engine.pgstore import PgStateStore, StoreSettings
from rules_engine.pgstore.audit import tail_records
from rules_engine.rules import load_rules
from rules_engine.secret_reader import SecretError
from rules_engine.service.killswitch import KillFileState, kill_file, read_kill_file
from rules_engine.service.status_report import orders_section, risk_section, rules_section
from rules_engine.service.traces import TraceBook
from rules_engine.state import StateStore, StateStoreError, audit_log_path, database_path

AUDIT_TAIL_BYTES = 8 * 1024 * 1024


def audit_tail(path: Path, max_bytes: int = AUDIT_TAIL_BYTES) -> Iterator[dict[str, Any]]:
    """The intact records in the last `max_bytes` of the audit log, oldest first."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    with open(path, "rb") as handle:
        start = max(0, size - max_bytes)
        handle.seek(start)
        data = handle.read()
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line was cut
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "kind" in record:
            yield record


def offline_status(config: EngineConfig, state_dir: Path, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    book = TraceBook()
    rule_files: list[str] = []
    last_seen: float | None = None
    stopped = None
    problems: list[str] = []
    store_settings = _store_settings(config, problems)
    records: Iterable[dict[str, Any]] = audit_tail(audit_log_path(state_dir)) if config.store is None else []
    if store_settings is not None:
        try:
            records = tail_records(store_settings)
        except StateStoreError as exc:
            records = []
            problems.append(str(exc))
    for record in records:
        book([record])
        last_seen = record.get("time", last_seen)
        kind, data = record.get("kind"), record.get("data") or {}
        if kind == "startup":
            rule_files = list((data.get("rule_files") or {}).keys())
            stopped = False
        elif kind == "reload" and data.get("ok") and isinstance(data.get("files"), dict):
            rule_files = list(data["files"].keys())
        elif kind == "shutdown":
            stopped = True
    snapshot: dict[str, Any] = {}
    order_times: list[float] = []
    if store_settings is not None:
        try:
            with PgStateStore(store_settings, epoch=None) as pg_store:  # reads only: no lease taken
                snapshot = pg_store.load_engine_snapshot() or {}
                order_times = pg_store.decision_times(now - DAY)
        except StateStoreError as exc:
            problems.append(str(exc))
    elif config.store is not None:
        pass  # the store's settings are unusable: noted in problems
    elif database_path(state_dir).exists():
        try:
            store = StateStore(database_path(state_dir))
            try:
                snapshot = store.load_engine_snapshot() or {}
                order_times = store.decision_times(now - DAY)
            finally:
                store.close()
        except StateStoreError as exc:
            problems.append(str(exc))
    else:
        problems.append(f"no state database in {state_dir}")
    ruleset = _rules(rule_files, snapshot, problems)
    switch = read_kill_file(kill_file(state_dir)) or KillFileState(False)
    return {
        "running": False,
        "health": "down",
        "time": now,
        "mode": config.mode,
        "state_dir": str(state_dir),
        "store": None if store_settings is None else store_settings.shown,  # read instead of the state dir
        "stopped_cleanly": stopped,
        "last_audit_record": last_seen,
        "problems": problems,
        "readiness": {"ready": False, "status": "not_ready",
                      "problems": [{"name": "not_running", "severity": "not_ready", "since": last_seen,
                                    "reason": "the engine's HTTP API did not answer; shown from its "
                                              + ("state dir" if store_settings is None else "store")}]},
        "rules": rules_section(ruleset, snapshot, now=now, book=book),
        "feeds": {},
        "kill_switch": {"engaged": switch.engaged, "describe": switch.describe(), **switch.to_json()},
        "orders": orders_section(snapshot),
        "risk": risk_section(config.risk, snapshot, order_times, now),
        "last_reload": book.last_reload,
        "signals": book.recent_signals(),
    }


def _store_settings(config: EngineConfig, problems: list[str]) -> StoreSettings | None:
    """The PostgreSQL store the config names (None: the state dir; a problem noted if unusable)."""
    if config.store is None:
        return None
    try:
        return StoreSettings.parse(config.store.url, key_id=config.store.key, password_env=config.store.password_env)
    except (ValueError, SecretError) as exc:
        problems.append(str(exc))
        return None


def _rules(files: list[str], snapshot: dict[str, Any], problems: list[str]) -> RuleSet:
    """The rules last loaded (their files as the audit log names them), else placeholders
    for the rules the snapshot knows."""
    existing = [f for f in files if os.path.exists(f)]
    if existing:
        result = load_rules(existing)
        if result.ruleset is not None:
            return result.ruleset
        problems.append("the rule files the engine last loaded no longer load: " + "; ".join(
            str(e) for e in result.errors[:3]))
    elif files:
        problems.append("the rule files the engine last loaded are gone: " + ", ".join(files[:5]))
    return RuleSet(tuple(Rule(id=rule_id, triggers=(), actions=()) for rule_id in sorted(snapshot.get("rules") or {})))
