"""Spot REST over HTTP with a hand-signed client: auth, nonces, bodies, errors, counters,
the order lifecycle and the dead man's switch."""

import json
from decimal import Decimal

import pytest
import requests
from sim_support import KEY, OTHER_KEY, OTHER_SECRET, SECRET, SpotClient, spot_sign

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.1", "price": "59000"}


def test_form_and_json_bodies_are_both_signed_over_their_exact_text(spot):
    assert spot.ok("Balance") == {"XXBT": "1.0000000000", "ZUSD": "10000.0000"}
    assert spot.ok("Balance", json_body=True) == {"XXBT": "1.0000000000", "ZUSD": "10000.0000"}
    # JSON numbers (nonce as an integer, volume as a float) are read exactly
    result = spot.ok("AddOrder", {**LIMIT, "volume": 0.1, "price": 59000}, json_body=True, nonce=10**15)
    assert result["descr"]["order"] == "buy 0.10000000 XBTUSD @ limit 59000.0"


def test_official_documentation_example_is_accepted(endpoints, sim):
    """Kraken's own signing example (secret, nonce, body, API-Sign) verifies unchanged."""
    from rules_engine.sim import Account

    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    sim.add_account(Account("doc-key", secret, {"ZUSD": "100000"}))
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    sign = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    response = requests.post(
        endpoints.spot_rest + "/0/private/AddOrder",
        data=body,
        headers={"API-Key": "doc-key", "API-Sign": sign, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    ).json()
    assert response["error"] == [] and response["result"]["descr"]["order"] == "buy 1.25000000 XBTUSD @ limit 37500.0"


def test_auth_errors(spot, endpoints):
    assert spot.private("Balance", headers={"API-Key": "nobody"}) == {"error": ["EAPI:Invalid key"]}
    assert spot.private("Balance", headers={"API-Sign": "bm90IGEgc2lnbmF0dXJl"}) == {"error": ["EAPI:Invalid signature"]}
    assert spot.private("Balance", headers={"API-Sign": "%%% garbage"}) == {"error": ["EAPI:Invalid signature"]}
    missing = requests.post(endpoints.spot_rest + "/0/private/Balance", data="nonce=1",
                            headers={"API-Key": KEY}, timeout=5).json()
    assert missing == {"error": ["EAPI:Invalid signature"]}
    wrong_secret = SpotClient(endpoints.spot_rest, KEY, OTHER_SECRET)
    assert wrong_secret.private("Balance") == {"error": ["EAPI:Invalid signature"]}


def test_nonce_must_strictly_increase_per_key(spot, endpoints):
    assert spot.private("Balance", nonce="5000000000000000")["error"] == []
    assert spot.private("Balance", nonce="5000000000000000") == {"error": ["EAPI:Invalid nonce"]}
    assert spot.private("Balance", nonce="4999999999999999") == {"error": ["EAPI:Invalid nonce"]}
    assert spot.private("Balance", nonce="abc") == {"error": ["EAPI:Invalid nonce"]}
    assert spot.private("Balance", nonce="5000000000000001")["error"] == []
    # another key has its own nonce
    other = SpotClient(endpoints.spot_rest, OTHER_KEY, OTHER_SECRET)
    assert other.private("Balance", nonce="1")["error"] == []


def test_repeated_invalid_keys_lock_the_client_out(spot, clock):
    bad = {"API-Key": "nobody"}
    for _ in range(4):
        assert spot.private("Balance", headers=bad) == {"error": ["EAPI:Invalid key"]}
    assert spot.private("Balance", headers=bad) == {"error": ["EAPI:Invalid key"]}
    assert spot.private("Balance") == {"error": ["EGeneral:Temporary lockout"]}
    clock.advance(61)
    assert spot.private("Balance")["error"] == []


def test_rest_call_counter_of_the_starter_tier(spot, clock):
    for _ in range(15):
        assert spot.private("Balance")["error"] == []
    assert spot.private("Balance") == {"error": ["EAPI:Rate limit exceeded"]}
    # trading calls do not use the REST counter
    assert spot.private("AddOrder", LIMIT)["error"] == []
    clock.advance(10)  # 0.33/s decays 3.3; the refused call was counted too
    assert spot.private("Balance")["error"] == []
    assert spot.private("Balance")["error"] == []
    assert spot.private("Balance") == {"error": ["EAPI:Rate limit exceeded"]}


def test_trading_counter_is_per_pair_and_cancels_cost_by_age(spot, sim, clock):
    for _ in range(30):
        txid = spot.ok("AddOrder", {**LIMIT, "volume": "0.001"})["txid"][0]
        spot.ok("CancelOrder", {"txid": txid})  # +1 add, +8 cancel (< 5 s old)
        if sim.spot_api.trade_counter(KEY, "XBTUSD", clock()) > 51:
            break
    assert sim.spot_api.trade_counter(KEY, "XBTUSD", clock()) == 54
    txid = spot.ok("AddOrder", {**LIMIT, "volume": "0.001"})["txid"][0]
    assert spot.private("CancelOrder", {"txid": txid}) == {"error": ["EOrder:Rate limit exceeded"]}
    clock.advance(300)  # 1/s decay, and an old order cancels for free
    assert spot.ok("CancelOrder", {"txid": txid}) == {"count": 1}
    assert spot.ok("AddOrder", {**LIMIT, "pair": "ETHUSD", "volume": "0.01", "price": "2900"})


@pytest.mark.parametrize(
    "params, error",
    [
        ({**LIMIT, "pair": "NOPEUSD"}, "EQuery:Unknown asset pair"),
        ({**LIMIT, "ordertype": "nonsense"}, "EGeneral:Invalid arguments:ordertype"),
        ({**LIMIT, "volume": "lots"}, "EGeneral:Invalid arguments:volume"),
        ({**LIMIT, "volume": "1"}, "EOrder:Insufficient funds"),
        ({**LIMIT, "volume": "0.00001"}, "EOrder:Order minimum not met"),
        ({**LIMIT, "price": "59000.05"}, "EOrder:Tick size check failed"),
        ({**LIMIT, "userref": "5", "cl_ord_id": "abc"}, "EGeneral:Invalid arguments:cl_ord_id"),
        ({**LIMIT, "leverage": "2"}, "EOrder:Cannot open position"),
        ({**LIMIT, "trigger": "index", "ordertype": "stop-loss"}, "EGeneral:Invalid arguments:Index unavailable"),
        ({**LIMIT, "deadline": "2001-01-01T00:00:00Z"}, "EService:Deadline elapsed"),
        ({**LIMIT, "ordertype": "settle-position"}, "EGeneral:Invalid arguments:ordertype"),
    ],
)
def test_add_order_refusals(spot, params, error):
    assert spot.private("AddOrder", params) == {"error": [error]}
    assert spot.ok("OpenOrders") == {"open": {}}


def test_other_error_strings(spot, endpoints):
    assert spot.private("CancelOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"}) == {"error": ["EOrder:Unknown order"]}
    assert spot.private("QueryOrders", {"txid": "OAAAAA-BBBBB-CCCCCC"}) == {"error": ["EOrder:Invalid order"]}
    assert spot.private("NoSuchMethod") == {"error": ["EGeneral:Unknown method"]}
    assert spot.private("CancelAllOrdersAfter", {"timeout": "86400"}) == {"error": ["EGeneral:Invalid arguments:timeout"]}
    assert spot.public("Ticker", pair="NOPEUSD") == {"error": ["EQuery:Unknown asset pair"]}
    bad_json = requests.post(
        endpoints.spot_rest + "/0/private/Balance",
        data='{"nonce": 99999999999999999, "oops"',
        headers={"API-Key": KEY, "API-Sign": spot_sign(SECRET, "/0/private/Balance", "1", "x"),
                 "Content-Type": "application/json"},
        timeout=5,
    ).json()
    assert bad_json == {"error": ["EAPI:Invalid nonce"]}


