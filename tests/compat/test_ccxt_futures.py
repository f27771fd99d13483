"""ccxt's `krakenfutures` and ccxt.pro (unmodified) against the simulator: instruments as
markets, tickers, the multi-collateral balance, and WebSocket tickers (spot v2, futures)."""

import asyncio

import ccxt
import ccxt.pro
import pytest
from compat_support import KEY, SECRET


def futures_client(base, module=ccxt, **extra):
    exchange = module.krakenfutures({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, **extra})
    api = dict(exchange.urls["api"])
    api.update({"public": f"{base}/api/", "private": f"{base}/api/"})
    exchange.urls["api"] = api
    return exchange


def test_markets_tickers_and_balance(endpoints):
    exchange = futures_client(endpoints.futures_rest)
    markets = exchange.load_markets()
    assert "BTC/USD:USD" in markets
    market = markets["BTC/USD:USD"]
    assert (market["id"], market["swap"], market["linear"], market["precision"]["price"]) == \
        ("PF_XBTUSD", True, True, 0.1)
    tickers = exchange.fetch_tickers()
    assert tickers["BTC/USD:USD"]["last"] == 60010.0
    assert tickers["BTC/USD:USD"]["bid"] == 60010.0 - market["precision"]["price"]
    balance = exchange.fetch_balance()
    assert balance["USD"]["total"] == 100000.0


def test_ccxt_pro_watch_ticker_spot_and_futures(endpoints, sim):
    async def run():
        spot = ccxt.pro.kraken({"enableRateLimit": False})
        spot.urls["api"] = {**spot.urls["api"], "public": endpoints.spot_rest, "private": endpoints.spot_rest,
                            "ws": {**spot.urls["api"]["ws"], "public": endpoints.ws_v1, "publicV2": endpoints.ws_v2}}
        futures = futures_client(endpoints.futures_rest, ccxt.pro)
        futures.urls["api"]["ws"] = endpoints.futures_ws
        try:
            first = await asyncio.wait_for(spot.watch_ticker("BTC/USD"), 10)
            future = await asyncio.wait_for(futures.watch_ticker("BTC/USD:USD"), 10)
            return first, future
        finally:
            await spot.close()
            await futures.close()

    spot_ticker, futures_ticker = asyncio.run(run())
    assert spot_ticker["symbol"] == "BTC/USD" and spot_ticker["last"] == 60010.0
    assert futures_ticker["symbol"] == "BTC/USD:USD" and futures_ticker["last"] == 60010.0
