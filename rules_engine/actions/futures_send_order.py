"""The `futures_send_order` action: Kraken Futures sendorder.

    - type: futures_send_order
      symbol: PF_XBTUSD
      side: sell
      order_type: lmt          # lmt, post, ioc, fok (limit_price), mkt, stp, take_profit (stop_price)
      size: 0.01
      limit_price: "=price"

Like place_order, the order gets a deterministic `cliOrdId`, a risk check and order tracking.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

from rules_engine.actions._fields import given, values
from rules_engine.core.intents import FuturesSendOrder
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Value
from rules_engine.core.runs import ActionRun, Halt
from rules_engine.registry import ActionType, Needs
from rules_engine.rules.context import BuildContext
from rules_engine.rules.symbols import futures_symbol
from rules_engine.rules.yaml_source import JsonPath

# Futures contracts whose size is already a USD amount (inverse perpetuals and futures).
INVERSE_FUTURES = ("PI_", "FI_")

SCHEMA: dict[str, Any] = {
    "title": "futures_send_order action",
    "description": "Kraken Futures sendorder.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "symbol", "side", "order_type", "size"],
    "properties": {
        "type": {"const": "futures_send_order"},
        "if": {"$ref": "#/$defs/expression"},
        "symbol": {
            "description": "Futures product id, e.g. PF_XBTUSD.",
            "type": "string",
            "pattern": "^[A-Za-z]{2}_[A-Za-z0-9_]+$",
            "patternErrorMessage": "a futures symbol is a product id such as PF_XBTUSD",
        },
        "side": {"$ref": "#/$defs/side"},
        "order_type": {"enum": ["lmt", "post", "ioc", "mkt", "stp", "take_profit", "fok"]},
        "size": {"$ref": "#/$defs/amount"},
        "limit_price": {"$ref": "#/$defs/futures_price"},
        "stop_price": {"$ref": "#/$defs/futures_price"},
        "trigger_signal": {"enum": ["mark", "index", "last"]},
        "reduce_only": {"type": "boolean"},
    },
    "allOf": [
        {
            "if": {
                "properties": {"order_type": {"enum": ["lmt", "post", "ioc", "fok"]}},
                "required": ["order_type"],
            },
            "then": {
                "required": ["limit_price"],
                "errorMessage": "lmt, post, ioc and fok orders need limit_price:",
            },
        },
        {
            "if": {
                "properties": {"order_type": {"enum": ["stp", "take_profit"]}},
                "required": ["order_type"],
            },
            "then": {
                "required": ["stop_price"],
                "errorMessage": "stp and take_profit orders need stop_price:",
            },
            "else": {
                "properties": {
                    "stop_price": {
                        "not": {},
                        "errorMessage": "stop_price applies only to stp and take_profit orders",
                    },
                    "trigger_signal": {
                        "not": {},
                        "errorMessage": "trigger_signal applies only to stp and take_profit orders",
                    },
                },
            },
        },
        {
            "if": {"properties": {"order_type": {"const": "mkt"}}, "required": ["order_type"]},
            "then": {
                "properties": {
                    "limit_price": {"not": {}, "errorMessage": "a mkt order takes no limit_price"},
                },
            },
        },
    ],
}


@dataclass(frozen=True)
class FuturesSendOrderAction(ActionSpec):
    """Kraken Futures sendorder."""

    symbol: str
    side: Literal["buy", "sell"]
    order_type: Literal["lmt", "post", "ioc", "mkt", "stp", "take_profit", "trailing_stop", "fok"]
    size: Value
    limit_price: Value = None
    stop_price: Value = None
    trigger_signal: Literal["mark", "index", "last"] | None = None
    reduce_only: bool = False
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["futures_send_order"] = "futures_send_order"
    order_market: ClassVar[str | None] = "futures"
    places_orders: ClassVar[bool] = True

    def run(self, run: ActionRun) -> str:
        size = run.decimal(self.size, "size")
        if size <= 0:
            raise Halt("error", f"size must be positive, got {size}", size=size)
        limit_price = run.positive(self.limit_price, "limit_price")
        stop_price = run.positive(self.stop_price, "stop_price")
        if self.symbol.upper().startswith(INVERSE_FUTURES):
            unit_price: Decimal | None = Decimal(1)  # size is a USD amount
        else:
            unit_price = run.valuation_price((limit_price, stop_price), self.symbol)
        notional = None if unit_price is None else size * unit_price
        run.check_risk(self.symbol, notional)
        cli_ord_id = run.client_order_id()
        intent = FuturesSendOrder(
            intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id, cli_ord_id=cli_ord_id,
            symbol=self.symbol, side=self.side, order_type=self.order_type, size=size,
            limit_price=limit_price, stop_price=stop_price, trigger_signal=self.trigger_signal,
            reduce_only=self.reduce_only, notional=notional,
        )
        run.track_order("futures_send_order", "futures", self.symbol, cli_ord_id, size, unit_price)
        run.emit(intent)
        return intent.intent_id


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any],
          names: Collection[str]) -> FuturesSendOrderAction | None:
    symbol = given(ctx, path, raw, "symbol", futures_symbol)
    fields = values(ctx, path, raw, names, ("size", "limit_price", "stop_price"))
    if symbol is None or not ctx.accepts(path):
        return None
    return FuturesSendOrderAction(
        symbol=symbol,
        side=raw["side"],
        order_type=raw["order_type"],
        trigger_signal=raw.get("trigger_signal"),
        reduce_only=raw.get("reduce_only", False),
        **fields,
    )


def needs(action: FuturesSendOrderAction) -> Needs:
    """The symbol's ticker: risk limits value a market order at the last price seen."""
    return Needs(feeds=(("futures", action.symbol),))


TYPE = ActionType(
    name="futures_send_order",
    spec=FuturesSendOrderAction,
    summary="Kraken Futures sendorder",
    schema=SCHEMA,
    build=build,
    needs=needs,
)
