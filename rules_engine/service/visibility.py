"""What the running service shows of itself, in one place: the decision log, decision traces,
readiness (`/readyz`), the status document (`/api/status`, the status page, `rules-engine
status`), the metrics that follow time (feed staleness, readiness) and notifications.

`EngineService` creates one `Visibility` and wires it with a few calls: the audit log goes
through `tap()` (every written record reaches the decision log, the trace book and the event
router; failed writes set the `audit_unwritable` problem), the driver gets `observer()`,
ticks and feed changes are passed on, the lane reports its commits (`state_commit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rules_engine.audit.sink import AuditSink
from rules_engine.core import intents as it
from rules_engine.core.events import Tick
from rules_engine.core.intents import Intent
from rules_engine.driver import DriverObserver
from rules_engine.execution.report import ExecutionReport
from rules_engine.service.audit_tap import AuditTap
from rules_engine.service.decision_log import DecisionLog
from rules_engine.service.metrics import ServiceMetrics
from rules_engine.service.notifications import Message, Notifier, channel_urls
from rules_engine.service.readiness import Problem, Readiness
from rules_engine.service.status_report import (
    orders_section,
    overall_health,
    risk_section,
    rules_section,
)
from rules_engine.service.traces import TraceBook
from rules_engine.service.watch_later import WatchLater

if TYPE_CHECKING:
    from rules_engine.service.app import EngineService

log = logging.getLogger("rules_engine.service")

AUDIT_UNWRITABLE, STATE_UNWRITABLE = "audit_unwritable", "state_unwritable"
BALANCES_UNKNOWN, FEED_STALE, RELOAD_FAILED, RULES_IN_ERROR = ("balances_unknown", "feed_stale", "reload_failed",
                                                               "rules_in_error")


class Visibility:
    """See the module docstring."""

    def __init__(self, service: EngineService) -> None:
        self.service = service
        self.metrics: ServiceMetrics = service.metrics
        self.readiness = Readiness(service.clock)
        self.book = TraceBook()
        self.decision_log = DecisionLog()
        self.last_tick: dict[tuple[str, str], float] = {}
        self._feed_started: dict[str, float] = {}  # when each market's feed was first seen (before any message)
        self.balances_known = False
        self.notifier: Notifier | None = None
        self.readiness.on_change.append(self._readiness_changed)
        self.readiness.set(BALANCES_UNKNOWN, "the account's balances have not been read yet", announce=False)
        self.readiness.add_check(FEED_STALE, self._stale_feeds)
        self.readiness.add_check(RULES_IN_ERROR, self._rules_in_error, severity="degraded")
        self.metrics.registry.register(_LiveGauges(self))

    # ------------------------------------------------------------------ wiring

    def tap(self, audit: AuditSink, later: WatchLater | None = None) -> AuditTap:
        """The audit sink the driver, the dispatcher and the service write to; with `later`, its
        watchers run on the event loop, off the order's way (`service.watch_later`)."""
        tap = AuditTap(audit, [self.decision_log, self.book, self._route], on_health=self._audit_health)
        return later.watch(tap) if later is not None else tap

    def observer(self) -> DriverObserver:
        return _Observer(self)

    def start_notifier(self) -> None:
        """Read the channels' URLs (StartupError-worthy problems raise NotificationConfigError)
        and start delivering."""
        service = self.service
        settings = service.config.notifications
        urls = channel_urls(settings, service.environ)
        metrics = self.metrics

        def audit(kind: str, rule_id: str | None, data: Mapping[str, Any]) -> None:
            service._audit(kind, rule_id=rule_id, data=data)

        self.notifier = Notifier(settings, urls, mode=service.mode, audit=audit,
                                 count=lambda channel, result: metrics.notifications.labels(channel, result).inc(),
                                 clock=service.clock)
        self.notifier.start()
        if urls:
            log.info("notification channels: %s", ", ".join(sorted(urls)))

    async def watch(self, interval: float) -> None:
        """Ask the readiness checks every `interval` seconds, so a problem that follows time (a
        feed going silent) is logged and notified when it begins and ends, not only when asked."""
        while True:
            await asyncio.sleep(interval)
            self.readiness.problems()

    async def stop(self) -> None:
        if self.notifier is not None:
            await self.notifier.stop()

    def on_tick(self, tick: Tick) -> None:
        self.last_tick[(tick.market, tick.symbol)] = tick.time

    def feed_status(self, market: str, kind: str, detail: str, symbol: str | None, reconnect: bool) -> None:
        self.decision_log.feed_status(market, kind, detail, symbol, reconnect)

    def state_commit(self, error: BaseException | None) -> None:
        """The lane's report of each state store commit (on the lane thread)."""
        if error is None:
            self.readiness.clear(STATE_UNWRITABLE)
            return
        self.metrics.state_write_failures.inc()
        self.readiness.set(STATE_UNWRITABLE, f"the state store cannot be written: {error}")

    # ------------------------------------------------------------------ reports

    def readyz(self) -> dict[str, Any]:
        report = self.readiness.report()
        if self.service._stopping:
            report = {"ready": False, "status": "not_ready",
                      "problems": [{"name": "stopping", "reason": "the engine is stopping", "severity": "not_ready",
                                    "since": self.service.clock()}, *report["problems"]]}
        return report

    def status(self) -> dict[str, Any]:
        """The status document (see `rules_engine.service.status_report`)."""
        service = self.service
        now = service.clock()
        engine, driver, store = service.engine, service.driver, service.store
        snapshot = engine.snapshot() if engine is not None else {}
        readiness = self.readyz()
        switch = service.kill_switch.state if service.kill_switch is not None else None
        order_times = store.decision_times(now - 86400.0) if store is not None else []
        return {
            "running": True,
            "health": overall_health(True, readiness),
            "time": now,
            "mode": service.mode,
            "version": service.health()["version"],
            "uptime": None if service.started_at is None else round(now - service.started_at, 3),
            "readiness": readiness,
            "rules": rules_section(engine.ruleset, snapshot, now=now, book=self.book,
                                   timers=driver.timetable.upcoming() if driver is not None else [])
            if engine is not None else [],
            "feeds": self.feeds(now),
            "kill_switch": {"engaged": False} if switch is None else {"engaged": switch.engaged,
                                                                      "describe": switch.describe(),
                                                                      **switch.to_json()},
            "orders": orders_section(snapshot),
            "risk": risk_section(service.config.risk, snapshot, order_times, now),
            "last_reload": self.book.last_reload,
            "reloads": service.reload_count,
            "signals": self.book.recent_signals(),
            "notifications": {"channels": self.notifier.channels if self.notifier else [],
                              "events": dict(service.config.notifications.events),
                              "pending": self.notifier.pending if self.notifier else 0},
        }

    def feeds(self, now: float) -> dict[str, Any]:
        """Per market: connection, age of its last message, stale or not, and per symbol the
        age of its last tick."""
        service = self.service
        config = service.config
        feeds = service._feeds
        report: dict[str, Any] = {}
        if feeds is None:
            return report
        for market, feed in feeds.feeds.items():
            stats = feed.stats
            heard = stats.last_frame_at
            age = None if heard is None else round(max(0.0, now - heard), 3)
            silent_since = heard if heard is not None else self._feed_started.setdefault(market, now)
            stale = now - silent_since > config.feed_max_age  # disconnected counts only once that long
            symbols = {}
            for symbol in sorted(feed.symbols):
                ticked = self.last_tick.get((market, symbol))
                tick_age = None if ticked is None else round(max(0.0, now - ticked), 3)
                symbol_stale = config.tick_max_age is not None and (tick_age is None
                                                                    or tick_age > config.tick_max_age)
                symbols[symbol] = {"last_tick_age": tick_age, "stale": bool(symbol_stale)}
            report[market] = {"connected": stats.connected, "last_message_age": age, "stale": stale,
                              "max_age": config.feed_max_age, "reconnects": stats.reconnects,
                              "symbols": symbols}
        return report

    # ------------------------------------------------------------------ readiness checks

    def _stale_feeds(self) -> str | None:
        problems = []
        for market, feed in self.feeds(self.service.clock()).items():
            if feed["stale"]:
                heard = "never" if feed["last_message_age"] is None else f"{feed['last_message_age']:.1f} s ago"
                state = "connected" if feed["connected"] else "disconnected"
                problems.append(f"{market} feed {state}, last message {heard} (max {feed['max_age']:g} s)")
            stale = [s for s, v in feed["symbols"].items() if v["stale"]]
            if stale:
                problems.append(f"{market} symbols without a recent tick: {', '.join(stale)}")
        return "; ".join(problems) or None

    def _rules_in_error(self) -> str | None:
        found = self.book.rules_in_error()
        return f"rules in error: {', '.join(found)}" if found else None

    # ------------------------------------------------------------------ events

    def _audit_health(self, error: str | None) -> None:
        if error is None:
            self.readiness.clear(AUDIT_UNWRITABLE)
            return
        self.metrics.audit_write_failures.inc()
        self.readiness.set(AUDIT_UNWRITABLE, f"the audit log cannot be written: {error}")

    def _route(self, records: list[dict[str, Any]]) -> None:
        """Readiness and engine-event notifications from what was audited."""
        for record in records:
            kind, data = record.get("kind"), record.get("data") or {}
            if kind == "reload":
                self.metrics.last_reload_timestamp.set(float(record.get("time") or self.service.clock()))
                if data.get("ok"):
                    self._check_channels()
                    self.metrics.last_reload_success.set(1)
                    self.readiness.clear(RELOAD_FAILED)
                    self.book.forget_rules(r.id for r in self.service.engine.ruleset.rules) \
                        if self.service.engine is not None else None
                else:
                    errors = list(data.get("errors", []))
                    self.metrics.last_reload_success.set(0)
                    self.readiness.set(RELOAD_FAILED, "the last reload was refused (the previous rules keep "
                                       f"running): {'; '.join(map(str, errors[:3]))}", severity="degraded")
                    self._event("reload_refused", "rules-engine: reload refused", "\n".join(map(str, errors[:5])))
            elif kind == "startup":
                self._check_channels()
                self.metrics.last_reload_success.set(1)
                self.metrics.last_reload_timestamp.set(float(record.get("time") or self.service.clock()))
            elif kind == "kill_switch":
                engaged = bool(data.get("engaged"))
                self._event("kill_switch", f"rules-engine: kill switch {'engaged' if engaged else 'cleared'}",
                            f"{data.get('reason') or ''} ({data.get('source') or 'unknown source'})".strip())
            elif kind == "response":
                result = data.get("result") or {}
                detail = result.get("data") or {}
                if not result.get("ok", True) and (detail.get("ambiguous")
                                                   or detail.get("error_class") == "OrderStateUnknown"):
                    self._event("order_ambiguous", "rules-engine: order state unknown",
                                f"rule {record.get('rule_id')}: {data.get('intent_id')}: {result.get('error')}")
            elif kind == "error" and record.get("rule_id"):
                self._event("rule_error", f"rules-engine: rule {record.get('rule_id')} error",
                            str(data.get("reason") or data.get("error") or ""))

    def _check_channels(self) -> None:
        """Warn of each `notify` channel the loaded rules name that is not configured."""
        engine, notifier = self.service.engine, self.notifier
        if engine is None or notifier is None:
            return
        configured = set(notifier.channels)
        for rule in engine.ruleset.rules:
            for action in rule.actions:
                channel = getattr(action, "channel", None) if action.type == "notify" else None
                if isinstance(channel, str) and channel not in configured:
                    log.warning("rule %s notifies channel %r, which is not configured (notifications.channels in "
                                "the engine config): its messages are audited as not delivered", rule.id, channel)

    def _readiness_changed(self, problem: Problem, raised: bool) -> None:
        if problem.severity != "not_ready" or self.service.started_at is None:
            return
        if raised:
            self._event("readiness_lost", "rules-engine: not ready to trade", f"{problem.name}: {problem.reason}")
        else:
            self._event("readiness_restored", "rules-engine: problem cleared", problem.name)

    def _event(self, event: str, title: str, body: str) -> None:
        if self.notifier is not None:
            self.notifier.notify_event(event, title, body)


