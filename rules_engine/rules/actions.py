"""Action builders: one small function per action type, registered by name.

Adding an action type means one function here (decorated with `@action_type("name")`), its
definition in `schemas/rules.schema.json`, and its class in `rules_engine.core.model`. Each builder gets
the fields of the action that passed the schema (`BuildContext.fields`) and the names its
expressions may use (those the rule's triggers provide), checks every field it is given, and
returns the model object, or None after reporting what is wrong or when the schema rejected
anything in the action (then some fields are missing).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from rules_engine.core.model import (
    Action,
    CancelAll,
    CancelOrder,
    CheckBalance,
    CloseOrder,
    DeadManSwitch,
    FuturesCancelOrder,
    FuturesSendOrder,
    Log,
    Notify,
    PlaceOrder,
)
from rules_engine.rules.context import BuildContext
from rules_engine.rules.symbols import asset, futures_symbol, spot_pair
from rules_engine.rules.yaml_source import JsonPath

Names = Collection[str]
ActionBuilder = Callable[[BuildContext, JsonPath, Mapping[str, Any], Names], Any]
ACTION_BUILDERS: dict[str, ActionBuilder] = {}

# Kraken: CancelAllOrdersAfter's timeout must be "less than 86400" seconds.
MAX_DEAD_MAN_TIMEOUT = 86400
# Kraken: an iceberg's displayvol is at least 1/15 of its volume.
ICEBERG_MIN_SHARE = 15


def action_type(name: str) -> Callable[[ActionBuilder], ActionBuilder]:
    def register(builder: ActionBuilder) -> ActionBuilder:
        ACTION_BUILDERS[name] = builder
        return builder

    return register


def build_action(ctx: BuildContext, path: JsonPath, raw: Any, names: Names) -> Action | None:
    """Build one action; None when anything in it was reported as an error. Of an action the schema
    rejected, check the fields it accepted (an action whose type it rejected has nothing to check)."""
    before = ctx.error_count()
    fields = ctx.fields(path, raw, nested=("close",))  # a place_order's close order: checked field by field
    builder = ACTION_BUILDERS.get(fields.get("type"))
    if builder is None:
        return None
    condition = ctx.expression(path + ("if",), fields["if"], names) if "if" in fields else None
    action = builder(ctx, path, fields, names)
    if action is None or ctx.error_count() > before:
        return None
    return replace(action, condition=condition, where=ctx.source(path))


def _values(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names, keys: tuple[str, ...], numeric: bool = True) -> dict[str, Any]:
    return {key: ctx.value(path + (key,), raw[key], names, numeric=numeric) for key in keys if key in raw}


def _given(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], key: str, check: Callable[[BuildContext, JsonPath, Any], Any]) -> Any:
    """`check` applied to the value of `key`; None when the field is not given."""
    return check(ctx, path + (key,), raw[key]) if key in raw else None


@action_type("check_balance")
def check_balance(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> CheckBalance | None:
    kraken_asset = _given(ctx, path, raw, "asset", asset)
    values = _values(ctx, path, raw, names, ("minimum",))
    if kraken_asset is None or not ctx.accepts(path):
        return None
    return CheckBalance(asset=kraken_asset, minimum=values["minimum"])


@action_type("place_order")
def place_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> PlaceOrder | None:
    pair = _given(ctx, path, raw, "pair", spot_pair)
    values = _values(ctx, path, raw, names, ("volume", "price", "price2", "displayvol"))
    expire_after = _given(ctx, path, raw, "expire_after", _expire_after)
    volume, displayvol = values.get("volume"), values.get("displayvol")
    if isinstance(volume, Decimal) and isinstance(displayvol, Decimal) and displayvol * ICEBERG_MIN_SHARE < volume:
        ctx.report(path + ("displayvol",), f"displayvol must be at least 1/{ICEBERG_MIN_SHARE} of volume (Kraken's iceberg rule)", code="invalid-value")
    if "userref" in raw:
        ctx.report(
            path + ("userref",),
            "place_order cannot set userref: Kraken refuses userref together with cl_ord_id, and every order "
            "the engine places carries a deterministic cl_ord_id so that no retry or restart can place it twice",
            hint="remove userref; to cancel the orders this rule placed, use cancel_order with own: true",
            code="userref-not-allowed",
        )
    close = _close(ctx, path + ("close",), raw["close"], names) if "close" in raw else None
    if pair is None or not ctx.accepts(path):
        return None
    return PlaceOrder(
        pair=pair,
        side=raw["side"],
        ordertype=raw["ordertype"],
        trigger=raw.get("trigger"),
        leverage=None if "leverage" not in raw else str(raw["leverage"]),
        reduce_only=raw.get("reduce_only", False),
        oflags=tuple(raw.get("oflags", ())),
        timeinforce=raw.get("timeinforce"),
        starttm=None if "starttm" not in raw else str(raw["starttm"]),
        expiretm=None if "expiretm" not in raw else str(raw["expiretm"]),
        close=close,
        expire_after=expire_after,
        **values,
    )


def _expire_after(ctx: BuildContext, path: JsonPath, raw: str) -> float | None:
    expire_after = ctx.duration(path, raw)
    if expire_after is not None and expire_after <= 0:
        ctx.report(path, "expire_after must be longer than 0s", code="invalid-value")
    return expire_after


def _close(ctx: BuildContext, path: JsonPath, raw: Any, names: Names) -> CloseOrder | None:
    fields = ctx.fields(path, raw)
    values = _values(ctx, path, fields, names, ("price", "price2"))
    return CloseOrder(ordertype=fields["ordertype"], **values) if ctx.accepts(path) else None


@action_type("cancel_order")
def cancel_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> CancelOrder | None:
    values = _values(ctx, path, raw, names, ("txid", "cl_ord_id"), numeric=False)
    if not ctx.accepts(path):
        return None
    return CancelOrder(userref=raw.get("userref"), own=raw.get("own", False), **values)


@action_type("cancel_all")
def cancel_all(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> CancelAll | None:
    return CancelAll() if ctx.accepts(path) else None


@action_type("dead_man_switch")
def dead_man_switch(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> DeadManSwitch | None:
    timeout = ctx.duration(path + ("timeout",), raw["timeout"]) if "timeout" in raw else None
    if timeout is None:
        return None
    if timeout != int(timeout) or not 0 <= timeout < MAX_DEAD_MAN_TIMEOUT:
        ctx.report(
            path + ("timeout",),
            "timeout must be whole seconds below 1d (Kraken's limit); 0s disables the switch",
            code="invalid-value",
        )
        return None
    return DeadManSwitch(timeout=timeout) if ctx.accepts(path) else None


@action_type("futures_send_order")
def futures_send_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> FuturesSendOrder | None:
    symbol = _given(ctx, path, raw, "symbol", futures_symbol)
    values = _values(ctx, path, raw, names, ("size", "limit_price", "stop_price"))
    if symbol is None or not ctx.accepts(path):
        return None
    return FuturesSendOrder(
        symbol=symbol,
        side=raw["side"],
        order_type=raw["order_type"],
        trigger_signal=raw.get("trigger_signal"),
        reduce_only=raw.get("reduce_only", False),
        **values,
    )


@action_type("futures_cancel_order")
def futures_cancel_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> FuturesCancelOrder | None:
    values = _values(ctx, path, raw, names, ("order_id", "cli_ord_id"), numeric=False)
    if not ctx.accepts(path):
        return None
    return FuturesCancelOrder(own=raw.get("own", False), **values)


@action_type("log")
def log(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> Log | None:
    message = ctx.template(path + ("message",), raw["message"], names) if "message" in raw else None
    if message is None or not ctx.accepts(path):
        return None
    return Log(message=message, level=raw.get("level", "info"))


@action_type("notify")
def notify(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> Notify | None:
    message = ctx.template(path + ("message",), raw["message"], names) if "message" in raw else None
    if message is None or not ctx.accepts(path):
        return None
    return Notify(message=message, channel=raw.get("channel", "default"))
