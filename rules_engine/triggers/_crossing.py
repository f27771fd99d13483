"""What the crossing trigger types (`price`, `spread`) share: the symbol and its market, the
level's hysteresis (`rearm`), and their schema parts."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rules_engine.core.model import Market, Rearm
from rules_engine.rules.context import BuildContext
from rules_engine.rules.symbols import futures_symbol, spot_pair
from rules_engine.rules.yaml_source import JsonPath

SYMBOL_SCHEMA: dict[str, Any] = {
    "description": "Spot: any Kraken name (XBTUSD, XBT/USD, BTC/USD). Futures: the product id (PF_XBTUSD).",
    "type": "string",
    "minLength": 1,
}

REARM_SCHEMA: dict[str, Any] = {
    "description": (
        "Hysteresis: how far back the {what} must go before the trigger can fire again; an absolute "
        "distance ({example}) or a percent of the level (\"{percent}\")."
    ),
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%?$"},
    ],
    "errorMessage": "rearm is a positive distance ({example}) or a percent of the level (\"{percent}\")",
}


def rearm_schema(what: str, example: str, percent: str) -> dict[str, Any]:
    """The `rearm` key's schema, worded for the value it measures."""
    words = {"what": what, "example": example, "percent": percent}
    return {key: value.format(**words) if isinstance(value, str) else value for key, value in REARM_SCHEMA.items()}


def market_and_symbol(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any],
                      defaults: Mapping[str, Any]) -> tuple[Market | None, str | None]:
    """The trigger's market (its own, the file's default, else spot) and its symbol checked
    against that market; None for what cannot be known."""
    market = _market(ctx, path, raw, defaults)
    symbol = None
    if "symbol" in raw and market is not None:
        check_symbol = spot_pair if market is Market.SPOT else futures_symbol
        symbol = check_symbol(ctx, path + ("symbol",), raw["symbol"])
    return market, symbol


def _market(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Market | None:
    """The trigger's market, or None when it is unknown: the schema rejected the `market` that
    applies, or it may be there misspelled (the symbol cannot be checked without its market). An
    unknown key that is not `market` misspelled (`crosess_above`) hides nothing: the symbol is checked."""
    if "market" in raw:
        return Market(raw["market"])
    markets = [market.value for market in Market]
    if not ctx.accepts(path + ("market",)) or ctx.may_hold(path, "market", markets):
        return None
    if "market" in defaults:
        return Market(defaults["market"])
    data = ctx.document.data
    written_defaults = data.get("defaults", {}) if isinstance(data, dict) else {}
    if not isinstance(written_defaults, dict) or not ctx.accepts(("defaults", "market")):
        return None
    if ctx.may_hold(("defaults",), "market", markets):
        return None
    return Market.SPOT


def rearm(ctx: BuildContext, path: JsonPath, raw: Any) -> Rearm | None:
    """The hysteresis written at `path` (None when not written, or after reporting a bad one)."""
    if raw is None:
        return None
    text = str(raw)
    percent = text.endswith("%")
    amount = Decimal(text.rstrip("%"))
    if amount <= 0 or (percent and amount >= 100):
        ctx.report(path, "rearm must be more than 0 (and a percent less than 100%)", code="invalid-value")
        return None
    return Rearm(amount=amount, percent=percent)
