"""One encoding of an order: an intent becomes Kraken's exact request here, and only here.

    request = intent_request(intent, deadline="2030-01-02T03:04:05.000Z")
    request.method, request.path     # "AddOrder", "/0/private/AddOrder"
    request.params                   # {"cl_ord_id": ..., "ordertype": "limit", "pair": "XBTUSD", ...}
    request.record()                 # the audit log's `request` record: these very params
    client.place(request)            # SpotClient / FuturesClient send exactly these params

Every mode takes an order's request from `intent_request`: the live executor hands it to
the client, which adds only the nonce (and signs), validate mode the same with
`validate=true`, dry-run/paper decodes it (`decode_add_order`) into the paper exchange, and
the audit `request` record is `request.record()`. The simulator decodes what it receives
over HTTP with the same `decode_add_order` / `decode_send_order`. So what the audit log
says was sent is byte for byte what was sent: the body is `form_body({"nonce": n,
**params})` or `json_body(...)` (see `rules_engine.kraken.params`: canonical order, exact
decimal text).

Decimals are written once, as text, by `rules_engine.core.decimals.plain`
(`Decimal("0.10")` -> `0.10`, `Decimal("1E+1")` -> `10`); a relative price (`+5%`, `#10`,
`-1.5`) is a string and is sent as written. Decoding reads form text and JSON values
alike, and `decode_add_order(encode_add_order(x).params) == x`.

`AddOrder` and `SendOrder` are Kraken's own parameter sets, typed: every parameter the
exchange takes, including those no intent sets (`userref`, `stptype`, `deadline`,
`validate`, trailing-stop settings); `None` means "not sent" (`reduce_only=False` is sent
as `false`, an intent's `reduce_only=False` is not sent). Decoding refuses a malformed value with
`BadParameter(name)`; the simulator turns that into Kraken's own error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from rules_engine.core import intents as it
from rules_engine.core.decimals import plain, plain_or_text
from rules_engine.kraken.params import WireValue, wire_params

SPOT_PRIVATE = "/0/private/"
FUTURES_API = "/derivatives/api/v3/"

Api = Literal["spot", "futures"]


class BadParameter(ValueError):
    """A parameter that is missing (`missing=True`) or cannot be read."""

    def __init__(self, name: str, *, missing: bool = False):
        super().__init__(f"{'missing' if missing else 'invalid'} parameter {name}")
        self.name = name
        self.missing = missing


# ---------------------------------------------------------------------- requests


@dataclass(frozen=True)
class KrakenRequest:
    """One Kraken call as it is sent, without nonce, key or signature (the client adds
    those at send time). `params` are wire values in canonical order. A request that
    stands for several calls of one method (a CancelOrder listing several orders) has
    `calls` (one parameter set per call) and empty `params`."""

    api: Api
    method: str
    params: Mapping[str, WireValue]
    calls: tuple[Mapping[str, WireValue], ...] | None = None

    @property
    def path(self) -> str:
        return (SPOT_PRIVATE if self.api == "spot" else FUTURES_API) + self.method

    def record(self) -> dict[str, Any]:
        """The audit log's form: `{"api", "method", "path", "params"}` (or `"calls"`)."""
        out: dict[str, Any] = {"api": self.api, "method": self.method, "path": self.path}
        if self.calls is None:
            out["params"] = _plain_dict(self.params)
        else:
            out["calls"] = [_plain_dict(c) for c in self.calls]
        return out


def _plain_dict(params: Mapping[str, WireValue]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in params.items()}


def spot_request(method: str, params: Mapping[str, Any] | None = None) -> KrakenRequest:
    return KrakenRequest("spot", method, wire_params(params or {}))


def futures_request(endpoint: str, params: Mapping[str, Any] | None = None) -> KrakenRequest:
    return KrakenRequest("futures", endpoint, wire_params(params or {}))


def _batch(api: Api, method: str, calls: Sequence[Mapping[str, Any]]) -> KrakenRequest:
    return KrakenRequest(api, method, {}, tuple(wire_params(c) for c in calls))


# ---------------------------------------------------------------------- reading parameters


