"""The commit-then-send lane: how a decision's intents leave the engine, in every mode.

A `Job` is one decision's intents (or none: just save the state). Before it is handed over,
`CommitLane.prewrite` writes the first order's `decision` audit record and starts its fsync
(a decision whose intents are all orders, on the SQLite store): the disk works while the
rows are committed and the order signed. `CommitLane.run(job)`:

1. commits, in one SQLite transaction, every core state change taken so far
   (`Engine.snapshot_changes()`, handed over with `take_changes`) and a `pending` row for
   each order intent, keyed by its client order id;
2. then hands each intent, in order, to the `Dispatcher` (audit the decision, fsynced: its
   "sent" mark, unless prewritten; execute, sent once the record is on disk; audit request
   and response; record the outcome);
3. returns `(intent, report)` for each, to be fed back to the core.

On the PostgreSQL store the first order's `decision` record is committed in the transaction
of step 1 (`PgStateStore.audit_with_commit`), not in one of its own in step 2: still committed
before the order is sent.

If the commit fails nothing is sent: each intent gets a failed result (a prewritten record
is followed by an `abandoned` one) and the changes stay unsaved (under any taken since) for
the next commit. The commit is durable unless every intent is an order: each of those has its
`decision` audit record fsynced before it leaves, which stands for this commit after a power
cut (`service.decision_restore`), so the one fsync on the way from tick to order is the audit
log's. A record written ahead of its rows whose rows never came (a kill in between) is an
order never sent: the next start records it `abandoned` (`service.decision_restore`).

The service runs `run` on worker threads, one per pair in live and validate (a pair's intents
leave in the order they were decided; `service.lane`);
replay, rule tests and the demo run it inline. Both are this code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from rules_engine.audit.errors import AuditError
from rules_engine.core.events import ActionResult
from rules_engine.core.intents import Intent
from rules_engine.core.state import SnapshotChanges
from rules_engine.crashpoints import crash_point
from rules_engine.execution.dispatcher import ORDER_INTENTS, Dispatcher, OrderIntent, Prewritten, client_id
from rules_engine.execution.report import ExecutionReport
from rules_engine.state.protocol import EngineStore
from rules_engine.state.store import OrderRecord, StateStoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """The intents of one decision, in order. `persist` commits the state changes taken so
    far first; `received` is when the event that caused it arrived (`time.perf_counter()`),
    for the dispatch latency metric."""

    intents: tuple[Intent, ...] = ()
    persist: bool = True
    received: float | None = None
    account: bool = False  # read the account's balances and open orders (after the intents)
    prewritten: Prewritten | None = None  # the first order's decision record, written ahead (`CommitLane.prewrite`)


Reported = list[tuple[Intent | None, ExecutionReport]]
"""Each intent with its report; `None` with the report of an account read."""


class CommitLane:
    """Commits state with the decision rows, then dispatches (see the module docstring).
    `take_changes` may run on another thread than `run`."""

    def __init__(
        self,
        store: EngineStore,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], float] = time.time,
        on_dispatch: Callable[[Job], None] | None = None,
        on_commit: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self._clock = clock
        self._on_dispatch = on_dispatch
        self._on_commit = on_commit  # told of each commit's failure (or success): the service's readiness
        self._unsaved: SnapshotChanges | None = None
        self._staged: list[int] = []  # signals being decided: dropped from the inbox with the changes taken next
        self._consumed: list[int] = []  # ... taken with `_unsaved`, dropped by the next commit
        self._lock = threading.Lock()

    def take_changes(self, changes: SnapshotChanges) -> None:
        """Add the core's state changes to those not yet saved (the next commit saves them)."""
        with self._lock:
            self._unsaved = changes if self._unsaved is None else self._unsaved.then(changes)
            if self._staged:
                self._consumed.extend(self._staged)
                self._staged.clear()

    def stage_signal(self, number: int) -> None:
        """A signal from the state store's inbox is about to be decided: the commit that
        saves the state changes taken next (which hold its decision) drops it from the inbox,
        in the same transaction, so a crash leaves it either undecided and in the inbox, or
        decided and gone: decided exactly once."""
        with self._lock:
            self._staged.append(number)

    def prewrite(self, intents: Sequence[Intent]) -> Prewritten | None:
        """For a decision whose intents are all orders, on a store whose commits are not durable
        (SQLite; see the module docstring): write the first order's `decision` record and start
        its fsync now, before the decision is handed over and its rows committed, so the disk
        works meanwhile (`Dispatcher.prewrite`). The `Job` carries it to `run`."""
        if not intents or not all(isinstance(intent, ORDER_INTENTS) for intent in intents):
            return None
        if getattr(self.store, "audit_with_commit", None) is not None:
            return None  # PostgreSQL: the record commits with the rows instead
        return self.dispatcher.prewrite(cast(OrderIntent, intents[0]))

    def run(self, job: Job) -> Reported:
        """Commit, then dispatch each intent; never raises for an execution failure."""
        rows: dict[str, OrderRecord] = {}
        audited: set[str] = set()
        reported: Reported = []
        prewritten = job.prewritten
        if job.persist:
            if any(isinstance(intent, ORDER_INTENTS) for intent in job.intents):
                crash_point("order.before_commit")
            try:
                rows, audited = self._commit(job.intents, prewritten)
            except Exception as exc:
                if isinstance(exc, (StateStoreError, AuditError)):  # the disk's trouble: no traceback
                    log.error("could not persist a decision; its intents are not sent: %s", exc)
                else:
                    log.exception("could not persist a decision; its intents are not sent")
                if prewritten is not None:
                    self.dispatcher.committed(prewritten, exc)
                if self._on_commit is not None:
                    self._on_commit(exc)
                return [(intent, failed(intent, self._clock(), f"state could not be saved: {exc}"))
                        for intent in job.intents]
            if prewritten is not None:
                self.dispatcher.committed(prewritten)
            if self._on_commit is not None:
                self._on_commit(None)
            if rows:
                crash_point("order.after_commit")
        for intent in job.intents:
            if self._on_dispatch is not None:
                self._on_dispatch(job)
            try:
                key = client_id(intent) if isinstance(intent, ORDER_INTENTS) else None
                recorded = rows.get(key) if key is not None else None
                durable = prewritten.durable if prewritten is not None and key == prewritten.cl_ord_id else None
                report = self.dispatcher.dispatch(intent, recorded, decision_audited=key in audited, durable=durable)
            except Exception as exc:
                log.exception("dispatch of %s failed", intent.intent_id)
                report = failed(intent, self._clock(), f"{type(exc).__name__}: {exc}")
            reported.append((intent, report))
        if job.account:
            reported.append((None, self.dispatcher.read_account()))
        return reported

    def commit(self, intents: Sequence[Intent] = (), prewritten: Prewritten | None = None) -> dict[str, OrderRecord]:
        """One transaction: a `pending` row per order intent (returned by client order id)
        and every state change taken so far (`prewritten`: see `_commit`)."""
        return self._commit(intents, prewritten)[0]

    def _commit(self, intents: Sequence[Intent],
                prewritten: Prewritten | None = None) -> tuple[dict[str, OrderRecord], set[str]]:
        """`commit`, and the client order ids whose `decision` audit record committed with it
        or was written before it (`prewritten`: its row takes the record's time, so that a
        restart finds the record when it reads the log back from the row's time)."""
        audited: set[str] = set()
        with self._lock:
            changes, self._unsaved = self._unsaved, None
            consumed, self._consumed = self._consumed, []
        store = self.store
        rows: dict[str, OrderRecord] = {}
        durable = not intents or not all(isinstance(intent, ORDER_INTENTS) for intent in intents)
        try:
            with store.transaction(durable=durable):
                for intent in intents:
                    if isinstance(intent, ORDER_INTENTS):  # the same row the Dispatcher records
                        cl_ord_id = client_id(intent)
                        ahead = prewritten is not None and prewritten.cl_ord_id == cl_ord_id
                        rows[cl_ord_id] = store.record_decision(
                            cl_ord_id, intent.rule_id or "engine", intent.decision_id or intent.intent_id,
                            intent.to_dict(), created_at=prewritten.time if prewritten is not None and ahead else None)
                        if ahead:
                            audited.add(cl_ord_id)
                        elif len(rows) == 1 and rows[cl_ord_id].created:
                            self._audit_with_commit(intent, audited)
                if changes is not None:
                    store.save_engine_changes(changes.base, changes.parts, complete=changes.complete)
                if consumed:
                    store.consume_signals(consumed)
        except BaseException:
            with self._lock:
                if changes is not None:
                    self._unsaved = changes if self._unsaved is None else changes.then(self._unsaved)
                self._consumed[:0] = consumed
            raise
        return rows, audited

    def _audit_with_commit(self, intent: OrderIntent, audited: set[str]) -> None:
        """A store that can (PostgreSQL: `PgStateStore.audit_with_commit`) commits the first
        order's `decision` audit record in this transaction, with its row: committed before it
        is sent, as the dispatcher's own append would, one transaction fewer. The order's id
        goes into `audited` once the record is appended (the dispatcher then skips its append)."""
        join = getattr(self.store, "audit_with_commit", None)
        if join is None:
            return
        cl_ord_id = client_id(intent)

        def append() -> None:
            try:
                self.dispatcher.append_decision(intent, sync=False)
            except Exception as exc:  # the dispatcher tries once more (and abandons the order if that fails)
                log.warning("order %s: its decision record could not join the commit: %s", cl_ord_id, exc)
                return
            audited.add(cl_ord_id)

        join(append)


def failed(intent: Intent, now: float, error: str) -> ExecutionReport:
    """A failed report for an intent the lane could not carry out."""
    return ExecutionReport(ActionResult(intent.intent_id, False, now, {"error_class": "ServiceError"}, error))
