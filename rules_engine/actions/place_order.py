"""The `place_order` action: Kraken Spot AddOrder; the fields are Kraken's parameters.

    - type: place_order
      pair: BTC/USD            # any Kraken name (stored as the altname, XBTUSD)
      side: buy
      ordertype: limit
      volume: 0.01             # a number, or an =expression
      price: "=round(ask * 1.001, 1)"
      close: {ordertype: stop-loss, price: "=round(ask * 0.98, 1)"}
      expire_after: 10m        # becomes timeinforce GTD with an absolute expiretm

Every order carries a deterministic `cl_ord_id` (so no retry or restart can place it twice),
is checked against the risk limits just before it leaves, and is tracked until its result
arrives (risk limits, `cancel_order: {own: true}`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

from rules_engine.actions._fields import given, values
from rules_engine.actions._order_literals import check_literals
from rules_engine.core.intents import PlaceOrder
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Value
from rules_engine.core.runs import ActionRun, Halt
from rules_engine.paper.orders import ORDER_TYPES
from rules_engine.registry import ActionType, Needs
from rules_engine.rules.context import BuildContext
from rules_engine.rules.symbols import spot_pair
from rules_engine.rules.yaml_source import JsonPath

# Kraken: an iceberg's displayvol is at least 1/15 of its volume.
ICEBERG_MIN_SHARE = 15

SCHEMA: dict[str, Any] = {
    "title": "place_order action",
    "description": "Kraken Spot AddOrder; fields are Kraken's parameters.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "pair", "side", "ordertype", "volume"],
    "properties": {
        "type": {"const": "place_order"},
        "if": {"$ref": "#/$defs/expression"},
        "pair": {
            "description": "Any Kraken name of the pair: XBTUSD, XBT/USD or BTC/USD.",
            "type": "string",
            "minLength": 1,
        },
        "side": {"$ref": "#/$defs/side"},
        "ordertype": {"enum": list(ORDER_TYPES)},
        "volume": {"description": "Order quantity in the base asset.", "$ref": "#/$defs/amount"},
        "price": {
            "description": "Limit price, or trigger price for stop, take-profit and trailing orders.",
            "$ref": "#/$defs/price",
        },
        "price2": {
            "description": (
                "Limit price of stop-loss-limit, take-profit-limit and trailing-stop-limit orders."
            ),
            "$ref": "#/$defs/price",
        },
        "displayvol": {
            "description": "Visible quantity of an iceberg order (at least 1/15 of volume).",
            "$ref": "#/$defs/amount",
        },
        "trigger": {
            "description": "Price signal for stop and take-profit orders.",
            "enum": ["last", "index"],
        },
        "leverage": {
            "description": "\"none\", or the leverage such as 2 or \"5:1\".",
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": "^(none|[1-9][0-9]*(:1)?)$"},
            ],
            "errorMessage": "leverage is \"none\", a whole number such as 2, or \"5:1\"",
        },
        "reduce_only": {"type": "boolean"},
        "oflags": {
            "description": "Order flags: post, fcib, fciq, nompp, viqc.",
            "type": "array",
            "uniqueItems": True,
            "items": {"enum": ["post", "fcib", "fciq", "nompp", "viqc"]},
            "errorMessage": "write oflags as a list, e.g. [post, fciq]",
        },
        "timeinforce": {"enum": ["GTC", "IOC", "GTD"]},
        "starttm": {"$ref": "#/$defs/kraken_time"},
        "expiretm": {"$ref": "#/$defs/kraken_time"},
        "close": {"$ref": "#/$defs/close_order"},
        "userref": {
            "description": (
                "Not allowed: Kraken refuses userref with cl_ord_id, and the engine always sends a "
                "deterministic cl_ord_id. The loader explains this."
            ),
            "type": "integer",
        },
        "expire_after": {
            "description": "The engine cancels the order if it is still open after this long.",
            "$ref": "#/$defs/duration",
        },
    },
    "allOf": [
        {
            "if": {
                "properties": {
                    "ordertype": {
                        "enum": [
                            "limit",
                            "iceberg",
                            "stop-loss",
                            "take-profit",
                            "trailing-stop",
                            "stop-loss-limit",
                            "take-profit-limit",
                            "trailing-stop-limit",
                        ],
                    },
                },
                "required": ["ordertype"],
            },
            "then": {
                "required": ["price"],
                "errorMessage": "limit, iceberg, stop, take-profit and trailing orders need price:",
            },
        },
        {
            "if": {
                "properties": {
                    "ordertype": {"enum": ["stop-loss-limit", "take-profit-limit", "trailing-stop-limit"]},
                },
                "required": ["ordertype"],
            },
            "then": {
                "required": ["price2"],
                "errorMessage": (
                    "stop-loss-limit, take-profit-limit and trailing-stop-limit orders need price2: (the "
                    "limit price)"
                ),
            },
            "else": {
                "properties": {
                    "price2": {
                        "not": {},
                        "errorMessage": (
                            "price2 applies only to stop-loss-limit, take-profit-limit and "
                            "trailing-stop-limit orders"
                        ),
                    },
                },
            },
        },
        {
            "if": {
                "properties": {"ordertype": {"enum": ["market", "settle-position"]}},
                "required": ["ordertype"],
            },
            "then": {
                "properties": {
                    "price": {
                        "not": {},
                        "errorMessage": "market and settle-position orders take no price",
                    },
                },
            },
        },
        {
            "if": {
                "properties": {"ordertype": {"enum": ["trailing-stop", "trailing-stop-limit"]}},
                "required": ["ordertype"],
            },
            "then": {
                "properties": {
                    "price": {
                        "type": "string",
                        "pattern": "^[+=]",
                        "errorMessage": (
                            "a trailing stop's price is an offset with a + prefix, e.g. \"+50\" or "
                            "\"+1.5%\""
                        ),
                    },
                },
            },
        },
        {
            "if": {"properties": {"ordertype": {"const": "iceberg"}}, "required": ["ordertype"]},
            "then": {"required": ["displayvol"], "errorMessage": "an iceberg order needs displayvol:"},
            "else": {
                "properties": {
                    "displayvol": {"not": {}, "errorMessage": "displayvol applies only to iceberg orders"},
                },
            },
        },
        {
            "if": {"properties": {"timeinforce": {"const": "GTD"}}, "required": ["timeinforce"]},
            "then": {"required": ["expiretm"], "errorMessage": "timeinforce GTD needs expiretm:"},
        },
        {
            "if": {
                "properties": {"oflags": {"type": "array", "contains": {"const": "post"}}},
                "required": ["oflags"],
            },
            "then": {
                "properties": {
                    "ordertype": {"const": "limit", "errorMessage": "the post flag needs ordertype limit"},
                },
            },
        },
        {
            "if": {
                "properties": {"oflags": {"type": "array", "contains": {"const": "viqc"}}},
                "required": ["oflags"],
            },
            "then": {
                "properties": {
                    "ordertype": {
                        "const": "market",
                        "errorMessage": "the viqc flag is for buy market orders only",
                    },
                    "side": {
                        "const": "buy",
                        "errorMessage": "the viqc flag is for buy market orders only",
                    },
                },
            },
        },
        {
            "properties": {
                "oflags": {
                    "not": {
                        "type": "array",
                        "allOf": [{"contains": {"const": "fcib"}}, {"contains": {"const": "fciq"}}],
                    },
                    "errorMessage": "fcib and fciq exclude each other",
                },
            },
        },
    ],
}

SCHEMA_DEFS: dict[str, dict[str, Any]] = {
    "kraken_time": {
        "description": "Kraken's time form: 0 (now / none), a unix time, or \"+<seconds>\" from now.",
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^\\+?[0-9]+$"}],
        "errorMessage": "expected 0, a unix time, or \"+<seconds>\" from now",
    },
    "close_order": {
        "title": "close",
        "description": (
            "A conditional close order placed when this order fills (Kraken's close[ordertype], close[price], "
            "close[price2])."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["ordertype"],
        "properties": {
            "ordertype": {
                "enum": [
                    "limit",
                    "iceberg",
                    "stop-loss",
                    "take-profit",
                    "stop-loss-limit",
                    "take-profit-limit",
                    "trailing-stop",
                    "trailing-stop-limit",
                ],
            },
            "price": {"$ref": "#/$defs/price"},
            "price2": {"$ref": "#/$defs/price"},
        },
        "allOf": [
            {"required": ["price"], "errorMessage": "a close order needs price:"},
            {
                "if": {
                    "properties": {
                        "ordertype": {"enum": ["stop-loss-limit", "take-profit-limit", "trailing-stop-limit"]},
                    },
                    "required": ["ordertype"],
                },
                "then": {
                    "required": ["price2"],
                    "errorMessage": (
                        "stop-loss-limit, take-profit-limit and trailing-stop-limit close orders need price2: "
                        "(the limit price)"
                    ),
                },
                "else": {
                    "properties": {
                        "price2": {
                            "not": {},
                            "errorMessage": (
                                "price2 applies only to stop-loss-limit, take-profit-limit and "
                                "trailing-stop-limit close orders"
                            ),
                        },
                    },
                },
            },
        ],
    },
}


@dataclass(frozen=True)
class CloseOrder:
    """AddOrder's conditional close (`close[ordertype]`, `close[price]`, `close[price2]`)."""

    ordertype: str
    price: Value = None
    price2: Value = None


