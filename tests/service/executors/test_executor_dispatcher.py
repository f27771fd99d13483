"""Dispatcher: decision recorded and fsynced before the send, never a second order for one
decision (repeat dispatch, crash at every step, restart), outcomes recorded, no secrets."""

import json
from decimal import Decimal as D

import pytest
from executor_fixtures import CREDS, KEY, SECRET, RecordingTransport, audit_records, spot_client
from executor_fixtures import audit, clock, sim, store  # noqa: F401  (pytest fixtures)

from rules_engine.audit.head import read_head
from rules_engine.audit.log import AuditLog
from rules_engine.core import intents as it
from rules_engine.core.events import ActionResult, Tick
from rules_engine.execution import Dispatcher, DryRunExecutor, LiveExecutor, PaperExecutor
from rules_engine.execution.report import ExecutionReport, ok
from rules_engine.kraken.send_gate import pass_gate
from rules_engine.sim import FeeSchedule, PaperExchange
from rules_engine.state.store import StateStore


def order(n=1, **kw) -> it.PlaceOrder:
    fields = dict(pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.01"), price=D("50000"))
    fields.update(kw)
    return it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", cl_ord_id=f"dsp-{n}", **fields)


class FakeExecutor:
    """Records calls; `on_execute` runs inside execute (to check what is already durable)."""

    mode = "fake"

    def __init__(self, on_execute=None, txid="OTXID1-AAAAA-BBBBBB"):
        self.executed: list[it.Intent] = []
        self.reconciled: list[str] = []
        self.on_execute = on_execute
        self.txid = txid

    def execute(self, intent, now):
        pass_gate()  # the request leaves here, as from RestClient._signed
        if self.on_execute is not None:
            self.on_execute(intent)
        self.executed.append(intent)
        data = {"txid": [self.txid]} if isinstance(intent, it.PlaceOrder) else {}
        return ExecutionReport(ok(intent, now, data), {"method": "AddOrder"}, {"result": data})

    def observe(self, tick):
        return []

    def reconcile(self, decision, now=None):
        self.reconciled.append(decision.cl_ord_id)
        return ExecutionReport(ok(decision.intent["intent_id"], now, {"txid": [self.txid], "status": "open"}))

    def close(self):
        pass


def test_decision_is_recorded_and_fsynced_to_the_audit_log_before_the_send(store, audit):
    seen = {}

    def check(intent):
        lines = audit_records(audit)
        decision = [r for r in lines if r["kind"] == "decision"]
        assert len(decision) == 1 and decision[0]["data"]["cl_ord_id"] == "dsp-1"
        head = read_head(audit.path)  # written only after an fsync of the log
        assert head is not None and head.seq >= decision[0]["seq"]
        row = store.get_decision("dsp-1")  # one commit before the send: its audited decision is its "sent" mark
        assert row.status == "pending" and dispatcher.may_have_left(row)
        seen["checked"] = True

    fake = FakeExecutor(on_execute=check)
    dispatcher = Dispatcher(fake, store, audit, mode="live", rule_hashes={"r": "sha256:abc"})
    report = dispatcher.dispatch(order())
    assert seen == {"checked": True} and report.result.ok
    kinds = [r["kind"] for r in audit_records(audit)]
    assert kinds == ["decision", "request", "response"]
    assert {r["rule_hash"] for r in audit_records(audit)} == {"sha256:abc"}
    row = store.get_decision("dsp-1")
    assert row.status == "accepted" and row.outcome["result"]["data"]["txid"] == ["OTXID1-AAAAA-BBBBBB"]


def test_a_second_dispatch_of_the_same_decision_is_not_sent_again(store, audit):
    fake = FakeExecutor()
    dispatcher = Dispatcher(fake, store, audit, mode="live")
    dispatcher.dispatch(order())
    again = dispatcher.dispatch(order())  # accepted: looked up, not sent
    assert len(fake.executed) == 1 and fake.reconciled == ["dsp-1"]
    assert again.result.ok and again.result.intent_id == "r#1/0"
    store.record_outcome("dsp-1", "filled", {"result": {"ok": True, "error": None, "data": {"txid": ["T"]}}})
    final = dispatcher.dispatch(order())  # final: answered from the store
    assert len(fake.executed) == 1 and fake.reconciled == ["dsp-1"]
    assert final.result.ok and final.result.data["duplicate"] is True and final.result.data["status"] == "filled"
    assert [r["kind"] for r in audit_records(audit)].count("duplicate") == 2


def test_a_pending_decision_whose_decision_record_is_audited_is_looked_up_not_sent_again(store, audit):
    store.record_decision("dsp-7", "r", "r#7", order(7).to_dict())  # committed by the lane
    first = Dispatcher(FakeExecutor(), store, audit, mode="live")
    assert not first.may_have_left(store.get_decision("dsp-7"))  # no decision record yet: never left
    audit.append("decision", rule_id="r", data={"cl_ord_id": "dsp-7", "intent": order(7).to_dict()}, sync=True)
    assert first.may_have_left(store.get_decision("dsp-7"))  # the "sent" mark: it may have left
    fake = FakeExecutor()
    again = Dispatcher(fake, store, audit, mode="live").dispatch(order(7))  # asked again before any restart
    assert fake.executed == [] and fake.reconciled == ["dsp-7"] and again.result.ok
    assert store.get_decision("dsp-7").status == "accepted"


def test_audit_failure_means_the_order_is_never_sent(store, audit):
    fake = FakeExecutor()
    dispatcher = Dispatcher(fake, store, audit, mode="live")
    audit.close()
    report = dispatcher.dispatch(order())
    assert not report.result.ok and report.result.data["error_class"] == "AuditFailed"
    assert fake.executed == []
    assert store.get_decision("dsp-1").status == "abandoned"


def test_non_order_intents_are_audited_around_the_execution(store, audit):
    fake = FakeExecutor()
    dispatcher = Dispatcher(fake, store, audit, mode="live")
    dispatcher.dispatch(it.CancelAll(intent_id="a", rule_id=None, decision_id=None))
    assert [r["kind"] for r in audit_records(audit)] == ["intent", "request", "response"]
    assert store.unresolved_decisions() == []


def paper_dispatcher(store, audit, balances=None):
    executor = DryRunExecutor.open(store, balances or {"ZUSD": "10000"})
    return Dispatcher(executor, store, audit, mode="dry-run")


def test_dry_run_audits_would_send_and_records_the_fill_seen_on_a_later_tick(store, audit, clock):
    dispatcher = paper_dispatcher(store, audit)
    dispatcher.observe(Tick("XBTUSD", "spot", clock(), last=D("60000")))
    report = dispatcher.dispatch(order(price=D("59000")))
    assert report.result.ok and report.events == ()
    assert store.get_decision("dsp-1").status == "accepted"
    records = audit_records(audit)
    assert records[0]["kind"] == "decision" and records[0]["data"]["action"] == "would_send"
    assert records[1]["data"]["would_send"] is True and records[1]["data"]["request"]["method"] == "AddOrder"
    assert records[2]["data"]["response"]["would_send"] is True
    events = dispatcher.observe(Tick("XBTUSD", "spot", clock() + 1, last=D("58900")))
    assert [type(e).__name__ for e in events] == ["OrderUpdate", "BalanceUpdate"]
    assert store.get_decision("dsp-1").status == "filled"
    assert store.get_decision("dsp-1").outcome["result"]["ok"] is True  # the first result is kept


def test_dry_run_wallet_survives_a_restart(tmp_path, clock, caplog):
    path = tmp_path / "s.sqlite"
    with StateStore(path, clock=clock) as store:
        executor = DryRunExecutor.open(store, {"ZUSD": "10000"})
        executor.observe(Tick("XBTUSD", "spot", clock(), last=D("60000")))
        executor.execute(order(1, ordertype="market", price=None), clock())
        executor.execute(order(2, price=D("55000")), clock())
    with StateStore(path, clock=clock) as store:
        with caplog.at_level("INFO", logger="rules_engine"):
            again = DryRunExecutor.open(store, {"ZUSD": "999"})  # config balances only seed a new wallet
        # said, so an edited paper_wallet is not ignored without a word
        assert any("paper wallet saved in the state dir carries on (XXBT 0.0100000000, ZUSD " in r.getMessage()
                   and "remove engine.sqlite (with its -wal and -shm)" in r.getMessage() for r in caplog.records)
        wallet = again.paper.exchange
        assert wallet.balances("paper")["XXBT"] == D("0.01")
        assert [o.cl_ord_id for o in wallet.open_orders("paper")] == ["dsp-2"]
        (update, _) = again.observe(Tick("XBTUSD", "spot", clock() + 5, last=D("54000")))
        assert update.cl_ord_id == "dsp-2" and update.status == "closed"
    with StateStore(path, clock=clock) as store:
        assert DryRunExecutor.open(store, {}).paper.exchange.balances("paper")["XXBT"] == D("0.02")


class Crash(BaseException):
    """Stands in for kill -9: nothing after it runs (not even `except Exception`)."""


class CrashingExecutor:
    """Wraps a real executor and dies before or after it sends."""

    def __init__(self, inner, when):
        self.inner, self.when, self.mode = inner, when, inner.mode

    def execute(self, intent, now):
        if self.when == "before_send":
            raise Crash()
        self.inner.execute(intent, now)
        raise Crash()

    def reconcile(self, decision, now=None):
        return self.inner.reconcile(decision, now)

    def observe(self, tick):
        return []

    def close(self):
        self.inner.close()


def restart(tmp_path, sim, clock, old_audit):
    old_audit.close()
    transport = RecordingTransport()
    executor = LiveExecutor(spot_client(sim, clock, transport=transport), clock=clock)
    audit = AuditLog(old_audit.path, mode="live", clock=clock)
    return executor, transport, audit


@pytest.mark.parametrize("crash_at", ["commit", "record", "audit", "before_send", "after_send", "outcome"])
def test_a_crash_at_any_step_never_leads_to_a_second_order(tmp_path, sim, clock, store, audit, crash_at,
                                                           monkeypatch):
    live = LiveExecutor(spot_client(sim, clock), clock=clock)
    executor = CrashingExecutor(live, crash_at) if crash_at in ("before_send", "after_send") else live
    dispatcher = Dispatcher(executor, store, audit, mode="live")
    targets = {"record": (store, "record_decision"), "audit": (audit, "append_durable"), "outcome": (store, "record_outcome")}
    if crash_at == "commit":  # the decision's row committed (as the lane does before dispatching), then the crash
        store.record_decision("dsp-5", "r", "r#5", order(5).to_dict())
    elif crash_at in targets:
        obj, name = targets[crash_at]
        original = getattr(obj, name)

        def crash_after(*args, **kwargs):
            original(*args, **kwargs)
            raise Crash()

        monkeypatch.setattr(obj, name, crash_after)
    if crash_at != "commit":
        with pytest.raises(Crash):
            dispatcher.dispatch(order(5))
    monkeypatch.undo()
    on_exchange = [o for o in sim.exchange.orders.values() if o.cl_ord_id == "dsp-5"]
    assert len(on_exchange) == (1 if crash_at in ("after_send", "outcome") else 0)
    assert (store.get_decision("dsp-5") is None) == (crash_at == "record")  # a crash inside its transaction

    clock.now += 30  # the restart comes after the order's deadline
    executor2, transport, audit2 = restart(tmp_path, sim, clock, audit)
    dispatcher2 = Dispatcher(executor2, store, audit2, mode="live")
    reports = dispatcher2.recover()
    dispatcher2.dispatch(order(5))  # the core asking again (it may, if its fire was not saved)
    # A crash inside the decision's transaction leaves no decision: asked again, it is sent once.
    resent = 1 if crash_at == "record" else 0
    assert transport.methods().count("AddOrder") == resent
    total = len([o for o in sim.exchange.orders.values() if o.cl_ord_id == "dsp-5"])
    assert total == len(on_exchange) + resent
    assert total == (1 if crash_at in ("record", "after_send", "outcome") else 0)
    row = store.get_decision("dsp-5")
    expected = {"commit": "abandoned", "record": "accepted", "audit": "rejected", "before_send": "rejected",
                "after_send": "accepted", "outcome": "accepted"}[crash_at]
    assert row is not None and row.status == expected
    if crash_at == "after_send":
        (report,) = reports
        assert report.result.ok and report.result.data["txid"] == [on_exchange[0].txid]
        assert report.result.intent_id == "r#5/0"
    if crash_at == "commit":  # recorded, its decision never audited: abandoned without a lookup
        (report,) = reports
        assert not report.result.ok and report.result.data["error_class"] == "OrderNotPlaced"
        assert "OpenOrders" not in transport.methods()
    if crash_at in ("audit", "before_send"):  # its decision audited (its "sent" mark): looked up, proven absent
        (report,) = reports
        assert report.result.data["error_class"] == "OrderNotPlaced"
        assert "OpenOrders" in transport.methods()
    if crash_at != "record":
        assert "duplicate" in [r["kind"] for r in audit_records(audit2)]
    audit2.close()


def test_recover_before_the_deadline_leaves_the_decision_unknown_then_settles_it(sim, clock, store, audit):
    live = LiveExecutor(spot_client(sim, clock), clock=clock)
    dispatcher = Dispatcher(CrashingExecutor(live, "before_send"), store, audit, mode="live")
    with pytest.raises(Crash):
        dispatcher.dispatch(order(6))
    recovering = Dispatcher(live, store, audit, mode="live")
    (early,) = recovering.recover()
    assert early.result.data["error_class"] == "OrderStateUnknown"
    assert store.get_decision("dsp-6").status == "unknown"
    clock.now += 30
    (late,) = recovering.recover()
    assert late.result.data["error_class"] == "OrderNotPlaced"
    assert store.get_decision("dsp-6").status == "rejected"
    assert recovering.recover() == []
    assert sim.exchange.orders == {}


def test_live_dispatch_records_outcomes_and_writes_no_secret(tmp_path, sim, clock, store, audit):
    dispatcher = Dispatcher(LiveExecutor(spot_client(sim, clock), clock=clock), store, audit, mode="live")
    placed = dispatcher.dispatch(order(1))
    refused = dispatcher.dispatch(order(2, volume=D("1000")))
    dispatcher.dispatch(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#3"))
    dispatcher.dispatch(it.CancelOrder(intent_id="c", rule_id="r", decision_id="r#4", cl_ord_ids=("dsp-1",)))
    assert placed.result.ok and store.get_decision("dsp-1").status == "accepted"
    assert not refused.result.ok and store.get_decision("dsp-2").status == "rejected"
    assert store.get_decision("dsp-2").outcome["result"]["error"] == "EOrder:Insufficient funds"
    audit.sync()
    for path in (audit.path, store.path):
        content = path.read_bytes()
        assert SECRET.encode() not in content and KEY.encode() not in content
    records = audit_records(audit)
    assert all("nonce" not in json.dumps(r["data"]) for r in records)
    assert CREDS.fingerprint  # the key is only ever shown by fingerprint


def test_recover_marks_pending_rows_abandoned_and_returns_results(store, audit):
    store.record_decision("dsp-9", "r", "r#9", order(9).to_dict())
    fake = FakeExecutor()
    (report,) = Dispatcher(fake, store, audit, mode="live").recover()
    assert isinstance(report.result, ActionResult) and report.result.intent_id == "r#9/0"
    assert not report.result.ok and fake.executed == [] and fake.reconciled == []
    assert store.get_decision("dsp-9").status == "abandoned"
    assert audit_records(audit)[-1]["kind"] == "abandoned"


def test_paper_recover_finds_an_order_placed_before_the_crash(store, audit, clock):
    exchange = PaperExchange(fees=FeeSchedule.flat("0", "0"))
    exchange.set_balances("paper", {"ZUSD": "10000"})
    paper = PaperExecutor(exchange)
    paper.observe(Tick("XBTUSD", "spot", clock(), last=D("60000")))
    dispatcher = Dispatcher(CrashingExecutor(paper, "after_send"), store, audit, mode="dry-run")
    with pytest.raises(Crash):
        dispatcher.dispatch(order(7))
    (report,) = Dispatcher(paper, store, audit, mode="dry-run").recover()
    assert report.result.ok and store.get_decision("dsp-7").status == "accepted"
    assert len(exchange.open_orders("paper")) == 1


def test_dry_run_can_read_real_balances_while_orders_stay_on_paper(store, clock):
    executor = DryRunExecutor.open(store, {"ZUSD": "10"}, balance_reader=lambda: {"ZUSD": "123.4500"})
    report = executor.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1"), clock())
    assert report.result.data == {"balances": {"ZUSD": "123.4500"}} and report.response["real"] is True

    def broken():
        raise ConnectionError("no route")

    failing = DryRunExecutor(executor.paper, store, balance_reader=broken)
    result = failing.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1"), clock()).result
    assert not result.ok and result.data["error_class"] == "ConnectionError"


def test_an_order_refused_before_it_was_signed_stays_pending_for_the_next_holder(store, audit):
    """A lease-gated client refuses an order while its lease has lapsed (`LeaseLost`, before any
    nonce or signature): the order never left, so it is not settled as `rejected` (which nobody
    would send again); it stays `pending` with its record, and the next start looks it up."""
    from rules_engine.execution.report import failure
    from rules_engine.service.ha import LeaseLost

    class Refusing(FakeExecutor):
        def execute(self, intent, now):
            self.executed.append(intent)
            return ExecutionReport(failure(intent, now, LeaseLost("the key's lease was not renewed in time")),
                                   {"method": "AddOrder"})

    refusing = Refusing()
    report = Dispatcher(refusing, store, audit, mode="live").dispatch(order(9))
    assert not report.result.ok and report.result.data["error_class"] == "LeaseLost"
    row = store.get_decision("dsp-9")
    assert row.status == "pending" and refusing.executed
    later = FakeExecutor()
    again = Dispatcher(later, store, audit, mode="live")
    assert again.may_have_left(row)  # its record is written: looked up, never assumed absent
    again.recover()
    assert later.reconciled == ["dsp-9"] and store.get_decision("dsp-9").status == "accepted"


def test_a_new_empty_paper_wallet_is_named_in_a_warning(tmp_path, clock, caplog):
    """A dry run without `paper_wallet.balances` starts with nothing, and every order is
    refused for funds: the first start says so (a wallet restored from the state dir does not)."""
    path = tmp_path / "s.sqlite"
    with caplog.at_level("WARNING", logger="rules_engine.execution.dry_run"):
        with StateStore(path, clock=clock) as store:
            DryRunExecutor.open(store, {})
        with StateStore(path, clock=clock) as store:
            DryRunExecutor.open(store, {})
        with StateStore(tmp_path / "t.sqlite", clock=clock) as store:
            DryRunExecutor.open(store, {"ZUSD": "10000"})
    warned = [r.getMessage() for r in caplog.records if "paper wallet" in r.getMessage()]
    assert len(warned) == 1 and "paper_wallet.balances" in warned[0] and "Insufficient funds" in warned[0]


def test_validate_mode_audits_an_unsent_cancel_as_would_send(store, audit):
    """Validate mode sends no cancel: its request record says would_send, so the decision
    log's line says so too, instead of a bare "request sent" (README: "cancels are audited as
    would-send")."""
    from rules_engine.execution.validate import ValidateExecutor
    from rules_engine.service.decision_log import describe

    dispatcher = Dispatcher(ValidateExecutor(spot=None), store, audit, mode="validate")  # a cancel needs no client
    report = dispatcher.dispatch(it.CancelAll(intent_id="c", rule_id="r", decision_id="r#1"))
    assert report.result.ok and report.result.data["sent"] is False
    request, response = [r for r in audit_records(audit) if r["kind"] in ("request", "response")]
    assert request["data"]["would_send"] is True and response["data"]["would_send"] is True
    assert describe(request)[2]["would_send"] is True