def test_validate_true_describes_without_placing(spot):
    result = spot.ok("AddOrder", {**LIMIT, "validate": "true", "close[ordertype]": "stop-loss", "close[price]": "55000"})
    assert result == {"descr": {"order": "buy 0.10000000 XBTUSD @ limit 59000.0", "close": "close position @ stop loss 55000.0"}}
    assert spot.ok("OpenOrders") == {"open": {}}


def test_order_lifecycle_rest_fill_fees_and_balances(spot, sim):
    placed = spot.ok("AddOrder", {**LIMIT, "cl_ord_id": "rule-1-fire-1"})
    [txid] = placed["txid"]
    assert placed["descr"] == {"order": "buy 0.10000000 XBTUSD @ limit 59000.0"}
    assert spot.private("AddOrder", {**LIMIT, "cl_ord_id": "rule-1-fire-1"}) == {"error": ["EOrder:Duplicate order"]}
    assert spot.ok("BalanceEx")["ZUSD"] == {"balance": "10000.0000", "hold_trade": "5923.6000"}
    assert list(spot.ok("OpenOrders", {"cl_ord_id": "rule-1-fire-1"})["open"]) == [txid]
    assert spot.ok("OpenOrders", {"cl_ord_id": "other"}) == {"open": {}}
    fills = sim.set_price("XBTUSD", "58900")
    assert [f.txid for f in fills] == [txid]
    order = spot.ok("QueryOrders", {"txid": txid, "trades": "true"})[txid]
    assert (order["status"], order["vol_exec"], order["cost"], order["fee"], order["price"]) == (
        "closed", "0.10000000", "5900.00000", "14.75000", "59000.0")  # cost_decimals 5
    assert order["cl_ord_id"] == "rule-1-fire-1" and len(order["trades"]) == 1
    assert spot.ok("Balance") == {"XXBT": "1.1000000000", "ZUSD": "4085.2500"}
    closed = spot.ok("ClosedOrders")
    assert closed["count"] == 1 and list(closed["closed"]) == [txid]
    trades = spot.ok("TradesHistory")["trades"]
    [trade] = trades.values()
    assert trade["pair"] == "XXBTZUSD" and trade["maker"] is True and trade["fee"] == "14.75000"
    assert (trade["price"], trade["cost"], trade["vol"]) == ("59000.00000", "5900.00000", "0.10000000")
    market = spot.ok("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "0.5"})
    assert spot.ok("QueryOrders", {"txid": market["txid"][0]})[market["txid"][0]]["price"] == "58900.0"
    assert spot.ok("TradeBalance")["eb"] == "68757.4500"  # 33417.45 USD + 0.6 XBT at 58900


def test_cancel_by_txid_userref_and_cl_ord_id_and_cancel_all(spot):
    small = {**LIMIT, "volume": "0.01"}
    a = spot.ok("AddOrder", {**small, "userref": "42"})["txid"][0]
    spot.ok("AddOrder", {**small, "userref": "42"})
    spot.ok("AddOrder", {**small, "cl_ord_id": "c-1"})
    spot.ok("AddOrder", small)
    spot.ok("AddOrder", small)
    assert len(spot.ok("OpenOrders", {"userref": "42"})["open"]) == 2
    assert spot.ok("CancelOrder", {"txid": "42"}) == {"count": 2}
    assert spot.ok("CancelOrder", {"cl_ord_id": "c-1"}) == {"count": 1}
    assert spot.private("CancelOrder", {"txid": a}) == {"error": ["EOrder:Unknown order"]}
    assert spot.ok("CancelAll") == {"count": 2}
    assert spot.ok("OpenOrders") == {"open": {}}
    reasons = {o["reason"] for o in spot.ok("ClosedOrders")["closed"].values()}
    assert reasons == {"User requested"}


def test_cancel_all_orders_after_really_cancels_when_the_timer_runs_out(spot, sim, clock):
    txid = spot.ok("AddOrder", LIMIT)["txid"][0]
    result = spot.ok("CancelAllOrdersAfter", {"timeout": "60"})
    assert result["triggerTime"] > result["currentTime"]
    clock.advance(30)
    spot.ok("CancelAllOrdersAfter", {"timeout": "60"})  # pushed back
    clock.advance(59)
    sim.advance()
    assert txid in spot.ok("OpenOrders")["open"]
    clock.advance(1)
    sim.advance()
    assert spot.ok("OpenOrders") == {"open": {}}
    assert spot.ok("QueryOrders", {"txid": txid})[txid]["status"] == "canceled"
    later = spot.ok("AddOrder", LIMIT)["txid"][0]
    clock.advance(3600)
    sim.advance()  # the switch disabled itself after firing
    assert later in spot.ok("OpenOrders")["open"]
    assert spot.ok("CancelAllOrdersAfter", {"timeout": "0"})["triggerTime"] == "0"


def test_stop_and_take_profit_orders_over_http(spot, sim):
    stop = spot.ok("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "stop-loss-limit", "volume": "0.2",
                                "price": "58000", "price2": "57900"})
    assert stop["descr"]["order"] == "sell 0.20000000 XBTUSD @ stop loss 58000.0 -> limit 57900.0"
    take = spot.ok("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "take-profit", "volume": "0.2",
                                "price": "+1000"})  # relative to the last price
    assert take["descr"]["order"] == "sell 0.20000000 XBTUSD @ take profit 61000.0"
    sim.set_price("XBTUSD", "61000")
    sim.set_price("XBTUSD", "57950")
    orders = spot.ok("QueryOrders", {"txid": f"{stop['txid'][0]},{take['txid'][0]}"})
    assert orders[take["txid"][0]]["price"] == "61000.0"
    assert orders[stop["txid"][0]]["status"] == "closed" and orders[stop["txid"][0]]["stopprice"] == "58000.00000"


