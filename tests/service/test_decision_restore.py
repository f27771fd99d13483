"""Reading the audit log back from its end, and what a new store restores (nothing)."""

from rules_engine.audit import AuditLog
from rules_engine.core import EngineState
from rules_engine.audit.tail import records_after
from rules_engine.service.decision_restore import raise_fire_seq, restore_sent_decisions
from rules_engine.state import StateStore


def test_records_after_reads_back_across_blocks(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live") as log:
        for n in range(2000):
            log.append("trigger", data={"n": n, "pad": "x" * 100})
    seqs = [r["seq"] for r in records_after(path, 1500)]
    assert seqs == list(range(2000, 1500, -1))
    assert [r["seq"] for r in records_after(path, 0)][-1] == 1
    assert list(records_after(path, 2000)) == []


def test_a_new_store_restores_nothing_and_starts_at_the_head(tmp_path):
    with AuditLog(tmp_path / "audit.jsonl", mode="live") as log, StateStore(tmp_path / "engine.sqlite") as store:
        log.append("decision", rule_id="r", data={"cl_ord_id": "c1", "intent": {"kind": "place_order"},
                                                  "decision_id": "r#1"}, sync=True)
        restored = restore_sent_decisions(store, log, "boot-1")
        assert restored.orders == [] and store.audit_checkpoint() == 1 and store.get_decision("c1") is None
        assert store.meta("boot_id") == "boot-1"


def _decided_then_stopped(log, store):
    store.save_audit_checkpoint(0)
    store.set_meta("boot_id", "boot-1")
    store.record_decision("c2", "r", "r#2", {"kind": "place_order"})
    for n in (1, 2):
        log.append("decision", rule_id="r", data={"cl_ord_id": f"c{n}", "intent": {"kind": "place_order"},
                                                  "decision_id": f"r#{n}"}, sync=True)


def test_without_a_reboot_a_decision_audited_but_never_saved_was_never_sent_and_is_abandoned(tmp_path):
    """The engine was killed, the machine kept running: every commit is there. A decision record
    without its row is one the engine died on between writing the record and committing the row,
    which comes before the send: recorded as abandoned, audited, its fire number never reused. A
    pending decision is left to the dispatcher (looked up, as its record is written)."""
    with AuditLog(tmp_path / "audit.jsonl", mode="live") as log, StateStore(tmp_path / "engine.sqlite") as store:
        _decided_then_stopped(log, store)
        restored = restore_sent_decisions(store, log, "boot-1")
        assert restored.orders == [] and [o["cl_ord_id"] for o in restored.abandoned] == ["c1"]
        assert store.decision_status("c2") == "pending" and store.decision_status("c1") == "abandoned"
        assert restored.fire_seq == {"r": 2}
        kinds = [(r["kind"], r["data"].get("cl_ord_id")) for r in records_after(log.path, 2)]
        assert kinds == [("abandoned", "c1")]
        assert store.audit_checkpoint() == log.head[0] == 3
        again = restore_sent_decisions(store, log, "boot-1")
        assert again.abandoned == [] and again.orders == [], "settled once"


def test_a_decision_abandoned_in_its_run_is_left_as_it_is(tmp_path):
    """Its rows could not be saved (the store refused the commit): the run audited it abandoned,
    never sent; neither the same boot nor a reboot makes anything of it."""
    for boot in ("boot-1", "boot-2"):
        with AuditLog(tmp_path / boot / "audit.jsonl", mode="live") as log, \
                StateStore(tmp_path / boot / "engine.sqlite") as store:
            store.save_audit_checkpoint(0)
            store.set_meta("boot_id", "boot-1")
            log.append("decision", rule_id="r", data={"cl_ord_id": "c1", "intent": {"kind": "place_order"},
                                                      "decision_id": "r#1"}, sync=True)
            log.append("abandoned", rule_id="r", data={"cl_ord_id": "c1", "reason": "not saved"}, sync=True)
            restored = restore_sent_decisions(store, log, boot)
            assert restored.orders == [] and restored.abandoned == [] and store.get_decision("c1") is None
            assert restored.fire_seq == {"r": 1}, "its client order id is still never used again"


def test_after_a_reboot_a_lost_or_pending_decision_is_restored_as_sent(tmp_path):
    with AuditLog(tmp_path / "audit.jsonl", mode="live") as log, StateStore(tmp_path / "engine.sqlite") as store:
        store.save_audit_checkpoint(0)
        store.record_decision("c2", "r", "r#2", {"kind": "place_order"})
        for n in (1, 2):
            log.append("decision", rule_id="r", data={"cl_ord_id": f"c{n}", "intent": {"kind": "place_order"},
                                                      "decision_id": f"r#{n}"}, sync=True)
        restored = restore_sent_decisions(store, log, "boot-2")
        assert [(o["cl_ord_id"], o["previous"]) for o in restored.orders] == [("c2", "pending"), ("c1", None)]
        assert store.decision_status("c1") == "sent" and store.decision_status("c2") == "sent"
        assert restored.fire_seq == {"r": 2} and store.audit_checkpoint() == log.head[0] == 4
        assert store.meta("restored:c1") is not None and store.meta("restored:c2") is not None  # never resent
        state = raise_fire_seq(EngineState(fire_seq={"r": 1, "other": 5}), restored.fire_seq)
        assert state is not None and state.fire_seq == {"r": 2, "other": 5}
        assert restore_sent_decisions(store, log, "boot-2").orders == [], "restored once"
