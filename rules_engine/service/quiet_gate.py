"""Trading first: a worker's cells connect their private feeds once the worker is quiet.

    gate = QuietGate(worker.busy)       # one per worker
    await gate.wait()                   # a cell, before its private feed's first connection

At a takeover a worker starts many cells at once (150 when one of two workers dies), each
fencing its key, reconciling and then acting on what waited for it (fanned-out signals). A
private feed's connection (GetWebSocketsToken, a WebSocket handshake, the snapshots) is
work on the same interpreter that only tells the engine of fills as they happen: the
orders' own answers and the account read at the takeover do not need it. Measured with 300
keys over 2 workers and one killed (`bench/worker_fanout.py`), connecting them during the
takeovers put the last order about 3 s later. So a cell's feed waits until, at one check, no
cell of the worker is taking its key over or has events or orders in hand, or `max_wait`
seconds, whichever comes first. One task checks for every waiting cell.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

CHECK_EVERY = 0.2
"""Seconds between two checks of the worker."""
MAX_WAIT = 10.0
"""Seconds a cell's private feed waits at most (a worker that is never quiet still connects them)."""


class QuietGate:
    """Holds callers of `wait` until `busy()` is false at a check or their `max_wait` passed."""

    def __init__(self, busy: Callable[[], bool], *, check_every: float = CHECK_EVERY, max_wait: float = MAX_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.busy = busy
        self.check_every = check_every
        self.max_wait = max_wait
        self.clock = clock
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Callers held now."""
        return sum(1 for _, future in self._waiters if not future.done())

    async def wait(self) -> None:
        """Return once the worker is quiet (at the next check) or after `max_wait` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.clock() + self.max_wait, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._watch())
        await future

    async def _watch(self) -> None:
        while True:
            quiet = not self.busy()
            now = self.clock()
            held = []
            for deadline, future in self._waiters:
                if future.done():  # its caller was cancelled
                    continue
                if quiet or now >= deadline:
                    future.set_result(None)
                else:
                    held.append((deadline, future))
            self._waiters = held
            if not held:
                return
            await asyncio.sleep(self.check_every)