class _Observer(DriverObserver):
    """Balances known after the first good account read (until then a failed read's error is
    the `balances_unknown` reason); `notify` results go to the notifier."""

    def __init__(self, visibility: Visibility) -> None:
        self.visibility = visibility

    def report(self, intent: Intent | None, report: ExecutionReport) -> None:
        visibility = self.visibility
        if intent is None:
            if report.result.intent_id != "account" or visibility.balances_known:
                return
            if report.result.ok:
                visibility.balances_known = True
                visibility.readiness.clear(BALANCES_UNKNOWN)
            else:  # say why, not only that it has not happened (a wrong secret: EAPI:Invalid signature)
                visibility.readiness.set(BALANCES_UNKNOWN, f"the account's balances could not be read: "
                                                           f"{report.result.error}", announce=False)
            return
        if isinstance(intent, it.Notify) and report.result.ok and visibility.notifier is not None:
            visibility.notifier.send(Message(intent.channel, intent.message, f"rules-engine: {intent.rule_id}",
                                             rule_id=intent.rule_id, intent_id=intent.intent_id))


class _LiveGauges(Collector):
    """Gauges that follow time, computed at each scrape: feed staleness, readiness."""

    def __init__(self, visibility: Visibility) -> None:
        self.visibility = visibility

    def describe(self) -> list[Metric]:
        return []  # computed at each scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        visibility = self.visibility
        now = visibility.service.clock()
        feeds = visibility.feeds(now)
        message_age = GaugeMetricFamily("rules_engine_feed_last_message_age_seconds",
                                        "Seconds since the feed's last message (tick or heartbeat)", labels=["market"])
        stale = GaugeMetricFamily("rules_engine_feed_stale", "1 while the feed is stale (disconnected or silent "
                                  "beyond health.feed_max_age)", labels=["market"])
        tick_age = GaugeMetricFamily("rules_engine_feed_tick_age_seconds", "Seconds since the symbol's last tick",
                                     labels=["market", "symbol"])
        for market, feed in feeds.items():
            if feed["last_message_age"] is not None:
                message_age.add_metric([market], feed["last_message_age"])
            stale.add_metric([market], 1.0 if feed["stale"] else 0.0)
            for symbol, info in feed["symbols"].items():
                if info["last_tick_age"] is not None:
                    tick_age.add_metric([market, symbol], info["last_tick_age"])
        report = visibility.readyz()
        ready = GaugeMetricFamily("rules_engine_ready", "1 while the engine is ready to trade (/readyz 200)")
        ready.add_metric([], 1.0 if report["ready"] else 0.0)
        problems = GaugeMetricFamily("rules_engine_readiness_problem", "1 for each readiness problem now",
                                     labels=["problem", "severity"])
        for problem in report["problems"]:
            problems.add_metric([problem["name"], problem["severity"]], 1.0)
        yield from (message_age, stale, tick_age, ready, problems)
