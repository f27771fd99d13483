"""The risky timeouts, simulated: Kraken placed the order but its answer never arrives, or
arrives after the client gave up, or Kraken takes the order only after the client's timeout.
In every case the engine's client sends nothing twice and the decision ends settled: the
order found by its cl_ord_id (accepted, `recovered`), or, when the deadline passed before
Kraken got to it, proven absent (and it never appears later)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from test_executor_dispatcher import Crash, CrashingExecutor

from rules_engine.audit import AuditLog
from rules_engine.core import intents as it
from rules_engine.execution.deadlines import wait_out_deadlines
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.live import LiveExecutor
from rules_engine.execution.resend import ResendPolicy
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.sim.config import Account, SimConfig
from rules_engine.sim.server import Simulator
from rules_engine.state import StateStore

KEY, SECRET = "late-key", "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
DEADLINE = 2.5  # seconds; the client's read timeout is 0.5 s


@pytest.fixture
def sim():
    config = SimConfig(accounts=[Account(KEY, SECRET, {"ZUSD": "10000", "XXBT": "1"})], prices={"XBTUSD": "60000"},
                       seed=3, tick_interval=0)
    simulator = Simulator(config)  # real time: the client's timeout and the order's deadline are real
    with simulator.running() as endpoints:
        simulator.test_endpoints = endpoints
        yield simulator


@pytest.fixture
def dispatcher(sim, tmp_path):
    spot = SpotClient(Credentials(KEY, SECRET), sim.test_endpoints, nonce_source=NonceSource(), timeout=(2.0, 0.5),
                      settle_seconds=0.2)
    store = StateStore(tmp_path / "engine.sqlite")
    audit = AuditLog(tmp_path / "audit.jsonl", mode="live")
    yield Dispatcher(LiveExecutor(spot, order_deadline=DEADLINE), store, audit, mode="live")
    spot.close()
    audit.close()
    store.close()


def order(n: int) -> it.PlaceOrder:
    return it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", cl_ord_id=f"late-{n}",
                         pair="XBTUSD", side="buy", ordertype="limit", volume=Decimal("0.01"), price=Decimal("50000"))


def mine(sim) -> list[str]:
    return [o.cl_ord_id for o in sim.exchange.open_orders(KEY)]


@pytest.mark.parametrize("fault", ["never_answered", "answered_late"])
def test_an_order_whose_answer_is_lost_or_late_is_found_not_resent(sim, dispatcher, fault):
    if fault == "never_answered":
        sim.faults.timeout_after_accept("AddOrder", delay=5.0)
    else:
        sim.faults.answer_late("AddOrder", delay=1.5)
    report = dispatcher.dispatch(order(1))
    assert report.result.ok and report.result.data["recovered"] is True, report.result
    assert mine(sim) == ["late-1"]
    assert dispatcher.store.get_decision("late-1").status == "accepted"


def test_an_order_taken_after_the_client_gave_up_but_before_its_deadline_is_found(sim, dispatcher):
    sim.faults.accept_late("AddOrder", delay=1.0)  # after the 0.5 s read timeout, before the 2.5 s deadline
    report = dispatcher.dispatch(order(2))
    assert report.result.ok and report.result.data["recovered"] is True, report.result
    assert mine(sim) == ["late-2"]
    assert dispatcher.store.get_decision("late-2").status == "accepted"


def test_an_order_kraken_would_take_only_after_its_deadline_is_proven_absent(sim, dispatcher):
    sim.faults.accept_late("AddOrder", delay=DEADLINE + 1.0)
    report = dispatcher.dispatch(order(3))
    assert not report.result.ok and report.result.data["error_class"] == "OrderNotPlaced", report.result
    assert dispatcher.store.get_decision("late-3").status == "rejected"
    time.sleep(1.5)  # past the moment the simulator runs it: refused then for its deadline
    assert mine(sim) == []


def test_a_restart_finds_an_order_signed_well_after_its_decision_was_recorded(sim, tmp_path):
    """The recorded time comes before the signing, by as long as the engine stalled in between,
    and Kraken may hold a request it took until that request's own deadline. So the wait before
    "not found" counts ends deadline + margin after the wait began (every request of the dead run
    was signed before then), not after the recorded time: the queued order is found, and not
    sent a second time."""
    store, audit = StateStore(tmp_path / "engine.sqlite"), AuditLog(tmp_path / "audit.jsonl", mode="live")
    spot = SpotClient(Credentials(KEY, SECRET), sim.test_endpoints, nonce_source=NonceSource(), timeout=(2.0, 0.5),
                      settle_seconds=0.2)
    dead = LiveExecutor(spot, order_deadline=DEADLINE)
    with pytest.raises(Crash):  # recorded, its decision audited: it may have left
        Dispatcher(CrashingExecutor(dead, "before_send"), store, audit, mode="live").dispatch(order(9))
    time.sleep(1.5)  # the dead run stalled before signing...
    sim.faults.accept_late("AddOrder", delay=DEADLINE - 0.3)  # ...and Kraken queued its request
    leaving = threading.Thread(target=dead.execute, args=(order(9), time.time()), daemon=True)
    leaving.start()
    time.sleep(0.1)
    restarted = LiveExecutor(SpotClient(Credentials(KEY, SECRET), sim.test_endpoints, nonce_source=NonceSource(),
                                        timeout=(2.0, 0.5)), order_deadline=DEADLINE)
    wait_out_deadlines(restarted, store, audit, order_deadline=DEADLINE, clock=time.time)
    (report,) = Dispatcher(restarted, store, audit, mode="live", resend=ResendPolicy(30)).recover()
    leaving.join(10)
    assert report.result.ok and report.result.data["recovered"] is True, report.result
    assert mine(sim) == ["late-9"] and store.resent("late-9") is None
    restarted.spot.close()
    spot.close()
    audit.close()
    store.close()
