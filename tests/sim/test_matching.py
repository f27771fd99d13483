"""The pure paper exchange: placement checks, holds, triggers, fills, fees, persistence."""

import json
from decimal import Decimal as D

import pytest

from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.fees import FeeSchedule
from rules_engine.paper.exchange import DEAD_MAN_REASON, PaperExchange, valid_cl_ord_id
from rules_engine.paper.orders import CloseSpec, Offset, OrderRequest, describe

T0 = 1_700_000_000.0


@pytest.fixture
def ex():
    exchange = PaperExchange(seed=1)
    exchange.set_balances("a", {"USD": "10000", "BTC": "1"})
    exchange.on_price("XBTUSD", D("60000"), T0)
    return exchange


def req(side="buy", ordertype="limit", volume="0.1", price=None, **kw):
    if "price2" in kw:
        kw["price2"] = D(kw["price2"])
    return OrderRequest("XBTUSD", side, ordertype, D(volume), price=None if price is None else D(price), **kw)


def test_resting_buy_limit_holds_quote_and_fills_as_maker_at_its_limit(ex):
    order, fills = ex.place("a", req(price="59000"), T0)
    assert fills == [] and order.status == "open" and order.resting
    # 0.1 * 59000 * (1 + 0.4 % taker) reserved while open
    assert ex.holds("a") == {"ZUSD": D("5923.6000")}
    assert ex.available("a", "ZUSD") == D("4076.4000")
    assert ex.on_price("XBTUSD", D("59000.1"), T0 + 1) == []
    [fill] = ex.on_price("XBTUSD", D("58000"), T0 + 2)
    assert (fill.price, fill.maker, fill.cost, fill.fee) == (D("59000"), True, D("5900.0000"), D("14.7500"))
    assert order.status == "closed" and order.vol_exec == D("0.1")
    assert ex.balances("a") == {"ZUSD": D("4085.2500"), "XXBT": D("1.1")}
    assert ex.holds("a") == {}


def test_market_orders_fill_at_once_at_the_last_price_as_taker(ex):
    order, [fill] = ex.place("a", req("sell", "market", "0.5"), T0)
    assert order.status == "closed" and order.txid.startswith("O")
    assert (fill.price, fill.maker, fill.fee) == (D("60000"), False, D("120.0000"))
    assert ex.balances("a") == {"ZUSD": D("39880.0000"), "XXBT": D("0.5")}


def test_marketable_limit_takes_at_the_better_last_price_and_post_only_is_cancelled(ex):
    _, [fill] = ex.place("a", req(price="61000"), T0)
    assert fill.price == D("60000") and not fill.maker
    post, fills = ex.place("a", req(volume="0.01", price="61000", oflags=frozenset({"post"})), T0)
    assert fills == [] and (post.status, post.reason) == ("canceled", "Post only order")


def test_insufficient_funds_counts_what_open_orders_hold(ex):
    ex.place("a", req(volume="0.16", price="59000"), T0)  # holds 9477.76 of 10000
    with pytest.raises(ExchangeError, match="EOrder:Insufficient funds"):
        ex.place("a", req(volume="0.01", price="59000"), T0)
    with pytest.raises(ExchangeError, match="EOrder:Insufficient funds"):
        ex.place("a", req("sell", "limit", "1.5", price="70000"), T0)


@pytest.mark.parametrize(
    "request_, error",
    [
        (req(volume="0.00001", price="59000"), "EOrder:Order minimum not met"),
        (req(volume="0.1", price="59000.05"), "EOrder:Tick size check failed"),
        (req(ordertype="limit"), "EGeneral:Invalid arguments:price"),
        (req(ordertype="bogus", price="1"), "EGeneral:Invalid arguments:ordertype"),
        (req(ordertype="settle-position", price="1"), "EGeneral:Invalid arguments:ordertype"),
        (req(side="hold", price="1"), "EGeneral:Invalid arguments:type"),
        (req(volume="0.123456789", price="59000"), "EGeneral:Invalid arguments:volume"),
        (req(ordertype="stop-loss-limit", price="59000"), "EGeneral:Invalid arguments:price2"),
        (req(ordertype="market", oflags=frozenset({"post"})), "EGeneral:Invalid arguments:oflags"),
        (req(price="59000", userref=1, cl_ord_id="x"), "EGeneral:Invalid arguments:cl_ord_id"),
        (req(price="59000", cl_ord_id="way-too-long-free-text-id"), "EGeneral:Invalid arguments:cl_ord_id"),
        (req(price="59000", timeinforce="GTD"), "EGeneral:Invalid arguments:expiretm"),
        (OrderRequest("NOPE", "buy", "limit", D("1"), price=D("1")), "EQuery:Unknown asset pair"),
    ],
)
def test_refusals_use_krakens_error_strings(ex, request_, error):
    with pytest.raises(ExchangeError) as caught:
        ex.place("a", request_, T0)
    assert caught.value.error == error
    assert ex.open_orders("a") == []