@dataclass(frozen=True)
class PlaceOrderAction(ActionSpec):
    """Kraken Spot AddOrder. Field names follow Kraken's parameters."""

    pair: str
    side: Literal["buy", "sell"]
    ordertype: str
    volume: Value
    price: Value = None
    price2: Value = None
    trigger: Literal["last", "index"] | None = None
    leverage: str | None = None
    reduce_only: bool = False
    oflags: tuple[str, ...] = ()
    timeinforce: Literal["GTC", "IOC", "GTD"] | None = None
    starttm: str | None = None
    expiretm: str | None = None
    displayvol: Value = None
    close: CloseOrder | None = None
    expire_after: float | None = None
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["place_order"] = "place_order"
    order_market: ClassVar[str | None] = "spot"
    places_orders: ClassVar[bool] = True

    def run(self, run: ActionRun) -> str:
        volume = run.decimal(self.volume, "volume")
        if volume < 0 or (volume == 0 and self.leverage is None):
            raise Halt("error", f"volume must be positive, got {volume}", volume=volume)
        price = run.price(self.price, "price")
        price2 = run.price(self.price2, "price2")
        displayvol = None if self.displayvol is None else run.decimal(self.displayvol, "displayvol")
        close = self.close
        timeinforce, expiretm = self.timeinforce, self.expiretm
        if self.expire_after is not None and expiretm is None and timeinforce in (None, "GTC"):
            timeinforce, expiretm = "GTD", str(math.ceil(run.now + self.expire_after))
        if "viqc" in self.oflags:
            unit_price: Decimal | None = Decimal(1)  # volume is in the quote currency
        else:
            unit_price = run.valuation_price((price, price2), self.pair)
        notional = None if unit_price is None else volume * unit_price
        run.check_risk(self.pair, notional)
        cl_ord_id = run.client_order_id()
        intent = PlaceOrder(
            intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id, cl_ord_id=cl_ord_id,
            pair=self.pair, side=self.side, ordertype=self.ordertype, volume=volume, price=price,
            price2=price2, trigger=self.trigger,
            leverage=None if self.leverage is None else str(self.leverage),
            reduce_only=self.reduce_only, oflags=tuple(self.oflags), timeinforce=timeinforce,
            starttm=self.starttm, expiretm=expiretm, displayvol=displayvol,
            close_ordertype=close.ordertype if close else None,
            close_price=run.price(close.price, "close.price") if close else None,
            close_price2=run.price(close.price2, "close.price2") if close else None,
            notional=notional,
        )
        run.track_order("place_order", "spot", self.pair, cl_ord_id, volume, unit_price)
        run.emit(intent)
        return intent.intent_id


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Collection[str]) -> PlaceOrderAction | None:
    pair = given(ctx, path, raw, "pair", spot_pair)
    fields = values(ctx, path, raw, names, ("volume", "price", "price2", "displayvol"))
    expire_after = given(ctx, path, raw, "expire_after", _expire_after)
    if "expire_after" in raw and ("expiretm" in raw or raw.get("timeinforce") in ("GTD", "IOC")):
        ctx.report(path + ("expire_after",), "expire_after cannot be combined with "
                   + ("expiretm" if "expiretm" in raw else f"timeinforce: {raw['timeinforce']}")
                   + ": the order's own expiry would win and expire_after would be ignored",
                   hint="give one: expire_after (it becomes GTD with its expiretm) or timeinforce and expiretm",
                   code="invalid-value")
    volume, displayvol = fields.get("volume"), fields.get("displayvol")
    if isinstance(volume, Decimal) and isinstance(displayvol, Decimal) and displayvol * ICEBERG_MIN_SHARE < volume:
        ctx.report(path + ("displayvol",),
                   f"displayvol must be at least 1/{ICEBERG_MIN_SHARE} of volume (Kraken's iceberg rule)",
                   code="invalid-value")
    if "userref" in raw:
        ctx.report(
            path + ("userref",),
            "place_order cannot set userref: Kraken refuses userref together with cl_ord_id, and every order "
            "the engine places carries a deterministic cl_ord_id so that no retry or restart can place it twice",
            hint="remove userref; to cancel the orders this rule placed, use cancel_order with own: true",
            code="userref-not-allowed",
        )
    _unrehearsable(ctx, path, raw)
    close = _close(ctx, path + ("close",), raw["close"], names) if "close" in raw else None
    info = ctx.registry.get(pair) if pair is not None else None
    if info is not None:
        check_literals(ctx, path, raw, info)
    if pair is None or not ctx.accepts(path):
        return None
    return PlaceOrderAction(
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
        **fields,
    )


