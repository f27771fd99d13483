"""LiveExecutor against the simulator: every intent type, errors and at-most-once placement."""

from decimal import Decimal as D
from types import SimpleNamespace

from executor_fixtures import KEY, RecordingTransport, spot_client
from executor_fixtures import clock, live, sim  # noqa: F401  (pytest fixtures)

from rules_engine.core import intents as it
from rules_engine.execution import LiveExecutor

SYMBOL = "PF_XBTUSD"


def order(n=1, **kw) -> it.PlaceOrder:
    fields = dict(pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.01"), price=D("50000"))
    fields.update(kw)
    return it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", cl_ord_id=f"live-{n}", **fields)


def futures_order(n=1, **kw) -> it.FuturesSendOrder:
    fields = dict(symbol=SYMBOL, side="buy", order_type="lmt", size=D("0.01"), limit_price=D("50000"))
    fields.update(kw)
    return it.FuturesSendOrder(intent_id=f"f#{n}/0", rule_id="f", decision_id=f"f#{n}", cli_ord_id=f"fut-{n}",
                               **fields)


def decision_row(intent, status="sent", sent_at=None):
    return SimpleNamespace(cl_ord_id=intent.to_dict().get("cl_ord_id") or intent.cli_ord_id, rule_id=intent.rule_id,
                           decision_id=intent.decision_id, intent=intent.to_dict(), status=status,
                           sent_at=sent_at, created_at=sent_at or 0.0, updated_at=sent_at or 0.0)


def test_place_order_rests_on_the_exchange_with_its_cl_ord_id(live, sim, clock):
    report = live.execute(order(), clock())
    assert report.result.ok, report.result
    (txid,) = report.result.data["txid"]
    assert report.result.data["recovered"] is False
    (resting,) = sim.exchange.open_orders(KEY)
    assert (resting.txid, resting.cl_ord_id, resting.price) == (txid, "live-1", D("50000"))
    assert report.request["params"]["cl_ord_id"] == "live-1"
    assert report.response["result"]["txid"] == [txid]


def test_cancel_by_txid_and_cl_ord_id_then_unknown_is_listed(live, sim, clock):
    first = live.execute(order(1), clock()).result.data["txid"][0]
    live.execute(order(2, price=D("49000")), clock())
    cancel = it.CancelOrder(intent_id="c", rule_id="r", decision_id="r#9", txids=(first,), cl_ord_ids=("live-2",))
    report = live.execute(cancel, clock())
    assert report.result.ok and report.result.data == {"count": 2}
    assert sim.exchange.open_orders(KEY) == []
    again = live.execute(cancel, clock())
    assert again.result.ok and again.result.data == {"count": 0, "unknown": [first, "live-2"]}


def test_cancel_all_and_dead_man_switch(live, sim, clock):
    live.execute(order(1), clock())
    live.execute(order(2, side="sell", price=D("70000")), clock())
    report = live.execute(it.CancelAll(intent_id="a", rule_id=None, decision_id=None), clock())
    assert report.result.ok and report.result.data == {"count": 2}
    assert sim.exchange.open_orders(KEY) == []
    live.execute(order(3), clock())
    arm = live.execute(it.DeadManSwitch(intent_id="d", rule_id=None, decision_id=None, timeout=60), clock())
    assert arm.result.ok and arm.result.data["triggerTime"] != "0"
    assert sim.exchange.dead_man_trigger(KEY) == clock() + 60
    clock.now += 61
    sim.advance()
    assert sim.exchange.open_orders(KEY) == []
    off = live.execute(it.DeadManSwitch(intent_id="d2", rule_id=None, decision_id=None, timeout=0), clock())
    assert off.result.data["triggerTime"] == "0"


def test_futures_send_and_cancel(live, sim, clock):
    sent = live.execute(futures_order(), clock())
    assert sent.result.ok and sent.result.data["status"] == "placed" and sent.result.data["order_id"]
    assert sent.request["path"] == "/derivatives/api/v3/sendorder"
    assert [o.cli_ord_id for o in sim.futures.open_orders(KEY)] == ["fut-1"]
    cancel = it.FuturesCancelOrder(intent_id="fc", rule_id="f", decision_id="f#2", cli_ord_ids=("fut-1",))
    report = live.execute(cancel, clock())
    assert report.result.ok and report.result.data == {"count": 1}
    assert sim.futures.open_orders(KEY) == []


def test_futures_market_order_fills_and_reports_an_order_update(live, clock):
    report = live.execute(futures_order(2, order_type="mkt", limit_price=None), clock())
    assert report.result.ok and report.result.data["status"] == "filled"
    (update,) = report.events
    assert (update.status, update.cl_ord_id, update.market) == ("filled", "fut-2", "futures")


def test_futures_rejection_in_send_status_is_a_failed_result(live, clock):
    report = live.execute(futures_order(3, size=D("1000")), clock())  # far beyond the 5000 USD collateral
    assert not report.result.ok
    assert report.result.data["error_class"] == "InsufficientFunds"
    assert report.result.data["retry_safe"] is False


def test_insufficient_funds_is_mapped_and_nothing_rests(live, sim, clock):
    report = live.execute(order(volume=D("100")), clock())
    assert not report.result.ok
    assert report.result.error == "EOrder:Insufficient funds"
    assert report.result.data["error_class"] == "InsufficientFunds"
    assert report.result.data["retry_safe"] is False
    assert report.response == {"error": ["EOrder:Insufficient funds"]}
    assert sim.exchange.open_orders(KEY) == []


def test_service_unavailable_on_add_order_is_looked_up_after_the_deadline_and_never_resent(sim, clock):
    transport = RecordingTransport()
    executor = LiveExecutor(spot_client(sim, clock, transport=transport), clock=clock, order_deadline=15)
    sim.faults.fail_next("AddOrder", "EService:Unavailable")  # refused before it reached the book
    started = clock()
    report = executor.execute(order(7), clock())
    assert transport.methods() == ["AddOrder", "OpenOrders", "ClosedOrders"]  # looked up, not resent
    assert clock() >= started + 15  # the lookup waited for the deadline
    assert not report.result.ok
    assert report.result.data["error_class"] == "OrderNotPlaced"  # proven absent
    assert report.result.data["retry_safe"] is False
    assert "deadline" in report.request["params"]
    assert sim.exchange.open_orders(KEY) == []
    executor.close()


def test_service_unavailable_after_the_order_was_placed_is_recovered_by_lookup(sim, clock):
    transport = RecordingTransport()
    executor = LiveExecutor(spot_client(sim, clock, transport=transport), clock=clock)
    sim.faults.timeout_after_accept("AddOrder", delay=0)  # placed, then the connection drops
    report = executor.execute(order(6), clock())
    assert report.result.ok and report.result.data["recovered"] is True
    assert transport.methods().count("AddOrder") == 1
    assert [o.cl_ord_id for o in sim.exchange.open_orders(KEY)] == ["live-6"]
    executor.close()


def test_timeout_after_accept_ends_with_exactly_one_order(sim, clock):
    executor = LiveExecutor(spot_client(sim, clock, timeout=(2.0, 0.3)), clock=clock)
    sim.faults.timeout_after_accept("AddOrder", delay=5.0)
    report = executor.execute(order(8), clock())
    assert report.result.ok and report.result.data["recovered"] is True
    (resting,) = sim.exchange.open_orders(KEY)
    assert resting.cl_ord_id == "live-8" and report.result.data["txid"] == [resting.txid]
    executor.close()


def test_lookup_failure_after_an_ambiguous_error_is_unknown_never_resent(live, sim, clock):
    sim.faults.timeout_after_accept("AddOrder", delay=0)
    sim.faults.http_status("OpenOrders", 503, count=None)  # the lookup cannot settle it
    report = live.execute(order(9), clock())
    assert not report.result.ok
    assert report.result.data["error_class"] == "OrderStateUnknown"
    assert report.result.data["ambiguous"] is True and report.result.data["retry_safe"] is False
    sim.faults.clear()
    assert [o.cl_ord_id for o in sim.exchange.open_orders(KEY)] == ["live-9"]  # placed exactly once


def test_read_balance_spot_and_futures(live, clock):
    spot = live.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1"), clock())
    assert spot.result.ok and D(spot.result.data["balances"]["ZUSD"]) == D("10000")
    futures = live.execute(it.ReadBalance(intent_id="b2", rule_id="r", decision_id="r#1", market="futures"), clock())
    assert futures.result.ok and D(futures.result.data["balances"]["USD"]) == D("5000")


def test_futures_intents_without_a_futures_key_are_refused(sim, clock):
    executor = LiveExecutor(spot_client(sim, clock), None, clock=clock)
    report = executor.execute(futures_order(), clock())
    assert not report.result.ok and report.result.data["error_class"] == "PermissionDenied"
    assert "Futures credentials" in report.result.error or "Futures credentials" in str(report.result.data)
    executor.close()


def test_reconcile_finds_the_order_or_proves_it_absent(live, sim, clock):
    placed = live.execute(order(11), clock()).result.data["txid"][0]
    found = live.reconcile(decision_row(order(11), sent_at=clock()), clock())
    assert found.result.ok and found.result.data["txid"] == [placed] and found.result.data["status"] == "open"
    assert found.result.intent_id == "r#11/0"
    (update,) = found.events
    assert (update.txid, update.cl_ord_id, update.status) == (placed, "live-11", "open")
    assert len(sim.exchange.open_orders(KEY)) == 1  # nothing sent
    fresh = live.reconcile(decision_row(order(12), sent_at=clock()), clock())
    assert not fresh.result.ok and fresh.result.data["error_class"] == "OrderStateUnknown"
    clock.now += 20
    absent = live.reconcile(decision_row(order(12), sent_at=clock() - 20), clock())
    assert not absent.result.ok and absent.result.data["error_class"] == "OrderNotPlaced"


def test_reconcile_a_filled_order_reports_closed(live, sim, clock):
    live.execute(order(13, price=D("59000")), clock())
    sim.set_price("XBTUSD", D("58000"))
    report = live.reconcile(decision_row(order(13), sent_at=clock()), clock())
    assert report.result.data["status"] == "closed" and report.events[0].filled == D("0.01")


def test_reconcile_futures_order_among_open_orders(live, clock):
    live.execute(futures_order(4), clock())
    report = live.reconcile(decision_row(futures_order(4)), clock())
    assert report.result.ok and report.result.data["recovered"] is True
    missing = live.reconcile(decision_row(futures_order(5)), clock())
    assert not missing.result.ok and missing.result.data["ambiguous"] is True


def test_the_account_read_lists_spot_and_futures_open_orders_for_the_core(live, sim, clock):
    from rules_engine.core.events import BalanceUpdate, OpenOrders, OrderUpdate

    spot = live.execute(order(), clock())
    futures = live.execute(futures_order(), clock())
    assert spot.result.ok and futures.result.ok
    report = live.read_account(clock())
    assert report.result.ok, report.result
    updates = [e for e in report.events if isinstance(e, OrderUpdate)]
    assert {(u.market, u.cl_ord_id) for u in updates} == {("spot", "live-1"), ("futures", "fut-1")}
    listed = {e.market: e.txids for e in report.events if isinstance(e, OpenOrders)}
    assert listed == {"spot": tuple(spot.result.data["txid"]), "futures": (futures.result.data["order_id"],)}
    assert isinstance(report.events[0], BalanceUpdate) and report.events[0].snapshot
    assert report.request["method"] == "Balance+OpenOrders+futures openorders"
