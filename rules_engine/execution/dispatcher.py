"""The money-safety path: every intent goes through `Dispatcher.dispatch`.

An order (`PlaceOrder`, `FuturesSendOrder`) takes these steps, in this order:

1. `store.record_decision(cl_ord_id, ...)` in a transaction (`pending`). If that client
   order id is already recorded and may have left this process (its `decision` audit record
   is written, or it is sent, unknown, accepted) it is NOT sent again: the executor looks it
   up (`reconcile`) instead. A final one (filled, cancelled, rejected, abandoned) is answered
   from the store.
2. Audit `decision`, durable before anything is sent: the record is written and its fsync
   started on the log's sync thread (`AuditLog.append_durable`; for the first order of a
   decision on the SQLite store this was done before step 1, by `prewrite`, so the disk
   works while the row is committed too), and the executor runs in
   the order's send gate (`kraken.send_gate`), so the order is encoded, given its nonce and
   signed while the disk works, and waits at the gate, right before it leaves, until the
   record is on disk (an executor that sends nothing has it waited for when it returns).
   If the audit log cannot take it or make it durable, the order is abandoned and never
   sent. This record is the order's "sent" mark: from here a crash leaves a `pending`
   decision that may have left, so a restart looks it up (`may_have_left`); no second write
   to the store comes before the send, so an order costs one SQLite commit and one fsync
   on its way.
3. `executor.execute(intent)` (in the gate).
4. Audit `request` and `response` (redacted by the audit log).
5. `store.record_outcome` (unless the executor refused the order before signing it, as a
   lease-gated client does while its lease has lapsed: then it stays `pending`, with its
   record, and the key's next holder or the next start looks it up and sends it if proven
   absent and still fresh): accepted, filled, cancelled, rejected, unknown (an ambiguous
   failure the lookup could not settle: reconciled at the next start, never resent), or
   abandoned (nothing placed: validate only, or not simulated). With `sent_in_audit` (the
   service) it is committed without waiting for the disk: the fsynced `decision` record
   stands for it after a power cut (`service.decision_restore`).

Other intents: audit `intent`, execute, audit `request` and `response`. A cancel or a dead
man's switch still runs if the audit log fails (protective actions are never blocked);
the failure is logged.

`recover()` runs once at start-up, before any new intent (after `execution.deadlines` waited
out the AddOrder deadlines of what may have left): every `sent`/`unknown` decision, and every
`pending` one whose `decision` audit record is written (the record is fsynced right before the
send, so it stands for "may have been sent"), is looked up by client order id and its outcome
recorded. A decision proven never placed (`pending` without its record, or not found after its
deadline) is sent again, once, if still fresh (`execution.resend`, with a `resend` policy;
without one, or too old: `abandoned` if never sent, `rejected` if not found). Only at start-up,
where each result goes to the rule that waits for it: a running engine's lookups
(`recheck_unknown`, a decision asked for twice) never send. The reports' results (and events)
go back to the core.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, cast

from rules_engine.audit.errors import AuditError
from rules_engine.audit.sink import AuditSink
from rules_engine.audit.sync_thread import durable_already
from rules_engine.audit.tail import audited_answer, audited_decision
from rules_engine.core import intents as it
from rules_engine.core.events import ActionResult, Event, OrderUpdate, Tick
from rules_engine.crashpoints import crash_point
from rules_engine.execution.account import SYNC_ID
from rules_engine.execution.base import Executor
from rules_engine.execution.report import ExecutionReport, failure, refused
from rules_engine.execution.resend import Freshness, ResendPolicy, order_intent
from rules_engine.kraken.send_gate import gated
from rules_engine.state.protocol import EngineStore
from rules_engine.state.store import FINAL_STATUSES, RESTORED_KEY, OrderRecord

log = logging.getLogger(__name__)

ORDER_INTENTS = (it.PlaceOrder, it.FuturesSendOrder)
ORDER_KINDS = frozenset({"place_order", "futures_send_order"})
OrderIntent = it.PlaceOrder | it.FuturesSendOrder
RuleHashes = Mapping[str, str] | Callable[[str], "str | None"]

_FILLED = frozenset({"closed", "filled"})
_ENDED = frozenset({"canceled", "cancelled", "expired", "rejected"})


def client_id(intent: OrderIntent) -> str:
    return intent.cl_ord_id if isinstance(intent, it.PlaceOrder) else intent.cli_ord_id


def order_status(kraken_status: str | None) -> str:
    """The state store's status for a Kraken order status."""
    if kraken_status in _FILLED:
        return "filled"
    if kraken_status in _ENDED:
        return "cancelled"
    return "accepted"


