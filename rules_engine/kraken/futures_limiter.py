"""A client-side mirror of Kraken's Futures budget for one API key: wait instead of being refused.

Kraken Futures charges each private `/derivatives` call a cost against a budget of 500 every
10 seconds (docs.kraken.com, "Futures Rate Limits"): sendorder, editorder and cancelorder 10,
batchorder 9 + the batch size, cancelallorders and cancelallordersafter 25, accounts,
openpositions, openorders and fills 2 (fills with `lastFillTime` 25), orders/status 1. Going
over gives `apiLimitExceeded`. `FuturesRateLimiter.acquire` adds a call's cost to our copy of
the budget (a counter of 500 draining at 50 per second, as the simulator models it) and,
when Kraken would refuse the call, sleeps until it fits. Our copy only sees this process's
calls; `note_rate_limited` fills it when Kraken refuses anyway, so the next call waits for a
full 10 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rules_engine.kraken.ratelimit import DecayingCounter

FUTURES_BUDGET = 500.0  # cost units per key every FUTURES_WINDOW seconds
FUTURES_WINDOW = 10.0

FUTURES_COSTS: dict[str, int] = {
    "sendorder": 10,
    "editorder": 10,
    "cancelorder": 10,
    "accounts": 2,
    "openpositions": 2,
    "fills": 2,
    "cancelallorders": 25,
    "cancelallordersafter": 25,
    "withdrawaltospotwallet": 100,
    "openorders": 2,
    "orders/status": 1,
    "unwindqueue": 200,
    "leveragepreferences": 2,
    "pnlpreferences": 2,
    "transfer": 10,
    "self-trade-strategy": 2,
}
_UNLISTED_COST = 10  # an endpoint the table does not list: assume an order call's cost
_SLACK = 0.01  # seconds added to each wait, so float rounding never leaves the budget a hair over


def futures_cost(endpoint: str, params: Mapping[str, Any] | None = None) -> int:
    """What one private call costs against the Futures budget."""
    params = params or {}
    if endpoint == "fills" and params.get("lastFillTime") is not None:
        return 25
    if endpoint == "batchorder":
        batch = params.get("batchOrder") or params.get("json") or ()
        return 9 + (len(batch) if isinstance(batch, (list, tuple)) else 1)
    return FUTURES_COSTS.get(endpoint, _UNLISTED_COST)


class FuturesRateLimiter:
    """The Futures budget of one key; thread-safe."""

    def __init__(self, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 headroom: float = 0.0):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._budget = DecayingCounter(FUTURES_BUDGET - headroom, FUTURES_BUDGET / FUTURES_WINDOW)
        self.waited = 0.0  # total seconds slept, for metrics and tests

    def wait_for_room(self, endpoint: str, params: Mapping[str, Any] | None = None) -> None:
        """Sleep until the call would fit (it is counted by `acquire`)."""
        cost = futures_cost(endpoint, params)
        while True:
            with self._lock:
                delay = self._budget.seconds_until_room(cost, self._clock())
            if delay <= 0:
                return
            self.waited += delay + _SLACK
            self._sleep(delay + _SLACK)

    def acquire(self, endpoint: str, params: Mapping[str, Any] | None = None) -> None:
        """Count the call (right before it leaves); waits first if it would not fit."""
        cost = futures_cost(endpoint, params)
        while True:
            with self._lock:
                now = self._clock()
                if self._budget.add(cost, now):
                    return
                delay = self._budget.seconds_until_room(cost, now)
            self.waited += delay + _SLACK
            self._sleep(delay + _SLACK)

    def note_rate_limited(self) -> None:
        """Kraken said `apiLimitExceeded`: assume the budget is spent."""
        with self._lock:
            now = self._clock()
            self._budget.force_add(max(0.0, self._budget.maximum - self._budget.value(now)), now)

    def used(self) -> float:
        """The budget spent, as our copy counts it now."""
        with self._lock:
            return self._budget.value(self._clock())
