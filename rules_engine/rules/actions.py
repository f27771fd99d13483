"""Action builders: one small function per action type, registered by name.

Adding an action type means one function here (decorated with `@action_type("name")`), its
definition in `schemas/rules.schema.json`, and its class in `rules_engine.model`. Each builder gets
the schema-valid mapping and the names its expressions may use (those the rule's triggers
provide), and returns the model object (or None after reporting what is wrong).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable, Collection, Mapping

from rules_engine.model import (
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


def build_action(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> Action | None:
    """Build one action; None when anything in it was reported as an error."""
    before = ctx.error_count()
    condition = ctx.expression(path + ("if",), raw["if"], names) if "if" in raw else None
    action = ACTION_BUILDERS[raw["type"]](ctx, path, raw, names)
    if action is None or ctx.error_count() > before:
        return None
    return replace(action, condition=condition, where=ctx.source(path))


def _values(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names, keys: tuple[str, ...], numeric: bool = True) -> dict[str, Any]:
    return {key: ctx.value(path + (key,), raw[key], names, numeric=numeric) for key in keys if key in raw}


@action_type("check_balance")
def check_balance(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> CheckBalance | None:
    kraken_asset = asset(ctx, path + ("asset",), raw["asset"])
    minimum = ctx.value(path + ("minimum",), raw["minimum"], names)
    return None if kraken_asset is None else CheckBalance(asset=kraken_asset, minimum=minimum)


@action_type("place_order")
def place_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> PlaceOrder | None:
    pair = spot_pair(ctx, path + ("pair",), raw["pair"])
    values = _values(ctx, path, raw, names, ("volume", "price", "price2", "displayvol"))
    expire_after = ctx.duration(path + ("expire_after",), raw["expire_after"]) if "expire_after" in raw else None
    if expire_after is not None and expire_after <= 0:
        ctx.report(path + ("expire_after",), "expire_after must be longer than 0s", code="invalid-value")
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
    close = None
    if "close" in raw:
        close_path = path + ("close",)
        close = CloseOrder(ordertype=raw["close"]["ordertype"], **_values(ctx, close_path, raw["close"], names, ("price", "price2")))
    if pair is None:
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


@action_type("cancel_order")
def cancel_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> CancelOrder:
    values = _values(ctx, path, raw, names, ("txid", "cl_ord_id"), numeric=False)
    return CancelOrder(userref=raw.get("userref"), own=raw.get("own", False), **values)


@action_type("cancel_all")
def cancel_all(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> CancelAll:
    return CancelAll()


@action_type("dead_man_switch")
def dead_man_switch(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> DeadManSwitch | None:
    timeout = ctx.duration(path + ("timeout",), raw["timeout"])
    if timeout is None:
        return None
    if timeout != int(timeout) or not 0 <= timeout < MAX_DEAD_MAN_TIMEOUT:
        ctx.report(
            path + ("timeout",),
            "timeout must be whole seconds below 1d (Kraken's limit); 0s disables the switch",
            code="invalid-value",
        )
        return None
    return DeadManSwitch(timeout=timeout)


@action_type("futures_send_order")
def futures_send_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> FuturesSendOrder | None:
    symbol = futures_symbol(ctx, path + ("symbol",), raw["symbol"])
    values = _values(ctx, path, raw, names, ("size", "limit_price", "stop_price"))
    if symbol is None:
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
def futures_cancel_order(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> FuturesCancelOrder:
    values = _values(ctx, path, raw, names, ("order_id", "cli_ord_id"), numeric=False)
    return FuturesCancelOrder(own=raw.get("own", False), **values)


@action_type("log")
def log(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> Log | None:
    message = ctx.template(path + ("message",), raw["message"], names)
    return None if message is None else Log(message=message, level=raw.get("level", "info"))


@action_type("notify")
def notify(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names) -> Notify | None:
    message = ctx.template(path + ("message",), raw["message"], names)
    return None if message is None else Notify(message=message, channel=raw.get("channel", "default"))
