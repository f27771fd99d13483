"""An order's `decision` record is fsynced while the order is signed, and the order leaves only
once the record is on disk (`kraken.send_gate`, `AuditLog.append_durable`); if the fsync fails
the order is never sent."""

import os
import threading
from decimal import Decimal as D

from executor_fixtures import RecordingTransport, audit_records, spot_client
from executor_fixtures import audit, clock, sim, store  # noqa: F401  (pytest fixtures)

from rules_engine.audit import log as log_module
from rules_engine.audit.head import read_head
from rules_engine.core import intents as it
from rules_engine.execution import Dispatcher, DryRunExecutor, LiveExecutor
from rules_engine.kraken.spot_rest import SpotClient

WAIT = 10  # seconds: a bound for a wedged thread, never reached when the code works


def order(n=1) -> it.PlaceOrder:
    return it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", cl_ord_id=f"gate-{n}",
                         pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.01"), price=D("50000"))


class HeldFsync:
    """os.fsync that blocks until released (a slow disk), so a test sees what runs meanwhile."""

    def __init__(self, real):
        self.real, self.entered, self.release = real, threading.Event(), threading.Event()

    def __call__(self, fd):
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the fsync"
        return self.real(fd)


def test_the_order_is_signed_while_its_record_is_fsynced_and_leaves_once_the_record_is_on_disk(
        sim, clock, store, audit, monkeypatch):
    audit.background_fsync_above = 0  # on the sync thread, however fast this disk is
    audit.append("startup", sync=True)
    held = HeldFsync(os.fsync)
    seen: dict[str, object] = {}
    real_sign = SpotClient._sign

    def sign(self, credentials, nonce, http_method, path, params):
        if params.get("cl_ord_id") == "gate-1":
            seen["signing_while_the_fsync_runs"] = held.entered.is_set() and not held.release.is_set()
            held.release.set()  # the disk finishes while the order is being signed
        return real_sign(self, credentials, nonce, http_method, path, params)

    class HeadAtSend(RecordingTransport):
        def request(self, http_method, url, **kwargs):
            if kwargs["api_method"] == "AddOrder":
                seen["head_at_send"] = read_head(audit.path).seq
            return super().request(http_method, url, **kwargs)

    monkeypatch.setattr(SpotClient, "_sign", sign)
    monkeypatch.setattr(log_module.os, "fsync", held)
    transport = HeadAtSend()
    dispatcher = Dispatcher(LiveExecutor(spot_client(sim, clock, transport=transport), clock=clock), store, audit,
                            mode="live")
    report = dispatcher.dispatch(order())
    assert report.result.ok, report.result.error
    decision = next(r for r in audit_records(audit) if r["kind"] == "decision")
    assert seen == {"signing_while_the_fsync_runs": True, "head_at_send": decision["seq"]}
    assert store.get_decision("gate-1").status == "accepted"


def test_an_order_whose_record_cannot_be_fsynced_is_never_sent(sim, clock, store, audit, monkeypatch):
    audit.append("startup", sync=True)
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    transport = RecordingTransport()
    dispatcher = Dispatcher(LiveExecutor(spot_client(sim, clock, transport=transport), clock=clock), store, audit,
                            mode="live")
    report = dispatcher.dispatch(order())
    assert not report.result.ok and report.result.data["error_class"] == "AuditFailed"
    assert "could not sync" in report.result.error
    assert "AddOrder" not in transport.methods()
    assert store.get_decision("gate-1").status == "abandoned"
    assert [e.method for e in sim.journal.entries()] == []  # the simulator never saw it


def test_an_executor_that_sends_nothing_still_has_the_record_on_disk_before_its_outcome(store, audit, monkeypatch):
    audit.append("startup", sync=True)
    outcome_heads = []
    real_record = store.record_outcome

    def record_outcome(cl_ord_id, *args, **kwargs):
        outcome_heads.append(read_head(audit.path).seq)
        return real_record(cl_ord_id, *args, **kwargs)

    monkeypatch.setattr(store, "record_outcome", record_outcome)
    executor = DryRunExecutor.open(store, {"ZUSD": "10000"})
    report = Dispatcher(executor, store, audit, mode="dry-run").dispatch(order())
    assert report.result.ok
    decision = next(r for r in audit_records(audit) if r["kind"] == "decision")
    assert outcome_heads and outcome_heads[0] >= decision["seq"]
