"""Kraken AddOrder parameters read into a paper `OrderRequest`, as Kraken reads them.

The simulator's AddOrder/EditOrder and the paper executor both read parameters here, so an
order the engine would send is understood the same way in a dry run and in `rules-engine sim`.
Every refusal is the `ExchangeError` Kraken would answer (`EGeneral:Invalid arguments:price`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.pairs import PairInfo
from rules_engine.paper.assets import quantize
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.exchange import PaperExchange
from rules_engine.paper.orders import TRAILING, CloseSpec, Offset, OrderRequest, Side

MAX_DEADLINE = 60.0


def _invalid(field: str) -> ExchangeError:
    return ExchangeError(f"EGeneral:Invalid arguments:{field}")


# ---------------------------------------------------------------------- parameter reading


def text(params: Mapping[str, Any], key: str) -> str | None:
    """A parameter as the text the client meant (`true` for JSON true, `1.25` for 1.25)."""
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def flag(params: Mapping[str, Any], key: str, default: bool = False) -> bool:
    raw = text(params, key)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _invalid(key)


def number(params: Mapping[str, Any], key: str) -> Decimal | None:
    raw = text(params, key)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _invalid(key) from None
    if not value.is_finite():
        raise _invalid(key)
    return value


def integer(params: Mapping[str, Any], key: str) -> int | None:
    value = number(params, key)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise _invalid(key)
    return int(value)


def _close_param(params: Mapping[str, Any], name: str) -> Any:
    nested = params.get("close")
    if isinstance(nested, Mapping) and name in nested:
        return nested[name]
    return params.get(f"close[{name}]")


def _split(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def iso_seconds(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- AddOrder parsing


def _relative(raw: str) -> tuple[str, Offset] | None:
    """`+5`, `-1.5%`, `#10` -> (sign, offset); None for an absolute price."""
    if not raw or (raw[0] not in "+-#" and not raw.endswith("%")):
        return None
    sign = raw[0] if raw[0] in "+-#" else "+"
    body = raw[1:] if raw[0] in "+-#" else raw
    percent = body.endswith("%")
    try:
        amount = Decimal(body.rstrip("%"))
    except InvalidOperation:
        return None
    return sign, Offset(amount, percent)


def _resolve_price(raw: str, field: str, reference: Decimal | None, toward: int, pair: PairInfo) -> Decimal:
    """An absolute price from AddOrder's `price`/`price2` text. Relative prices move from
    `reference` (the last price; for price2 the trigger price); `#` moves in `toward`."""
    relative = _relative(raw)
    if relative is None:
        try:
            return Decimal(raw)
        except InvalidOperation:
            raise _invalid(field) from None
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


def _time_param(params: Mapping[str, Any], key: str, now: float) -> float:
    raw = text(params, key)
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
    """Read AddOrder's parameters into an `OrderRequest` (prices made absolute)."""
    pair_name = text(params, "pair")
    if not pair_name:
        raise _invalid("pair")
    pair = exchange.pair(pair_name)
    side = _side(text(params, "type"))
    ordertype = text(params, "ordertype") or ""
    volume = number(params, "volume")
    if volume is None:
        raise _invalid("volume")
    leverage = text(params, "leverage")
    if leverage not in (None, "", "none"):
        raise ExchangeError("EOrder:Cannot open position")
    if text(params, "trigger") == "index":
        raise ExchangeError("EGeneral:Invalid arguments:Index unavailable")
    if text(params, "trigger") not in (None, "", "last", "index"):
        raise _invalid("trigger")
    if text(params, "stptype") not in (None, "", "cancel-newest", "cancel-oldest", "cancel-both"):
        raise _invalid("stptype")
    last = exchange.last_price(pair.altname)
    raw_price, raw_price2 = text(params, "price"), text(params, "price2")
    price = price2 = None
    trail = trail_limit = None
    if ordertype in TRAILING:
        relative = _relative(raw_price or "")
        if relative is None or relative[0] != "+":
            raise _invalid("price")
        trail = relative[1]
        if ordertype == "trailing-stop-limit":
            relative2 = _relative(raw_price2 or "")
            if relative2 is None or relative2[0] == "#":
                raise _invalid("price2")
            sign, offset = relative2
            trail_limit = Offset(offset.amount if sign == "+" else -offset.amount, offset.percent)
    else:
        if raw_price:
            price = _resolve_price(raw_price, "price", last, _toward(ordertype, side), pair)
        if raw_price2:
            price2 = _resolve_price(raw_price2, "price2", price, _toward("limit", side), pair)
    oflags = params.get("oflags")
    flags = frozenset(oflags if isinstance(oflags, (list, tuple)) else _split(text(params, "oflags")))
    userref = integer(params, "userref")
    close = None
    close_type = _close_param(params, "ordertype")
    if close_type:
        close = CloseSpec(
            str(close_type),
            _close_price(params, "price"),
            _close_price(params, "price2"),
        )
    return OrderRequest(
        pair=pair.altname,
        side=side,
        ordertype=ordertype,
        volume=volume,
        price=price,
        price2=price2,
        trail=trail,
        trail_limit=trail_limit,
        oflags=flags,
        timeinforce=(text(params, "timeinforce") or "GTC").upper(),
        starttm=_time_param(params, "starttm", now),
        expiretm=_time_param(params, "expiretm", now),
        userref=userref,
        cl_ord_id=text(params, "cl_ord_id") or None,
        close=close,
        displayvol=number(params, "displayvol"),
        reduce_only=flag(params, "reduce_only"),
    )


def _close_price(params: Mapping[str, Any], name: str) -> Decimal | None:
    raw = _close_param(params, name)
    if raw is None or str(raw) == "":
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise _invalid(f"close[{name}]") from None


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


