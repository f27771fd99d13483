"""Depth, Trades, AmendOrder, EditOrder, AddOrderBatch and CancelOrderBatch without HTTP:
Kraken's semantics and its trading-counter costs."""

from decimal import Decimal as D

import pytest

from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.exchange import PaperExchange
from rules_engine.sim.market import MarketData
from rules_engine.sim.spot_api import SpotApi
from rules_engine.sim.spot_trading import install

T0 = 1_790_000_000.0


@pytest.fixture
def api():
    exchange = PaperExchange(seed=2)
    market = MarketData(exchange.pairs, seed=5)
    for pair, price in (("XBTUSD", D("60000")), ("ETHUSD", D("3000"))):
        market.update(pair, price, T0, D("0.5"))
        exchange.on_price(pair, price, T0)
    exchange.set_balances("a", {"ZUSD": "1000000", "XXBT": "10"})
    api = SpotApi(exchange, market)
    install(api)
    return api


def limit(api, price, volume="0.1", side="buy", now=T0, **extra):
    params = {"pair": "XBTUSD", "type": side, "ordertype": "limit", "volume": volume, "price": price, **extra}
    return api.private("AddOrder", "a", params, now)["txid"][0]


def counter(api, now=T0):
    return api.trade_counter("a", "XBTUSD", now)


def test_depth_top_is_the_ticker_and_resting_orders_are_on_it(api):
    txid = limit(api, "59990")
    book = api.public("Depth", {"pair": "XBT/USD", "count": "20"}, T0)["XXBTZUSD"]
    ticker = api.public("Ticker", {"pair": "XBTUSD"}, T0)["XXBTZUSD"]
    assert book["asks"][0][0] == ticker["a"][0] == "60000.10000"
    assert book["bids"][0][0] == ticker["b"][0] == "59999.90000"
    assert D(book["bids"][0][1]).quantize(D("0.001")) == D(ticker["b"][2])
    prices = [D(row[0]) for row in book["bids"]]
    assert prices == sorted(prices, reverse=True) and D("59990.0") in prices
    level = next(row for row in book["bids"] if row[0] == "59990.00000")
    assert D(level[1]) == D("0.1")  # no seeded level there: only the resting order
    assert api.public("Depth", {"pair": "XBTUSD"}, T0)["XXBTZUSD"]["asks"].__len__() == 100
    with pytest.raises(ExchangeError, match="count"):
        api.public("Depth", {"pair": "XBTUSD", "count": "501"}, T0)
    api.private("CancelOrder", "a", {"txid": txid}, T0 + 1)
    assert all(row[0] != "59990.00000" for row in api.public("Depth", {"pair": "XBTUSD"}, T0)["XXBTZUSD"]["bids"])


