"""Kraken errors as one typed exception tree, mapped from the wire in one place.

Every exception says what a caller may do next:

- `transient`: the same request may succeed later (after a wait).
- `ambiguous`: a *write* (AddOrder, sendorder) may or may not have taken effect;
  reconcile (look the order up by its client order id) before sending it again.
- `retry_safe`: resending the request unchanged cannot duplicate an effect and may
  succeed (`transient and not ambiguous`). Reads are effect-free, so a client may retry
  a read on any `transient` error.

```
KrakenError                              transient ambiguous retry_safe
├── AnswerError      Kraken answered with an error
│   ├── AuthError                        no        no        no
│   │   ├── InvalidKey                   EAPI:Invalid key
│   │   └── InvalidSignature             EAPI:Invalid signature
│   ├── NonceError                       no        no        no   EAPI:Invalid nonce
│   │   └── KeyInUse                     repeated nonce refusals: another client uses the key
│   ├── PermissionDenied                 no        no        no   EGeneral:Permission denied
│   ├── Lockout                          no        no        no   EGeneral:Temporary lockout (~15 min)
│   ├── RateLimited                      yes       no        yes  EAPI/EOrder:Rate limit exceeded, EService:Throttled
│   ├── InvalidArguments                 no        no        no   EGeneral:Invalid arguments, order minimums, tick size
│   │   └── UnknownPair                  EQuery:Unknown asset pair
│   ├── UnknownOrder                     no        no        no   EOrder:Unknown order
│   ├── OrderRejected                    no        no        no   deterministic refusal of an order
│   │   ├── InsufficientFunds            EOrder:Insufficient funds / margin
│   │   ├── OrderLimitExceeded           EOrder:Orders limit exceeded
│   │   ├── MarketRestricted             EService:Market in cancel_only / post_only mode
│   │   ├── DuplicateOrder               EOrder:Duplicate order, Futures clientOrderIdAlreadyExist
│   │   └── OrderNotPlaced               ambiguous order, not found after its deadline
│   └── ServiceUnavailable               yes       yes       no
│       ├── Busy                         EService:Busy
│       ├── Unavailable                  EService:Unavailable
│       ├── DeadlineElapsed              EService:Deadline elapsed
│       └── InternalError                EGeneral:Internal error
├── TransportError   no usable answer from Kraken
│   ├── ConnectError                     yes       no        yes  (the request never left)
│   ├── ReadTimeout                      yes       yes       no
│   ├── HTTPStatusError                  5xx/429: yes, yes (not 429); other 4xx: no, no
│   └── BadResponse                      yes       yes       no   (not a Kraken envelope)
└── OrderStateUnknown                    no        yes       no   lookup could not settle a write
```

`raise_for_spot(envelope)` and `raise_for_futures(body)` are the only places that read
Kraken's error strings. Exception texts carry Kraken's strings and the method name, never
request bodies or headers (so never a key, a signature or a secret).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)


class KrakenError(Exception):
    """Base of every error raised by the Kraken clients."""

    transient = False
    ambiguous = False
    unsent = False  # raised before the request was signed: it certainly never reached Kraken

    def __init__(self, message: str = "", *, errors: Sequence[str] = (), method: str | None = None):
        self.errors = list(errors)
        self.method = method
        text = message or "; ".join(self.errors) or type(self).__name__
        super().__init__(f"{method}: {text}" if method else text)

    @property
    def retry_safe(self) -> bool:
        """Resending the same request cannot duplicate an effect and may succeed."""
        return self.transient and not self.ambiguous


class AnswerError(KrakenError):
    """Kraken received the request and answered with an error. (The paper exchange's own
    error, carrying the string Kraken would send, is `rules_engine.paper.errors.ExchangeError`.)"""


class AuthError(AnswerError):
    pass


class InvalidKey(AuthError):
    pass


class InvalidSignature(AuthError):
    pass


class NonceError(AnswerError):
    """The nonce was not above the key's last one: another user of the key, or a bug."""


class KeyInUse(NonceError):
    """Kraken keeps refusing this key's nonces: another client is using the API key."""


class PermissionDenied(AnswerError):
    pass


class Lockout(AnswerError):
    """Kraken locked the key out (about 15 minutes); do not retry."""


