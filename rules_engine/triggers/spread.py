"""The `spread` trigger: the spread (ask - bid) of a symbol crossing a threshold.

    - type: spread
      symbol: XBT/USD          # as for price triggers: any Kraken name, or a futures product id
      crosses_above: 25        # in the quote currency; or crosses_below
      # crosses_above: "0.05%" # or a percent of mid
      rearm: 5                 # hysteresis: absolute (in the level's unit), or a percent of the level

The crossing is armed like a price crossing (`rules_engine.core.crossing`): the first spread
seen (start-up, restore, reconnect, reload) only arms or disarms, and never fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

from rules_engine.core.crossing import Crossing, CrossingWatcher, WatchState
from rules_engine.core.events import Tick
from rules_engine.core.model import Market, Rearm, Rule, SourceRef, TriggerSpec, WatcherClass
from rules_engine.registry import Needs, TriggerType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath
from rules_engine.triggers._crossing import SYMBOL_SCHEMA, market_and_symbol, rearm, rearm_schema

NAMES = {
    "spread": "ask - bid, in the quote currency",
    "bid": "",
    "ask": "",
    "mid": "",
    "symbol": "",
    "market": "`spot` or `futures`",
    "level": "the threshold that was crossed, as written; a percent level without its `%`",
}

_LEVEL: dict[str, Any] = {
    "description": "The threshold: an amount in the quote currency (25) or a percent of mid (\"0.05%\").",
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%?$"},
    ],
    "errorMessage": "a spread level is a positive amount in the quote currency (25) or a percent of mid (\"0.05%\")",
}

SCHEMA: dict[str, Any] = {
    "title": "spread trigger",
    "description": (
        "Fires when the spread (ask - bid) of a symbol crosses a threshold. It is armed: the spread must first "
        "be seen on the other side of the threshold."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "symbol"],
    "properties": {
        "type": {"const": "spread"},
        "symbol": SYMBOL_SCHEMA,
        "market": {"$ref": "#/$defs/market"},
        "crosses_above": _LEVEL,
        "crosses_below": _LEVEL,
        "rearm": rearm_schema("spread", "5", "20%"),
    },
    "allOf": [
        {
            "oneOf": [{"required": ["crosses_above"]}, {"required": ["crosses_below"]}],
            "errorMessage": "a spread trigger needs exactly one of crosses_above or crosses_below",
        },
    ],
}

_ABSOLUTE, _PERCENT = "spread", "spread%"
_HUNDRED = Decimal(100)


class SpreadWatcher(CrossingWatcher["SpreadTrigger"]):
    """Spread crossings: one level book per (market, symbol) and unit (absolute or percent of mid)."""

    what = "spread"
    follows_price = False

    def crossing(self, rule: Rule, index: int, trigger: SpreadTrigger, state: WatchState) -> Crossing[SpreadTrigger]:
        watched = (trigger.market.value, trigger.symbol, _PERCENT if trigger.percent else _ABSOLUTE)
        return Crossing(rule.id, index, trigger, watched, trigger.level, trigger.direction, trigger.rearm, state)

    def value(self, key: str, quote: Mapping[str, Decimal]) -> Decimal | None:
        bid, ask = quote.get("bid"), quote.get("ask")
        if bid is None or ask is None:
            return None
        if key == _ABSOLUTE:
            return ask - bid
        mid = quote.get("mid")
        return None if mid is None or mid <= 0 else (ask - bid) / mid * _HUNDRED

    def read(self, key: str, tick: Tick, quote: Mapping[str, Decimal]) -> Decimal | None:
        return self.value(key, quote) if tick.bid is not None or tick.ask is not None else None

    def context(self, crossing: Crossing[SpreadTrigger], value: Decimal,
                quote: Mapping[str, Decimal]) -> dict[str, Any]:
        trigger = crossing.trigger
        bid, ask = quote.get("bid"), quote.get("ask")
        return {
            "trigger": "spread",
            "symbol": trigger.symbol,
            "market": trigger.market.value,
            "spread": None if bid is None or ask is None else ask - bid,
            "bid": bid,
            "ask": ask,
            "mid": quote.get("mid"),
            "level": trigger.level,
        }


@dataclass(frozen=True)
class SpreadTrigger(TriggerSpec):
    """Fires when the spread of `symbol` crosses `level` in `direction` (an armed crossing);
    with `percent` the level is a percent of mid."""

    symbol: str
    market: Market
    direction: Literal["above", "below"]
    level: Decimal
    percent: bool = False
    rearm: Rearm | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["spread"] = "spread"
    watcher: ClassVar[WatcherClass] = SpreadWatcher
    provides: ClassVar[frozenset[str]] = frozenset(NAMES)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str,
          Any]) -> SpreadTrigger | None:
    """A spread trigger; `market` defaults to the file's defaults, as for price triggers."""
    market, symbol = market_and_symbol(ctx, path, raw, defaults)
    hysteresis = rearm(ctx, path + ("rearm",), raw.get("rearm"))
    key = "crosses_above" if "crosses_above" in raw else "crosses_below"
    level = _level(ctx, path + (key,), raw[key]) if key in raw else None
    if market is None or symbol is None or level is None or (hysteresis is None and "rearm" in raw):
        return None
    if not ctx.accepts(path):
        return None
    return SpreadTrigger(
        symbol=symbol,
        market=market,
        direction="above" if key == "crosses_above" else "below",
        level=level[0],
        percent=level[1],
        rearm=hysteresis,
        where=ctx.source(path),
    )


def _level(ctx: BuildContext, path: JsonPath, raw: Any) -> tuple[Decimal, bool] | None:
    text = str(raw)
    percent = text.endswith("%")
    amount = Decimal(text.rstrip("%"))
    if amount <= 0 or (percent and amount >= 100):
        ctx.report(path, "a spread level must be more than 0 (and a percent less than 100%)", code="invalid-value")
        return None
    return amount, percent


def needs(trigger: SpreadTrigger) -> Needs:
    return Needs(feeds=((trigger.market.value, trigger.symbol),))


TYPE = TriggerType(
    name="spread",
    spec=SpreadTrigger,
    summary="the spread (ask - bid) crossing a threshold, absolute or a percent of mid",
    schema=SCHEMA,
    build=build,
    names=NAMES,
    needs=needs,
)
