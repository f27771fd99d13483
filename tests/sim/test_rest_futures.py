"""Futures REST over HTTP: tickers, auth, nonces, sendorder statuses, cancels, positions."""

from sim_support import FuturesClient, OTHER_SECRET, futures_sign


def test_tickers_follow_the_spot_price(futures, sim):
    sim.set_price("XBTUSD", "61000")
    body = futures.call("tickers", post=False)
    assert body["result"] == "success" and body["serverTime"].endswith("Z")
    ticker = {t["symbol"]: t for t in body["tickers"]}["PF_XBTUSD"]
    assert ticker["markPrice"] == 61000.0 and ticker["pair"] == "XBT:USD" and ticker["tag"] == "perpetual"
    assert {"PF_ETHUSD", "PF_SOLUSD"} <= {t["symbol"] for t in body["tickers"]}


def test_auth_and_nonce_errors(futures, endpoints):
    refused = futures.call("accounts", post=False, authent="bm9wZQ==")
    assert (refused["result"], refused["error"]) == ("error", "authenticationError") and "serverTime" in refused
    assert FuturesClient(endpoints.futures_rest, secret=OTHER_SECRET).call("accounts", post=False)["error"] == "authenticationError"
    assert FuturesClient(endpoints.futures_rest, key="nobody").call("accounts", post=False)["error"] == "authenticationError"
    assert futures.call("accounts", post=False, nonce="1000000")["result"] == "success"
    assert futures.call("accounts", post=False, nonce="1000000")["error"] == "nonceDuplicate"
    assert futures.call("accounts", post=False, nonce="999999")["result"] == "success"  # slightly out of order is fine
    assert futures.call("accounts", post=False, nonce="900000")["error"] == "nonceBelowThreshold"


def test_signing_without_the_derivatives_prefix_and_with_query_parameters(futures, endpoints):
    import requests

    path = "/derivatives/api/v3/cancelallorders"
    data = "symbol=PF_XBTUSD"
    headers = {"APIKey": futures.key, "Nonce": "77", "Authent": futures_sign(futures.secret, "/api/v3/cancelallorders", "77", data)}
    body = requests.post(endpoints.spot_rest + path + "?" + data, headers=headers, timeout=5).json()
    assert body["result"] == "success" and body["cancelStatus"]["cancelOnly"] == "PF_XBTUSD"


def test_accounts_and_a_filled_market_order_opens_a_position(futures, sim):
    flex = futures.call("accounts", post=False)["accounts"]["flex"]
    assert flex["type"] == "multiCollateralMarginAccount" and flex["availableMargin"] == 10000.0
    sent = futures.call("sendorder", {"orderType": "mkt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.5",
                                      "cliOrdId": "f-1"})
    status = sent["sendStatus"]
    assert sent["result"] == "success" and status["status"] == "filled" and status["cliOrdId"] == "f-1"
    assert status["orderEvents"][0]["type"] == "EXECUTION" and status["orderEvents"][0]["price"] == 60000.0
    [position] = futures.call("openpositions", post=False)["openPositions"]
    assert (position["side"], position["symbol"], position["size"], position["price"]) == ("long", "PF_XBTUSD", 0.5, 60000.0)
    sim.set_price("XBTUSD", "61000")
    flex = futures.call("accounts", post=False)["accounts"]["flex"]
    assert flex["totalUnrealized"] == 500.0
    assert flex["collateralValue"] == 10000.0 - 15.0  # taker fee 0.05 % of 30000


def test_sendorder_statuses(futures):
    order = {"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "1", "limitPrice": "59000", "cliOrdId": "dup"}
    placed = futures.call("sendorder", order)["sendStatus"]
    assert placed["status"] == "placed" and placed["orderEvents"][0]["type"] == "PLACE"
    assert futures.call("sendorder", order)["sendStatus"]["status"] == "clientOrderIdAlreadyExist"
    big = {**order, "size": "100", "cliOrdId": "big"}
    rejected = futures.call("sendorder", big)["sendStatus"]
    assert rejected["status"] == "insufficientAvailableFunds" and rejected["orderEvents"][0]["type"] == "REJECT"
    assert futures.call("sendorder", {**order, "orderType": "post", "limitPrice": "61000", "cliOrdId": "p"})[
        "sendStatus"]["status"] == "postWouldExecute"
    assert futures.call("sendorder", {**order, "orderType": "ioc", "cliOrdId": "i"})["sendStatus"]["status"] == "iocWouldNotExecute"
    assert futures.call("sendorder", {**order, "size": "0.00001", "cliOrdId": "s"})["sendStatus"]["status"] == "invalidSize"
    assert futures.call("sendorder", {**order, "limitPrice": "59000.05", "cliOrdId": "t"})["sendStatus"]["status"] == "invalidPrice"
    assert futures.call("sendorder", {"orderType": "lmt", "symbol": "PF_XBTUSD"})["error"] == "requiredArgumentMissing"
    assert futures.call("sendorder", {**order, "orderType": "trailing_stop"})["error"] == "invalidArgument"
    assert futures.call("sendorder", {**order, "symbol": "PF_NOPEUSD"})["error"] == "invalidArgument"


def test_resting_order_fills_cancel_and_dead_mans_switch(futures, sim, clock):
    first = futures.call("sendorder", {"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.1",
                                       "limitPrice": "59000"})["sendStatus"]["order_id"]
    second = futures.call("sendorder", {"orderType": "stp", "symbol": "PF_XBTUSD", "side": "sell", "size": "0.1",
                                        "stopPrice": "50000", "cliOrdId": "stop"})["sendStatus"]["order_id"]
    assert {o["order_id"] for o in futures.call("openorders", post=False)["openOrders"]} == {first, second}
    sim.set_price("XBTUSD", "58000")
    [fill] = futures.call("fills", post=False)["fills"]
    assert (fill["order_id"], fill["price"], fill["fillType"]) == (first, 59000.0, "maker")
    cancelled = futures.call("cancelorder", {"cliOrdId": "stop"})["cancelStatus"]
    assert cancelled["status"] == "cancelled" and cancelled["order_id"] == second
    assert futures.call("cancelorder", {"order_id": second})["cancelStatus"]["status"] == "notFound"
    again = futures.call("sendorder", {"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.1",
                                       "limitPrice": "50000"})["sendStatus"]["order_id"]
    status = futures.call("cancelallordersafter", {"timeout": "60"})["status"]
    assert status["triggerTime"] > status["currentTime"]
    clock.advance(60)
    sim.advance()
    assert futures.call("openorders", post=False)["openOrders"] == []
    assert sim.futures.orders[again].status == "cancelled"
    assert futures.call("cancelallordersafter", {"timeout": "0"})["status"]["triggerTime"] == "0"
    assert futures.call("cancelallorders")["cancelStatus"]["status"] == "noOrdersToCancel"


def test_futures_budget_gives_api_limit_exceeded(futures):
    results = [futures.call("cancelallorders")["result"] for _ in range(21)]  # 25 each, 500 per 10 s
    assert results[:20] == ["success"] * 20 and results[20] == "error"
    assert futures.call("cancelallorders")["error"] == "apiLimitExceeded"