class RateLimited(AnswerError):
    """A Kraken rate counter is full; wait, then retry (`retry_at`: unix time, if Kraken said)."""

    transient = True

    def __init__(self, message: str = "", *, retry_at: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_at = retry_at


class InvalidArguments(AnswerError):
    pass


class UnknownPair(InvalidArguments):
    pass


class UnknownOrder(AnswerError):
    """No such order (never existed, or already closed)."""


class OrderRejected(AnswerError):
    """Kraken refused the order; it does not exist."""


class InsufficientFunds(OrderRejected):
    pass


class OrderLimitExceeded(OrderRejected):
    pass


class MarketRestricted(OrderRejected):
    pass


class DuplicateOrder(OrderRejected):
    pass


class OrderNotPlaced(OrderRejected):
    """An ambiguous placement was looked up after its deadline and does not exist."""


class ServiceUnavailable(AnswerError):
    """Kraken is down, busy or timed out internally; a write's outcome is unknown."""

    transient = True
    ambiguous = True


class Busy(ServiceUnavailable):
    pass


class Unavailable(ServiceUnavailable):
    pass


class DeadlineElapsed(ServiceUnavailable):
    pass


class InternalError(ServiceUnavailable):
    pass


class TransportError(KrakenError):
    """No usable answer: connection failure, timeout, HTTP error status, garbage."""

    transient = True
    ambiguous = True


class ConnectError(TransportError):
    """The connection could not be made; the request was never sent."""

    ambiguous = False


class ReadTimeout(TransportError):
    pass


class HTTPStatusError(TransportError):
    def __init__(self, status: int, *, method: str | None = None):
        super().__init__(f"HTTP {status}", method=method)
        self.status = status
        self.transient = status >= 500 or status == 429
        self.ambiguous = status >= 500


class BadResponse(TransportError):
    pass


class OrderStateUnknown(KrakenError):
    """A write failed ambiguously and the lookup could not tell whether it took effect."""

    ambiguous = True


# --- Spot: error strings -> classes ------------------------------------------------

# Matched in order against the normalised string (spaces after ':' removed); first prefix wins.
_SPOT_PREFIXES: tuple[tuple[str, type[KrakenError]], ...] = (
    ("EAPI:Invalid key", InvalidKey),
    ("EAPI:Invalid signature", InvalidSignature),
    ("EAPI:Invalid nonce", NonceError),
    ("EAPI:Invalid token", AuthError),
    ("ESession:Invalid session", AuthError),
    ("EAPI:Rate limit exceeded", RateLimited),
    ("EAuth:Rate limit exceeded", RateLimited),
    ("EGeneral:Too many requests", RateLimited),
    ("EOrder:Rate limit exceeded", RateLimited),
    ("EOrder:Domain rate limit exceeded", RateLimited),
    ("EService:Throttled", RateLimited),
    ("EGeneral:Temporary lockout", Lockout),
    ("EGeneral:Permission denied", PermissionDenied),
    ("EQuery:Unknown asset pair", UnknownPair),
    ("EQuery:Unknown asset", UnknownPair),
    ("EOrder:Unknown order", UnknownOrder),
    ("EOrder:Insufficient funds", InsufficientFunds),
    ("EOrder:Insufficient margin", InsufficientFunds),
    ("EOrder:Margin level too low", InsufficientFunds),
    ("EOrder:Orders limit exceeded", OrderLimitExceeded),
    ("EOrder:Positions limit exceeded", OrderLimitExceeded),
    ("EOrder:Margin position size exceeded", OrderLimitExceeded),
    ("EOrder:Margin allowance exceeded", OrderLimitExceeded),
    ("EOrder:Order minimum not met", InvalidArguments),
    ("EOrder:Cost minimum not met", InvalidArguments),
    ("EOrder:Tick size check failed", InvalidArguments),
    ("EOrder:Invalid price", InvalidArguments),
    ("EOrder:Cannot open", OrderRejected),
    ("EOrder:Duplicate order", DuplicateOrder),
    ("EOrder:Unknown position", OrderRejected),
    ("EGeneral:Invalid arguments", InvalidArguments),
    ("EGeneral:Unknown method", InvalidArguments),
    ("EAPI:Bad request", InvalidArguments),
    ("EAPI:Feature disabled", PermissionDenied),
    ("EService:Market in", MarketRestricted),
    ("EService:Busy", Busy),
    ("EService:Unavailable", Unavailable),
    ("EService:Deadline elapsed", DeadlineElapsed),
    ("EGeneral:Internal error", InternalError),
    ("EDatabase:Internal error", InternalError),
)

# "EOrder:Invalid order" means an unknown/closed order id on cancel and query calls.
_ORDER_LOOKUP_METHODS = frozenset({"CancelOrder", "QueryOrders", "EditOrder", "AmendOrder", "CancelOrderBatch"})


def _normalise(error: str) -> str:
    return error.replace(": ", ":").strip()


def spot_error_class(error: str, method: str | None = None) -> type[KrakenError]:
    """The exception class for one Kraken Spot error string."""
    text = _normalise(error)
    if text.startswith("EOrder:Invalid order"):
        return UnknownOrder if method in _ORDER_LOOKUP_METHODS else OrderRejected
    for prefix, cls in _SPOT_PREFIXES:
        if text.startswith(prefix):
            return cls
    return AnswerError


def _throttled_until(text: str) -> float | None:
    """`EService:Throttled:1700000000` -> the unix time to wait for."""
    tail = text.rpartition(":")[2].strip()
    try:
        return float(tail)
    except ValueError:
        return None


def spot_error(errors: Sequence[str], method: str | None = None) -> KrakenError:
    """Build the exception for a Spot `error` list (the first E-severity string decides)."""
    fatal = [e for e in errors if not e.startswith("W")] or list(errors)
    cls = spot_error_class(fatal[0], method)
    normalised = _normalise(fatal[0])
    if normalised.startswith("EService:Throttled"):
        return RateLimited(errors=errors, method=method, retry_at=_throttled_until(normalised))
    return cls(errors=errors, method=method)


def raise_for_spot(envelope: Any, method: str | None = None) -> Any:
    """Return `result` of a Spot `{"error": [...], "result": ...}` envelope, or raise.

    Warnings (`W...` strings) next to a result are logged and the result returned.
    """
    if not isinstance(envelope, Mapping) or not isinstance(envelope.get("error", []), list):
        raise BadResponse("not a Kraken Spot envelope", method=method)
    errors = [str(e) for e in envelope.get("error", [])]
    fatal = [e for e in errors if not e.startswith("W")]
    if fatal or "result" not in envelope:
        if not errors:
            raise BadResponse("envelope has neither result nor error", method=method)
        raise spot_error(errors, method)
    if errors:
        log.warning("kraken %s warnings: %s", method, errors)
    return envelope["result"]


# --- Futures: `"result": "error"` and sendStatus ------------------------------------

_FUTURES_ERRORS: dict[str, type[KrakenError]] = {
    "authenticationError": AuthError,
    "nonceBelowThreshold": NonceError,
    "nonceDuplicate": NonceError,
    "apiLimitExceeded": RateLimited,
    "accountInactive": PermissionDenied,
    "invalidAccount": PermissionDenied,
    "insufficientFunds": InsufficientFunds,
    "invalidAmount": InvalidArguments,
    "invalidArgument": InvalidArguments,
    "invalidUnit": InvalidArguments,
    "requiredArgumentMissing": InvalidArguments,
    "Json Parse Error": InvalidArguments,
    "marketUnavailable": MarketRestricted,
    "notFound": UnknownOrder,
    "Server Error": InternalError,
    "Unavailable": Unavailable,
    "unknownError": InternalError,
}

# Order outcomes (`sendStatus.status`, `cancelStatus.status`) that are not rejections.
FUTURES_ORDER_OK = frozenset({"placed", "partiallyFilled", "filled", "cancelled", "edited", "noOrdersToCancel"})

_FUTURES_ORDER_STATUS: dict[str, type[KrakenError]] = {
    "insufficientAvailableFunds": InsufficientFunds,
    "invalidPrice": InvalidArguments,
    "invalidSize": InvalidArguments,
    "clientOrderIdTooBig": InvalidArguments,
    "clientOrderIdInvalid": InvalidArguments,
    "orderForEditNotAStop": InvalidArguments,
    "cannotEditTriggerPriceOfTrailingStop": InvalidArguments,
    "cannotEditLimitPriceOfTrailingStop": InvalidArguments,
    "marketSuspended": MarketRestricted,
    "marketInactive": MarketRestricted,
    "marketIsPostOnly": MarketRestricted,
    "tooManySmallOrders": OrderLimitExceeded,
    "tooManyOrders": OrderLimitExceeded,
    "maxPositionViolation": OrderLimitExceeded,
    "clientOrderIdAlreadyExist": DuplicateOrder,
    "notFound": UnknownOrder,
    "orderForEditNotFound": UnknownOrder,
}


def futures_error_class(error: str) -> type[KrakenError]:
    return _FUTURES_ERRORS.get(error, AnswerError)


def raise_for_futures(body: Any, method: str | None = None) -> dict[str, Any]:
    """Return a Futures response body whose `result` is `success`, or raise."""
    if not isinstance(body, Mapping) or "result" not in body:
        raise BadResponse("not a Kraken Futures envelope", method=method)
    if body["result"] == "success":
        return dict(body)
    errors: list[str] = []
    if body.get("error"):
        errors.append(str(body["error"]))
    for item in body.get("errors") or ():
        errors.append(str(item.get("message", item)) if isinstance(item, Mapping) else str(item))
    if not errors:
        errors.append(str(body.get("status") or body["result"]))
    cls = futures_error_class(errors[0])
    if cls is AnswerError and body.get("status") == "BAD_REQUEST":
        cls = InvalidArguments
    raise cls(errors=errors, method=method)


def raise_for_order_status(status: Mapping[str, Any], method: str | None = None) -> Mapping[str, Any]:
    """Return a Futures `sendStatus`/`cancelStatus` that reports success, or raise.

    A rejected order comes back with `"result": "success"`; its status says why.
    """
    code = str(status.get("status", ""))
    if code in FUTURES_ORDER_OK:
        return status
    raise _FUTURES_ORDER_STATUS.get(code, OrderRejected)(errors=[code or "no status"], method=method)
