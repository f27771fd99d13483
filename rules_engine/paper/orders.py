"""Spot orders as the paper exchange keeps them, and Kraken's `descr.order` text.

An `OrderRequest` is an AddOrder already parsed into types (prices absolute, times as
epoch seconds); `Order` is the live record the exchange mutates as it rests, triggers
and fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Literal

from rules_engine.core.decimals import plain
from rules_engine.pairs import PairInfo
from rules_engine.paper.assets import fmt

Side = Literal["buy", "sell"]

ORDER_TYPES = (
    "market",
    "limit",
    "iceberg",
    "stop-loss",
    "take-profit",
    "stop-loss-limit",
    "take-profit-limit",
    "trailing-stop",
    "trailing-stop-limit",
    "settle-position",
)
# Margin is not simulated, so `settle-position` (closing a margin position) is refused.
SUPPORTED_ORDER_TYPES = frozenset(ORDER_TYPES) - {"settle-position"}
LIMIT_LIKE = frozenset({"limit", "iceberg"})
TRIGGERED = frozenset(
    {"stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit", "trailing-stop", "trailing-stop-limit"}
)
TRAILING = frozenset({"trailing-stop", "trailing-stop-limit"})
WITH_LIMIT_AFTER_TRIGGER = frozenset({"stop-loss-limit", "take-profit-limit", "trailing-stop-limit"})
CLOSE_ORDER_TYPES = frozenset(ORDER_TYPES) - {"market", "settle-position"}
OFLAGS = frozenset({"post", "fcib", "fciq", "nompp", "viqc"})
OPEN_STATUSES = frozenset({"pending", "open"})


@dataclass(frozen=True)
class Offset:
    """A relative price: `+100` (amount) or `+1.5%` (percent of a reference price)."""

    amount: Decimal
    percent: bool = False

    def of(self, reference: Decimal) -> Decimal:
        return reference * self.amount / Decimal(100) if self.percent else self.amount

    def text(self, places: int) -> str:
        sign = "+" if self.amount >= 0 else "-"
        if self.percent:
            return f"{sign}{plain(abs(self.amount))}%"
        return f"{sign}{fmt(abs(self.amount), places)}"


@dataclass(frozen=True)
class CloseSpec:
    """AddOrder's conditional close: placed on the other side when the order fills."""

    ordertype: str
    price: Decimal | None = None
    price2: Decimal | None = None


@dataclass(frozen=True)
class OrderRequest:
    """One AddOrder, typed. `price` is the limit price (limit, iceberg) or the trigger
    price (stop/take-profit types); `price2` the limit price once a *-limit triggers.
    Trailing types carry `trail` (distance from the peak) and, for trailing-stop-limit,
    `trail_limit` (the limit price's offset from the trigger price)."""

    pair: str
    side: Side
    ordertype: str
    volume: Decimal
    price: Decimal | None = None
    price2: Decimal | None = None
    trail: Offset | None = None
    trail_limit: Offset | None = None
    oflags: frozenset[str] = frozenset()
    timeinforce: str = "GTC"
    starttm: float = 0.0
    expiretm: float = 0.0
    userref: int | None = None
    cl_ord_id: str | None = None
    close: CloseSpec | None = None
    displayvol: Decimal | None = None
    reduce_only: bool = False


