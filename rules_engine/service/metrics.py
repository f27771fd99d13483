"""Prometheus metrics of one engine service, on a registry of its own (never the global
one), so several services can run in one process (tests) without clashing. Counters end in
`_total`, times are `_seconds`; no `_created` series (they only add noise to every counter)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

disable_created_metrics()

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class LoopHistogram(Collector):
    """A histogram for the event loop's hot path, exposed like a prometheus_client Histogram
    (`_bucket{le=...}`, `_count`, `_sum`): `observe` is a bisection and two additions, with
    no lock, so only one thread may observe (a scrape reads the counts as they stand)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry):
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1  # the first bucket with amount <= le
        self._sum += amount

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip((*self._bounds, math.inf), self._counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=self._sum)


class ServiceMetrics:
    """Every metric the service exports, as attributes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        p = "rules_engine_"
        self.ticks = Counter(p + "ticks", "Price ticks handled by the engine", ["market"], registry=registry)
        self.events = Counter(p + "events", "Events handled by the engine, by type", ["type"], registry=registry)
        self.evaluations = Counter(p + "guard_evaluations", "Guard and where evaluations", registry=registry)
        self.fires = Counter(p + "fires", "Rule fires (decisions)", ["rule"], registry=registry)
        self.actions = Counter(p + "actions", "Intents executed, by type and result", ["type", "result"],
                               registry=registry)
        self.blocked = Counter(p + "blocked", "Actions or fires blocked (kill switch, balance, risk)",
                               registry=registry)
        self.risk_blocks = Counter(p + "risk_blocks", "Orders blocked by a risk limit", ["limit"], registry=registry)
        self.decision_latency = LoopHistogram(p + "decision_latency_seconds",
                                              "Time from an event entering the queue to the engine's decision",
                                              LATENCY_BUCKETS, registry)
        self.dispatch_latency = Histogram(p + "dispatch_latency_seconds",
                                          "Time from the triggering event to the intent's request leaving",
                                          buckets=LATENCY_BUCKETS, registry=registry)
        self.reconnects = Counter(p + "feed_reconnects", "WebSocket feed reconnects", ["market"], registry=registry)
        self.feed_connected = Gauge(p + "feed_connected", "1 while the feed is connected", ["market"],
                                    registry=registry)
        self.signals = Counter(p + "signals_accepted", "Signals accepted by the webhook", ["source"],
                               registry=registry)
        self.signals_rejected = Counter(p + "signals_rejected", "Signals refused by the webhook",
                                        ["source", "code"], registry=registry)
        self.signals_expired = Counter(p + "signals_expired", "Fanned-out signals expired past their max_age, "
                                       "not traded", ["source"], registry=registry)
        self.connections_refused = Counter(p + "http_connections_refused",
                                           "HTTP connections refused or cut (max_connections, header_timeout)",
                                           ["reason"], registry=registry)
        self.reloads = Counter(p + "reloads", "Rule reloads, by result", ["result"], registry=registry)
        self.rules_loaded = Gauge(p + "rules_loaded", "Rules currently loaded", registry=registry)
        self.kill_switch = Gauge(p + "kill_switch_engaged", "1 while the kill switch is engaged", registry=registry)
        self.queue_depth = Gauge(p + "queue_depth", "Events waiting for the engine", registry=registry)
        self.errors = Counter(p + "errors", "Errors traced by the engine or the service, by where and rule "
                              "(empty for errors of no rule)", ["where", "rule"], registry=registry)
        self.audit_write_failures = Counter(p + "audit_write_failures", "Audit log writes that failed",
                                            registry=registry)
        self.state_write_failures = Counter(p + "state_write_failures", "State store commits that failed",
                                            registry=registry)
        self.last_reload_success = Gauge(p + "last_reload_success", "1 if the last rule reload was applied, "
                                         "0 if it was refused", registry=registry)
        self.last_reload_timestamp = Gauge(p + "last_reload_timestamp_seconds", "When the rules were last "
                                           "(re)loaded or a reload refused, Unix time", registry=registry)
        self.notifications = Counter(p + "notifications", "Notifications by channel and result "
                                     "(delivered, failed, not_configured, skipped)", ["channel", "result"],
                                     registry=registry)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def connections_refused_by(self, reason: str) -> None:
        """Count one HTTP connection refused or cut (`ConnectionGuard`'s on_refused)."""
        self.connections_refused.labels(reason).inc()
