"""Futures `GET /derivatives/api/v3/instruments`: the simulated perpetuals, with the fields
Kraken's docs list for each instrument (symbol, type, base/quote/pair, tickSize,
contractSize, tradeable, marginLevels, ...). They are the products `tickers` prices, so the
two agree: a `PF_XBTUSD` instrument is `flexible_futures` (multi-collateral, linear, settled
in USD), its `tickSize` is the tick the ticker's bid and ask sit from the mark, and its
`contractValueTradePrecision` is the size decimals `sendorder` accepts.
"""

from __future__ import annotations

from typing import Any

from rules_engine.sim.futures import FuturesExchange, Product

OPENING_DATE = "2022-06-28T00:00:00.000Z"


def instrument(product: Product, initial_margin: float) -> dict[str, Any]:
    """One entry of `instruments`."""
    levels = [{"numNonContractUnits": 0, "initialMargin": initial_margin, "maintenanceMargin": initial_margin / 2}]
    return {
        "symbol": product.symbol,
        "type": "flexible_futures",
        "base": product.base,
        "quote": "USD",
        "pair": product.pair,
        "tradeable": True,
        "tickSize": float(product.tick_size),
        "contractSize": 1,
        "impactMidSize": 1,
        "maxPositionSize": 1000000,
        "openingDate": OPENING_DATE,
        "marginLevels": levels,
        "retailMarginLevels": levels,
        "fundingRateCoefficient": 8,
        "maxRelativeFundingRate": 0.001,
        "contractValueTradePrecision": product.size_decimals,
        "postOnly": False,
        "category": "",
        "tags": [],
        "mtf": False,
    }


def instruments(exchange: FuturesExchange) -> dict[str, Any]:
    """The `instruments` payload (next to `"result": "success"`)."""
    margin = float(exchange.initial_margin)
    return {"instruments": [instrument(p, margin) for p in exchange.products.values()]}