@dataclass
class Order:
    """An order on the paper exchange (mutable: status, fills, trigger state)."""

    txid: str
    account: str
    pair: str  # altname
    side: Side
    ordertype: str
    volume: Decimal
    opentm: float
    price: Decimal | None = None
    price2: Decimal | None = None
    trail: Offset | None = None
    trail_limit: Offset | None = None
    oflags: tuple[str, ...] = ()
    timeinforce: str = "GTC"
    starttm: float = 0.0
    expiretm: float = 0.0
    userref: int | None = None
    cl_ord_id: str | None = None
    close: CloseSpec | None = None
    displayvol: Decimal | None = None
    status: str = "open"
    resting: bool = False  # on the book: later fills are maker fills at the limit price
    triggered: bool = False
    peak: Decimal | None = None  # trailing types: best price seen since placement
    stopprice: Decimal = Decimal(0)
    limitprice: Decimal = Decimal(0)
    vol_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    hold_asset: str = ""
    hold: Decimal = Decimal(0)
    closetm: float | None = None
    reason: str | None = None
    misc: str = ""
    trades: list[str] = field(default_factory=list)
    parent: str | None = None  # the order whose fill placed this conditional close

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def limit_price(self) -> Decimal | None:
        """The price the order trades at or better, once it is (or acts as) a limit order."""
        if self.ordertype in LIMIT_LIKE:
            return self.price
        if self.triggered and self.ordertype in WITH_LIMIT_AFTER_TRIGGER:
            return self.limitprice
        return None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in _ORDER_FIELDS:  # field by field: nested values are written below, lists copied
            value = getattr(self, name)
            data[name] = str(value) if isinstance(value, Decimal) else value
        data["trades"] = list(self.trades)
        data["trail"] = _offset_json(self.trail)
        data["trail_limit"] = _offset_json(self.trail_limit)
        data["close"] = None if self.close is None else {
            "ordertype": self.close.ordertype,
            "price": _opt_str(self.close.price),
            "price2": _opt_str(self.close.price2),
        }
        data["oflags"] = list(self.oflags)
        data["displayvol"] = _opt_str(self.displayvol)
        data["price"] = _opt_str(self.price)
        data["price2"] = _opt_str(self.price2)
        data["peak"] = _opt_str(self.peak)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        values = dict(data)
        for key in ("volume", "stopprice", "limitprice", "vol_exec", "cost", "fee", "avg_price", "hold"):
            values[key] = Decimal(values[key])
        for key in ("price", "price2", "peak", "displayvol"):
            values[key] = _opt_dec(values.get(key))
        values["trail"] = _offset_from(values.get("trail"))
        values["trail_limit"] = _offset_from(values.get("trail_limit"))
        close = values.get("close")
        values["close"] = None if close is None else CloseSpec(
            close["ordertype"], _opt_dec(close.get("price")), _opt_dec(close.get("price2"))
        )
        values["oflags"] = tuple(values.get("oflags", ()))
        values["trades"] = list(values.get("trades", ()))
        return cls(**values)


_ORDER_FIELDS = tuple(f.name for f in fields(Order))


def _opt_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _offset_json(offset: Offset | None) -> dict[str, Any] | None:
    return None if offset is None else {"amount": str(offset.amount), "percent": offset.percent}


def _offset_from(data: dict[str, Any] | None) -> Offset | None:
    return None if data is None else Offset(Decimal(data["amount"]), bool(data["percent"]))


_WORDS = {
    "stop-loss": "stop loss",
    "take-profit": "take profit",
    "stop-loss-limit": "stop loss",
    "take-profit-limit": "take profit",
    "trailing-stop": "trailing stop",
    "trailing-stop-limit": "trailing stop",
}


def price_text(
    ordertype: str,
    pair: PairInfo,
    price: Decimal | None,
    price2: Decimal | None,
    trail: Offset | None = None,
    trail_limit: Offset | None = None,
) -> str:
    """The part after `@`: `limit 37500.0`, `stop loss 22000.0 -> limit 21000.0`, `market`."""
    places = pair.pair_decimals
    if ordertype == "market":
        return "market"
    if ordertype in LIMIT_LIKE:
        return f"limit {fmt(price, places)}" if price is not None else "limit"
    word = _WORDS.get(ordertype, ordertype)
    first = trail.text(places) if trail is not None else fmt(price or Decimal(0), places)
    text = f"{word} {first}"
    if ordertype in WITH_LIMIT_AFTER_TRIGGER:
        second = trail_limit.text(places) if trail_limit is not None else fmt(price2 or Decimal(0), places)
        text += f" -> limit {second}"
    return text


def describe(order: Order | OrderRequest, pair: PairInfo) -> str:
    """Kraken's `descr.order`, e.g. `buy 1.25000000 XBTUSD @ limit 37500.0`."""
    at = price_text(order.ordertype, pair, order.price, order.price2, order.trail, order.trail_limit)
    return f"{order.side} {fmt(order.volume, pair.lot_decimals)} {pair.altname} @ {at}"


def describe_close(close: CloseSpec | None, pair: PairInfo) -> str:
    """Kraken's `descr.close`, e.g. `close position @ stop loss 22000.0 -> limit 21000.0`."""
    if close is None:
        return ""
    return f"close position @ {price_text(close.ordertype, pair, close.price, close.price2)}"