def outcome_of(report: ExecutionReport, cl_ord_id: str) -> tuple[str, dict[str, Any]]:
    """The decision's store status and outcome record for an execution or lookup report."""
    result = report.result
    outcome = {"result": {"ok": result.ok, "error": result.error, "data": dict(result.data)}}
    if not result.ok:
        unsettled = result.data.get("ambiguous") or result.data.get("error_class") == "OrderStateUnknown"
        return ("unknown" if unsettled else "rejected"), outcome
    ids = result.data.get("txid") or result.data.get("order_id")
    if not ids:
        return "abandoned", outcome  # validate only / not simulated: no order exists
    known = {ids} if isinstance(ids, str) else set(ids)
    status = result.data.get("status")
    for event in report.events:
        if isinstance(event, OrderUpdate) and (event.cl_ord_id == cl_ord_id or event.txid in known):
            status = event.status
    return order_status(status), outcome


def may_have_left(audit: AuditSink, decision: OrderRecord) -> bool:
    """Whether a `pending` decision's order may have been sent: its `decision` audit record
    (written right before the send) is in the audit log. True when the log cannot tell
    (unreadable, or a sink that keeps nothing to read back): then it is looked up."""
    path = getattr(audit, "path", None)
    find = getattr(audit, "find_decision", None)  # a sink without a file (PostgreSQL) looks it up itself
    try:
        if find is not None:
            return bool(find(decision.cl_ord_id, decision.created_at))
        if path is not None:
            return audited_decision(path, decision.cl_ord_id, decision.created_at)
    except (OSError, ValueError, AuditError) as exc:
        log.warning("cannot read the audit log for order %s (looked up): %s", decision.cl_ord_id, exc)
    return True


class _DurableGate:
    """The send gate of one order (`kraken.send_gate`): waits once for its decision record to be
    on disk; a failed wait is raised again at each later pass, so nothing is sent after it."""

    def __init__(self, wait: Callable[[], None]) -> None:
        self._wait: Callable[[], None] | None = wait
        self._error: Exception | None = None

    def __call__(self) -> None:
        if self._error is not None:
            raise self._error
        if self._wait is None:
            return
        wait, self._wait = self._wait, None
        try:
            wait()
        except Exception as exc:
            self._error = exc
            raise
        crash_point("order.after_decision")


@dataclass(frozen=True)
class Prewritten:
    """An order's `decision` record written before its row is committed (`Dispatcher.prewrite`):
    its client order id, audit seq and time, and the wait for it to be on disk."""

    cl_ord_id: str
    rule_id: str | None
    decision_id: str | None
    seq: int | None
    time: float
    durable: Callable[[], None]


def _event_json(event: Event) -> dict[str, Any]:
    return {"type": type(event).__name__, **vars(event)}  # events are plain dataclasses: vars() is their fields


