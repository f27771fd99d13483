"""What an executor hands back for one intent, and how errors become results.

`ExecutionReport.result` goes back into the core; `request` / `response` are the wire
forms for the audit log (already redacted); `events` are further facts the execution
revealed (a paper fill, a recovered order's status), to be fed to the core after the
result.

Errors never escape an executor: `failure(intent, now, exc)` turns any exception into an
`ActionResult(ok=False)` whose `error` is Kraken's own string where there is one
(`EOrder:Insufficient funds`) and whose `data` says what the caller may do next:
`error_class` (the typed error's name, see `rules_engine.kraken.errors`), `retry_safe`
and, for writes whose outcome is unknown, `ambiguous`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rules_engine.core.events import ActionResult, Event
from rules_engine.core.intents import Intent
from rules_engine.kraken import errors as kraken_errors
from rules_engine.paper.errors import ExchangeError, FuturesError
from rules_engine.redact import redact


@dataclass(frozen=True)
class ExecutionReport:
    """The outcome of one intent: the result for the core, wire forms for the audit log,
    and follow-up events (fed to the core after `result`)."""

    result: ActionResult
    request: Mapping[str, Any] | None = None
    response: Mapping[str, Any] | None = None
    events: tuple[Event, ...] = field(default_factory=tuple)


def _intent_id(intent: Intent | str) -> str:
    return intent if isinstance(intent, str) else intent.intent_id


def ok(intent: Intent | str, now: float, data: Mapping[str, Any] | None = None) -> ActionResult:
    """A successful result for an intent (or an intent id)."""
    return ActionResult(intent_id=_intent_id(intent), ok=True, time=now, data=dict(data or {}))


def refused(intent: Intent | str, now: float, error: str, error_class: str, *, retry_safe: bool = False,
            **extra: Any) -> ActionResult:
    """A failed result with an explicit error string and class."""
    data = {"error_class": error_class, "retry_safe": retry_safe, **extra}
    return ActionResult(intent_id=_intent_id(intent), ok=False, time=now, data=data, error=error)


def describe_error(exc: BaseException) -> tuple[str, type[BaseException] | None, dict[str, Any]]:
    """`(error text, typed Kraken error class or None, extra data)` for any exception.

    The simulator's paper errors carry Kraken's exact strings and are classified with the
    same table as the real client's, so dry-run and live report the same classes.
    """
    if isinstance(exc, kraken_errors.KrakenError):
        text = exc.errors[0] if exc.errors else str(exc)
        extra: dict[str, Any] = {"ambiguous": True} if exc.ambiguous else {}
        if exc.unsent:
            extra["unsent"] = True
        if isinstance(exc, kraken_errors.RateLimited) and exc.retry_at is not None:
            extra["retry_at"] = exc.retry_at
        if len(exc.errors) > 1:
            extra["errors"] = list(exc.errors)
        if not exc.errors:
            extra["detail"] = str(exc)
        return text, type(exc), extra
    if isinstance(exc, ExchangeError):
        return exc.error, kraken_errors.spot_error_class(exc.error), {}
    if isinstance(exc, FuturesError):
        return exc.error, kraken_errors.futures_error_class(exc.error), {}
    return f"{type(exc).__name__}: {exc}", None, {}


def failure(intent: Intent | str, now: float, exc: BaseException) -> ActionResult:
    """An `ok=False` result for `exc`, redacted, with `error_class` and `retry_safe`."""
    text, cls, extra = describe_error(exc)
    if cls is None:
        name, retry_safe = type(exc).__name__, False
    elif isinstance(exc, kraken_errors.KrakenError):
        name, retry_safe = cls.__name__, exc.retry_safe
    else:
        name = cls.__name__
        retry_safe = bool(getattr(cls, "transient", False) and not getattr(cls, "ambiguous", False))
    return refused(intent, now, redact(text), name, retry_safe=retry_safe, **redact(extra))
