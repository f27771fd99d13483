"""Retries with exponential backoff and jitter (tenacity), for calls that are safe to repeat.

Only effect-free or idempotent calls go through here (reads, cancels, validate-only
orders). Order placement has its own loop in the clients, which never resends an order
after an ambiguous failure without first looking it up.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from rules_engine.kraken.errors import KrakenError, RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in total; waits grow from `initial` doubling up to `maximum`, plus jitter."""

    attempts: int = 4
    initial: float = 0.25
    maximum: float = 8.0
    jitter: float = 0.25

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based), jitter included."""
        return min(self.maximum, self.initial * 2 ** (attempt - 1)) + random.uniform(0, self.jitter)


DEFAULT_RETRY = RetryPolicy()


def transient(exc: BaseException) -> bool:
    return isinstance(exc, KrakenError) and exc.transient


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> T:
    """Call `fn`, retrying transient KrakenErrors; honours Kraken's `EService:Throttled` time."""
    def wait(state: RetryCallState) -> float:
        seconds = policy.backoff(state.attempt_number)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_at is not None:
            seconds = max(seconds, exc.retry_at - clock())
        return seconds

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("kraken retry %d after %s", state.attempt_number, exc)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception(transient),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
    return retrying(fn)
