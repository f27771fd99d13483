"""When the audit records' watchers run: after an order has left, not on its way.

The service's `AuditTap` queues what is written (a deque append, on any thread) and calls
`WatchLater.queued`; the watchers (the decision log's lines, the status board's traces,
readiness and notifications from what was audited) get the records, in seq order, on the
event loop, from `AuditTap.flush`, called:

1. when the event loop is free after a write (the end of the consumer's handling of an event,
   an HTTP request's audit) and no dispatch job is in flight;
2. when a dispatch job completes (`ThreadLane` hands its reports back on the loop) and no other
   is in flight;
3. by a timer at most `delay` (20 ms) after a job was in flight at one of those points, so an
   order held up to its deadline (ambiguous, slow) never holds lines back longer;
4. by `EngineService.settle()` and at stop (nothing queued is lost at a clean stop).

While a dispatch job is on its way, a write on the loop only arms the timer: a flush would
compete with the job's thread for the interpreter. A write on a lane thread (the order's
`decision` record, fsynced before the order leaves) queues its records and nothing else; the
job's end (or the timer armed when the job was in flight) hands them over. A write on any
other thread (housekeeping, start-up) asks the loop to look. Only the lines wait: the audit
records are written (and, for a decision, fsynced) before the write returns, and the audit
log's failures and recovery still reach readiness at once. A `kill -9` may lose the lines
of the last ~20 ms (never an audit record: `rules-engine audit show` has them all).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from rules_engine.service.audit_tap import AuditTap
from rules_engine.service.lane import on_lane_thread

DELAY = 0.02
"""Seconds a record waits at most for its watchers while a dispatch job is in flight."""

RETRY = 0.001
"""Seconds before the next look when a flush found a write under way on another thread."""


class WatchLater:
    """Calls `tap.flush()` on `loop` at the points of the module docstring; `in_flight()`
    says whether a dispatch job is in flight (on the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, in_flight: Callable[[], bool], *,
                 delay: float = DELAY) -> None:
        self.loop = loop
        self.in_flight = in_flight
        self.delay = delay
        self.tap: AuditTap | None = None
        self._loop_thread = threading.get_ident()  # made on the loop
        self._timer: asyncio.TimerHandle | None = None
        self._asked = False  # a look is scheduled with call_soon(_threadsafe)
        self._closed = False

    def watch(self, tap: AuditTap) -> AuditTap:
        """Let `tap` queue its records for this flusher."""
        self.tap = tap
        tap.later = self.queued
        return tap

    def queued(self) -> None:
        """A write queued records (any thread)."""
        if self._asked or self._timer is not None:
            return
        if threading.get_ident() == self._loop_thread:
            self._asked = True
            self.loop.call_soon(self._look)
        elif not on_lane_thread():  # a lane job's end (or the timer armed while it ran) sees to its records
            self._asked = True
            try:
                self.loop.call_soon_threadsafe(self._look)
            except RuntimeError:  # the loop is closed: nothing to deliver to
                self._asked = False

    def point(self) -> None:
        """On the loop, where the service may be idle (the consumer's burst handled, a job
        completed): flush if no job is in flight, else make sure the timer runs."""
        if self.in_flight():
            self._arm(self.delay)
        elif self.tap is not None and self.tap.pending:
            self.flush()

    def flush(self) -> bool:
        """Hand everything queued to the watchers now (on the loop); whether none is left
        (False: a write is under way on another thread; the timer looks again shortly)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.tap is None or self.tap.flush():
            return True
        self._arm(RETRY)
        return False

    async def drain(self, timeout: float) -> None:
        """`flush()` until nothing is left (a write under way on another thread ends first),
        for at most `timeout` seconds."""
        deadline = self.loop.time() + timeout
        while not self.flush() and self.loop.time() < deadline:
            await asyncio.sleep(RETRY)

    def close(self) -> None:
        """At stop: hand everything over and let later writes reach the watchers at once."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.tap is not None:
            self.tap.later = None
            self.tap.flush()

    def _look(self) -> None:
        self._asked = False
        if not self._closed:
            self.point()

    def _arm(self, delay: float) -> None:
        if self._timer is None and not self._closed:
            self._timer = self.loop.call_later(delay, self._due)

    def _due(self) -> None:
        self._timer = None
        if self.tap is not None and self.tap.pending:
            self.flush()
