"""What one client, one source or the whole server may ask of the webhook.

`WebhookLimits` holds the numbers (defaults fit a few senders posting a few signals a
second); `TokenBuckets` is the rate limiter: one bucket per key (a client address, a source),
`burst` tokens deep, refilled at `rate` tokens a second. A request takes a token or is refused
with the time until the next one (the 429's Retry-After). Buckets that are full again are
forgotten, and at most `max_keys` are kept, so a flood of addresses cannot grow memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookLimits:
    header_timeout: float = 10.0  # s from connecting (or the end of the previous request) to complete headers
    body_timeout: float = 10.0  # s to receive the whole body of a signal
    max_connections: int = 256  # open connections; more are answered 503 and closed
    max_client_connections: int = 32  # open connections from one client address (so one cannot take them all)
    client_rate: float = 5.0  # requests a second from one client address, to /signals/*
    client_burst: int = 20
    source_rate: float = 10.0  # accepted signals a second for one source
    source_burst: int = 30
    reject_audit_interval: float = 60.0  # s: one audit record per client for refused strangers

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "client_rate", "source_rate", "reject_audit_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"webhook limit {name} must be positive")
        for name in ("max_connections", "max_client_connections", "client_burst", "source_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"webhook limit {name} must be at least 1")


class TokenBuckets:
    """Token buckets by key, on a monotonic clock."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float], max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)

    def _tokens(self, key: str, now: float) -> float:
        tokens, since = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - since) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token (0 when it has one now); takes nothing."""
        tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> float:
        """Take a token for `key`: 0 when taken, else the seconds until one is available."""
        now = self.clock()
        tokens = self._tokens(key, now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > self.max_keys:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        """Drop full buckets (they behave as new ones); if all are in use, the oldest half."""
        full = [k for k in self._buckets if self._tokens(k, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) > self.max_keys:
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in by_age[: len(by_age) // 2]:
                del self._buckets[key]


def retry_after(seconds: float) -> str:
    """The Retry-After header for a wait: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
