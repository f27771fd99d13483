"""What the service tells the outside world: Prometheus metrics and listeners, fed by the
driver (`ServiceObserver`), and the `/healthz` report (`health_report`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from rules_engine import __version__
from rules_engine.core.intents import Intent
from rules_engine.core.trace import Decision
from rules_engine.driver import DriverObserver
from rules_engine.execution.report import ExecutionReport
from rules_engine.service.metrics import ServiceMetrics

log = logging.getLogger("rules_engine.service")

Listener = Callable[[str, Any], None]
"""`listener(kind, payload)`: `trace` (TraceRecord), `report` ((intent, ExecutionReport)),
`reload` (dict), `signal_rejected` ((source, Rejected)), `kill_switch` (KillFileState)."""


class Listeners:
    """Everyone who asked to be told what the service does (the demo, tests)."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def tell(self, kind: str, payload: Any) -> None:
        for listener in self.listeners:
            try:
                listener(kind, payload)
            except Exception:
                log.exception("service listener failed on %s", kind)


class ServiceObserver(DriverObserver):
    """Counts fires, guard evaluations, blocks, risk blocks, errors and actions, and passes
    every trace record and execution report on to the listeners."""

    def __init__(self, metrics: ServiceMetrics, listeners: Listeners) -> None:
        self.metrics = metrics
        self.listeners = listeners

    def decision(self, decision: Decision, received: float | None) -> None:
        metrics = self.metrics
        for record in decision.trace:
            kind = record.kind
            if kind == "decision" and "fire_seq" in record.detail:
                metrics.fires.labels(record.rule_id).inc()
            elif kind == "guard":
                metrics.evaluations.inc()
            elif kind == "risk":
                metrics.risk_blocks.labels(str(record.detail.get("limit"))).inc()
            elif kind == "blocked":
                metrics.blocked.inc()
            elif kind == "error":
                metrics.errors.labels("rule", record.rule_id or "").inc()
        if self.listeners.listeners:
            for record in decision.trace:
                self.listeners.tell("trace", record)

    def report(self, intent: Intent | None, report: ExecutionReport) -> None:
        if intent is not None:
            self.metrics.actions.labels(intent.kind, "ok" if report.result.ok else "error").inc()
        self.listeners.tell("report", (intent, report))


def health_report(
    *,
    now: float,
    mode: str,
    stopping: bool,
    started_at: float | None,
    rules_loaded: int,
    reloads: int,
    kill_switch: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, Any]],
    queue_depth: int,
    actions_in_flight: int,
    readiness: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `/healthz` body (liveness): ok unless stopping; whether the engine is ready to trade
    is `ready` (the `/readyz` answer, with its reasons there)."""
    ok = not stopping
    return {
        "ok": ok,
        "status": "ok" if ok else "stopping",
        "ready": bool(readiness and readiness.get("ready")),
        "readiness": None if readiness is None else readiness.get("status"),
        "mode": mode,
        "version": __version__,
        "uptime": None if started_at is None else round(now - started_at, 3),
        "rules_loaded": rules_loaded,
        "reloads": reloads,
        "kill_switch": dict(kill_switch),
        "feeds": dict(feeds),
        "queue_depth": queue_depth,
        "actions_in_flight": actions_in_flight,
    }