def _expire_after(ctx: BuildContext, path: JsonPath, raw: str) -> float | None:
    expire_after = ctx.duration(path, raw)
    if expire_after is not None and expire_after <= 0:
        ctx.report(path, "expire_after must be longer than 0s", code="invalid-value")
    return expire_after


_PAPER_REFUSES = "cannot be rehearsed: the paper exchange of dry runs, rule tests, replays and the simulator refuses it"


def _unrehearsable(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any]) -> None:
    """Warn of what Kraken may take but the paper exchange refuses, so no rehearsal can run it."""
    if raw.get("leverage") not in (None, "none"):
        ctx.report(path + ("leverage",), f"leverage {_PAPER_REFUSES} (it has no margin: EOrder:Cannot open "
                   "position)", code="not-rehearsable", severity="warning")
    if raw.get("trigger") == "index":
        ctx.report(path + ("trigger",), f"trigger: index {_PAPER_REFUSES} (it has no index prices: "
                   "EGeneral:Invalid arguments:Index unavailable)", code="not-rehearsable", severity="warning")
    close = raw.get("close")
    for key in ("price", "price2"):
        price = close.get(key) if isinstance(close, Mapping) else None
        if isinstance(price, str) and price.strip().startswith(("+", "-", "#")):
            ctx.report(path + ("close", key), f'a relative close {key} ("{price.strip()}") {_PAPER_REFUSES} '
                       f"(EGeneral:Invalid arguments:close[{key}])", hint='compute it, as in "=round(ask * 0.98, 1)"',
                       code="not-rehearsable", severity="warning")


def _close(ctx: BuildContext, path: JsonPath, raw: Any, names: Collection[str]) -> CloseOrder | None:
    written = ctx.fields(path, raw)
    prices = values(ctx, path, written, names, ("price", "price2"))
    return CloseOrder(ordertype=written["ordertype"], **prices) if ctx.accepts(path) else None


def needs(action: PlaceOrderAction) -> Needs:
    """The pair's ticker: risk limits value a market order at the last price seen."""
    return Needs(feeds=(("spot", action.pair),))


TYPE = ActionType(
    name="place_order",
    spec=PlaceOrderAction,
    summary="Kraken Spot AddOrder",
    schema=SCHEMA,
    build=build,
    needs=needs,
    schema_defs=SCHEMA_DEFS,
)
