"""Whether the state dir can be written: the audit log and the state store, each with the
reason it cannot and since when.

While either cannot be written the engine refuses to act: an order whose decision cannot be
committed (state) or whose `decision` record cannot be fsynced (audit) is never sent. Both
recover by themselves once the disk does, without a restart: `check()` (the service calls it
every `snapshot_interval`) asks the audit log to recover (`AuditLog.sync`: it writes again
what it had not fsynced and records the outage in a `storage_recovered` record) and the store to take
a small durable write (`StateStore.probe`).

What it says, for `/healthz` (`annotate`), `/readyz` and `/metrics`:

    storage.writable                  False while either part cannot be written
    storage.conditions()              {"audit": {"writable": False, "problem": "...", "since": t}, "state": {...}}
    storage.problems()                ["audit log cannot be written since ...: fsync failed (...)", ...]
    rules_engine_storage_writable{part="audit"|"state"}      1 or 0
    rules_engine_storage_failures_total{part="audit"|"state"} times a part stopped being writable

Each change is logged: an error when a part fails (orders refused), a warning when it recovers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from rules_engine.audit import AuditError
from rules_engine.audit.sink import DurableAuditSink
from rules_engine.state.protocol import EngineStore

log = logging.getLogger("rules_engine.service")

PARTS = ("audit", "state")


class StorageHealth:
    """The audit log's and the state store's writability (see the module docstring)."""

    def __init__(self, audit: DurableAuditSink, store: EngineStore, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.time) -> None:
        self.audit = audit
        self.store = store
        self._clock = clock
        self._writable = Gauge("rules_engine_storage_writable",
                               "1 while the part of the state dir can be written (audit log, state store), else 0",
                               ["part"], registry=registry)
        self._failures = Counter("rules_engine_storage_failures",
                                 "Times a part of the state dir stopped being writable", ["part"], registry=registry)
        self._known: dict[str, tuple[str, float] | None] = dict.fromkeys(PARTS)
        self._lock = threading.Lock()  # refresh runs on the loop (health, metrics) and on a worker (check)
        for part in PARTS:
            self._writable.labels(part).set(1)
            self._failures.labels(part)

    def _failure(self, part: str) -> tuple[str, float] | None:
        return self.audit.failure if part == "audit" else self.store.failure

    def needs_check(self) -> bool:
        """Whether `check` has anything to recover (else it only refreshes, which needs no thread)."""
        return self.audit.failure is not None or self.store.failure is not None

    def check(self) -> None:
        """Try to recover each failed part (disk I/O: call it off the event loop), then `refresh`."""
        if self.audit.failure is not None:
            with contextlib.suppress(AuditError):
                self.audit.sync()
        if self.store.failure is not None:
            self.store.probe()
        self.refresh()

    def refresh(self) -> None:
        """Update the gauges and log each change (no I/O)."""
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        for part in PARTS:
            failure, known = self._failure(part), self._known[part]
            if (failure is None) == (known is None):
                continue
            self._known[part] = failure
            self._writable.labels(part).set(0 if failure else 1)
            name = _NAMES[part]
            if failure is not None:
                self._failures.labels(part).inc()
                log.error("%s cannot be written: %s; orders are refused until it recovers", name, failure[0])
            elif known is not None:
                log.warning("%s can be written again after %.1f s", name, self._clock() - known[1])

    @property
    def writable(self) -> bool:
        return all(self._failure(part) is None for part in PARTS)

    def conditions(self) -> dict[str, dict[str, Any]]:
        """Per part: `writable`, `problem` (None or why not) and `since` (epoch seconds or None)."""
        result = {}
        for part in PARTS:
            failure = self._failure(part)
            result[part] = {"writable": failure is None, "problem": failure[0] if failure else None,
                            "since": failure[1] if failure else None}
        return result

    def problems(self) -> list[str]:
        """One sentence per part that cannot be written."""
        return [f"{_NAMES[part]} cannot be written since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(f[1]))}: "
                f"{f[0]}; orders are refused until it recovers"
                for part in PARTS if (f := self._failure(part)) is not None]

    def annotate(self, health: dict[str, Any]) -> dict[str, Any]:
        """Add `storage` and `problems` to a `/healthz` body (liveness is unchanged: the
        engine is alive; `/readyz` says it cannot trade, through `unwritable_reason`)."""
        self.refresh()
        health["storage"] = self.conditions()
        health["problems"] = [*health.get("problems", []), *self.problems()]
        return health

    def unwritable_reason(self) -> str | None:
        """The readiness check: why the audit log or state store cannot be written, or None."""
        self.refresh()
        problems = self.problems()
        return "; ".join(problems) if problems else None


_NAMES = {"audit": "the audit log", "state": "the state store"}