def test_trades_are_prints_and_fills_with_a_last_cursor(api):
    api.market.update("XBTUSD", D("60100"), T0 + 1, D("0.2"))
    api.exchange.on_price("XBTUSD", D("60100"), T0 + 1)
    api.private("AddOrder", "a", {"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "0.3"}, T0 + 2)
    first = api.public("Trades", {"pair": "XBTUSD"}, T0 + 3)
    rows = first["XXBTZUSD"]
    assert [r[:5] for r in rows] == [["60000.00000", "0.50000000", T0, "b", "m"],
                                     ["60100.00000", "0.20000000", T0 + 1, "b", "m"],
                                     ["60100.00000", "0.30000000", T0 + 2, "s", "m"]]
    assert [r[6] for r in rows] == [1, 2, 3] and first["last"] == str(int((T0 + 2) * 1e9))
    assert api.public("Trades", {"pair": "XBTUSD", "since": first["last"]}, T0 + 3)["XXBTZUSD"] == []
    assert len(api.public("Trades", {"pair": "XBTUSD", "since": str(int(T0))}, T0 + 3)["XXBTZUSD"]) == 2


def test_amend_keeps_the_txid_and_costs_by_age(api):
    txid = limit(api, "59000", cl_ord_id="mine-1")
    assert counter(api) == 1
    result = api.private("AmendOrder", "a", {"cl_ord_id": "mine-1", "order_qty": "0.2", "limit_price": "59100"},
                         T0 + 1)
    assert result["amend_id"].startswith("T")
    order = api.exchange.orders[txid]
    assert (order.volume, order.price, order.cl_ord_id, order.is_open) == (D("0.2"), D("59100"), "mine-1", True)
    assert api.exchange.holds("a")["ZUSD"] > D("0.2") * D("59100")
    assert counter(api, T0 + 1) == pytest.approx(1 - 1 + 1 + 3)  # decay 1/s, +1 fixed, +3 under 5 s
    with pytest.raises(ExchangeError, match="Post only order"):
        api.private("AmendOrder", "a", {"txid": txid, "limit_price": "60500", "post_only": "true"}, T0 + 2)
    with pytest.raises(ExchangeError, match="Tick size"):
        api.private("AmendOrder", "a", {"txid": txid, "limit_price": "59100.05"}, T0 + 2)
    with pytest.raises(ExchangeError, match="Insufficient funds"):
        api.private("AmendOrder", "a", {"txid": txid, "order_qty": "100"}, T0 + 2)
    assert api.exchange.orders[txid].volume == D("0.2")
    with pytest.raises(ExchangeError, match="Unknown order"):
        api.private("AmendOrder", "a", {"txid": "ONOPE0-AAAAA-BBBBBB", "order_qty": "1"}, T0 + 2)
    fills = api.exchange.orders[txid]
    api.private("AmendOrder", "a", {"txid": txid, "limit_price": "60500"}, T0 + 30)  # crosses: fills now
    assert fills.status == "closed" and fills.avg_price == D("60000")


def test_edit_replaces_the_order_and_keeps_it_when_refused(api):
    old = limit(api, "59000")
    result = api.private("EditOrder", "a", {"txid": old, "pair": "XBTUSD", "volume": "0.3", "price": "58000"},
                         T0 + 20)
    assert result["originaltxid"] == old and result["txid"] != old and result["status"] == "ok"
    assert (result["volume"], result["price"], result["orders_cancelled"]) == ("0.30000000", "58000.0", 1)
    assert api.exchange.orders[old].status == "canceled"
    new = api.exchange.orders[result["txid"]]
    assert (new.volume, new.price, new.is_open) == (D("0.3"), D("58000"), True)
    assert counter(api, T0 + 20) == pytest.approx(1 + 2)  # the AddOrder decayed; edit +1, age 20 s +2
    with pytest.raises(ExchangeError, match="Insufficient funds"):
        api.private("EditOrder", "a", {"txid": new.txid, "pair": "XBTUSD", "volume": "1000"}, T0 + 100)
    assert new.is_open and api.exchange.holds("a")["ZUSD"] > 0


def test_add_order_batch_validates_all_then_places_each(api):
    orders = [{"type": "buy", "ordertype": "limit", "volume": "0.1", "price": "59000"},
              {"type": "sell", "ordertype": "limit", "volume": "0.1", "price": "61000", "cl_ord_id": "b-2"}]
    result = api.private("AddOrderBatch", "a", {"pair": "XBTUSD", "orders": orders}, T0)
    assert [sorted(entry) for entry in result["orders"]] == [["descr", "txid"], ["descr", "txid"]]
    assert all(isinstance(entry["txid"], str) for entry in result["orders"])
    assert counter(api) == 1  # n/2
    bad = [*orders[:1], {"type": "buy", "ordertype": "limit", "volume": "0.1", "price": "59000.05"}]
    with pytest.raises(ExchangeError, match="Tick size"):
        api.private("AddOrderBatch", "a", {"pair": "XBTUSD", "orders": bad}, T0)
    assert len(api.exchange.open_orders("a")) == 2
    funded = [{"type": "buy", "ordertype": "limit", "volume": "1", "price": "59000"},
              {"type": "buy", "ordertype": "limit", "volume": "100", "price": "59000"}]
    outcome = api.private("AddOrderBatch", "a", {"pair": "XBTUSD", "orders": funded}, T0)["orders"]
    assert "txid" in outcome[0] and outcome[1] == {"error": "EOrder:Insufficient funds"}
    with pytest.raises(ExchangeError, match="Invalid arguments:orders"):
        api.private("AddOrderBatch", "a", {"pair": "XBTUSD", "orders": orders[:1]}, T0)
    validated = api.private("AddOrderBatch", "a", {"pair": "XBTUSD", "orders": orders[:1] * 2, "validate": True}, T0)
    assert all("txid" not in entry for entry in validated["orders"])


def test_cancel_order_batch_charges_each_order_s_cancel_penalty(api):
    txids = [limit(api, "59000"), limit(api, "58000", userref=7), limit(api, "57000", cl_ord_id="c-3")]
    before = counter(api, T0 + 2)
    result = api.private("CancelOrderBatch", "a", {"orders": [txids[0], "7"], "cl_ord_ids": ["c-3"]}, T0 + 2)
    assert result == {"count": 3} and all(api.exchange.orders[t].status == "canceled" for t in txids)
    assert counter(api, T0 + 2) == pytest.approx(before + 3 * 8)
    with pytest.raises(ExchangeError, match="Unknown order"):
        api.private("CancelOrderBatch", "a", {"orders": [txids[0]]}, T0 + 3)
    with pytest.raises(ExchangeError, match="Invalid arguments:orders"):
        api.private("CancelOrderBatch", "a", {"orders": [f"O{n}" for n in range(51)]}, T0 + 3)
