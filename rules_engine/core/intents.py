"""Intents: what the core decided to do, fully resolved.

Every value is concrete (Decimals and strings, no expressions). The core knows no wire
format: `rules_engine.kraken.order_codec` encodes an intent into Kraken's exact request.
An intent that needs its outcome back (orders, cancels, the dead man's switch, balance
reads) is answered by an `ActionResult` carrying the same `intent_id`; `Log` and `Notify`
are fire-and-forget.

Expected `ActionResult.data` on success (executors fill these in):
- PlaceOrder: `{"txid": ["OU22CG-KLAF2-FWUDD7"]}` (Kraken's AddOrder result; none with validate=true)
- FuturesSendOrder: `{"order_id": "..."}` (report `ok=False` unless sendStatus.status is placed,
  partiallyFilled or filled)
- ReadBalance: `{"balances": {"ZUSD": "171288.6158", "XXBT": "1011.19"}}` (Kraken's Balance result)
- CancelOrder / CancelAll / FuturesCancelOrder / DeadManSwitch: anything (e.g. `{"count": 1}`)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar

from rules_engine.core.decimals import plain

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # an intent class -> its fields' names, in order


@dataclass(frozen=True, kw_only=True)
class Intent:
    """Common fields: `intent_id` links the ActionResult; `decision_id` is `rule_id#fire_seq`."""

    intent_id: str
    rule_id: str | None
    decision_id: str | None
    kind: ClassVar[str] = "intent"
    awaits_result: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit log (Decimals as strings). Built once per intent (it
        is frozen); each call returns a fresh copy."""
        built: dict[str, Any] | None = self.__dict__.get("_as_dict")
        if built is None:
            built = {"kind": self.kind}
            names = _FIELD_NAMES.get(type(self))
            if names is None:
                names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
            for name in names:
                value = getattr(self, name)
                if isinstance(value, Decimal):
                    value = plain(value)
                elif isinstance(value, tuple):
                    value = list(value)
                built[name] = value
            object.__setattr__(self, "_as_dict", built)
        return {k: list(v) if type(v) is list else v for k, v in built.items()}


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(Intent):
    """Kraken Spot AddOrder. A `str` price is a relative price (`+5%`, `#10`) as written.
    `notional` is the estimate the risk check used."""

    cl_ord_id: str
    pair: str
    side: str
    ordertype: str
    volume: Decimal
    price: Decimal | str | None = None
    price2: Decimal | str | None = None
    trigger: str | None = None
    leverage: str | None = None
    reduce_only: bool = False
    oflags: tuple[str, ...] = ()
    timeinforce: str | None = None
    starttm: str | None = None
    expiretm: str | None = None
    displayvol: Decimal | None = None
    close_ordertype: str | None = None
    close_price: Decimal | str | None = None
    close_price2: Decimal | str | None = None
    notional: Decimal | None = None
    kind: ClassVar[str] = "place_order"


@dataclass(frozen=True, kw_only=True)
class CancelOrder(Intent):
    """Kraken CancelOrder for each txid / cl_ord_id listed, or by `userref`."""

    txids: tuple[str, ...] = ()
    cl_ord_ids: tuple[str, ...] = ()
    userref: int | None = None
    kind: ClassVar[str] = "cancel_order"


@dataclass(frozen=True, kw_only=True)
class CancelAll(Intent):
    """Cancel every open order on one market (spot CancelAll, futures cancelallorders)."""

    market: str = "spot"
    kind: ClassVar[str] = "cancel_all"


@dataclass(frozen=True, kw_only=True)
class DeadManSwitch(Intent):
    """CancelAllOrdersAfter(timeout seconds); 0 disables it."""

    timeout: int
    kind: ClassVar[str] = "dead_man_switch"


@dataclass(frozen=True, kw_only=True)
class FuturesSendOrder(Intent):
    """Kraken Futures sendorder; `cli_ord_id` is deterministic like `cl_ord_id`."""

    cli_ord_id: str
    symbol: str
    side: str
    order_type: str
    size: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trigger_signal: str | None = None
    reduce_only: bool = False
    notional: Decimal | None = None
    kind: ClassVar[str] = "futures_send_order"


@dataclass(frozen=True, kw_only=True)
class FuturesCancelOrder(Intent):
    """Futures cancelorder for each order_id / cliOrdId listed."""

    order_ids: tuple[str, ...] = ()
    cli_ord_ids: tuple[str, ...] = ()
    kind: ClassVar[str] = "futures_cancel_order"


@dataclass(frozen=True, kw_only=True)
class ReadBalance(Intent):
    """Read account balances (spot Balance) because the core's view is stale."""

    market: str = "spot"
    kind: ClassVar[str] = "read_balance"


@dataclass(frozen=True, kw_only=True)
class Log(Intent):
    level: str
    message: str
    kind: ClassVar[str] = "log"
    awaits_result: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class Notify(Intent):
    channel: str
    message: str
    kind: ClassVar[str] = "notify"
    awaits_result: ClassVar[bool] = False


AnyIntent = (
    PlaceOrder
    | CancelOrder
    | CancelAll
    | DeadManSwitch
    | FuturesSendOrder
    | FuturesCancelOrder
    | ReadBalance
    | Log
    | Notify
)
