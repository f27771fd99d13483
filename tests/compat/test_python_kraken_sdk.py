"""python-kraken-sdk (unmodified) against the simulator: spot order book and recent trades,
futures instruments (over https), the spot WebSocket v2 ticker and the futures ticker over
wss:// (the SDK's futures WebSocket client only speaks wss://)."""

import asyncio
from urllib.parse import urlsplit

from kraken.futures import FuturesWSClient
from kraken.futures import Market as FuturesMarket
from kraken.spot import Market, SpotWSClient


async def first_message(client_start, matches, seconds=10.0):
    """Start a client whose callback feeds `queue`; return the first message `matches` accepts."""
    queue: asyncio.Queue = asyncio.Queue()

    async def callback(message):
        await queue.put(message)

    client = await client_start(callback)
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await queue.get()
                if matches(message):
                    return message
    finally:
        await client.close()


def test_order_book_and_recent_trades(endpoints):
    market = Market(url=endpoints.spot_rest)
    book = market.get_order_book(pair="XBTUSD", count=3)["XXBTZUSD"]
    assert [row[0] for row in book["bids"]] == ["60009.90000", "60009.80000", "60009.60000"]
    assert book["asks"][0][0] == "60010.10000" and len(book["asks"]) == 3
    trades = market.get_recent_trades(pair="XBTUSD")
    rows, last = trades["XXBTZUSD"], trades["last"]
    assert [row[:2] for row in rows[:2]] == [["60000.00000", "0.25000000"], ["60010.00000", "0.10000000"]]
    assert market.get_recent_trades(pair="XBTUSD", since=last)["XXBTZUSD"] == []


def test_futures_instruments_over_https(tls_endpoints):
    assert tls_endpoints.futures_rest.startswith("https://")
    market = FuturesMarket(url=tls_endpoints.futures_rest.removesuffix("/derivatives"))
    instruments = {i["symbol"]: i for i in market.get_instruments()["instruments"]}
    assert instruments["PF_XBTUSD"]["type"] == "flexible_futures" and instruments["PF_XBTUSD"]["tickSize"] == 0.1
    tickers = {t["symbol"]: t for t in market.get_tickers()["tickers"]}
    assert set(tickers) <= set(instruments) and tickers["PF_XBTUSD"]["markPrice"] == 60010.0


def test_spot_websocket_v2_ticker(endpoints):
    async def start(callback):
        client = SpotWSClient(callback=callback, rest_url=endpoints.spot_rest, ws_url=endpoints.ws_v1)
        await client.start()
        await client.subscribe(params={"channel": "ticker", "symbol": ["BTC/USD"]})
        return client

    message = asyncio.run(first_message(start, lambda m: m.get("channel") == "ticker"))
    entry = message["data"][0]
    assert entry["symbol"] == "BTC/USD" and entry["last"] == 60010.0 and entry["bid"] == 60009.9
    assert {"bid_qty", "ask_qty", "volume", "vwap", "low", "high", "change", "change_pct", "trades"} <= set(entry)


def test_futures_ticker_over_wss(tls_endpoints):
    url = urlsplit(tls_endpoints.futures_ws)
    assert url.scheme == "wss"

    async def start(callback):
        client = FuturesWSClient(url=f"{url.netloc}{url.path}", callback=callback)
        await client.start()
        await client.subscribe(feed="ticker", products=["PF_XBTUSD"])
        return client

    message = asyncio.run(first_message(start, lambda m: m.get("feed") == "ticker" and "product_id" in m))
    assert message["product_id"] == "PF_XBTUSD" and message["markPrice"] == 60010.0
