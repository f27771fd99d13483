"""The audit chain on PostgreSQL: one hash chain per key in the `audit` table, each row the
record's line exactly as the JSONL log writes it (`audit.log.encode_record`), with its seq,
prev hash, hash and the writer's epoch in columns.

    audit = PgAuditLog(settings, epoch=lease.epoch, mode="live")
    audit.append("trigger", rule_id=..., data={...})               # queued, committed in the background
    audit.append("decision", rule_id=..., data={...}, sync=True)   # committed (with the queue) when it returns
    export_jsonl(settings, "audit.jsonl")                          # `rules-engine audit verify audit.jsonl`

Group commit: an append gets its seq, prev hash and hash at once, in memory (the chain's order
is the order of the appends), and is queued, so the caller (a cell on a worker's event loop)
does not wait for PostgreSQL. `sync=True` commits the queue and its own record in one
pipelined transaction before it returns: what an order depends on (its `decision`) is durable
before the order is sent, as before, and a decision's trace goes in the same transaction. A
`sync=False` record is committed at the next `sync=True` append, `flush()`, `sync()` or
`close()`, or by the process's flusher thread once it has waited `LINGER` (50 ms), or refused
if that commit fails; a kill -9 loses only such records newer than the last commit (the
PostgreSQL analogue of the JSONL log's unsynced writes; docs/audit-and-state.md).

Every commit is one transaction that begins with the cell's epoch check, so a fenced engine
cannot add a record (its queue is refused); the primary key (key_id, seq) makes a fork
impossible: two writers of one seq cannot both commit. A commit that fails refuses its batch
and everything queued behind it (counted as refused records) and the head goes back to the
last committed record; until a write succeeds again, appends are synchronous. After a lost
connection the chain's head is read again from the table (a commit whose answer was lost may
or may not have happened), and the first record after the outage is a `storage_recovered`
record saying how many records were refused meanwhile. Readers in this process (`find_answer`,
`find_decision`) flush first; readers of the table (`export_jsonl`, `tail_records`) see what
was committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rules_engine.audit.errors import AuditError
from rules_engine.audit.log import check_entry, encode_record
from rules_engine.audit.records import GENESIS
from rules_engine.pgstore.connection import Connection, ConnectionPool, StoreSettings, connect
from rules_engine.redact import Redactor, default_redactor
from rules_engine.state.store import StateStoreError

_PAGE = 5000
_INSERT = ("INSERT INTO audit (key_id, seq, prev_hash, hash, epoch, time, kind, rule_id, line) "
           "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
LINGER = 0.05
"""Seconds a record appended with `sync=False` waits in the queue at most before the flusher
commits it (a `sync=True` append, `flush` or `close` commits it sooner)."""


class _Flusher:
    """One thread per process that commits the queues of the chains whose oldest queued record
    has waited `LINGER` (most queues are committed sooner, by their cell's next `sync=True`
    append: a decision's trace goes with its decision record, in one transaction)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[PgAuditLog, float] = {}
        self._thread: threading.Thread | None = None
        self._waking_at: float | None = None  # when the thread wakes by itself (None: only when notified)

    def schedule(self, log: PgAuditLog) -> None:
        with self._cond:
            if log not in self._due:
                at = self._due[log] = time.monotonic() + LINGER
                if self._waking_at is None or at < self._waking_at:  # else it wakes in time by itself
                    self._waking_at = at
                    self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-flusher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    self._waking_at = None
                    self._cond.wait()
                now = time.monotonic()
                due = [log for log, at in self._due.items() if at <= now]
                if not due:
                    self._waking_at = min(self._due.values())
                    self._cond.wait(self._waking_at - now)
                    continue
                for log in due:
                    del self._due[log]
            for log in due:
                with contextlib.suppress(StateStoreError):
                    log._flush()  # a failure refuses the queue and is noted (`failure`, `storage_recovered`)


_FLUSHER = _Flusher()


class PgAuditLog:
    """Appends hash-chained records to the key's chain in the store (see the module docstring).
    Thread-safe. Has no `path`: readers of the JSONL file (power-cut restore, audited
    answers) do not apply; they look records up in the table (after a `flush`)."""

    def __init__(self, settings: StoreSettings, *, epoch: int | None, mode: str,
                 clock: Callable[[], float] = time.time, redactor: Redactor | None = None,
                 pool: ConnectionPool | None = None) -> None:
        if not isinstance(mode, str) or not mode:
            raise ValueError("mode must be a non-empty string")
        self.settings = settings
        self.mode = mode
        self.epoch = epoch
        self._clock = clock
        self._redactor = redactor or default_redactor
        self._lock = threading.Lock()  # the in-memory head and the queue
        self._commit_lock = threading.RLock()  # one commit at a time, in chain order
        self._seq, self._prev = 0, GENESIS  # the last record appended (queued or committed)
        self._committed: tuple[int, str] = (0, GENESIS)  # the last record known to be in the table
        self._queue: list[tuple[dict[str, Any], tuple[Any, ...]]] = []
        self._generation = 0  # counts refusals of the queue: seqs refused are handed out again
        self._first_refused = 0  # the first seq the latest refusal of the queue took back
        self._refused = 0
        self._failed_since: tuple[str, float] | None = None
        self._stopping = False
        self._db = Connection(settings, epoch, clock, on_reconnect=self._read_head, pool=pool)
        try:
            self._db.open()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None
        self._seq, self._prev = self._committed

    def _read_head(self, conn: Any) -> None:
        row = conn.execute("SELECT seq, hash FROM audit WHERE key_id = %s ORDER BY seq DESC LIMIT 1",
                           (self.settings.key_id,)).fetchone()
        self._committed = (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    @property
    def head(self) -> tuple[int, str]:
        """`(seq, hash)` of the last record appended (`(0, GENESIS)` for an empty chain),
        committed or still queued."""
        with self._lock:
            return self._seq, self._prev

    @property
    def failure(self) -> tuple[str, float] | None:
        """Why the chain cannot take records and since when; None while it can."""
        return self._db.failure

    @property
    def fenced(self) -> bool:
        """Whether a write found the key held by a newer epoch (this chain takes no more records)."""
        return self._db._fenced is not None

    def append(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
               data: Mapping[str, Any] | None = None, sync: bool = False) -> dict[str, Any]:
        """Append one record and return it as written. `sync=True`: committed (with every
        record queued before it) when this returns. `sync=False`: queued, committed by the
        flusher within `LINGER` (or by the next `sync=True` append), or refused if that commit fails."""
        check_entry(kind, rule_id, rule_file_hash, data)
        return self._append([(kind, rule_id, rule_file_hash, data or {})], sync)[0]

    def append_many(self, entries: Iterable[tuple[str, str | None, str | None, Mapping[str, Any] | None]]
                    ) -> list[dict[str, Any]]:
        """Append several records (the trace of one decision), queued as one: committed in one
        transaction, or all refused; as `append(sync=False)`."""
        batch = []
        for kind, rule_id, rule_file_hash, data in entries:
            check_entry(kind, rule_id, rule_file_hash, data)
            batch.append((kind, rule_id, rule_file_hash, data or {}))
        return self._append(batch, False) if batch else []

    def _append(self, entries: list[tuple[str, str | None, str | None, Mapping[str, Any]]], sync: bool
                ) -> list[dict[str, Any]]:
        with self._lock:
            healthy = (self._failed_since is None and self._db.failure is None and not self._stopping)
            if healthy:
                records, rows = self._encode(entries, self._seq, self._prev)
                self._seq, self._prev = records[-1]["seq"], records[-1]["hash"]
                waiting = bool(self._queue)
                self._queue.extend(zip(records, rows, strict=True))
                generation = self._generation
                if not sync:
                    if not waiting:
                        _FLUSHER.schedule(self)
                    return records
        if not healthy:  # after a failure: synchronously, as the first record after it says so
            return self._write_after_failure(entries)
        try:
            self._flush()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None
        with self._lock:
            if self._generation > generation + 1 or (
                    self._generation == generation + 1 and self._first_refused <= records[-1]["seq"]):
                # another thread's commit of them failed
                reason = self._failed_since[0] if self._failed_since else "a commit failed"
                raise AuditError(f"audit chain: {reason}")
        return records

    def _flush(self) -> None:
        """Commit the queue in one pipelined transaction (epoch-checked); if it fails, every
        queued record is refused and the head goes back to the last committed record."""
        with self._commit_lock:
            with self._lock:
                batch, self._queue = self._queue, []
            if not batch:
                return
            first = batch[0][0]
            try:
                with self._db.transaction(pipeline=True) as conn:  # a reconnect re-reads the head (`_read_head`)
                    if self._committed != (first["seq"] - 1, first["prev"]):
                        raise StateStoreError(f"state store {self.settings.shown}: the chain's head moved in the "
                                              f"table (seq {self._committed[0]}), queued records refused")
                    with conn.cursor() as cursor:
                        cursor.executemany(_INSERT, [row for _, row in batch])
            except StateStoreError as exc:
                self._refuse(first["seq"], len(batch), str(exc))
                raise
            last = batch[-1][0]
            self._committed = (last["seq"], last["hash"])

    def _refuse(self, first_seq: int, count: int, reason: str) -> None:
        """A commit of `count` queued records from `first_seq` failed: they and everything queued
        behind them are refused, the head goes back to the last committed record (commit lock held)."""
        with self._lock:
            self._refused += count + len(self._queue)
            self._queue = []
            self._generation += 1
            self._first_refused = first_seq
            self._seq, self._prev = self._committed
            if self._failed_since is None:
                self._failed_since = self._db.failure or (reason, float(self._clock()))

    def ride(self, conn: Any, appends: Sequence[Callable[[], None]] = ()
             ) -> Callable[[BaseException | None], None] | None:
        """The state store of the same key and epoch is about to commit a transaction on `conn`
        (begun with its epoch check): the queued records go into it, so they commit (or fail)
        with its writes, without a transaction of their own (`PgStateStore.pair_audit`).
        `appends` (appends to this chain, e.g. an order's `decision` record) are made first,
        while no other commit of the chain can take them: their records are in the transaction
        (or, after a failure, written by the append itself). Without `appends` the queue rides
        only if no commit of the chain is under way. Returns what to call once the transaction
        ended (None: committed; else the error, which refuses the records as a failed commit
        does), or None if nothing rides."""
        if appends:
            self._commit_lock.acquire()
        elif not self._commit_lock.acquire(blocking=False):
            return None
        try:
            for append in appends:
                append()
            with self._lock:
                batch = self._queue
                if not batch or self._failed_since is not None or self._db.failure is not None \
                        or self._committed != (batch[0][0]["seq"] - 1, batch[0][0]["prev"]):
                    batch = []  # nothing, or the chain's own commit sorts it out (`_flush`)
                else:
                    self._queue = []
            if not batch and appends:
                self._flush()  # the appended records are committed before the caller's transaction
            if batch:
                try:
                    with conn.cursor() as cursor:
                        cursor.executemany(_INSERT, [row for _, row in batch])
                except BaseException as exc:
                    self._refuse(batch[0][0]["seq"], len(batch), f"state store {self.settings.shown}: {exc}")
                    raise
        except BaseException:
            self._commit_lock.release()
            raise
        if not batch:
            self._commit_lock.release()
            return None

        def ended(error: BaseException | None) -> None:
            try:
                if error is None:
                    last = batch[-1][0]
                    self._committed = (last["seq"], last["hash"])
                else:
                    self._refuse(batch[0][0]["seq"], len(batch), f"state store {self.settings.shown}: {error}")
            finally:
                self._commit_lock.release()

        return ended

    def _write_after_failure(self, entries: list[tuple[str, str | None, str | None, Mapping[str, Any]]]
                             ) -> list[dict[str, Any]]:
        """One transaction: a `storage_recovered` record (if the chain failed) and `entries`."""
        with self._commit_lock:
            with contextlib.suppress(StateStoreError):
                self._flush()  # records queued before a failed read (nothing if it failed meanwhile)
            with self._lock:
                if self._db.failure is not None and self._failed_since is None:
                    self._failed_since = self._db.failure
            prefixed = False
            try:
                with self._db.transaction(pipeline=True) as conn:  # a reconnect re-reads the head first
                    batch = entries
                    if self._failed_since is not None:
                        reason, since = self._failed_since
                        prefixed = True
                        batch = [("storage_recovered", None, None, {
                            "part": "audit", "error": reason, "failed_at": since, "refused_records": self._refused,
                            "note": "the audit chain could not be written; records refused meanwhile are not in it"}),
                            *entries]
                    records, rows = self._encode(batch, *self._committed)
                    with conn.cursor() as cursor:
                        cursor.executemany(_INSERT, rows)
            except StateStoreError as exc:
                with self._lock:
                    self._refused += len(entries)
                    if self._failed_since is None:
                        self._failed_since = self._db.failure or (str(exc), float(self._clock()))
                raise AuditError(f"audit chain: {exc}") from None
            with self._lock:
                self._failed_since, self._refused = None, 0
                self._committed = self._seq, self._prev = records[-1]["seq"], records[-1]["hash"]
            return records[1:] if prefixed else records

    def _encode(self, entries: list[tuple[str, str | None, str | None, Mapping[str, Any]]], seq: int, prev: str
                ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        records, rows = [], []
        for kind, rule_id, rule_hash, data in entries:
            seq += 1
            record, line = encode_record(seq, prev, kind, rule_id, rule_hash, data, time=float(self._clock()),
                                         mode=self.mode, redactor=self._redactor)
            rows.append((self.settings.key_id, seq, prev, record["hash"], self.epoch or 0, record["time"], kind,
                         record["rule_id"], line.decode("ascii").rstrip("\n")))
            prev = record["hash"]
            records.append(record)
        return records, rows

    def flush(self) -> None:
        """Commit the records queued so far (AuditError if they were refused instead)."""
        try:
            self._flush()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None

    def find_answer(self, cl_ord_id: str, since: float) -> dict[str, Any] | None:
        """The result the exchange gave for the order `cl_ord_id` as its `response` record holds
        it, looking at records written from `since` (less 5 s: clock steps); None if none was
        audited (`audit.tail.audited_answer` for the chain in the table)."""
        for data in self._order_records("response", cl_ord_id, since):
            result = data.get("result")
            return result if isinstance(result, dict) else None
        return None

    def find_decision(self, cl_ord_id: str, since: float) -> bool:
        """Whether the chain holds the `decision` record of the order `cl_ord_id` (written right
        before it is sent), among records written from `since` (less 5 s: clock steps)
        (`audit.tail.audited_decision` for the chain in the table)."""
        return any("intent" in data for data in self._order_records("decision", cl_ord_id, since))

    def _order_records(self, kind: str, cl_ord_id: str, since: float) -> list[dict[str, Any]]:
        """The `data` of the `kind` records of the order `cl_ord_id` written from `since` less
        5 s, newest first (the queue committed first: a refused record is not in the chain, and
        the read says whether the store answers)."""
        with contextlib.suppress(AuditError):
            self.flush()
        try:
            with self._db.reading() as conn:
                rows = conn.execute("SELECT line FROM audit WHERE key_id = %s AND kind = %s AND time >= %s "
                                    "AND strpos(line, %s) > 0 ORDER BY seq DESC",
                                    (self.settings.key_id, kind, since - 5, json.dumps(cl_ord_id))).fetchall()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None
        found = []
        for (line,) in rows:
            data = json.loads(line).get("data") or {}
            if data.get("cl_ord_id") == cl_ord_id:
                found.append(data)
        return found

    def needs_sync(self) -> bool:
        """Whether `sync` has anything to do: records queued, or a failure to probe. Read
        without the lock (cheap enough for the housekeeping on an event loop): a record queued
        meanwhile is committed by the flusher within `LINGER` anyway."""
        return bool(self._queue) or self._db.failure is not None

    def sync(self) -> None:
        """Commit the queued records; while failed, try to reach the store again (AuditError if
        it still cannot be written or the queue was refused)."""
        self.flush()
        if self._db.failure is None:
            return
        with self._commit_lock:
            try:
                with self._db.transaction():
                    pass
            except StateStoreError as exc:
                raise AuditError(f"audit chain: {exc}") from None

    def recover(self) -> bool:
        try:
            self.sync()
        except AuditError:
            return False
        return True

    def close(self) -> None:
        """Commit what is queued (a failure refuses it, as any failed append), then disconnect."""
        with self._lock:
            self._stopping = True
        with contextlib.suppress(StateStoreError):
            self._flush()
        self._db.close()

    def __enter__(self) -> PgAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgAuditLog({self.settings.shown!r}, mode={self.mode!r}, seq={self._seq})"


def tail_records(settings: StoreSettings, limit: int = 20_000) -> list[dict[str, Any]]:
    """The key's last `limit` records, oldest first (what `rules-engine status` reads of a
    stopped engine)."""
    conn = connect(settings)
    try:
        rows = conn.execute("SELECT line FROM audit WHERE key_id = %s ORDER BY seq DESC LIMIT %s",
                            (settings.key_id, limit)).fetchall()
    finally:
        conn.close()
    return [json.loads(line) for (line,) in reversed(rows)]


def export_lines(settings: StoreSettings) -> Iterator[str]:
    """The key's chain as JSONL lines (each ending in a newline), in seq order."""
    conn = connect(settings)
    try:
        last = 0
        while True:
            rows = conn.execute("SELECT seq, line FROM audit WHERE key_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                                (settings.key_id, last, _PAGE)).fetchall()
            if not rows:
                return
            for seq, line in rows:
                yield line + "\n"
                last = int(seq)
    finally:
        conn.close()


def export_jsonl(settings: StoreSettings, path: str | os.PathLike[str]) -> int:
    """Write the key's chain to `path` in the JSONL log's format; the number of records."""
    count = 0
    with open(Path(path), "w", encoding="ascii") as handle:
        for line in export_lines(settings):
            handle.write(line)
            count += 1
    return count