def test_public_endpoints(spot, sim, clock):
    assert spot.public("Time")["result"]["unixtime"] == int(clock())
    assert spot.public("SystemStatus")["result"]["status"] == "online"
    pairs = spot.public("AssetPairs", pair="XBTUSD,ETH/USD")["result"]
    assert sorted(pairs) == ["XETHZUSD", "XXBTZUSD"] and pairs["XXBTZUSD"]["wsname"] == "XBT/USD"
    fees = spot.public("AssetPairs", pair="XBTUSD", info="fees")["result"]["XXBTZUSD"]
    assert set(fees) == {"fees", "fees_maker", "fee_volume_currency"}
    sim.set_price("XBTUSD", "60500", volume="0.5")
    ticker = spot.public("Ticker", pair="XBTUSD")["result"]["XXBTZUSD"]
    assert ticker["c"] == ["60500.00000", "0.50000000"] and ticker["o"] == "60000.00000"
    assert ticker["a"][0] == "60500.10000" and ticker["b"][0] == "60499.90000" and ticker["h"] == ["60500.00000", "60500.00000"]
    assert set(ticker) == set("abcvptlho")
    assert len(spot.public("Ticker")["result"]) == 18
    ohlc = spot.public("OHLC", pair="XBTUSD", interval=5)["result"]
    row = ohlc["XXBTZUSD"][-1]
    assert row[1:5] == ["60000.00000", "60500.00000", "60000.00000", "60500.00000"] and row[7] == 1
    assert spot.public("OHLC", pair="XBTUSD", interval=7) == {"error": ["EGeneral:Invalid arguments:interval"]}
    token = spot.ok("GetWebSocketsToken")
    assert token["expires"] == 900 and len(token["token"]) == 43


def test_system_status_modes(spot, sim):
    sim.set_system_status("cancel_only")
    assert spot.private("AddOrder", LIMIT) == {"error": ["EService:Market in cancel_only mode"]}
    sim.set_system_status("post_only")
    assert spot.private("AddOrder", LIMIT) == {"error": ["EService:Market in post_only mode"]}
    assert spot.ok("AddOrder", {**LIMIT, "oflags": "post"})["txid"]
    sim.set_system_status("maintenance")
    assert spot.private("Balance") == {"error": ["EService:Unavailable"]}
    assert spot.public("SystemStatus")["result"]["status"] == "maintenance"


def test_envelope_is_http_200_with_error_only_on_failure(spot):
    response = spot.raw("Balance", headers={"API-Key": "nobody"})
    assert response.status_code == 200 and json.loads(response.text) == {"error": ["EAPI:Invalid key"]}
    assert Decimal(spot.ok("Balance")["ZUSD"]) == Decimal("10000")
