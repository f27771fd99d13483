"""Kraken's clock, measured once for all the key cells of a worker.

A high-availability takeover measures the offset between Kraken's clock (the public `Time`
call) and this host's wall clock, and computes order deadlines on it (`service.ha`). The offset
is a property of this host's clock and the exchange, not of an API key: a worker taking over
150 keys at once made 150 `Time` calls for one figure. `SharedKrakenClock` makes one per
`MAX_AGE` seconds per endpoint and hands it to every cell; an engine of its own measures as
before, once per takeover, and keeps the figure for its whole epoch (so a figure a minute old
is no staler than what an engine uses anyway).

    clock = SharedKrakenClock()
    offset = clock.offset(spot.base_url, measure)   # measure() -> float | None, called at most once a minute
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_AGE = 60.0
"""Seconds a measured offset is handed out for before it is measured again."""
FAILED_AGE = 5.0
"""Seconds a failed measurement is remembered (the cells then use the wall clock, as an engine
whose measurement failed does) before the next cell tries again: many cells waiting in turn for
an exchange that does not answer would each wait out their own timeout."""


class SharedKrakenClock:
    """Kraken's clock offset per endpoint, measured at most once per `max_age` (see the module)."""

    def __init__(self, *, max_age: float = MAX_AGE, failed_age: float = FAILED_AGE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.failed_age = failed_age
        self._monotonic = monotonic
        self._lock = threading.Lock()  # one measurement at a time: the cells waiting for it share it
        self._known: dict[str, tuple[float, float | None]] = {}  # endpoint -> (measured at, offset or None)
        self.measurements = 0

    def offset(self, endpoint: str, measure: Callable[[], float | None]) -> float | None:
        """The offset for `endpoint` (Kraken minus this host's clock, seconds): the last one
        measured if recent enough, else `measure()`'s (None: it failed)."""
        with self._lock:
            known = self._known.get(endpoint)
            now = self._monotonic()
            if known is not None and now - known[0] < (self.max_age if known[1] is not None else self.failed_age):
                return known[1]
            self.measurements += 1
            value = measure()
            self._known[endpoint] = (self._monotonic(), value)
            return value
