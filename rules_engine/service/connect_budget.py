"""A worker's budget of WebSocket connection attempts for its cells' private feeds.

    budget = ConnectBudget(100)          # at most 100 attempts in any 10 minutes
    waited = await budget.take()         # a private feed, before each attempt (reconnects too)

Kraken's edge bans an IP for 10 minutes after about 150 WebSocket connection attempts in 10
minutes (docs/market-data.md), and each API key needs a private connection of its own: a
worker of 300 keys connecting them all at its start (or at a takeover) would get its IP
banned, its public market-data feed with it. So the cells' private feeds share one budget,
`attempts` in any sliding `window` (default 100 in 10 minutes: room for the worker's public
feed and another worker behind the same address); a feed past it waits for the oldest attempt
to leave the window. A cell whose feed waits still trades: the orders' answers and the REST
account reads do not need the feed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger("rules_engine.worker")

WINDOW = 600.0
"""Seconds of the sliding window (Kraken's edge counts connection attempts over 10 minutes)."""
DEFAULT_ATTEMPTS = 100
"""Attempts per window when the worker config does not say (`private_feeds.connects_per_10min`)."""


class ConnectBudget:
    """At most `attempts` connection attempts in any `window` seconds (see the module)."""

    def __init__(self, attempts: int = DEFAULT_ATTEMPTS, window: float = WINDOW, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if attempts < 1:
            raise ValueError("a connection budget needs at least one attempt per window")
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.waiting = 0  # feeds waiting for the budget now (status, tests)
        self._times: deque[float] = deque()
        self._warned = False

    def used(self) -> int:
        """Attempts in the current window."""
        self._expire(self.clock())
        return len(self._times)

    async def take(self) -> float:
        """Count one attempt, after waiting until the window has room for it; seconds waited."""
        waited = 0.0
        while True:
            now = self.clock()
            self._expire(now)
            if len(self._times) < self.attempts:
                self._times.append(now)
                if not self.waiting:
                    self._warned = False
                return waited
            if not self._warned:
                self._warned = True
                log.warning("private feeds: %d connection attempts in the last %.0f s, the worker's budget "
                            "(private_feeds.connects_per_10min); the next ones wait (Kraken bans an IP after "
                            "about 150 in 10 minutes)", self.attempts, self.window)
            delay = max(self._times[0] + self.window - now, 0.001)
            self.waiting += 1
            try:
                await self.sleep(delay)
            finally:
                self.waiting -= 1
            waited += delay

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
