"""A short-lived cache of Balance reads, wrapped around any executor.

`check_balance` may run on every tick; Kraken's Balance costs a REST counter point. A
successful `ReadBalance` is remembered per market for `seconds` (engine config
`balance_cache`, default 10 s, by the intents' own `now`): a read within that window is
answered from the cache (the report says `"cached": true` and the age). The cache is
dropped at once when the account may have changed: after any order, cancel or dead
man's switch intent, and when `observe` reports fills or other order events.
"""

from __future__ import annotations

import threading
from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.events import ActionResult, Event, Tick
from rules_engine.execution.base import Executor
from rules_engine.execution.report import ExecutionReport

_CHANGES_ACCOUNT = (it.PlaceOrder, it.CancelOrder, it.CancelAll, it.FuturesSendOrder, it.FuturesCancelOrder,
                    it.DeadManSwitch)


class BalanceCache:
    """An Executor that answers repeated balance reads from a cache (see module doc)."""

    def __init__(self, inner: Executor, seconds: float):
        if seconds < 0:
            raise ValueError("balance cache seconds must be >= 0")
        self.inner = inner
        self.seconds = seconds
        self.mode = inner.mode
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, ActionResult]] = {}

    def execute(self, intent: it.Intent, now: float) -> ExecutionReport:
        if isinstance(intent, it.ReadBalance):
            with self._lock:
                hit = self._cached.get(intent.market)
            if hit is not None and 0 <= now - hit[0] < self.seconds:
                read_at, result = hit
                answer = ActionResult(intent.intent_id, True, now, dict(result.data))
                request = {"api": "cache", "method": "Balance", "market": intent.market}
                return ExecutionReport(answer, request, {"cached": True, "age": round(now - read_at, 3),
                                                         "read_at": read_at})
        if isinstance(intent, _CHANGES_ACCOUNT):
            self.invalidate()
        report = self.inner.execute(intent, now)
        if isinstance(intent, it.ReadBalance) and report.result.ok and self.seconds > 0:
            with self._lock:
                self._cached[intent.market] = (now, report.result)
        if report.events:
            self.invalidate()
        return report

    def invalidate(self) -> None:
        with self._lock:
            self._cached.clear()

    def observe(self, tick: Tick) -> list[Event]:
        events = self.inner.observe(tick)
        if events:
            self.invalidate()
        return events

    def advance(self, now: float) -> list[Event]:
        events = self.inner.advance(now)
        if events:
            self.invalidate()
        return events

    def read_account(self, now: float) -> ExecutionReport:
        self.invalidate()
        return self.inner.read_account(now)

    def reconcile(self, decision: Any, now: float | None = None) -> ExecutionReport:
        self.invalidate()
        return self.inner.reconcile(decision, now)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        """Everything else (the paper wallet's `snapshot`, ...) from the wrapped executor."""
        return getattr(self.inner, name)
