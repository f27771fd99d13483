"""The scratch store (replay and rule tests without a state folder) keeps recent decisions in
memory and writes the older ones out: every decision stays readable, and it ends on disk."""

from decimal import Decimal

import pytest

from rules_engine.state import OrderRecord, StateStore, scratch
from rules_engine.state.scratch import ScratchStateStore


def test_decisions_written_out_stay_readable_and_updatable_and_end_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch, "LIVE_DECISIONS", 4)
    path = tmp_path / "engine.sqlite"
    clock = iter(range(100, 1000))
    with ScratchStateStore(path, clock=lambda: float(next(clock))) as store:
        for n in range(10):
            with store.transaction(durable=False):
                assert store.record_decision(f"cl-{n}", "r", f"d-{n % 3}", {"n": n, "v": Decimal("0.5")}).created
        assert len(store._live) <= 4  # the oldest were written out
        assert store.get_decision("cl-0").intent == {"n": 0, "v": Decimal("0.5")}  # from disk
        assert not store.record_decision("cl-0", "r", "d-0", {}).created
        store.mark_sent("cl-0")
        store.record_outcome("cl-0", "filled", {"vol_exec": "1"})
        store.mark_sent("cl-9")
        assert [d.cl_ord_id for d in store.decisions_for("d-0")] == ["cl-0", "cl-3", "cl-6", "cl-9"]
        assert [d.cl_ord_id for d in store.unresolved_decisions()] == [f"cl-{n}" for n in range(1, 10)]
        assert store.decision_times(0.0) == sorted(store.decision_times(0.0)) and len(store.decision_times(0.0)) == 10
        assert store.decision_status("cl-0") == "filled" and store.decision_status("cl-9") == "sent"
    with StateStore(path) as reopened:
        assert reopened.get_decision("cl-0").status == "filled"
        assert reopened.get_decision("cl-9").status == "sent"
        assert len(reopened.unresolved_decisions()) == 9


def test_a_failed_transaction_undoes_the_decisions_it_changed(tmp_path):
    with ScratchStateStore(tmp_path / "engine.sqlite", clock=lambda: 1.0) as store:
        store.record_decision("cl-1", "r", "d-1", {})
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.mark_sent("cl-1")
                store.record_decision("cl-2", "r", "d-2", {})
                with store.transaction():
                    store.record_outcome("cl-1", "accepted")
                raise RuntimeError("crash before commit")
        assert store.get_decision("cl-1").status == "pending" and store.get_decision("cl-2") is None


def test_its_records_are_plain_order_records(tmp_path):
    with ScratchStateStore(tmp_path / "engine.sqlite", clock=lambda: 5.0) as store:
        made = store.record_decision("cl-1", "r", "d-1", {"n": 1})
        sent = store.mark_sent("cl-1")
    assert type(made) is OrderRecord and made.created and not sent.created
    assert sent == OrderRecord("cl-1", "r", "d-1", {"n": 1}, "sent", None, 5.0, 5.0, 5.0)
    assert repr(sent) == repr(OrderRecord("cl-1", "r", "d-1", {"n": 1}, "sent", None, 5.0, 5.0, 5.0))
