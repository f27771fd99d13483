"""The state store of a run nobody reads back while it runs: replay and rule tests without a
state folder.

`ScratchStateStore` is a `StateStore` (same file, same methods, same answers) that keeps the
latest order decisions in memory and writes them to its database in batches: a fire's three
decision writes (recorded, sent, outcome) then cost no SQL statement and no JSON, and the
memory held stays bounded (`LIVE_DECISIONS`, written out between transactions). A decision not
in memory is read from, and written to, the database as `StateStore` does; a query over every
decision joins both. Changes made inside `transaction()` are undone with it if it fails.
Records are shared, not copied, and an intent is kept as given (no JSON round trip): callers
treat them as read-only, as `OrderRecord` is frozen. The service never uses it: its decisions
must be on disk when each write returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rules_engine import jsoncodec
from rules_engine.state.store import (
    _DECISION_COLUMNS,
    _RANK,
    FINAL_STATUSES,
    OUTCOME_STATUSES,
    OrderRecord,
    StateStore,
    check_decision_args,
    same_decision,
)

LIVE_DECISIONS = 2000
"""Decisions kept in memory; the oldest half is written out when there are more."""


class ScratchStateStore(StateStore):
    """A `StateStore` that is not durable and keeps recent decisions in memory (see the module
    docstring)."""

    def __init__(self, path: Any, **options: Any) -> None:
        super().__init__(path, durable=False, **options)
        self._live: dict[str, OrderRecord] = {}
        self._undo: list[tuple[str, OrderRecord | None]] = []  # inside a transaction: how to undo

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        with self._lock:
            mark = len(self._undo)
            try:
                with self._tx(durable):  # what StateStore.transaction does
                    yield
            except BaseException:
                for cl_ord_id, previous in reversed(self._undo[mark:]):
                    if previous is None:
                        self._live.pop(cl_ord_id, None)
                    else:
                        self._live[cl_ord_id] = previous
                del self._undo[mark:]
                raise
            finally:
                if self._depth == 0:
                    self._undo.clear()
            if self._depth == 0 and len(self._live) > LIVE_DECISIONS:
                self._write_out(len(self._live) // 2)

    def _put(self, record: OrderRecord, previous: OrderRecord | None) -> OrderRecord:
        if self._depth:
            self._undo.append((record.cl_ord_id, previous))
        self._live[record.cl_ord_id] = record
        return record

    # ------------------------------------------------------------------ decisions

    def record_decision(self, cl_ord_id: str, rule_id: str, decision_id: str, intent: Mapping[str, Any],
                        status: str = "pending", created_at: float | None = None) -> OrderRecord:
        check_decision_args(cl_ord_id, rule_id, decision_id, status)
        with self._lock:
            existing = self._live.get(cl_ord_id)
            if existing is None and self._on_disk(cl_ord_id):
                return super().record_decision(cl_ord_id, rule_id, decision_id, intent, status, created_at)
            if existing is not None:
                return same_decision(existing, rule_id, decision_id)
            now = self._clock() if created_at is None else created_at
            fields = (cl_ord_id, rule_id, decision_id, dict(intent), status, None, now, None, now)
            self._put(_record(*fields), None)
            if self._depth == 0 and len(self._live) > LIVE_DECISIONS:
                self._write_out(len(self._live) // 2)
            return _record(*fields, created=True)

    def mark_sent(self, cl_ord_id: str, *, durable: bool = True) -> OrderRecord:
        with self._lock:
            current = self._live.get(cl_ord_id)
            if current is None:
                return super().mark_sent(cl_ord_id, durable=durable)
            if current.status != "pending":
                return current
            now = self._clock()
            c = current
            return self._put(_record(cl_ord_id, c.rule_id, c.decision_id, c.intent, "sent", c.outcome, c.created_at,
                                     now, now), current)

    def record_outcome(self, cl_ord_id: str, status: str, outcome: Mapping[str, Any] | None = None, *,
                       durable: bool = True) -> OrderRecord:
        if status not in OUTCOME_STATUSES:
            raise ValueError(f"outcome status must be one of {', '.join(OUTCOME_STATUSES)}")
        with self._lock:
            current = self._live.get(cl_ord_id)
            if current is None:
                return super().record_outcome(cl_ord_id, status, outcome, durable=durable)
            if current.status in FINAL_STATUSES or _RANK[status] < _RANK[current.status]:
                return current
            c = current
            return self._put(_record(cl_ord_id, c.rule_id, c.decision_id, c.intent, status, dict(outcome or {}),
                                     c.created_at, c.sent_at, self._clock()), current)

    def mark_resent(self, cl_ord_id: str, note: Mapping[str, Any]) -> OrderRecord | None:
        with self._lock:
            if cl_ord_id in self._live:
                self._write_out()  # the row is then read and changed by StateStore
            return super().mark_resent(cl_ord_id, note)

    def decision_status(self, cl_ord_id: str) -> str | None:
        current = self._live.get(cl_ord_id)
        return current.status if current is not None else super().decision_status(cl_ord_id)

    def get_decision(self, cl_ord_id: str) -> OrderRecord | None:
        current = self._live.get(cl_ord_id)
        return current if current is not None else super().get_decision(cl_ord_id)

    def decision_times(self, since: float) -> list[float]:
        with self._lock:
            live = [r.created_at for r in self._live.values() if r.created_at > since]
            return sorted(super().decision_times(since) + live)

    def decisions_for(self, decision_id: str) -> list[OrderRecord]:
        with self._lock:
            live = [r for r in self._live.values() if r.decision_id == decision_id]
            return sorted(super().decisions_for(decision_id) + live, key=lambda r: r.created_at)

    def unresolved_decisions(self) -> list[OrderRecord]:
        with self._lock:
            live = [r for r in self._live.values() if not r.resolved]
            return sorted(super().unresolved_decisions() + live, key=lambda r: r.created_at)

    def flush(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._write_out()
        super().flush()

    # ------------------------------------------------------------------ memory to database

    def _on_disk(self, cl_ord_id: str) -> bool:
        with self._reading() as conn:
            return conn.execute("SELECT 1 FROM decisions WHERE cl_ord_id = ?", (cl_ord_id,)).fetchone() is not None

    def _write_out(self, count: int | None = None) -> None:
        """Write the oldest `count` decisions held in memory (default: all) to the database
        (outside a transaction: one that failed could not give them back)."""
        with self._lock:
            if not self._live or self._conn is None:
                return
            chosen = list(self._live.values())[:count]
            rows = [(r.cl_ord_id, r.rule_id, r.decision_id, jsoncodec.dumps(r.intent, "intent"), r.status,
                     None if r.outcome is None else jsoncodec.dumps(r.outcome, "outcome"), r.created_at, r.sent_at,
                     r.updated_at) for r in chosen]
            with self._tx() as conn:
                conn.executemany(f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 rows)
            for record in chosen:
                del self._live[record.cl_ord_id]


_new = object.__new__


def _record(cl_ord_id: str, rule_id: str, decision_id: str, intent: dict[str, Any], status: str,
            outcome: dict[str, Any] | None, created_at: float, sent_at: float | None, updated_at: float,
            created: bool = False) -> OrderRecord:
    """`OrderRecord(...)` built by filling its `__dict__` (a fire's hot path; see `core.events.make_tick`)."""
    record: OrderRecord = _new(OrderRecord)
    record.__dict__.update(cl_ord_id=cl_ord_id, rule_id=rule_id, decision_id=decision_id, intent=intent,
                           status=status, outcome=outcome, created_at=created_at, sent_at=sent_at,
                           updated_at=updated_at, created=created)
    return record