def param_text(params: Mapping[str, Any], name: str) -> str | None:
    """A parameter as the text the client meant (`true` for JSON true, `1.25` for 1.25)."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def param_flag(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    raw = param_text(params, name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadParameter(name)


def _decimal(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadParameter(name) from None
    if not value.is_finite():
        raise BadParameter(name)
    return value


def _optional_flag(params: Mapping[str, Any], name: str) -> bool | None:
    """A boolean parameter, or None when it is not sent (Kraken's default applies)."""
    return None if param_text(params, name) in (None, "") else param_flag(params, name)


@overload
def param_decimal(params: Mapping[str, Any], name: str, *, required: Literal[True]) -> Decimal: ...
@overload
def param_decimal(params: Mapping[str, Any], name: str, *, required: bool = False) -> Decimal | None: ...
def param_decimal(params: Mapping[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    raw = param_text(params, name)
    if raw is None or raw == "":
        if required:
            raise BadParameter(name, missing=True)
        return None
    return _decimal(raw, name)


def param_int(params: Mapping[str, Any], name: str) -> int | None:
    value = param_decimal(params, name)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise BadParameter(name)
    return int(value)


def param_list(params: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A comma-separated list (a JSON list too): `post,fciq` -> ("post", "fciq")."""
    value = params.get(name)
    parts = value if isinstance(value, (list, tuple)) else (param_text(params, name) or "").split(",")
    return tuple(p for p in (str(v).strip() for v in parts) if p)


def is_relative(text: str) -> bool:
    """`+5`, `-1.5%`, `#10`, `2%`: a price relative to the market (or to the trigger)."""
    return bool(text) and (text[0] in "+-#" or text.endswith("%"))


def _price(params: Mapping[str, Any], name: str) -> Decimal | str | None:
    """An absolute price as a Decimal; a relative price as its text."""
    raw = param_text(params, name)
    if raw is None or raw == "":
        return None
    return raw if is_relative(raw) else _decimal(raw, name)


def _price_text(value: Decimal | str | None) -> str | None:
    return None if value is None else plain_or_text(value)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


# ---------------------------------------------------------------------- Spot AddOrder


@dataclass(frozen=True)
class AddOrder:
    """Kraken Spot AddOrder's parameters, typed (`side` is Kraken's `type`). A `str` price
    is relative (`+5%`, `#10`) and sent as written; a Decimal is sent with its digits."""

    pair: str
    side: str
    ordertype: str
    volume: Decimal
    price: Decimal | str | None = None
    price2: Decimal | str | None = None
    trigger: str | None = None
    leverage: str | None = None
    reduce_only: bool | None = None
    stptype: str | None = None
    oflags: tuple[str, ...] = ()
    timeinforce: str | None = None
    starttm: str | None = None
    expiretm: str | None = None
    displayvol: Decimal | None = None
    asset_class: str | None = None
    close_ordertype: str | None = None
    close_price: Decimal | str | None = None
    close_price2: Decimal | str | None = None
    deadline: str | None = None
    validate: bool = False
    userref: int | None = None
    cl_ord_id: str | None = None


def encode_add_order(order: AddOrder) -> KrakenRequest:
    """AddOrder's request: every set parameter, as Kraken names and writes it."""
    close = {
        "ordertype": order.close_ordertype,
        "price": _price_text(order.close_price),
        "price2": _price_text(order.close_price2),
    }
    params = {
        "pair": order.pair,
        "type": order.side,
        "ordertype": order.ordertype,
        "volume": plain(order.volume),
        "price": _price_text(order.price),
        "price2": _price_text(order.price2),
        "trigger": order.trigger,
        "leverage": order.leverage,
        "reduce_only": order.reduce_only,
        "stptype": order.stptype,
        "oflags": ",".join(order.oflags) or None,
        "timeinforce": order.timeinforce,
        "starttm": order.starttm,
        "expiretm": order.expiretm,
        "displayvol": _text(order.displayvol),
        "asset_class": order.asset_class,
        "close": close,
        "deadline": order.deadline,
        "validate": True if order.validate else None,
        "userref": order.userref,
        "cl_ord_id": order.cl_ord_id,
    }
    return spot_request("AddOrder", params)


def _close_param(params: Mapping[str, Any], name: str) -> Any:
    nested = params.get("close")
    if isinstance(nested, Mapping):
        return nested.get(name)
    return params.get(f"close[{name}]")


def decode_add_order(params: Mapping[str, Any]) -> AddOrder:
    """AddOrder's parameters (a form's text, or JSON values) read back into an `AddOrder`."""
    pair = param_text(params, "pair")
    if not pair:
        raise BadParameter("pair", missing=True)
    side = param_text(params, "type")
    if side not in ("buy", "sell"):
        raise BadParameter("type", missing=side is None)
    close = {name: _close_param(params, name) for name in ("ordertype", "price", "price2")}
    try:
        close_price, close_price2 = _price(close, "price"), _price(close, "price2")
    except BadParameter as exc:
        raise BadParameter(f"close[{exc.name}]") from None
    return AddOrder(
        pair=pair,
        side=side,
        ordertype=param_text(params, "ordertype") or "",
        volume=param_decimal(params, "volume", required=True),
        price=_price(params, "price"),
        price2=_price(params, "price2"),
        trigger=param_text(params, "trigger"),
        leverage=param_text(params, "leverage"),
        reduce_only=_optional_flag(params, "reduce_only"),
        stptype=param_text(params, "stptype"),
        oflags=param_list(params, "oflags"),
        timeinforce=param_text(params, "timeinforce"),
        starttm=param_text(params, "starttm"),
        expiretm=param_text(params, "expiretm"),
        displayvol=param_decimal(params, "displayvol"),
        asset_class=param_text(params, "asset_class"),
        close_ordertype=param_text(close, "ordertype") or None,
        close_price=close_price,
        close_price2=close_price2,
        deadline=param_text(params, "deadline"),
        validate=param_flag(params, "validate"),
        userref=param_int(params, "userref"),
        cl_ord_id=param_text(params, "cl_ord_id") or None,
    )


def add_order_of(intent: it.PlaceOrder, *, deadline: str | None = None, validate: bool = False) -> AddOrder:
    """The AddOrder a `PlaceOrder` intent stands for (`deadline` as RFC 3339 text)."""
    return AddOrder(
        pair=intent.pair,
        side=intent.side,
        ordertype=intent.ordertype,
        volume=intent.volume,
        price=intent.price,
        price2=intent.price2,
        trigger=intent.trigger,
        leverage=intent.leverage,
        reduce_only=True if intent.reduce_only else None,
        oflags=tuple(intent.oflags),
        timeinforce=intent.timeinforce,
        starttm=intent.starttm,
        expiretm=intent.expiretm,
        displayvol=intent.displayvol,
        close_ordertype=intent.close_ordertype,
        close_price=intent.close_price,
        close_price2=intent.close_price2,
        deadline=deadline,
        validate=validate,
        cl_ord_id=intent.cl_ord_id,
    )


# ---------------------------------------------------------------------- Futures sendorder


@dataclass(frozen=True)
class SendOrder:
    """Kraken Futures sendorder's parameters, typed (`processBefore` as RFC 3339 text)."""

    order_type: str
    symbol: str
    side: str
    size: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    cli_ord_id: str | None = None
    trigger_signal: str | None = None
    reduce_only: bool | None = None
    trailing_stop_max_deviation: Decimal | None = None
    trailing_stop_deviation_unit: str | None = None
    limit_price_offset_value: Decimal | None = None
    limit_price_offset_unit: str | None = None
    process_before: str | None = None
    broker: str | None = None


def encode_send_order(order: SendOrder) -> KrakenRequest:
    params = {
        "orderType": order.order_type,
        "symbol": order.symbol,
        "side": order.side,
        "size": plain(order.size),
        "limitPrice": _text(order.limit_price),
        "stopPrice": _text(order.stop_price),
        "cliOrdId": order.cli_ord_id,
        "triggerSignal": order.trigger_signal,
        "reduceOnly": order.reduce_only,
        "trailingStopMaxDeviation": _text(order.trailing_stop_max_deviation),
        "trailingStopDeviationUnit": order.trailing_stop_deviation_unit,
        "limitPriceOffsetValue": _text(order.limit_price_offset_value),
        "limitPriceOffsetUnit": order.limit_price_offset_unit,
        "processBefore": order.process_before,
        "broker": order.broker,
    }
    return futures_request("sendorder", params)


def decode_send_order(params: Mapping[str, Any]) -> SendOrder:
    """sendorder's parameters read back into a `SendOrder`."""
    required = {}
    for name in ("orderType", "symbol", "side"):
        value = param_text(params, name)
        if not value:
            raise BadParameter(name, missing=True)
        required[name] = value
    return SendOrder(
        order_type=required["orderType"],
        symbol=required["symbol"],
        side=required["side"],
        size=param_decimal(params, "size", required=True),
        limit_price=param_decimal(params, "limitPrice"),
        stop_price=param_decimal(params, "stopPrice"),
        cli_ord_id=param_text(params, "cliOrdId") or None,
        trigger_signal=param_text(params, "triggerSignal"),
        reduce_only=_optional_flag(params, "reduceOnly"),
        trailing_stop_max_deviation=param_decimal(params, "trailingStopMaxDeviation"),
        trailing_stop_deviation_unit=param_text(params, "trailingStopDeviationUnit"),
        limit_price_offset_value=param_decimal(params, "limitPriceOffsetValue"),
        limit_price_offset_unit=param_text(params, "limitPriceOffsetUnit"),
        process_before=param_text(params, "processBefore"),
        broker=param_text(params, "broker"),
    )


def send_order_of(intent: it.FuturesSendOrder, *, process_before: str | None = None) -> SendOrder:
    """The sendorder a `FuturesSendOrder` intent stands for."""
    return SendOrder(
        order_type=intent.order_type,
        symbol=intent.symbol,
        side=intent.side,
        size=intent.size,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        cli_ord_id=intent.cli_ord_id,
        trigger_signal=intent.trigger_signal,
        reduce_only=True if intent.reduce_only else None,
        process_before=process_before,
    )


# ---------------------------------------------------------------------- intents


def cancel_targets(intent: it.CancelOrder) -> list[dict[str, str]]:
    """CancelOrder's parameter sets: one per txid, cl_ord_id and the userref."""
    targets = [{"txid": t} for t in intent.txids] + [{"cl_ord_id": c} for c in intent.cl_ord_ids]
    if intent.userref is not None:
        targets.append({"txid": str(intent.userref)})  # Kraken reads an integer txid as a userref
    return targets


def futures_cancel_targets(intent: it.FuturesCancelOrder) -> list[dict[str, str]]:
    return [{"order_id": o} for o in intent.order_ids] + [{"cliOrdId": c} for c in intent.cli_ord_ids]


def intent_request(intent: it.Intent, *, deadline: str | None = None, validate: bool = False) -> KrakenRequest | None:
    """The request(s) an intent maps to; None for local actions (log, notify).

    `deadline` (RFC 3339) bounds an order: AddOrder's `deadline`, sendorder's
    `processBefore`. `validate` makes AddOrder validate-only.
    """
    if isinstance(intent, it.PlaceOrder):
        return encode_add_order(add_order_of(intent, deadline=deadline, validate=validate))
    if isinstance(intent, it.FuturesSendOrder):
        return encode_send_order(send_order_of(intent, process_before=deadline))
    if isinstance(intent, it.CancelOrder):
        return _batch("spot", "CancelOrder", cancel_targets(intent))
    if isinstance(intent, it.FuturesCancelOrder):
        return _batch("futures", "cancelorder", futures_cancel_targets(intent))
    if isinstance(intent, it.CancelAll):
        return futures_request("cancelallorders") if intent.market == "futures" else spot_request("CancelAll")
    if isinstance(intent, it.DeadManSwitch):
        return spot_request("CancelAllOrdersAfter", {"timeout": intent.timeout})
    if isinstance(intent, it.ReadBalance):
        return futures_request("accounts") if intent.market == "futures" else spot_request("Balance")
    return None