class Dispatcher:
    """Runs intents through the executor with the state store and the audit log.
    Thread-safe: dispatches are serialised, unless the executor is `concurrent` (live,
    validate: thread-safe clients), whose dispatches may run side by side (the service's
    lanes, one per pair); `observe` may run on another thread."""

    def __init__(
        self,
        executor: Executor,
        store: EngineStore,
        audit: AuditSink,
        *,
        mode: str,
        rule_hashes: RuleHashes | None = None,
        clock: Callable[[], float] = time.time,
        sent_in_audit: bool = False,
        resend: ResendPolicy | None = None,
    ):
        self.executor = executor
        self.resend = resend  # a decision proven never placed is sent again while fresh (execution.resend)
        # True: the decision's fsynced audit record is what stands for "may have been sent" after
        # a power cut, so outcomes are committed without their own fsync (one fsync per order).
        self.sent_in_audit = sent_in_audit
        self._checkpoint: int | None = None
        self._checkpoint_lock = threading.Lock()
        self._uncommitted: set[int] = set()  # seqs of prewritten decision records whose rows are not yet committed
        self.store = store
        self.audit = audit
        self.mode = mode
        self._rule_hashes = rule_hashes
        self._clock = clock
        self._lock = threading.RLock()
        concurrent = bool(getattr(executor, "concurrent", False))
        self._dispatching: AbstractContextManager[Any] = contextlib.nullcontext() if concurrent else self._lock

    # ------------------------------------------------------------------ public

    def dispatch(self, intent: it.Intent, recorded: OrderRecord | None = None, *,
                 decision_audited: bool = False, durable: Callable[[], None] | None = None) -> ExecutionReport:
        """Carry out one intent safely; returns the report whose `result` (then `events`)
        go back to the core. Never raises for an execution failure. `recorded` is what
        `store.record_decision` returned for this order just before, if the caller recorded
        it (step 1 then needs no second look-up). `decision_audited`: the caller committed the
        order's `decision` record (`append_decision`) with that row, or wrote it before the row
        (`prewrite`, whose wait for the disk is `durable`): step 2 is done."""
        with self._dispatching:
            if isinstance(intent, ORDER_INTENTS):
                audited = decision_audited and recorded is not None
                return self._dispatch_order(intent, recorded, audited, durable if audited else None)
            return self._dispatch_other(intent)

    def prewrite(self, intent: OrderIntent) -> Prewritten | None:
        """Write the order's `decision` record and start its fsync before its row is committed,
        so that the disk works while the row is committed and the order signed (the lane then
        passes `durable` to `dispatch`). Until `committed` is called the audit checkpoint stays
        before this record, so a power cut before the row reaches the disk restores it.
        None if the sink cannot sync in the background or refused the record: the dispatcher
        then writes it itself, as usual."""
        append_durable = getattr(self.audit, "append_durable", None)
        if append_durable is None:
            return None
        try:
            with self._checkpoint_lock:
                record, durable = append_durable("decision", **self._decision_entry(intent))
                seq = record.get("seq")
                if isinstance(seq, int):
                    self._uncommitted.add(seq)
        except AuditError as exc:
            log.warning("order %s: its decision record could not be written ahead of its row: %s",
                        client_id(intent), exc)
            return None
        return Prewritten(client_id(intent), intent.rule_id, intent.decision_id, seq if isinstance(seq, int) else None,
                          float(record.get("time") or self._clock()), durable)

    def committed(self, prewritten: Prewritten, error: BaseException | None = None) -> None:
        """The row of a prewritten decision is committed, or could not be (`error`: its order is
        never sent, which is audited as `abandoned`); the checkpoint may pass its record."""
        if error is not None:
            self._audit_safe("abandoned", prewritten.rule_id, {
                "cl_ord_id": prewritten.cl_ord_id, "decision_id": prewritten.decision_id, "audit_seq": prewritten.seq,
                "reason": f"its decision could not be saved in the state store ({error}); not sent"})
        with self._checkpoint_lock:
            self._uncommitted.discard(prewritten.seq or 0)

    def append_decision(self, intent: OrderIntent, *, sync: bool = True) -> None:
        """Audit the order's `decision` record, its "sent" mark (step 2); raises if the audit
        log refuses it."""
        self.audit.append("decision", sync=sync, **self._decision_entry(intent))

    def _decision_entry(self, intent: OrderIntent) -> dict[str, Any]:
        """The `decision` record's rule id, rule file hash and data."""
        return {"rule_id": intent.rule_id, "rule_file_hash": self._hash(intent.rule_id),
                "data": self._decision_data(intent, client_id(intent))}

    def observe(self, tick: Tick) -> list[Event]:
        """Feed a tick to the executor (paper fills); record fills of known decisions."""
        events = self.executor.observe(tick)
        if events:
            self._note(events)
        return events

    def advance(self, now: float) -> list[Event]:
        """Tell the executor the time (paper expiries); record what it changed."""
        events = self.executor.advance(now)
        self._note(events)
        return events

    def read_account(self) -> ExecutionReport:
        """The account's balances and open orders (`execution.account`), audited as a
        request and a response; never raises."""
        with self._lock:
            now = self._clock()
            try:
                report = self.executor.read_account(now)
            except Exception as exc:  # an executor should not raise; a broken one must not stop the engine
                report = ExecutionReport(failure(SYNC_ID, now, exc))
            base = self._exchange_base(SYNC_ID, "account")
            self._audit_safe("request", None, {**base, "request": report.request})
            self._audit_safe("response", None, {**base, "response": report.response,
                                                "result": self._result_json(report)})
            return report

    def audit_checkpoint(self) -> int | None:
        """Durably record the audit seq up to which every decision's rows are on disk (this
        durable commit carries the rows committed before it: those of every record up to the
        head it reads, but a `prewrite`n record whose rows are not committed yet, which it
        stays before); the seq, or None if the audit sink has no seq."""
        with self._checkpoint_lock:  # not past a prewritten record whose rows are not committed yet
            head = getattr(self.audit, "head", None)
            if head is None:
                return None
            seq = min(head[0], min(self._uncommitted, default=head[0] + 1) - 1)
        if seq != self._checkpoint:
            try:
                self.store.save_audit_checkpoint(seq)
            except Exception as exc:  # the disk: tried again next time (StorageHealth reports it)
                log.warning("cannot save the audit checkpoint: %s", exc)
                return None
            self._checkpoint = int(seq)
        return self._checkpoint

    def recover(self) -> list[ExecutionReport]:
        """Settle every decision a previous run left unresolved (see module doc)."""
        reports = []
        with self._lock:
            for decision in self.store.unresolved_decisions():
                if decision.status == "pending" and not self.may_have_left(decision):
                    reports.append(self._absent(decision, None))
                else:
                    reports.append(self._reconcile(decision, "recovered", may_resend=True))
        return reports

    def recheck_unknown(self) -> list[ExecutionReport]:
        """Look up again every decision left `unknown` (an ambiguous failure whose lookup could
        not tell, e.g. made before its deadline had passed): the service calls it now and then,
        so such a decision is settled while the engine runs, not only at the next start. The
        reports' events (the order's status) go back to the core; their results are nobody's."""
        with self._lock:
            return [self._reconcile(decision, "recovered", quiet_if_unknown=True)
                    for decision in self.store.unresolved_decisions() if decision.status == "unknown"]

    def settle_awaited(self, awaited: Mapping[str, tuple[str, str | None]]) -> list[ExecutionReport]:
        """At start-up, after `recover`: a result for every intent the core still awaits
        (`Engine.awaited()`: intent id -> (kind, client order id)), so no run stays waiting
        on a result that a crash kept from it. An order's result is its decision's stored
        outcome (a decision still unsettled is looked up again); an order never recorded
        was never sent. Any other intent (a cancel, a balance read, the dead man's switch)
        gets a failed result: its answer died with the previous run; nothing is resent."""
        reports = []
        with self._lock:
            for intent_id, (kind, order_key) in awaited.items():
                if kind in ORDER_KINDS and order_key:
                    reports.append(self._settle_order(intent_id, order_key))
                else:
                    reports.append(self._settle_other(intent_id, kind))
        return reports

    def _settle_order(self, intent_id: str, cl_ord_id: str) -> ExecutionReport:
        now = self._clock()
        decision = self.store.get_decision(cl_ord_id)
        if decision is not None and not decision.resolved:
            return self._reconcile(decision, "recovered", intent_id=intent_id, may_resend=True)
        if decision is None:
            result = refused(intent_id, now, "never sent: the engine stopped before recording it", "OrderNotPlaced")
            status = None
        else:
            stored = (decision.outcome or {}).get("result") or {}
            data = {**(stored.get("data") or {}), "status": decision.status, "settled_at_start": True}
            result = ActionResult(intent_id, bool(stored.get("ok")), now, data, stored.get("error"))
            status = decision.status
        self._audit_safe("settled", decision.rule_id if decision else None, {
            "intent_id": intent_id, "cl_ord_id": cl_ord_id, "status": status,
            "result": {"ok": result.ok, "error": result.error, "data": dict(result.data)},
            "note": "the previous run stopped before this result reached its rule; handed back now",
        })
        return ExecutionReport(result)

    def _settle_other(self, intent_id: str, kind: str) -> ExecutionReport:
        result = refused(intent_id, self._clock(), f"{kind}: the engine restarted before its result arrived; "
                         "not sent again (check the account)", "Interrupted")
        self._audit_safe("settled", None, {
            "intent_id": intent_id, "kind": kind, "status": "interrupted",
            "result": {"ok": False, "error": result.error, "data": dict(result.data)},
        })
        return ExecutionReport(result)

    # ------------------------------------------------------------------ orders

    def _dispatch_order(self, intent: OrderIntent, recorded: OrderRecord | None,
                        audited: bool = False, durable: Callable[[], None] | None = None) -> ExecutionReport:
        now = self._clock()
        cl_ord_id = client_id(intent)
        rule_id = intent.rule_id or "engine"
        decision_id = intent.decision_id or intent.intent_id
        decision = recorded
        if decision is None or decision.cl_ord_id != cl_ord_id:
            audited = False
            try:
                with self.store.transaction():
                    decision = self.store.record_decision(cl_ord_id, rule_id, decision_id, intent.to_dict())
            except Exception as exc:
                log.error("order %s not sent: cannot record the decision: %s", cl_ord_id, exc)
                return ExecutionReport(failure(intent, now, exc))
        if not decision.created and (decision.status != "pending" or self.may_have_left(decision)):
            return self._duplicate(intent, decision, now)
        try:  # the order's "sent" mark: once written, a restart looks the order up
            if not audited:
                durable = self._write_decision(intent)
        except Exception as exc:
            return self._audit_refused(intent, cl_ord_id, now, exc)
        gate = _DurableGate(durable or durable_already)
        with gated(gate):  # the record's fsync runs while the order is signed; it leaves once durable
            report = self.executor.execute(intent, now)
        try:
            gate()  # an executor that sent nothing (dry-run, paper): the record is durable before its outcome
        except Exception as exc:
            return self._audit_refused(intent, cl_ord_id, now, exc)
        crash_point("order.after_send")
        self._audit_exchange(intent, report, cl_ord_id)
        if report.result.data.get("unsent"):  # refused before it was signed (a lapsed lease): not final
            log.warning("order %s not sent (%s): left pending for the key's next holder to settle",
                        cl_ord_id, report.result.error)
            return report
        status, outcome = outcome_of(report, cl_ord_id)
        self._record(cl_ord_id, status, outcome)
        crash_point("order.after_outcome")
        self._note(report.events)
        return report

    def _write_decision(self, intent: OrderIntent) -> Callable[[], None]:
        """Write the order's `decision` record and start making it durable; returns the wait
        for it to be on disk (a sink that cannot sync in the background syncs before returning)."""
        append_durable = getattr(self.audit, "append_durable", None)
        if append_durable is None:
            self.append_decision(intent)
            return durable_already
        _, durable = append_durable("decision", **self._decision_entry(intent))
        return cast(Callable[[], None], durable)

    def _audit_refused(self, intent: OrderIntent, cl_ord_id: str, now: float, exc: Exception) -> ExecutionReport:
        """The audit log could not take (or make durable) the order's decision: never sent, abandoned."""
        log.error("order %s not sent: the audit log refused its decision: %s", cl_ord_id, exc)
        result = refused(intent, now, f"not sent: audit log failed: {exc}", "AuditFailed")
        self._record(cl_ord_id, "abandoned", {"result": {"ok": False, "error": result.error, "data": {}}})
        return ExecutionReport(result)

    def may_have_left(self, decision: OrderRecord) -> bool:
        """`may_have_left(self.audit, decision)`."""
        return may_have_left(self.audit, decision)

    def _duplicate(self, intent: it.Intent, decision: OrderRecord, now: float) -> ExecutionReport:
        """A decision seen before: answer from the store if final, else look it up."""
        self._audit_safe("duplicate", intent.rule_id, {
            "intent_id": intent.intent_id, "cl_ord_id": decision.cl_ord_id, "status": decision.status,
            "note": "already decided: not sent again",
        })
        if decision.status in FINAL_STATUSES:
            stored = (decision.outcome or {}).get("result") or {}
            data = {**(stored.get("data") or {}), "duplicate": True, "status": decision.status}
            result = ActionResult(intent.intent_id, bool(stored.get("ok")), now, data, stored.get("error"))
            return ExecutionReport(result)
        return self._reconcile(decision, "reconciled", intent_id=intent.intent_id)

    def _reconcile(self, decision: OrderRecord, kind: str, intent_id: str | None = None,
                   quiet_if_unknown: bool = False, may_resend: bool = False) -> ExecutionReport:
        """Look the decision up and record what was found (`quiet_if_unknown`: record and
        audit nothing if the lookup still cannot tell). `may_resend` (at start-up, where the
        result goes to the rule that waits for it): proven never placed, it may be sent again."""
        now = self._clock()
        report = self.executor.reconcile(self._with_audited_answer(decision), now)
        if intent_id is not None and report.result.intent_id != intent_id:
            report = ExecutionReport(ActionResult(intent_id, report.result.ok, report.result.time,
                                                  report.result.data, report.result.error),
                                     report.request, report.response, report.events)
        status, outcome = outcome_of(report, decision.cl_ord_id)
        if quiet_if_unknown and status == "unknown":
            return report
        if may_resend and status == "rejected" and report.result.data.get("error_class") == "OrderNotPlaced" \
                and self.resend is not None:
            return self._absent(decision, report, kind)
        return self._settle_lookup(decision, kind, report, status, outcome)

    def _settle_lookup(self, decision: OrderRecord, kind: str, report: ExecutionReport, status: str,
                       outcome: dict[str, Any]) -> ExecutionReport:
        self._audit_safe(kind, decision.rule_id, {
            "cl_ord_id": decision.cl_ord_id, "decision_id": decision.decision_id, "previous": decision.status,
            "status": status, "request": report.request, "response": report.response,
            "result": self._result_json(report),
        })
        self._record(decision.cl_ord_id, status, outcome)
        self._note(report.events)
        return report

    def _with_audited_answer(self, decision: OrderRecord) -> OrderRecord:
        """A Futures decision whose answer was audited but not recorded (a crash in between),
        with that answer under `outcome["audited"]`: its order id lets the lookup search the
        fills, which carry no client order id."""
        path = getattr(self.audit, "path", None)
        find = getattr(self.audit, "find_answer", None)  # a sink without a file (PostgreSQL) looks it up itself
        if decision.intent.get("kind") != "futures_send_order" or (path is None and find is None):
            return decision
        try:
            if find is not None:
                answer = find(decision.cl_ord_id, decision.created_at)
            else:
                assert path is not None
                answer = audited_answer(path, decision.cl_ord_id, decision.created_at)
        except (OSError, ValueError, AuditError) as exc:
            log.warning("cannot read the audit log for order %s: %s", decision.cl_ord_id, exc)
            return decision
        if not answer or not answer.get("ok"):
            return decision
        return replace(decision, outcome={**(decision.outcome or {}), "audited": answer})

    def _absent(self, decision: OrderRecord, lookup: ExecutionReport | None,
                kind: str = "recovered") -> ExecutionReport:
        """A decision proven never placed (`lookup` None: still pending, never sent; else its
        lookup found nothing after the deadline): sent again, once, while fresh; otherwise
        settled as not placed (see `execution.resend`)."""
        if self.resend is None:
            return self._not_placed(decision, lookup, kind)
        verdict = self.resend.judge(decision, self._clock())
        blocked = self.resend.blocked() if self.resend.blocked is not None else None
        why = None
        if self.store.meta(RESTORED_KEY + decision.cl_ord_id) is not None:
            why = ("restored from the audit log after a power cut: its rule's state may be lost with its rows, "
                   "so the rule may decide again")
        elif not verdict.fresh:
            why = "too old to trade now"
        elif blocked is not None:
            why = f"the kill switch is engaged ({blocked})"
        elif self.store.resent(decision.cl_ord_id) is not None:
            why = "already sent again once"
        else:
            try:
                intent = order_intent(decision.intent)
            except ValueError as exc:
                intent, why = None, f"its recorded order cannot be read back ({exc})"
            if intent is not None:
                report = self._resend(decision, intent, lookup, verdict)
                if report is not None:
                    return report
                why = "already sent again once"  # or settled meanwhile
        self._audit_safe("not_resent", decision.rule_id, {
            "cl_ord_id": decision.cl_ord_id, "decision_id": decision.decision_id, "previous": decision.status,
            **verdict.record(), "reason": f"proven never placed; not sent: {why}",
        })
        return self._not_placed(decision, lookup, kind)

    def _not_placed(self, decision: OrderRecord, lookup: ExecutionReport | None, kind: str) -> ExecutionReport:
        if lookup is None:
            return self._abandon(decision)
        status, outcome = outcome_of(lookup, decision.cl_ord_id)
        return self._settle_lookup(decision, kind, lookup, status, outcome)

    def _resend(self, decision: OrderRecord, intent: OrderIntent, lookup: ExecutionReport | None,
                verdict: Freshness) -> ExecutionReport | None:
        """Send a fresh decision proven never placed, once: its resend is committed (`sent`,
        with a new `sent_at`) and audited, fsynced, before the request is signed. None if
        the store finds it resent before or settled."""
        now = self._clock()
        cl_ord_id = decision.cl_ord_id
        intent_id = str(decision.intent.get("intent_id") or cl_ord_id)
        proof = "never sent" if lookup is None else "not found by cl_ord_id after its deadline"
        note = {"at": now, "previous": decision.status, "proof": proof, **verdict.record()}
        try:
            marked = self.store.mark_resent(cl_ord_id, note)
        except Exception as exc:
            log.error("order %s not sent again: %s", cl_ord_id, exc)
            return ExecutionReport(failure(intent_id, now, exc))
        if marked is None:
            return None
        try:
            self.audit.append("resent_after_proven_absent", rule_id=decision.rule_id,
                              rule_file_hash=self._hash(decision.rule_id), data={
                                  "cl_ord_id": cl_ord_id, "decision_id": decision.decision_id,
                                  "intent_id": intent_id, **note,
                                  "lookup": None if lookup is None else lookup.response}, sync=True)
        except Exception as exc:  # marked sent: its lookup after the new deadline settles it
            log.error("order %s not sent again: the audit log refused it: %s", cl_ord_id, exc)
            return ExecutionReport(refused(intent_id, now, f"not sent again: audit log failed: {exc}",
                                           "AuditFailed"))
        crash_point("order.before_resend")
        report = self.executor.execute(intent, now)
        self._audit_exchange(intent, report, cl_ord_id)
        status, outcome = outcome_of(report, cl_ord_id)
        outcome["resent"] = note
        self._record(cl_ord_id, status, outcome)
        self._note(report.events)
        result = report.result
        data = {**result.data, "resent_after_proven_absent": True}
        return ExecutionReport(ActionResult(result.intent_id, result.ok, result.time, data, result.error),
                               report.request, report.response, report.events)

    def _abandon(self, decision: OrderRecord) -> ExecutionReport:
        now = self._clock()
        intent_id = str(decision.intent.get("intent_id") or decision.cl_ord_id)
        result = refused(intent_id, now, "never sent: the engine stopped before sending it", "OrderNotPlaced")
        self._record(decision.cl_ord_id, "abandoned",
                     {"result": {"ok": False, "error": result.error, "data": dict(result.data)}})
        self._audit_safe("abandoned", decision.rule_id, {
            "cl_ord_id": decision.cl_ord_id, "decision_id": decision.decision_id,
            "reason": "recorded but never sent before the restart; not sent now",
        })
        return ExecutionReport(result)

    # ------------------------------------------------------------------ other intents

    def _dispatch_other(self, intent: it.Intent) -> ExecutionReport:
        now = self._clock()
        self._audit_safe("intent", intent.rule_id, {"intent": intent.to_dict(), "mode": self.mode})
        report = self.executor.execute(intent, now)
        self._audit_exchange(intent, report, None)
        self._note(report.events)
        return report

    # ------------------------------------------------------------------ helpers

    def _decision_data(self, intent: it.Intent, cl_ord_id: str) -> dict[str, Any]:
        action = {"dry-run": "would_send", "validate": "validate"}.get(self.mode, "send")
        return {"intent": intent.to_dict(), "cl_ord_id": cl_ord_id, "intent_id": intent.intent_id,
                "decision_id": intent.decision_id, "action": action}

    def _exchange_base(self, intent_id: str, kind: str, cl_ord_id: str | None = None) -> dict[str, Any]:
        """The fields every request and response record of one exchange call carries."""
        base: dict[str, Any] = {"intent_id": intent_id, "kind": kind}
        if cl_ord_id is not None:
            base["cl_ord_id"] = cl_ord_id
        if self.mode == "dry-run":
            base["would_send"] = True
        return base

    def _audit_exchange(self, intent: it.Intent, report: ExecutionReport, cl_ord_id: str | None) -> None:
        base = self._exchange_base(intent.intent_id, intent.kind, cl_ord_id)
        if report.result.data.get("would_send"):  # not sent (validate mode's cancels): never "request sent"
            base["would_send"] = True
        self._audit_safe("request", intent.rule_id, {**base, "request": report.request})
        self._audit_safe("response", intent.rule_id, {
            **base, "response": report.response, "result": self._result_json(report),
            "events": [_event_json(e) for e in report.events],
        })

    @staticmethod
    def _result_json(report: ExecutionReport) -> dict[str, Any]:
        result = report.result
        return {"ok": result.ok, "error": result.error, "data": dict(result.data)}

    def _audit_safe(self, kind: str, rule_id: str | None, data: Mapping[str, Any]) -> None:
        try:
            self.audit.append(kind, rule_id=rule_id, rule_file_hash=self._hash(rule_id), data=data)
        except Exception as exc:
            log.error("audit %s record for rule %s failed: %s", kind, rule_id, exc)

    def _record(self, cl_ord_id: str, status: str, outcome: Mapping[str, Any]) -> None:
        try:
            self.store.record_outcome(cl_ord_id, status, outcome, durable=not self.sent_in_audit)
        except Exception as exc:  # the decision stays sent: the next start looks it up
            log.error("cannot record the outcome of order %s (%s): %s", cl_ord_id, status, exc)

    def _note(self, events: list[Event] | tuple[Event, ...]) -> None:
        """Record fills and cancellations of orders this engine decided."""
        for event in events:
            if not isinstance(event, OrderUpdate) or not event.cl_ord_id:
                continue
            status = order_status(event.status)
            if status == "accepted":
                continue
            try:
                known = self.store.decision_status(event.cl_ord_id)
                if known is None or known in FINAL_STATUSES:
                    continue  # not this engine's order, or already settled (as a filled market order is)
                decision = self.store.get_decision(event.cl_ord_id)
                if decision is not None and decision.status not in FINAL_STATUSES:
                    outcome = {**(decision.outcome or {}), "order": _event_json(event)}
                    self.store.record_outcome(event.cl_ord_id, status, outcome)
            except Exception as exc:
                log.error("cannot record the %s of order %s: %s", event.status, event.cl_ord_id, exc)

    def _hash(self, rule_id: str | None) -> str | None:
        if rule_id is None or self._rule_hashes is None:
            return None
        if callable(self._rule_hashes):
            return self._rule_hashes(rule_id)
        return self._rule_hashes.get(rule_id)
