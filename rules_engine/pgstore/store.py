"""The state store on PostgreSQL: `rules_engine.state.StateStore`'s interface for one key's
cell, every row under the cell's `key_id`, every write fenced by the cell's epoch.

Durability: every commit is synchronous (`synchronous_commit=on`): when a method returns, the
database has it on disk; "fsync before send" is "commit before send". `durable=False` is
accepted and changes nothing. The installation id is the database's combined with the cell's key
(`core.ids.cell_installation`): every engine of a key reproduces the same client order ids for
the same decision, and two keys never share one.

A lost connection makes the call fail with StateStoreError (the engine then refuses to act:
nothing is sent without a committed decision) and is tried again by the next call;
`failure` says why and since when until a write succeeds again (`probe`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rules_engine import jsoncodec
from rules_engine.core.ids import cell_installation
from rules_engine.pgstore.audit import PgAuditLog
from rules_engine.pgstore.connection import Connection, ConnectionPool, FencedError, StoreSettings
from rules_engine.pgstore.fanout import complete_deliveries, int_array
from rules_engine.state.store import (
    _MAX_NONCE,
    _RANK,
    FINAL_STATUSES,
    OUTCOME_STATUSES,
    RESENT_KEY,
    UNRESOLVED_STATUSES,
    OrderRecord,
    StateStoreError,
    UnknownDecisionError,
    _nonempty,
    check_decision_args,
    same_decision,
)

_COLUMNS = "cl_ord_id, rule_id, decision_id, intent, status, outcome, created_at, sent_at, updated_at"


class _NotResent(Exception):
    """Internal: `mark_resent` found the decision settled (rolls its transaction back)."""


def _decision(row: tuple[Any, ...], created: bool = False) -> OrderRecord:
    return OrderRecord(
        cl_ord_id=row[0], rule_id=row[1], decision_id=row[2], intent=jsoncodec.loads(row[3]), status=row[4],
        outcome=None if row[5] is None else jsoncodec.loads(row[5]), created_at=row[6], sent_at=row[7],
        updated_at=row[8], created=created,
    )


class PgStateStore:
    """One key's state in the PostgreSQL store `settings` (tables created if missing). `epoch`:
    the cell's lease epoch, checked by every write (None: unfenced, for tools and tests)."""

    def __init__(self, settings: StoreSettings, *, epoch: int | None, clock: Callable[[], float] = time.time,
                 durable: bool = True, pool: ConnectionPool | None = None) -> None:
        self.settings = settings
        self.key_id = settings.key_id
        self.epoch = epoch
        self._clock = clock
        # pipelined: a write costs a round trip only where its result is read (a decision's rows, its
        # audit records and the COMMIT go together); `pool`: a worker's, one connection per transaction
        self._db = Connection(settings, epoch, clock, pipelined=True, pool=pool)
        self._audit: PgAuditLog | None = None  # `pair_audit`
        self._db.open()
        with self._db.reading() as conn:
            conn.execute("INSERT INTO cluster_meta (key, value) VALUES ('installation_id', %s) "
                         "ON CONFLICT (key) DO NOTHING", (secrets.token_hex(16),))
            self._installation = str(conn.execute(
                "SELECT value FROM cluster_meta WHERE key = 'installation_id'").fetchone()[0])

    # ------------------------------------------------------------------ plumbing

    @property
    def path(self) -> str:
        """Where the store is, as messages show it (no password)."""
        return self.settings.shown

    @property
    def durable(self) -> bool:
        return True

    @property
    def installation_id(self) -> str:
        """This key cell's installation id, part of every client order id (see the module)."""
        return cell_installation(self._installation, self.key_id)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """One atomic commit for everything inside the block (nested: a savepoint). The
        store's plain writes inside it (decisions, outcomes, state, consumed signals) join it
        without a savepoint of their own: an error of one fails the whole block."""
        with self._db.transaction():
            yield

    def pair_audit(self, audit: PgAuditLog) -> None:
        """Commit the key's audit records with this store's writes: each transaction of the store
        takes the chain's queued records into it right before its COMMIT (`PgAuditLog.ride`),
        one transaction where there were two. `audit` must be of the same key and epoch."""
        if audit.settings.key_id != self.key_id or audit.epoch != self.epoch:
            raise ValueError("a store commits the audit records of its own key and epoch only")
        self._audit = audit
        self._db.before_commit = self._ride

    def _ride(self, conn: Any, appends: list[Callable[[], None]]) -> Callable[[BaseException | None], None] | None:
        return None if self._audit is None else self._audit.ride(conn, appends)

    def audit_with_commit(self, append: Callable[[], None]) -> bool:
        """Inside `transaction()`: `append` (an append to the paired audit chain, such as an
        order's `decision` record) runs right before the transaction's COMMIT and its record
        commits with it: when the transaction returns, the record is committed. False (and
        `append` is not kept) if no chain is paired."""
        if self._audit is None:
            return False
        self._db.at_commit(append)
        return True

    @property
    def connection(self) -> Connection:
        """The store's connection (its key and epoch), for the cell's delivery claims to share."""
        return self._db

    @property
    def failure(self) -> tuple[str, float] | None:
        """Why the store cannot be written (unreachable, fenced) and since when; None while it can."""
        return self._db.failure

    @property
    def fenced(self) -> bool:
        return self._db.failure is not None and self._db._fenced is not None

    def probe(self) -> bool:
        """Try one small write; whether the store takes it (clears `failure` if it does)."""
        try:
            with self._db.transaction() as conn:
                self._set_meta(conn, "probe", repr(self._clock()))
        except StateStoreError:
            return False
        return True

    def flush(self) -> None:
        """Nothing is held back: every write is committed when it returns."""

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PgStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgStateStore({self.settings.shown!r}, epoch={self.epoch})"

    # ------------------------------------------------------------------ snapshots

    def _save_snapshot(self, conn: Any, name: str, snapshot: Mapping[str, Any]) -> None:
        if not isinstance(snapshot, Mapping):
            raise TypeError(f"the {name} snapshot must be a mapping")
        conn.execute(
            "INSERT INTO snapshots (key_id, name, data, saved_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (key_id, name) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at",
            (self.key_id, name, jsoncodec.dumps(snapshot, name), self._clock()))

    def _load_snapshot(self, name: str) -> dict[str, Any] | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT data FROM snapshots WHERE key_id = %s AND name = %s",
                               (self.key_id, name)).fetchone()
        return None if row is None else jsoncodec.loads(row[0])

    def save_engine_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the engine core's snapshot; drops any saved parts."""
        with self._db.transaction(join=True) as conn:
            self._save_snapshot(conn, "engine", snapshot)
            conn.execute("DELETE FROM engine_parts WHERE key_id = %s", (self.key_id,))

    def save_engine_changes(self, base: Mapping[str, Any],
                            parts: Mapping[str, Mapping[str, Mapping[str, Any]] | None], *,
                            complete: bool = False) -> None:
        """As `StateStore.save_engine_changes`: `base` replaces the snapshot, each part replaces
        (None: deletes) the stored part of that name, `complete` first deletes every part."""
        texts = [(name, None if part is None else jsoncodec.dumps(part, f"part {name!r}"))
                 for name, part in parts.items()]
        with self._db.transaction(join=True) as conn:
            self._save_snapshot(conn, "engine", base)
            if complete:
                conn.execute("DELETE FROM engine_parts WHERE key_id = %s", (self.key_id,))
            with conn.cursor() as cursor:
                dropped = [(self.key_id, name) for name, text in texts if text is None]
                if dropped:
                    cursor.executemany("DELETE FROM engine_parts WHERE key_id = %s AND name = %s", dropped)
                kept = [(self.key_id, name, text) for name, text in texts if text is not None]
                if kept:
                    cursor.executemany(
                        "INSERT INTO engine_parts (key_id, name, data) VALUES (%s, %s, %s) "
                        "ON CONFLICT (key_id, name) DO UPDATE SET data = excluded.data", kept)

    def load_engine_snapshot(self) -> dict[str, Any] | None:
        """The saved snapshot with every saved part merged in (as `StateStore`), None if none."""
        base = self._load_snapshot("engine")
        with self._db.reading() as conn:
            rows = conn.execute("SELECT data FROM engine_parts WHERE key_id = %s ORDER BY ord",
                                (self.key_id,)).fetchall()
        if base is None or not rows:
            return base
        for (text,) in rows:
            for section, entries in jsoncodec.loads(text).items():
                base.setdefault(section, {}).update(entries)
        return base

    def save_paper_wallet(self, snapshot: Mapping[str, Any]) -> None:
        with self._db.transaction(join=True) as conn:
            self._save_snapshot(conn, "paper_wallet", snapshot)

    def load_paper_wallet(self) -> dict[str, Any] | None:
        return self._load_snapshot("paper_wallet")

    # ------------------------------------------------------------------ decisions

    def _fetch(self, conn: Any, cl_ord_id: str) -> OrderRecord | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE key_id = %s AND cl_ord_id = %s",
                           (self.key_id, cl_ord_id)).fetchone()
        return None if row is None else _decision(row)

    def record_decision(self, cl_ord_id: str, rule_id: str, decision_id: str, intent: Mapping[str, Any],
                        status: str = "pending", created_at: float | None = None) -> OrderRecord:
        """Record a decision before anything is sent; idempotent by `cl_ord_id` (see `StateStore`)."""
        check_decision_args(cl_ord_id, rule_id, decision_id, status)
        intent_text = jsoncodec.dumps(dict(intent), "intent")
        now = self._clock() if created_at is None else created_at
        with self._db.transaction(join=True) as conn:
            inserted = conn.execute(
                f"INSERT INTO decisions (key_id, epoch, {_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, %s, NULL, %s) ON CONFLICT (key_id, cl_ord_id) DO NOTHING "
                "RETURNING 1",
                (self.key_id, self.epoch or 0, cl_ord_id, rule_id, decision_id, intent_text, status, now, now))
            if inserted.fetchone() is not None:
                return _decision((cl_ord_id, rule_id, decision_id, intent_text, status, None, now, None, now), True)
            existing = self._fetch(conn, cl_ord_id)
            assert existing is not None
            return same_decision(existing, rule_id, decision_id)

    def mark_sent(self, cl_ord_id: str, *, durable: bool = True) -> OrderRecord:
        """pending -> sent, committed before the request leaves."""
        now = self._clock()
        with self._db.transaction(join=True) as conn:
            conn.execute("UPDATE decisions SET status = 'sent', sent_at = %s, updated_at = %s "
                         "WHERE key_id = %s AND cl_ord_id = %s AND status = 'pending'",
                         (now, now, self.key_id, cl_ord_id))
            return self._require(conn, cl_ord_id)

    def mark_resent(self, cl_ord_id: str, note: Mapping[str, Any]) -> OrderRecord | None:
        """Back to `sent` for its one resend, under the epoch check (see `StateStore.mark_resent`)."""
        now = self._clock()
        key = RESENT_KEY + cl_ord_id
        try:
            with self._db.transaction() as conn:
                inserted = conn.execute("INSERT INTO cell_meta (key_id, key, value) VALUES (%s, %s, %s) "
                                        "ON CONFLICT (key_id, key) DO NOTHING RETURNING 1",
                                        (self.key_id, key, jsoncodec.dumps(dict(note), "resend note")))
                if inserted.fetchone() is None:
                    return None
                row = conn.execute(f"UPDATE decisions SET status = 'sent', sent_at = %s, updated_at = %s "
                                   "WHERE key_id = %s AND cl_ord_id = %s AND status = ANY(%s) "
                                   f"RETURNING {_COLUMNS}",
                                   (now, now, self.key_id, cl_ord_id, list(UNRESOLVED_STATUSES))).fetchone()
                if row is None:
                    raise _NotResent  # rolls the note back: a settled decision is not resent
                return _decision(row)
        except _NotResent:
            return None

    def resent(self, cl_ord_id: str) -> dict[str, Any] | None:
        value = self.meta(RESENT_KEY + cl_ord_id)
        return None if value is None else dict(jsoncodec.loads(value))

    def signal_max_age(self, provider: str) -> float | None:
        """Seconds a fan-out signal of `provider` could still be traded when this key took it
        (its delivery's expiry minus when it was taken: the provider's max_age less the wait),
        from the latest one taken; None if the key never took one (`execution.resend`)."""
        with self._db.reading() as conn:
            row = conn.execute("SELECT extract(epoch FROM expires_at - COALESCE(taken_at, created_at)) "
                               "FROM fanout_deliveries WHERE key_id = %s AND provider = %s "
                               "AND status IN ('taken', 'done') ORDER BY COALESCE(taken_at, created_at) DESC LIMIT 1",
                               (self.key_id, provider)).fetchone()
        return None if row is None or row[0] is None else max(0.0, float(row[0]))

    def record_outcome(self, cl_ord_id: str, status: str, outcome: Mapping[str, Any] | None = None, *,
                       durable: bool = True) -> OrderRecord:
        """Record what became of the order; statuses only move forward (see `StateStore`)."""
        if status not in OUTCOME_STATUSES:
            raise ValueError(f"outcome status must be one of {', '.join(OUTCOME_STATUSES)}")
        outcome_text = jsoncodec.dumps(dict(outcome or {}), "outcome")
        with self._db.transaction(join=True) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE key_id = %s AND cl_ord_id = %s FOR UPDATE",
                               (self.key_id, cl_ord_id)).fetchone()
            if row is None:
                raise UnknownDecisionError(f"no decision is recorded with cl_ord_id {cl_ord_id!r}")
            current = row[4]
            if current in FINAL_STATUSES or _RANK[status] < _RANK[current]:
                return _decision(row)
            now = self._clock()
            conn.execute("UPDATE decisions SET status = %s, outcome = %s, updated_at = %s "
                         "WHERE key_id = %s AND cl_ord_id = %s", (status, outcome_text, now, self.key_id, cl_ord_id))
            return _decision((*row[:4], status, outcome_text, row[6], row[7], now))

    def _require(self, conn: Any, cl_ord_id: str) -> OrderRecord:
        decision = self._fetch(conn, cl_ord_id)
        if decision is None:
            raise UnknownDecisionError(f"no decision is recorded with cl_ord_id {cl_ord_id!r}")
        return decision

    def decision_times(self, since: float) -> list[float]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT created_at FROM decisions WHERE key_id = %s AND created_at > %s "
                                "ORDER BY created_at", (self.key_id, since)).fetchall()
        return [float(row[0]) for row in rows]

    def decision_status(self, cl_ord_id: str) -> str | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT status FROM decisions WHERE key_id = %s AND cl_ord_id = %s",
                               (self.key_id, cl_ord_id)).fetchone()
        return None if row is None else str(row[0])

    def get_decision(self, cl_ord_id: str) -> OrderRecord | None:
        with self._db.reading() as conn:
            return self._fetch(conn, cl_ord_id)

    def decisions_for(self, decision_id: str) -> list[OrderRecord]:
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE key_id = %s AND decision_id = %s "
                                "ORDER BY created_at, ord", (self.key_id, decision_id)).fetchall()
        return [_decision(row) for row in rows]

    def unresolved_decisions(self) -> list[OrderRecord]:
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE key_id = %s AND status = ANY(%s) "
                                "ORDER BY created_at, ord", (self.key_id, list(UNRESOLVED_STATUSES))).fetchall()
        return [_decision(row) for row in rows]

    # ------------------------------------------------------------------ meta and audit checkpoint

    def _set_meta(self, conn: Any, key: str, value: str) -> None:
        conn.execute("INSERT INTO cell_meta (key_id, key, value) VALUES (%s, %s, %s) "
                     "ON CONFLICT (key_id, key) DO UPDATE SET value = excluded.value", (self.key_id, key, value))

    def meta(self, key: str) -> str | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT value FROM cell_meta WHERE key_id = %s AND key = %s",
                               (self.key_id, key)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._db.transaction(join=True) as conn:
            self._set_meta(conn, key, value)

    def audit_checkpoint(self) -> int | None:
        value = self.meta("audit_checkpoint")
        return None if value is None else int(value)

    def save_audit_checkpoint(self, seq: int) -> None:
        with self._db.transaction() as conn:
            self._set_meta(conn, "audit_checkpoint", str(int(seq)))

    # ------------------------------------------------------------------ nonces (NonceStore)

    def load(self, key_fingerprint: str) -> int:
        with self._db.reading() as conn:
            row = conn.execute("SELECT value FROM nonces WHERE key_id = %s AND key_fingerprint = %s",
                               (self.key_id, key_fingerprint)).fetchone()
        return 0 if row is None else int(row[0])

    def save(self, key_fingerprint: str, value: int) -> None:
        """Raise the key's nonce high-water mark (only the current epoch can: fenced)."""
        _nonempty("key_fingerprint", key_fingerprint)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_NONCE:
            raise ValueError("a nonce must be an integer from 0 to 2**64-1")
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO nonces (key_id, key_fingerprint, value) VALUES (%s, %s, %s) "
                         "ON CONFLICT (key_id, key_fingerprint) DO UPDATE SET value = GREATEST(nonces.value, "
                         "excluded.value)", (self.key_id, key_fingerprint, value))

    # ------------------------------------------------------------------ signals

    def signal_seen(self, source: str, signal_id: str, now: float) -> bool:
        with self._db.reading() as conn:
            row = conn.execute("SELECT 1 FROM seen_signals WHERE key_id = %s AND source = %s AND signal_id = %s "
                               "AND expires_at > %s", (self.key_id, source, signal_id, now)).fetchone()
        return row is not None

    def accept_signal(self, source: str, signal_id: str, payload: Mapping[str, Any], time: float,
                      seen: Mapping[str, float] | None = None) -> int | None:
        """Record an accepted signal and its ids as seen in one transaction; its inbox number,
        or None (nothing recorded) if one of the ids was recorded meanwhile."""
        _nonempty("source", source)
        text = jsoncodec.dumps(dict(payload), "signal payload")
        try:
            with self._db.transaction() as conn:
                conn.execute("DELETE FROM seen_signals WHERE key_id = %s AND expires_at <= %s", (self.key_id, time))
                for key, expires in (seen or {}).items():
                    cursor = conn.execute(
                        "INSERT INTO seen_signals (key_id, source, signal_id, expires_at) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING RETURNING 1", (self.key_id, source, key, expires))
                    if cursor.fetchone() is None:
                        raise _Replayed
                row = conn.execute("INSERT INTO signal_inbox (key_id, source, signal_id, payload, time) "
                                   "VALUES (%s, %s, %s, %s, %s) RETURNING seq",
                                   (self.key_id, source, signal_id, text, time)).fetchone()
                return int(row[0])
        except _Replayed:
            return None

    def pending_signals(self) -> list[tuple[int, str, str, dict[str, Any], float]]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT seq, source, signal_id, payload, time FROM signal_inbox WHERE key_id = %s "
                                "ORDER BY seq", (self.key_id,)).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), jsoncodec.loads(r[3]), float(r[4])) for r in rows]

    def consume_signals(self, numbers: Iterable[int]) -> None:
        seqs = [int(n) for n in numbers]
        with self._db.transaction(join=True) as conn:
            conn.execute("DELETE FROM signal_inbox WHERE key_id = %s AND seq = ANY(%s::bigint[])",
                         (self.key_id, int_array(seqs)))
            complete_deliveries(conn, self.key_id, seqs)  # fanned-out signals: done with their decision

    def seen_signal(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        _nonempty("source", source)
        _nonempty("signal_id", signal_id)
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM seen_signals WHERE key_id = %s AND expires_at <= %s", (self.key_id, now))
            cursor = conn.execute("INSERT INTO seen_signals (key_id, source, signal_id, expires_at) "
                                  "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                                  (self.key_id, source, signal_id, now + ttl))
            return cursor.fetchone() is None


class _Replayed(Exception):
    """Internal: `accept_signal` found an id already recorded (rolls its transaction back)."""


__all__ = ["FencedError", "PgStateStore"]
