"""Kraken AddOrder parameters read into a paper `OrderRequest`, as Kraken reads them.

The simulator's AddOrder and the paper executor both read parameters here, decoded by
`kraken.order_codec` (the one encoding of an order), so an order the engine would send is
understood the same way in a dry run and in `rules-engine sim`.
Every refusal is the `ExchangeError` Kraken would answer (`EGeneral:Invalid arguments:price`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.kraken import order_codec as codec
from rules_engine.kraken.order_codec import AddOrder, BadParameter, decode_add_order
from rules_engine.pairs import PairInfo
from rules_engine.paper.assets import quantize
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.exchange import PaperExchange
from rules_engine.paper.orders import TRAILING, CloseSpec, Offset, OrderRequest, Side

MAX_DEADLINE = 60.0


def _invalid(field: str) -> ExchangeError:
    return ExchangeError(f"EGeneral:Invalid arguments:{field}")


# ---------------------------------------------------------------------- parameter reading
# The codec's readers, with a malformed value refused as Kraken refuses it.


def text(params: Mapping[str, Any], key: str) -> str | None:
    """A parameter as the text the client meant (`true` for JSON true, `1.25` for 1.25)."""
    return codec.param_text(params, key)


def flag(params: Mapping[str, Any], key: str, default: bool = False) -> bool:
    try:
        return codec.param_flag(params, key, default)
    except BadParameter as exc:
        raise _invalid(exc.name) from None


def number(params: Mapping[str, Any], key: str) -> Decimal | None:
    try:
        return codec.param_decimal(params, key)
    except BadParameter as exc:
        raise _invalid(exc.name) from None


def integer(params: Mapping[str, Any], key: str) -> int | None:
    try:
        return codec.param_int(params, key)
    except BadParameter as exc:
        raise _invalid(exc.name) from None


def _split(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def iso_seconds(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- AddOrder parsing


def _relative(raw: str) -> tuple[str, Offset] | None:
    """`+5`, `-1.5%`, `#10` -> (sign, offset); None for an absolute price."""
    if not codec.is_relative(raw):
        return None
    sign = raw[0] if raw[0] in "+-#" else "+"
    body = raw[1:] if raw[0] in "+-#" else raw
    percent = body.endswith("%")
    try:
        amount = Decimal(body.rstrip("%"))
    except InvalidOperation:
        return None
    return sign, Offset(amount, percent)


def _resolve_price(raw: Decimal | str, field: str, reference: Decimal | None, toward: int,
                   pair: PairInfo) -> Decimal:
    """An absolute price from AddOrder's `price`/`price2`. Relative prices move from
    `reference` (the last price; for price2 the trigger price); `#` moves in `toward`."""
    if isinstance(raw, Decimal):
        return raw
    relative = _relative(raw)
    if relative is None:
        raise _invalid(field)
    if reference is None:
        raise ExchangeError("EService:Unavailable")
    sign, offset = relative
    direction = {"+": 1, "-": -1, "#": toward}[sign]
    return quantize(reference + direction * offset.of(reference), pair.pair_decimals)


def _toward(ordertype: str, side: str) -> int:
    """The direction `#` means: away from the market for limits and take-profits, toward
    it for stop-losses."""
    below = (side == "buy") != ordertype.startswith("stop-loss")
    return -1 if below else 1


def _time_param(raw: str | None, key: str, now: float) -> float:
    if raw is None or raw in ("", "0"):
        return 0.0
    try:
        return now + float(raw[1:]) if raw.startswith("+") else float(raw)
    except ValueError:
        raise _invalid(key) from None


def _side(raw: str | None) -> Side:
    if raw == "buy":
        return "buy"
    if raw == "sell":
        return "sell"
    raise _invalid("type")


def parse_add_order(params: Mapping[str, Any], exchange: PaperExchange, now: float) -> OrderRequest:
    """Read AddOrder's parameters (decoded by `kraken.order_codec`, the one encoding of an
    order) into an `OrderRequest`, prices made absolute."""
    try:
        order = decode_add_order(params)
    except BadParameter as exc:
        raise _invalid(exc.name) from None
    return order_request(order, exchange, now)


def order_request(order: AddOrder, exchange: PaperExchange, now: float) -> OrderRequest:
    """An `OrderRequest` for a decoded AddOrder, checked as Kraken checks it."""
    pair = exchange.pair(order.pair)
    side, ordertype = _side(order.side), order.ordertype  # decode_add_order has checked the side already
    if order.leverage not in (None, "", "none"):
        raise ExchangeError("EOrder:Cannot open position")
    if order.trigger == "index":
        raise ExchangeError("EGeneral:Invalid arguments:Index unavailable")
    if order.trigger not in (None, "", "last"):
        raise _invalid("trigger")
    if order.stptype not in (None, "", "cancel-newest", "cancel-oldest", "cancel-both"):
        raise _invalid("stptype")
    price = price2 = None
    trail = trail_limit = None
    if ordertype in TRAILING:
        relative = _relative(order.price) if isinstance(order.price, str) else None
        if relative is None or relative[0] != "+":
            raise _invalid("price")
        trail = relative[1]
        if ordertype == "trailing-stop-limit":
            relative2 = _relative(order.price2) if isinstance(order.price2, str) else None
            if relative2 is None or relative2[0] == "#":
                raise _invalid("price2")
            sign, offset = relative2
            trail_limit = Offset(offset.amount if sign == "+" else -offset.amount, offset.percent)
    else:
        if order.price is not None:
            last = exchange.last_price(pair.altname)
            price = _resolve_price(order.price, "price", last, _toward(ordertype, side), pair)
        if order.price2 is not None:
            price2 = _resolve_price(order.price2, "price2", price, _toward("limit", side), pair)
    close = None
    if order.close_ordertype:
        close = CloseSpec(
            order.close_ordertype,
            _close_price(order.close_price, "price"),
            _close_price(order.close_price2, "price2"),
        )
    return OrderRequest(
        pair=pair.altname,
        side=side,
        ordertype=ordertype,
        volume=order.volume,
        price=price,
        price2=price2,
        trail=trail,
        trail_limit=trail_limit,
        oflags=frozenset(order.oflags),
        timeinforce=(order.timeinforce or "GTC").upper(),
        starttm=_time_param(order.starttm, "starttm", now),
        expiretm=_time_param(order.expiretm, "expiretm", now),
        userref=order.userref,
        cl_ord_id=order.cl_ord_id,
        close=close,
        displayvol=order.displayvol,
        reduce_only=bool(order.reduce_only),
    )


def _close_price(value: Decimal | str | None, name: str) -> Decimal | None:
    """A conditional close's price: absolute only (the paper exchange has no relative ones)."""
    if value is None or isinstance(value, Decimal):
        return value
    raise _invalid(f"close[{name}]")


def check_deadline(params: Mapping[str, Any], now: float) -> None:
    raw = text(params, "deadline")
    if not raw:
        return
    try:
        deadline = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _invalid("deadline") from None
    if deadline <= now:
        raise ExchangeError("EService:Deadline elapsed")
    if deadline > now + MAX_DEADLINE:
        raise _invalid("deadline")