def test_cost_minimum():
    exchange = PaperExchange()
    exchange.set_balances("a", {"ZUSD": "100"})
    exchange.on_price("XDGUSD", D("0.01"), T0)
    with pytest.raises(ExchangeError, match="EOrder:Cost minimum not met"):
        exchange.place("a", OrderRequest("XDGUSD", "buy", "limit", D("20"), price=D("0.01")), T0)


def test_duplicate_open_cl_ord_id_is_refused_until_the_first_closes(ex):
    first, _ = ex.place("a", req(price="50000", cl_ord_id="my-order-1"), T0)
    with pytest.raises(ExchangeError, match="EOrder:Duplicate order"):
        ex.place("a", req(price="50000", cl_ord_id="my-order-1"), T0)
    ex.cancel("a", T0, cl_ord_id="my-order-1")
    second, _ = ex.place("a", req(price="50000", cl_ord_id="my-order-1"), T0)
    assert second.txid != first.txid


def test_validate_checks_but_places_nothing(ex):
    order = ex.validate("a", req(volume="100", price="59000"), T0)  # funds are not checked
    assert order.txid == "" and ex.orders == {}
    with pytest.raises(ExchangeError, match="Order minimum"):
        ex.validate("a", req(volume="0.000001", price="59000"), T0)


@pytest.mark.parametrize(
    "side, ordertype, trigger, quiet, crossing",
    [
        ("sell", "stop-loss", "58000", "58000.1", "57990"),
        ("buy", "stop-loss", "62000", "61999.9", "62010"),
        ("sell", "take-profit", "62000", "61999.9", "62010"),
        ("buy", "take-profit", "58000", "58000.1", "57990"),
    ],
)
def test_stop_and_take_profit_trigger_on_the_right_side_and_fill_at_market(ex, side, ordertype, trigger, quiet, crossing):
    order, fills = ex.place("a", req(side, ordertype, "0.1", price=trigger), T0)
    assert fills == [] and order.status == "open"
    assert ex.on_price("XBTUSD", D(quiet), T0 + 1) == []
    [fill] = ex.on_price("XBTUSD", D(crossing), T0 + 2)
    assert fill.price == D(crossing) and not fill.maker
    assert order.stopprice == D(trigger) and order.misc == "stopped"


def test_stop_loss_limit_becomes_a_resting_limit_after_the_trigger(ex):
    order, _ = ex.place("a", req("sell", "stop-loss-limit", "0.1", price="58000", price2="58100"), T0)
    assert ex.on_price("XBTUSD", D("57950"), T0 + 1) == []  # triggered; a sell at 58100 is not marketable
    assert order.triggered and order.resting and order.limitprice == D("58100")
    [fill] = ex.on_price("XBTUSD", D("58200"), T0 + 2)
    assert fill.price == D("58100") and fill.maker


def test_stop_loss_limit_marketable_at_the_trigger_takes(ex):
    order, _ = ex.place("a", req("sell", "stop-loss-limit", "0.1", price="58000", price2="57900"), T0)
    [fill] = ex.on_price("XBTUSD", D("57950"), T0 + 1)
    assert fill.price == D("57950") and not fill.maker and order.status == "closed"


def test_take_profit_limit_marketable_at_trigger_takes(ex):
    order, _ = ex.place("a", req("sell", "take-profit-limit", "0.1", price="61000", price2="60500"), T0)
    [fill] = ex.on_price("XBTUSD", D("61200"), T0 + 1)
    assert fill.price == D("61200") and not fill.maker and order.status == "closed"


def test_trailing_stop_follows_the_peak(ex):
    order, _ = ex.place("a", OrderRequest("XBTUSD", "sell", "trailing-stop", D("0.1"), trail=Offset(D("1000"))), T0)
    assert ex.on_price("XBTUSD", D("59500"), T0 + 1) == []
    assert ex.on_price("XBTUSD", D("63000"), T0 + 2) == []  # new peak: trigger 62000
    assert ex.on_price("XBTUSD", D("62100"), T0 + 3) == []
    [fill] = ex.on_price("XBTUSD", D("61900"), T0 + 4)
    assert order.stopprice == D("62000") and fill.price == D("61900")


def test_ioc_limit_that_cannot_fill_is_cancelled(ex):
    order, fills = ex.place("a", req(price="59000", timeinforce="IOC"), T0)
    assert fills == [] and order.status == "canceled"


