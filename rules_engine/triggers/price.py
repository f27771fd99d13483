"""The `price` trigger: a price crossing a level.

    - type: price
      symbol: BTC/USD          # a spot pair (any Kraken name) or a futures product id
      field: mid               # last (default), bid, ask or mid
      crosses_above: 70000     # or crosses_below
      rearm: "0.5%"            # hysteresis: absolute, or a percent of the level

The crossing is armed (`rules_engine.core.crossing`): the price must first be seen on the near
side of the level, so a first observation (start-up, restore, reconnect, reload) never fires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal

from rules_engine.core.crossing import Crossing, CrossingWatcher, WatchState
from rules_engine.core.events import Tick
from rules_engine.core.model import Market, Rearm, Rule, SourceRef, TriggerSpec, WatcherClass
from rules_engine.pairs import PairRegistry
from rules_engine.registry import Needs, TriggerType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.semantic import PRICE_NAME, guard_bounds, warning
from rules_engine.rules.yaml_source import JsonPath
from rules_engine.triggers._crossing import SYMBOL_SCHEMA, market_and_symbol, rearm, rearm_schema

NAMES = {
    "price": "the value of the watched `field`",
    "last": "",
    "bid": "",
    "ask": "",
    "mid": "",
    "symbol": "",
    "market": "`spot` or `futures`",
    "level": "the level that was crossed",
}

SCHEMA: dict[str, Any] = {
    "title": "price trigger",
    "description": (
        "Fires when a price crosses a level. It is armed: the price must first be seen on the other side "
        "of the level."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "symbol"],
    "properties": {
        "type": {"const": "price"},
        "symbol": SYMBOL_SCHEMA,
        "market": {"$ref": "#/$defs/market"},
        "field": {"$ref": "#/$defs/price_field"},
        "crosses_above": {"$ref": "#/$defs/level"},
        "crosses_below": {"$ref": "#/$defs/level"},
        "rearm": rearm_schema("price", "250", "0.5%"),
    },
    "allOf": [
        {
            "oneOf": [{"required": ["crosses_above"]}, {"required": ["crosses_below"]}],
            "errorMessage": "a price trigger needs exactly one of crosses_above or crosses_below",
        },
    ],
}


class PriceWatcher(CrossingWatcher["PriceTrigger"]):
    """Price crossings: one level book per (market, symbol, field)."""

    what = "price"

    def crossing(self, rule: Rule, index: int, trigger: PriceTrigger, state: WatchState) -> Crossing[PriceTrigger]:
        watched = (trigger.market.value, trigger.symbol, trigger.field)
        return Crossing(rule.id, index, trigger, watched, trigger.level, trigger.direction, trigger.rearm, state)

    def value(self, key: str, quote: Mapping[str, Decimal]) -> Decimal | None:
        return quote.get(key)

    def read(self, key: str, tick: Tick, quote: Mapping[str, Decimal]) -> Decimal | None:
        if key == "last":
            return tick.last
        if key == "mid":
            return quote.get("mid") if tick.bid is not None or tick.ask is not None else None
        return tick.bid if key == "bid" else tick.ask

    def context(self, crossing: Crossing[PriceTrigger], value: Decimal, quote: Mapping[str, Decimal]) -> dict[str, Any]:
        trigger = crossing.trigger
        return {
            "trigger": "price",
            "symbol": trigger.symbol,
            "market": trigger.market.value,
            "price": value,
            "bid": quote.get("bid"),
            "ask": quote.get("ask"),
            "mid": quote.get("mid"),
            "last": quote.get("last"),
            "level": trigger.level,
        }


@dataclass(frozen=True)
class PriceTrigger(TriggerSpec):
    """Fires when `field` of `symbol` crosses `level` in `direction` (an armed crossing)."""

    symbol: str
    market: Market
    field: Literal["last", "bid", "ask", "mid"]
    direction: Literal["above", "below"]
    level: Decimal
    rearm: Rearm | None = None
    where: SourceRef | None = dataclasses.field(default=None, compare=False)  # `field` is a field here
    type: Literal["price"] = "price"
    watcher: ClassVar[WatcherClass] = PriceWatcher
    provides: ClassVar[frozenset[str]] = frozenset(NAMES)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str,
          Any]) -> PriceTrigger | None:
    """A price trigger from its fields; `market` and `field` default to the file's defaults."""
    market, symbol = market_and_symbol(ctx, path, raw, defaults)
    hysteresis = rearm(ctx, path + ("rearm",), raw.get("rearm"))
    if market is None or symbol is None or (hysteresis is None and "rearm" in raw) or not ctx.accepts(path):
        return None
    key = "crosses_above" if "crosses_above" in raw else "crosses_below"
    return PriceTrigger(
        symbol=symbol,
        market=market,
        field=raw.get("field", defaults.get("field", "last")),
        direction="above" if key == "crosses_above" else "below",
        level=Decimal(raw[key]),
        rearm=hysteresis,
        where=ctx.source(path),
    )


def needs(trigger: PriceTrigger) -> Needs:
    return Needs(feeds=((trigger.market.value, trigger.symbol),))


def warnings(rule: Rule, index: int, trigger: PriceTrigger, pairs: PairRegistry) -> Iterator[Diagnostic]:
    """`contradicted-level`: the rule's own guard rules out the crossing (`crosses_above: 70000`
    with `when: price < 65000`), from literal comparisons in the guard's top-level conjunction."""
    if rule.when is None:
        return
    for (where, text), (name, op, limit) in guard_bounds(rule.when):
        if name in (PRICE_NAME, trigger.field) and _excludes(trigger, op, limit):
            verb = "crosses above" if trigger.direction == "above" else "crosses below"
            yield warning(
                rule, where,
                f'the guard "{text}" can never hold when trigger {index + 1} fires (it {verb} {trigger.level})',
                None, "contradicted-level",
            )


def _excludes(trigger: PriceTrigger, op: str, limit: Decimal) -> bool:
    """Whether `price <op> limit` is impossible at the moment `trigger` fires."""
    level = trigger.level
    if trigger.direction == "above":  # price >= level when it fires
        return (op == "<" and limit <= level) or (op in ("<=", "==") and limit < level)
    return (op == ">" and limit >= level) or (op in (">=", "==") and limit > level)  # price <= level


TYPE = TriggerType(
    name="price",
    spec=PriceTrigger,
    summary="a price (last, bid, ask or mid) crossing a level",
    schema=SCHEMA,
    build=build,
    names=NAMES,
    needs=needs,
    warnings=warnings,
)
