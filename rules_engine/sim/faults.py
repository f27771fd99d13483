"""Fault injection for tests: every method is thread-safe and takes effect at once.

REST faults name a method: a Spot method (`AddOrder`, `Balance`, `Ticker`), a Futures
method (`sendorder`, `accounts`, `tickers`) or `*` for every call. Counted faults apply to
the next `count` calls; `count=None` keeps a fault until `clear()`.

WebSocket faults act on the connections open now (they need a running simulator).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

MALFORMED_KINDS = ("truncated", "garbage", "binary", "wrong_shape")

T = TypeVar("T")


@dataclass
class _Rule(Generic[T]):
    value: T
    count: int | None


@dataclass(frozen=True)
class AcceptedTimeout:
    """Answer nothing: hold the response `delay` seconds, then drop the connection."""

    delay: float


@dataclass(frozen=True)
class LateAnswer:
    """Run the call at once; send its answer only `delay` seconds later."""

    delay: float


@dataclass(frozen=True)
class LateAccept:
    """Take the call (signature, nonce, rate counter) at once, run it `delay` seconds later
    whatever the client does meanwhile (an AddOrder's `deadline` is checked then), answer then."""

    delay: float


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Rule[str]]] = {}
        self._timeouts: dict[str, list[_Rule[AcceptedTimeout]]] = {}
        self._delays: dict[str, list[_Rule[float]]] = {}
        self._statuses: dict[str, list[_Rule[int]]] = {}
        self._rate_limits: dict[str, list[_Rule[bool]]] = {}
        self._late_answers: dict[str, list[_Rule[LateAnswer]]] = {}
        self._late_accepts: dict[str, list[_Rule[LateAccept]]] = {}
        self.heartbeats_stopped = False
        self.feeds_paused = False
        self._ws_drop: Callable[[int | None], int] | None = None
        self._ws_malformed: Callable[[int, str], int] | None = None

    # ------------------------------------------------------------------ REST

    def fail_next(self, method: str, error: str = "EService:Unavailable", count: int | None = 1) -> None:
        """Answer the next calls with this error instead of running them (after the
        signature and nonce are accepted, so the nonce is used up). Spot calls get
        `{"error": [error]}`; Futures calls `{"result": "error", "error": error}`."""
        self._add(self._failures, method, error, count)

    def timeout_after_accept(self, method: str = "AddOrder", count: int | None = 1, delay: float = 30.0) -> None:
        """Run the next successful calls (the order IS placed) but never answer: hold the
        response `delay` seconds (past the client's read timeout), then drop the
        connection. `delay=0` drops it at once."""
        self._add(self._timeouts, method, AcceptedTimeout(delay), count)

    def answer_late(self, method: str = "AddOrder", delay: float = 30.0, count: int | None = 1) -> None:
        """Run the next calls at once (the order IS placed) but send the answer `delay`
        seconds later: after the client's read timeout, to a client that has given up."""
        self._add(self._late_answers, method, LateAnswer(delay), count)

    def accept_late(self, method: str = "AddOrder", delay: float = 30.0, count: int | None = 1) -> None:
        """Take the next calls at once (signature, nonce and rate counter checked on arrival,
        as Kraken does) but run them `delay` seconds later, even if the client timed out and
        left: the order is placed then, unless its `deadline` has passed by then
        (`EService:Deadline elapsed`, nothing placed)."""
        self._add(self._late_accepts, method, LateAccept(delay), count)

    def delay(self, method: str, seconds: float, count: int | None = None) -> None:
        """Wait `seconds` before handling the calls (all of them until `clear()` by default)."""
        self._add(self._delays, method, seconds, count)

    def http_status(self, method: str, status: int = 502, count: int | None = 1) -> None:
        """Answer the next calls with this HTTP status and an HTML body, running nothing."""
        self._add(self._statuses, method, status, count)

    def force_rate_limit(self, api_key: str, count: int | None = 1, trading: bool = False) -> None:
        """Refuse the key's next calls as rate limited. By default the calls that use the
        REST counter (everything but AddOrder/CancelOrder) get `EAPI:Rate limit exceeded`;
        with `trading=True` the next AddOrder/CancelOrder calls get
        `EOrder:Rate limit exceeded`. Futures calls get `apiLimitExceeded`."""
        self._add(self._rate_limits, f"{api_key}#trading" if trading else api_key, True, count)

    # ------------------------------------------------------------------ WebSocket

    def drop_ws_connections(self, code: int | None = None) -> int:
        """Drop every open WebSocket connection: abort the TCP connection (the client
        sees 1006), or with `code` close it cleanly with that code. Returns how many."""
        if self._ws_drop is None:
            raise RuntimeError("the simulator is not running")
        return self._ws_drop(code)

    def stop_heartbeats(self) -> None:
        """Stop sending heartbeats (ticker updates continue)."""
        self.heartbeats_stopped = True

    def resume_heartbeats(self) -> None:
        self.heartbeats_stopped = False

    def pause_feeds(self) -> None:
        """Send nothing at all on the WebSocket feeds (a silent, still open connection)."""
        self.feeds_paused = True

    def resume_feeds(self) -> None:
        self.feeds_paused = False

    def send_malformed_frames(self, n: int = 1, kind: str = "truncated") -> int:
        """Send `n` malformed frames on every open connection now: `truncated` JSON,
        `garbage` text, a `binary` frame, or `wrong_shape` (valid JSON, wrong fields).
        Returns the number of connections."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
        if self._ws_malformed is None:
            raise RuntimeError("the simulator is not running")
        return self._ws_malformed(n, kind)

    def attach(self, drop: Callable[[int | None], int] | None, malformed: Callable[[int, str], int] | None) -> None:
        """Connect the WebSocket faults to a running server (None to detach)."""
        self._ws_drop, self._ws_malformed = drop, malformed

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            for rules in (self._failures, self._timeouts, self._delays, self._statuses, self._rate_limits,
                          self._late_answers, self._late_accepts):
                rules.clear()
        self.heartbeats_stopped = self.feeds_paused = False

    # ------------------------------------------------------------------ consumed by the server

    def _add(self, table: dict[str, list[_Rule[T]]], key: str, value: T, count: int | None) -> None:
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for every call)")
        with self._lock:
            table.setdefault(key, []).append(_Rule(value, count))

    def _take(self, table: dict[str, list[_Rule[T]]], key: str) -> T | None:
        with self._lock:
            for name in (key, "*"):
                rules = table.get(name)
                if not rules:
                    continue
                rule = rules[0]
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count == 0:
                        rules.pop(0)
                return rule.value
        return None

    def take_failure(self, method: str) -> str | None:
        return self._take(self._failures, method)

    def take_timeout(self, method: str) -> AcceptedTimeout | None:
        return self._take(self._timeouts, method)

    def take_late_answer(self, method: str) -> LateAnswer | None:
        return self._take(self._late_answers, method)

    def take_late_accept(self, method: str) -> LateAccept | None:
        return self._take(self._late_accepts, method)

    def take_delay(self, method: str) -> float:
        return self._take(self._delays, method) or 0.0

    def take_http_status(self, method: str) -> int | None:
        return self._take(self._statuses, method)

    def take_rate_limit(self, api_key: str, trading_call: bool = False) -> bool:
        """Is this call forced to fail as rate limited? (Consumes the fault.)"""
        key = f"{api_key}#trading" if trading_call else api_key
        with self._lock:
            rules = self._rate_limits.get(key)
            if not rules:
                return False
        forced = self._take(self._rate_limits, key)
        return bool(forced)
