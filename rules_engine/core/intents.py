"""Intents: what the core decided to do, fully resolved.

Every value is concrete (Decimals and strings, no expressions), so an executor only maps
an intent onto Kraken's wire format and sends it. An intent that needs its outcome back
(orders, cancels, the dead man's switch, balance reads) is answered by an `ActionResult`
carrying the same `intent_id`; `Log` and `Notify` are fire-and-forget.

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


def _text(value: Decimal | str) -> str:
    """A Decimal in plain notation (`1E+1` -> `10`), a string unchanged."""
    return format(value, "f") if isinstance(value, Decimal) else value


@dataclass(frozen=True, kw_only=True)
class Intent:
    """Common fields: `intent_id` links the ActionResult; `decision_id` is `rule_id#fire_seq`."""

    intent_id: str
    rule_id: str | None
    decision_id: str | None
    kind: ClassVar[str] = "intent"
    awaits_result: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit log (Decimals as strings)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = _text(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(Intent):
    """Kraken Spot AddOrder. `notional` is the estimate the risk check used."""

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

    def kraken_params(self) -> dict[str, str]:
        """AddOrder's parameters as Kraken names them (without nonce)."""
        params = {
            "pair": self.pair,
            "type": self.side,
            "ordertype": self.ordertype,
            "volume": _text(self.volume),
            "cl_ord_id": self.cl_ord_id,
        }
        optional: dict[str, Decimal | str | None] = {
            "price": self.price,
            "price2": self.price2,
            "trigger": self.trigger,
            "leverage": self.leverage,
            "timeinforce": self.timeinforce,
            "starttm": self.starttm,
            "expiretm": self.expiretm,
            "displayvol": self.displayvol,
            "close[ordertype]": self.close_ordertype,
            "close[price]": self.close_price,
            "close[price2]": self.close_price2,
        }
        params.update({k: _text(v) for k, v in optional.items() if v is not None})
        if self.oflags:
            params["oflags"] = ",".join(self.oflags)
        if self.reduce_only:
            params["reduce_only"] = "true"
        return params


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

    def kraken_params(self) -> dict[str, str]:
        """sendorder's parameters as Kraken Futures names them."""
        params = {
            "orderType": self.order_type,
            "symbol": self.symbol,
            "side": self.side,
            "size": _text(self.size),
            "cliOrdId": self.cli_ord_id,
        }
        if self.limit_price is not None:
            params["limitPrice"] = _text(self.limit_price)
        if self.stop_price is not None:
            params["stopPrice"] = _text(self.stop_price)
        if self.trigger_signal is not None:
            params["triggerSignal"] = self.trigger_signal
        if self.reduce_only:
            params["reduceOnly"] = "true"
        return params


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