def test_expiry_start_time_and_dead_mans_switch(ex):
    expiring, _ = ex.place("a", req(volume="0.05", price="50000", expiretm=T0 + 30), T0)
    later, _ = ex.place("a", req(volume="0.05", price="59000", starttm=T0 + 10), T0)
    assert later.status == "pending" and ex.on_price("XBTUSD", D("58000"), T0 + 5) == []
    assert ex.on_price("XBTUSD", D("58000"), T0 + 10)[0].txid == later.txid
    assert ex.advance(T0 + 30) == [expiring] and expiring.status == "expired"
    kept, _ = ex.place("a", req(volume="0.05", price="50000"), T0 + 31)
    assert ex.cancel_all_after("a", 60, T0 + 31) == T0 + 91
    assert ex.advance(T0 + 90) == [] and kept.is_open
    assert ex.advance(T0 + 91) == [kept] and kept.reason == DEAD_MAN_REASON
    assert ex.dead_man_trigger("a") is None  # disabled after it fired


def test_cancel_by_userref_cancels_every_order_carrying_it(ex):
    ex.place("a", req(volume="0.01", price="50000", userref=7), T0)
    ex.place("a", req(volume="0.01", price="50000.1", userref=7), T0)
    ex.place("a", req(volume="0.01", price="50000.2", userref=8), T0)
    assert len(ex.cancel("a", T0, txid="7")) == 2
    assert [o.userref for o in ex.open_orders("a")] == [8]
    with pytest.raises(ExchangeError, match="EOrder:Unknown order"):
        ex.cancel("a", T0, txid="OAAAAA-BBBBB-CCCCCC")


def test_conditional_close_is_placed_when_the_order_fills(ex):
    order, _ = ex.place("a", req(price="59000", close=CloseSpec("stop-loss", D("57000"))), T0)
    ex.on_price("XBTUSD", D("59000"), T0 + 1)
    [close] = ex.open_orders("a")
    assert (close.side, close.ordertype, close.volume, close.parent) == ("sell", "stop-loss", D("0.1"), order.txid)
    assert ex.on_price("XBTUSD", D("56900"), T0 + 2)[0].txid == close.txid


def test_fee_in_base_and_volume_in_quote(ex):
    _, [fill] = ex.place("a", req("buy", "market", "0.1", oflags=frozenset({"fcib"})), T0)
    assert (fill.fee, fill.fee_asset) == (D("0.0004000000"), "XXBT")
    assert ex.balances("a") == {"ZUSD": D("4000.0000"), "XXBT": D("1.0996")}
    _, [fill] = ex.place("a", req("buy", "market", "1004", oflags=frozenset({"viqc"})), T0)
    assert fill.volume == D("0.01666666") and fill.cost + fill.fee <= D("1004")


def test_fees_follow_the_schedule():
    exchange = PaperExchange(fees=FeeSchedule.flat("0", "0.01"))
    exchange.set_balances("a", {"ZUSD": "1000"})
    exchange.on_price("XBTUSD", D("100"), T0)
    _, [fill] = exchange.place("a", OrderRequest("XBTUSD", "buy", "market", D("1")), T0)
    assert fill.fee == D("1.0000")


def test_snapshot_round_trips_through_json(ex):
    ex.place("a", req(price="59000", cl_ord_id="keep"), T0)
    ex.place("a", req("sell", "market", "0.1"), T0)
    ex.cancel_all_after("a", 60, T0)
    data = json.loads(json.dumps(ex.snapshot()))
    copy = PaperExchange.from_snapshot(data)
    assert copy.snapshot() == ex.snapshot()
    assert copy.holds("a") == ex.holds("a")
    next_copy, _ = copy.place("a", req(price="50000"), T0)
    next_original, _ = ex.place("a", req(price="50000"), T0)
    assert next_copy.txid == next_original.txid  # ids continue deterministically


def test_descriptions_and_ids_have_krakens_shapes(ex):
    pair = ex.pair("XBTUSD")
    assert describe(req(volume="1.25", price="37500"), pair) == "buy 1.25000000 XBTUSD @ limit 37500.0"
    assert describe(req("sell", "stop-loss-limit", "1", price="22000", price2="21000"), pair) == (
        "sell 1.00000000 XBTUSD @ stop loss 22000.0 -> limit 21000.0"
    )
    assert describe(req("sell", "market", "2"), pair) == "sell 2.00000000 XBTUSD @ market"
    order, _ = ex.place("a", req(price="50000"), T0)
    head, middle, tail = order.txid.split("-")
    assert (len(head), len(middle), len(tail)) == (6, 5, 6) and order.txid.isupper()


def test_cl_ord_id_formats():
    assert valid_cl_ord_id("6d1b345e-2821-40e2-ad83-4ecb18a06876")
    assert valid_cl_ord_id("6d1b345e282140e2ad834ecb18a06876")
    assert valid_cl_ord_id("rule-42-fire-7")
    assert not valid_cl_ord_id("x" * 19) and not valid_cl_ord_id("") and not valid_cl_ord_id("é")
