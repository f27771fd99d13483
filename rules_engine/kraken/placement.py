"""Placing an order at most once: never resend blind after an ambiguous failure.

`place_at_most_once` sends an order and, when the outcome is unknown (read timeout, lost
connection, HTTP 5xx, Kraken `EService:*`), first waits until the order can no longer be
in flight (a settle delay, or its deadline), then looks it up by its client order id:

- found: the order exists; return it marked as recovered, and do not send again;
- not found and the deadline has passed: Kraken would have rejected it, raise `OrderNotPlaced`
  (proven absent; the caller may decide anew);
- not found and no deadline bounds it: the order may still surface (Kraken can list a new
  order late), so raise `OrderStateUnknown` and never resend: give orders a `deadline`.

Errors that prove the order was not accepted (a connect failure, a rate limit) are
retried with backoff; deterministic rejections are raised at once. `EAPI:Invalid nonce`
(Kraken refused the request unprocessed: another client used the key in between) is
settled the same careful way: the order is looked up by its client order id first, and
sent again with a fresh nonce (once) only if it is proven absent; `KeyInUse` (the key's
nonces keep being refused) is raised as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from rules_engine.kraken.errors import KeyInUse, KrakenError, NonceError, OrderNotPlaced, OrderStateUnknown
from rules_engine.kraken.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")


def place_at_most_once(
    send: Callable[[], T],
    find: Callable[[], T | None],
    *,
    method: str,
    client_id: str | None,
    deadline: float | None,
    policy: RetryPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    settle_seconds: float,
) -> T:
    """Return what `send` returned, or what `find` found (the order if it exists, else None)."""
    attempt = 0
    nonce_retried = False
    while True:
        attempt += 1
        sent_at = clock()
        try:
            return send()
        except KeyInUse:
            raise
        except NonceError as exc:
            if nonce_retried or client_id is None:
                raise
            nonce_retried = True
            found = _look_up(find, method, client_id, sent_at, clock, sleep, exc)
            if found is not None:
                log.info("%s %s found after a nonce refusal; not sent again", method, client_id)
                return found
            log.warning("%s %s: nonce refused and the order is absent; sending it again with a fresh nonce",
                        method, client_id)
            continue
        except KrakenError as exc:
            if not exc.transient:
                raise
            if exc.ambiguous:
                if client_id is None:
                    raise OrderStateUnknown(
                        "outcome unknown and no client order id to look the order up by; "
                        "reconcile with the open orders before placing it again",
                        errors=exc.errors,
                        method=method,
                    ) from exc
                not_before = max(sent_at + settle_seconds, deadline or 0.0)
                found = _look_up(find, method, client_id, not_before, clock, sleep, exc)
                if found is not None:
                    log.info("%s %s recovered by lookup after %s", method, client_id, exc)
                    return found
                if deadline is not None:
                    raise OrderNotPlaced(
                        f"order {client_id} not found after its deadline: it was not placed",
                        errors=exc.errors,
                        method=method,
                    ) from exc
                raise OrderStateUnknown(
                    f"order {client_id} not found {settle_seconds:g}s after an ambiguous failure and no "
                    "deadline proves it can no longer arrive; reconcile before placing it again",
                    errors=exc.errors,
                    method=method,
                ) from exc
            if attempt >= policy.attempts:
                if exc.ambiguous:
                    raise OrderStateUnknown(
                        f"order {client_id}: {attempt} attempts failed", errors=exc.errors, method=method
                    ) from exc
                raise
            sleep(policy.backoff(attempt))


def _look_up(
    find: Callable[[], T | None],
    method: str,
    client_id: str,
    not_before: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    cause: KrakenError,
) -> T | None:
    pause = not_before - clock()
    if pause > 0:
        sleep(pause)
    try:
        return find()
    except KrakenError as lookup_error:
        raise OrderStateUnknown(
            f"order {client_id} failed ambiguously ({cause}) and the lookup failed too ({lookup_error})",
            errors=[*cause.errors, *lookup_error.errors],
            method=method,
        ) from lookup_error
