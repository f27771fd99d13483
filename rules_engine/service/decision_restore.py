"""At start: decisions the audit log holds but the state store does not.

On its way from tick to order a decision costs one fsync, the audit log's: its `decision`
audit record (the order's "sent" mark: `Dispatcher.may_have_left`) is written and its fsync
begun (`CommitLane.prewrite`), then its rows are committed to SQLite without waiting for the
disk (a crash of the process, even `kill -9`, loses nothing: they are in the operating
system's cache), then the order is signed, and sent once the record is on disk.

So a start can find a `decision` record whose rows are not in the store:
- **The same boot** (the engine stopped or was killed, the machine kept running): the engine
  died between the record and the commit of its rows, so the order was never sent (the send
  comes after the commit). It is recorded as `abandoned` and audited so; nothing is sent, and
  the rule goes on from its state before that decision (saved with the rows, so not saved).
- **After a reboot** (a power cut, a kernel crash) a commit made before the cut may be lost
  too, but never the decision record of an order that was sent: each `decision` record whose
  order the store does not know, or knows only as `pending`, is recorded as `sent`, and is
  then looked up on the exchange by its client order id like any other unresolved order
  (`Dispatcher.recover`), but never sent again (`RESTORED_KEY`): the rule's state saved with
  its rows may be lost too, so the rule may decide again.
Either way the rule's fire number is raised past it (`raise_fire_seq`), so a rule never reuses
that client order id for a new decision.

The store keeps an **audit checkpoint**, the audit seq up to which every decision's rows are
on disk (`Dispatcher.audit_checkpoint`, a durable commit about once a second while records
come, and at a clean stop; never past a record whose rows are not committed yet), and the
**boot id** of the machine that last ran it; the records after the checkpoint are read.
A record whose decision was audited `abandoned` in the run itself (its rows could not be
saved) was never sent and is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules_engine.audit import AuditLog
from rules_engine.audit.tail import records_after
from rules_engine.core import EngineState
from rules_engine.state.protocol import EngineStore
from rules_engine.state.store import RESTORED_KEY


@dataclass
class Restored:
    """What `restore_sent_decisions` did."""

    orders: list[dict[str, Any]] = field(default_factory=list)  # per order: cl_ord_id, rule_id, decision_id, ...
    abandoned: list[dict[str, Any]] = field(default_factory=list)  # audited, never saved, never sent (same boot)
    fire_seq: dict[str, int] = field(default_factory=dict)  # rule id -> highest fire number in the log


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """This boot of the operating system (Linux), None where it cannot be read."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def restore_sent_decisions(store: EngineStore, log: AuditLog, current_boot: str | None = None) -> Restored:
    """Settle each order decision audited after the store's checkpoint that the store lost, or
    holds only as `pending` after a reboot (`current_boot`, default `boot_id()`, differs from the
    one saved; an unknown one counts as a reboot), and raise its rule's fire number past it (see
    the module docstring). A store without a checkpoint (a new one) starts from the log's head.
    Saves the checkpoint and the boot id."""
    restored = Restored()
    current_boot = boot_id() if current_boot is None else current_boot
    rebooted = current_boot is None or store.meta("boot_id") != current_boot
    checkpoint = store.audit_checkpoint()
    if checkpoint is not None and log.head[0] > checkpoint:
        records = list(records_after(log.path, checkpoint))
        given_up = {str((r.get("data") or {}).get("cl_ord_id")) for r in records if r.get("kind") == "abandoned"}
        for record in records:
            data = record.get("data") or {}
            cl_ord_id, intent = data.get("cl_ord_id"), data.get("intent")
            if record.get("kind") != "decision" or not isinstance(cl_ord_id, str) or not isinstance(intent, dict):
                continue
            rule_id = record.get("rule_id") or "engine"
            decision_id = str(data.get("decision_id") or data.get("intent_id") or cl_ord_id)
            name, _, number = decision_id.rpartition("#")
            if name and number.isdigit():
                restored.fire_seq[name] = max(restored.fire_seq.get(name, 0), int(number))
            previous = store.decision_status(cl_ord_id)
            if cl_ord_id in given_up and previous is None:
                continue  # its rows could not be saved, so it was never sent (audited then)
            if previous is None and not rebooted:  # the engine died between the record and its rows
                at = record.get("time")
                store.record_decision(cl_ord_id, rule_id, decision_id, intent, status="abandoned",
                                      created_at=float(at) if isinstance(at, (int, float)) else None)
                restored.abandoned.append({"cl_ord_id": cl_ord_id, "rule_id": rule_id, "decision_id": decision_id,
                                           "audit_seq": record["seq"]})
                continue
            if not rebooted:
                continue
            if previous is None:
                store.record_decision(cl_ord_id, rule_id, decision_id, intent, status="sent")
            elif previous == "pending":
                store.mark_sent(cl_ord_id)
            else:
                continue
            store.set_meta(RESTORED_KEY + cl_ord_id, str(record["seq"]))  # looked up, never sent again
            restored.orders.append({"cl_ord_id": cl_ord_id, "rule_id": rule_id, "decision_id": decision_id,
                                    "audit_seq": record["seq"], "previous": previous})
    for order in reversed(restored.orders):
        log.append("restored", rule_id=order["rule_id"], data={
            **order, "status": "sent",
            "note": "audited before its order was sent, but not saved as sent in the state store (a power cut): "
                    "recorded as sent now, to be looked up by its client order id, never sent again"})
    for order in restored.abandoned:
        log.append("abandoned", rule_id=order["rule_id"], data={
            **order, "reason": "the engine stopped after auditing this decision and before saving it, so its "
                               "order was never sent; not sent now (its rule goes on from its state before "
                               "this decision), and its client order id is never used again"})
    store.save_audit_checkpoint(log.head[0])
    if current_boot is not None:
        store.set_meta("boot_id", current_boot)
    return restored


def raise_fire_seq(state: EngineState | None, fire_seq: dict[str, int]) -> EngineState | None:
    """The engine state with each rule's fire number at least the restored one."""
    if not fire_seq:
        return state
    state = state if state is not None else EngineState()
    for rule_id, number in fire_seq.items():
        state.fire_seq[rule_id] = max(state.fire_seq.get(rule_id, 0), number)
    return state
