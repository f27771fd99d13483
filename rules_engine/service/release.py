"""`release_after`: a high-availability holder that cannot reach Kraken hands its key over.

The lease keeps a key's engine live while it can reach PostgreSQL, but a holder cut off from
Kraken alone (the design note's "partition between leader and Kraken") keeps its lease and
cannot trade. With `store.release_after` (at least 2 x `lease_ttl`; off by default):

- `ReachTransport` wraps the Kraken clients' transport and notes each call: any answer (even
  Kraken's error) means Kraken is reachable; a network error (cannot connect, connection
  lost) or a timeout means it is not;
- `ReleaseWatch` (a thread, checking every second) releases the key once every call for
  `release_after` seconds has failed that way or is still waiting for its answer (counted
  from the start of the first such call, none answered since): the lease expires now, this
  holder's renewals stop matching it, and it keeps off the key for `release_after` more
  seconds (`pgstore.release`, recorded in the key's `cell_meta`); then the cell halts as when
  fenced (nothing more is signed): the service stops with exit code 3, and a worker's cell
  stands by again. Another engine takes the key at its next poll, fences it and reconciles
  as after any takeover.

The holder keeps calling while it lasts: the dead man's switch refresh (every
`dead_man_switch.interval`, retried while it fails) and account reads; should the calls stop
while failing (and none is in flight), the watch asks Kraken's public `Time` endpoint
(`probe`) every `release_after / 3` seconds, so the partition's end is noticed too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rules_engine.kraken.errors import BadResponse, HTTPStatusError, TransportError
from rules_engine.kraken.http import Transport
from rules_engine.pgstore import StoreSettings
from rules_engine.pgstore.release import release_lease
from rules_engine.state.store import StateStoreError

log = logging.getLogger("rules_engine.ha")

CHECK_EVERY = 1.0
"""Seconds between the watch's looks at the calls' outcomes."""


class ExchangeReach:
    """Whether Kraken answered lately: since when every call has failed with a network error
    or a timeout, or has waited for an answer (a call in flight counts from its start: a black
    hole answers nothing until the client's read timeout). Thread-safe."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.failing_since: float | None = None
        self.failures = 0
        self.last_error: str | None = None
        self.last_call: float | None = None
        self._answered_at = float("-inf")
        self._in_flight: dict[int, float] = {}  # call number -> when it started
        self._calls = 0

    def started(self) -> int:
        """A call leaves now: its number, for `answered` or `failed`."""
        with self._lock:
            self._calls += 1
            self._in_flight[self._calls] = self.last_call = self._monotonic()
            return self._calls

    def answered(self, call: int) -> None:
        with self._lock:
            self._in_flight.pop(call, None)
            self.failing_since, self.failures = None, 0
            self.last_call = self._answered_at = self._monotonic()

    def failed(self, call: int, error: str) -> None:
        with self._lock:
            started = self._in_flight.pop(call, self._monotonic())
            if self.failing_since is None and started >= self._answered_at:
                self.failing_since = started
            self.failures += 1
            self.last_error = error
            self.last_call = self._monotonic()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def out_of_reach_for(self) -> float:
        """Seconds every call has failed or waited without an answer (0 while none has since
        the last answer)."""
        with self._lock:
            waiting = [t for t in self._in_flight.values() if t >= self._answered_at]
            since = min([*waiting, *([self.failing_since] if self.failing_since is not None else [])],
                        default=None)
            return 0.0 if since is None else self._monotonic() - since


def unreachable(exc: BaseException) -> bool:
    """A network error or a timeout: no answer from Kraken (an HTTP status or a body that is
    not JSON came from somewhere: not counted)."""
    return isinstance(exc, TransportError) and not isinstance(exc, (HTTPStatusError, BadResponse))


class ReachTransport:
    """The clients' transport, noting each call's outcome in `reach`."""

    def __init__(self, inner: Transport, reach: ExchangeReach) -> None:
        self.inner = inner
        self.reach = reach

    def request(self, http_method: str, url: str, *, api_method: str, params: Mapping[str, Any] | None = None,
                body: str | None = None, headers: Mapping[str, str] | None = None) -> Any:
        call = self.reach.started()
        try:
            answer = self.inner.request(http_method, url, api_method=api_method, params=params, body=body,
                                        headers=headers)
        except Exception as exc:
            if unreachable(exc):
                self.reach.failed(call, f"{api_method}: {exc}")
            else:
                self.reach.answered(call)
            raise
        self.reach.answered(call)
        return answer

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class ReleaseWatch:
    """Releases the key once Kraken has been out of reach for `release_after` (see the module)."""

    def __init__(self, settings: StoreSettings, holder: str, release_after: float, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.holder = holder
        self.release_after = release_after
        self.reach = ExchangeReach(monotonic)
        self.probe: Callable[[], Any] | None = None  # Kraken's public Time call (set at takeover)
        self.released: str | None = None
        self._told = False  # the release's audit record was written (`check`)
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def transport(self, inner: Transport) -> ReachTransport:
        return ReachTransport(inner, self.reach)

    def start(self, epoch: int, halt: Callable[[str], None], tell: Callable[[dict[str, Any]], None]) -> None:
        """Watch on a thread while this holder holds `epoch`; `halt` stops the cell for good,
        `tell` audits the release."""
        self._thread = threading.Thread(target=self._run, args=(epoch, halt, tell), name="release-watch",
                                        daemon=True)
        self._thread.start()

    def _run(self, epoch: int, halt: Callable[[str], None], tell: Callable[[dict[str, Any]], None]) -> None:
        while not self._stop.wait(CHECK_EVERY):
            if self.check(epoch, halt, tell):
                return

    def check(self, epoch: int, halt: Callable[[str], None], tell: Callable[[dict[str, Any]], None]) -> bool:
        """One look; True once the key was released (the watch ends)."""
        out = self.reach.out_of_reach_for()
        if out == 0.0:
            return False
        if out < self.release_after:
            self._probe_if_quiet()
            return False
        reason = (f"Kraken out of reach for {out:.1f} s (release_after {self.release_after:g} s; "
                  f"{self.reach.failures} call(s) failed, the last: {self.reach.last_error or 'none yet'}; "
                  f"the others wait for an answer); the key's lease is released for another engine")
        if not self._told:  # audited before the release, while this epoch's writes still pass: once the
            self._told = True  # lease is released a standby may take the key at once, fencing this chain
            tell({"event": "released", "epoch": epoch, "out_of_reach_s": round(out, 3),
                  "release_after_s": self.release_after, "hold_off_s": self.release_after,
                  "last_error": self.reach.last_error})
        try:
            released = release_lease(self.settings, self.holder, epoch, hold_off=self.release_after, reason=reason)
        except StateStoreError as exc:
            log.warning("cannot release the key's lease (trying again): %s", exc)
            return False
        if released:
            self.released = reason
        halt(reason if released else "fenced: the key's lease is now held by another epoch; this engine stops acting")
        return True

    def _probe_if_quiet(self) -> None:
        last = self.reach.last_call
        if self.probe is None or self.reach.in_flight() or \
                (last is not None and self._monotonic() - last < self.release_after / 3):
            return
        try:
            self.probe()
        except Exception as exc:  # noted by the transport
            log.debug("probe of Kraken failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(5)
