"""python-kraken-sdk (unmodified) against the simulator: spot order book and recent trades,
futures instruments (over https), the spot WebSocket v2 ticker and the futures ticker over
wss:// (the SDK's futures WebSocket client only speaks wss://)."""

import asyncio
from decimal import Decimal
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
        await client.subscribe(feed="heartbeat")  # the client's receive loop wakes up to close
        return client

    message = asyncio.run(first_message(start, lambda m: m.get("feed") == "ticker" and "product_id" in m))
    assert message["product_id"] == "PF_XBTUSD" and message["markPrice"] == 60010.0


def test_private_executions_and_balances_over_websocket_v2(endpoints, sim):
    """The SDK gets a token from GetWebSocketsToken, subscribes to executions and balances on
    the private endpoint, places an order with add_order, and sees it fill."""
    from compat_support import KEY, SECRET

    async def run():
        queue: asyncio.Queue = asyncio.Queue()

        async def callback(message):
            await queue.put(message)

        client = SpotWSClient(key=KEY, secret=SECRET, callback=callback, no_public=True,
                              rest_url=endpoints.spot_rest, auth_ws_url=endpoints.ws_auth_v2.removesuffix("/v2"))
        await client.start()
        seen: list[dict] = []

        async def until(matches):
            async with asyncio.timeout(10):
                while True:
                    message = await queue.get()
                    seen.append(message)
                    if matches(message):
                        return message

        try:
            await client.subscribe(params={"channel": "executions", "snap_orders": True})
            snapshot = await until(lambda m: m.get("channel") == "executions" and m.get("type") == "snapshot")
            await client.subscribe(params={"channel": "balances"})
            balances = await until(lambda m: m.get("channel") == "balances" and m.get("type") == "snapshot")
            await client.send_message({"method": "add_order", "req_id": 7, "params": {
                "order_type": "market", "side": "buy", "order_qty": 0.01, "symbol": "BTC/USD"}})
            ack = await until(lambda m: m.get("method") == "add_order")
            filled = await until(lambda m: m.get("channel") == "executions"
                                 and any(e.get("exec_type") == "filled" for e in m["data"]))
            update = await until(lambda m: m.get("channel") == "balances" and m.get("type") == "update")
            return snapshot, balances, ack, filled, update, seen
        finally:
            await client.close()

    snapshot, balances, ack, filled, update, seen = asyncio.run(run())
    assert snapshot["data"] == [] or all("order_id" in e for e in snapshot["data"])
    assert {"asset": "BTC", "asset_class": "currency", "balance": 2.0,
            "wallets": [{"type": "spot", "id": "main", "balance": 2.0}]} in balances["data"]
    assert ack["success"] is True and ack["req_id"] == 7 and ack["result"]["order_id"].startswith("O")
    order_id = ack["result"]["order_id"]
    kinds = [e["exec_type"] for m in seen if m.get("channel") == "executions" and m.get("type") == "update"
             for e in m["data"] if e["order_id"] == order_id]
    assert kinds == ["pending_new", "new", "trade", "filled"]
    trade = next(e for m in seen if m.get("channel") == "executions" for e in m["data"]
                 if e.get("exec_type") == "trade")
    assert (trade["last_qty"], trade["last_price"], trade["liquidity_ind"]) == (0.01, 60010.0, "t")
    assert trade["fees"][0]["asset"] == "USD"
    changed = {e["asset"]: e for e in update["data"]}
    assert changed["BTC"]["amount"] == 0.01 and changed["USD"]["type"] == "trade"
    with sim.lock:
        assert sim.exchange.orders[order_id].status == "closed"


def test_order_batch_amend_and_cancel_batch(endpoints, sim):
    from compat_support import KEY, SECRET
    from kraken.spot import Trade

    trade = Trade(key=KEY, secret=SECRET, url=endpoints.spot_rest)
    placed = trade.create_order_batch(pair="BTC/USD", orders=[
        {"type": "buy", "ordertype": "limit", "volume": "0.01", "price": "58000"},
        {"type": "buy", "ordertype": "limit", "volume": "0.02", "price": "57000", "cl_ord_id": "sdk-2"},
    ])["orders"]
    txids = [entry["txid"] for entry in placed]
    assert len(txids) == 2 and all(t.startswith("O") for t in txids)
    assert placed[0]["descr"]["order"] == "buy 0.01000000 XBTUSD @ limit 58000.0"
    assert trade.amend_order(cl_ord_id="sdk-2", order_qty="0.03")["amend_id"].startswith("T")
    with sim.lock:
        assert sim.exchange.orders[txids[1]].volume == Decimal("0.03")
    assert trade.cancel_order_batch(orders=txids) == {"count": 2}
    with sim.lock:
        assert {sim.exchange.orders[t].status for t in txids} == {"canceled"}
