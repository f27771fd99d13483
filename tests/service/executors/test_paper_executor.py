"""PaperExecutor: intents on the pure paper exchange, fills only when the price gets there."""

import json
from decimal import Decimal as D
from types import SimpleNamespace

from rules_engine.core import intents as it
from rules_engine.core.events import BalanceUpdate, OrderUpdate, Tick
from rules_engine.execution import PaperExecutor
from rules_engine.sim import FeeSchedule, PaperExchange

T0 = 1_790_000_000.0


def make(balances=None, fees=FeeSchedule.flat("0.0025", "0.004")) -> PaperExecutor:
    exchange = PaperExchange(fees=fees)
    exchange.set_balances("paper", balances or {"ZUSD": "10000"})
    return PaperExecutor(exchange)


def tick(price, t, symbol="XBTUSD", **kw) -> Tick:
    return Tick(symbol, "spot", t, last=None if price is None else D(price), **kw)


def order(n=1, **kw) -> it.PlaceOrder:
    fields = dict(pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.1"), price=D("49000"))
    fields.update(kw)
    return it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", cl_ord_id=f"cl-{n}", **fields)


def test_limit_order_rests_until_the_price_reaches_it_then_fills_at_its_limit_with_maker_fee():
    paper = make()
    assert paper.observe(tick("50000", T0)) == []
    report = paper.execute(order(), T0 + 1)
    assert report.result.ok and len(report.result.data["txid"]) == 1
    txid = report.result.data["txid"][0]
    assert report.events == ()  # resting: the result already says so
    assert report.request == {
        "api": "spot", "method": "AddOrder", "path": "/0/private/AddOrder",
        "params": {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.1", "cl_ord_id": "cl-1",
                   "price": "49000"},
    }
    assert report.response["would_send"] is True
    assert report.response["result"]["txid"] == [txid]
    assert paper.observe(tick("49500", T0 + 2)) == []  # above the limit: still resting
    assert paper.exchange.available("paper", "ZUSD") < D("10000")  # quote held for the order
    events = paper.observe(tick("48800", T0 + 3))  # through the limit
    update, balance = events
    assert isinstance(update, OrderUpdate)
    assert (update.status, update.txid, update.cl_ord_id, update.filled, update.price) == (
        "closed", txid, "cl-1", D("0.1"), D("49000"))
    assert isinstance(balance, BalanceUpdate) and balance.snapshot
    # 0.1 * 49000 = 4900 plus 0.25 % maker fee 12.25
    assert balance.balances == {"ZUSD": D("5087.7500"), "XXBT": D("0.1")}


def test_market_order_fills_at_once_at_the_current_paper_price_with_taker_fee():
    paper = make()
    paper.observe(tick("50000", T0))
    report = paper.execute(order(ordertype="market", price=None, volume=D("0.01")), T0 + 1)
    assert report.result.ok
    update, balance = report.events
    assert (update.status, update.price, update.filled) == ("closed", D("50000"), D("0.01"))
    assert balance.balances == {"ZUSD": D("9498.0000"), "XXBT": D("0.01")}  # 500 + 0.4 % = 502
    assert report.response["paper"]["fills"][0]["maker"] is False


def test_mid_price_used_when_the_tick_has_no_last():
    paper = make()
    paper.observe(tick(None, T0, bid=D("49990"), ask=D("50010")))
    assert paper.exchange.last_price("XBTUSD") == D("50000")


def test_market_order_before_any_price_is_refused_as_the_simulator_does():
    report = make().execute(order(ordertype="market", price=None), T0)
    assert not report.result.ok
    assert report.result.error == "EService:Unavailable"
    assert report.result.data["error_class"] == "Unavailable"


def test_insufficient_funds_is_reported_with_kraken_string_and_class():
    paper = make({"ZUSD": "100"})
    paper.observe(tick("50000", T0))
    report = paper.execute(order(), T0 + 1)
    assert not report.result.ok
    assert report.result.error == "EOrder:Insufficient funds"
    assert report.result.data == {"error_class": "InsufficientFunds", "retry_safe": False}
    assert report.response == {"would_send": True, "error": ["EOrder:Insufficient funds"]}
    assert paper.exchange.open_orders("paper") == []


def test_sell_limit_above_market_fills_when_price_rises():
    paper = make({"XXBT": "1"})
    paper.observe(tick("50000", T0))
    assert paper.execute(order(side="sell", price=D("51000"), volume=D("0.5")), T0 + 1).result.ok
    assert paper.observe(tick("50900", T0 + 2)) == []
    update, balance = paper.observe(tick("51000", T0 + 3))
    assert update.status == "closed"
    assert balance.balances == {"XXBT": D("0.5"), "ZUSD": D("25436.2500")}  # 25500 - 0.25 %


def test_cancel_by_cl_ord_id_and_unknown_order_is_listed_not_fatal():
    paper = make()
    paper.observe(tick("50000", T0))
    txid = paper.execute(order(), T0 + 1).result.data["txid"][0]
    cancel = it.CancelOrder(intent_id="c", rule_id="r", decision_id="r#9", cl_ord_ids=("cl-1",), txids=("ONOPE",))
    report = paper.execute(cancel, T0 + 2)
    assert report.result.ok and report.result.data == {"count": 1, "unknown": ["ONOPE"]}
    assert [(e.status, e.txid) for e in report.events] == [("canceled", txid)]
    assert paper.exchange.available("paper", "ZUSD") == D("10000")


def test_cancel_all_and_dead_man_switch_on_the_paper_exchange():
    paper = make()
    paper.observe(tick("50000", T0))
    paper.execute(order(1), T0)
    paper.execute(order(2, price=D("48000")), T0)
    arm = paper.execute(it.DeadManSwitch(intent_id="d", rule_id=None, decision_id=None, timeout=60), T0)
    assert arm.result.ok and arm.result.data["triggerTime"] != "0"
    assert paper.observe(tick("49900", T0 + 59)) == []
    fired = paper.observe(tick("49900", T0 + 60))
    assert sorted(e.cl_ord_id for e in fired) == ["cl-1", "cl-2"]
    assert {e.status for e in fired} == {"canceled"}
    paper.execute(order(3), T0 + 61)
    report = paper.execute(it.CancelAll(intent_id="a", rule_id=None, decision_id=None), T0 + 62)
    assert report.result.data == {"count": 1} and report.request["method"] == "CancelAll"


def test_read_balance_answers_from_the_wallet_in_kraken_format():
    paper = make({"ZUSD": "10000", "XXBT": "0.5"})
    report = paper.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1"), T0)
    assert report.result.data == {"balances": {"XXBT": "0.5000000000", "ZUSD": "10000.0000"}}
    assert report.request["method"] == "Balance"
    futures = paper.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1", market="futures"), T0)
    assert not futures.result.ok


def test_futures_intents_are_would_send_without_an_order_id_and_log_is_ok():
    paper = make()
    send = it.FuturesSendOrder(intent_id="f", rule_id="r", decision_id="r#1", cli_ord_id="x", symbol="PF_XBTUSD",
                               side="buy", order_type="lmt", size=D("1"), limit_price=D("1000"))
    report = paper.execute(send, T0)
    assert report.result.ok and "order_id" not in report.result.data
    assert report.request["path"] == "/derivatives/api/v3/sendorder"
    log = paper.execute(it.Log(intent_id="l", rule_id="r", decision_id="r#1", level="info", message="hi"), T0)
    assert log.result.ok and log.request is None


def test_expired_order_is_reported_when_time_passes():
    paper = make()
    paper.observe(tick("50000", T0))
    paper.execute(order(expiretm=str(int(T0 + 30))), T0)
    (update,) = paper.observe(tick("50000", T0 + 31))
    assert update.status == "expired"


def test_snapshot_round_trip_keeps_resting_orders_balances_and_prices():
    paper = make()
    paper.observe(tick("50000", T0))
    txid = paper.execute(order(), T0 + 1).result.data["txid"][0]
    data = json.loads(json.dumps(paper.snapshot()))  # what the state store keeps
    restored = PaperExecutor.from_snapshot(data)
    assert restored.account == "paper"
    assert restored.exchange.last_price("XBTUSD") == D("50000")
    assert [o.txid for o in restored.exchange.open_orders("paper")] == [txid]
    (update, balance) = restored.observe(tick("48000", T0 + 2))
    assert update.txid == txid and update.status == "closed"
    # a new order after restore gets a new txid (id counter restored too)
    assert restored.execute(order(2), T0 + 3).result.data["txid"][0] != txid


def test_reconcile_finds_the_order_by_cl_ord_id_or_reports_not_placed():
    paper = make()
    paper.observe(tick("50000", T0))
    txid = paper.execute(order(), T0 + 1).result.data["txid"][0]
    row = SimpleNamespace(cl_ord_id="cl-1", rule_id="r", decision_id="r#1", intent=order().to_dict(),
                          updated_at=T0 + 1)
    found = paper.reconcile(row, T0 + 5)
    assert found.result.ok and found.result.data["txid"] == [txid]
    assert found.result.intent_id == "r#1/0"
    assert found.events[0].status == "open"
    missing = paper.reconcile(SimpleNamespace(**{**row.__dict__, "cl_ord_id": "cl-7"}), T0 + 5)
    assert not missing.result.ok and missing.result.data["error_class"] == "OrderNotPlaced"


def test_prune_keeps_open_orders_and_only_the_latest_closed_ones():
    paper = make({"ZUSD": "100000"})
    paper.observe(tick("50000", T0))
    for n in range(1, 4):
        paper.execute(order(n, ordertype="market", price=None, volume=D("0.01")), T0 + n)
    resting = paper.execute(order(9, price=D("40000")), T0 + 5).result.data["txid"][0]
    assert paper.prune(1) == 2
    kept = [o.cl_ord_id for o in paper.exchange.orders.values()]
    assert kept == ["cl-3", "cl-9"] and paper.exchange.orders[resting].is_open
    assert len(paper.exchange.trades) == 1
    assert paper.prune(1) == 0
