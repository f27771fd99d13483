"""The engine's persistent state in one SQLite file (`state/engine.sqlite`).

What it holds, so that a restart (even after `kill -9` at any point) resumes without
re-firing a rule or sending a second order for one decision:

- the engine core's snapshot (per-rule arming, pending `for:` timers, fire counts,
  cooldowns, sequence numbers) and the paper wallet, as JSON written by
  `rules_engine.jsoncodec` (Decimals round-trip exactly). The engine's snapshot may be kept
  in parts (`save_engine_changes`): an engine-wide base row plus one row per rule, so a
  decision rewrites only the rows of the rules it changed;
- every order decision by `cl_ord_id` with its status and outcome;
- each API key's nonce high-water mark (the `NonceStore` protocol of
  `rules_engine.kraken.nonce`);
- recently seen signal ids (webhook replay protection), and the signals accepted (answered
  202) but not yet decided (`accept_signal`, `pending_signals`, `consume_signals`);
- the installation id (`installation_id`): random, made with the database, part of every
  client order id, so a fresh state dir never reproduces an old id.

Durability: WAL journal with `synchronous=FULL`, so a method that returned has committed
to disk. Writes are short `BEGIN IMMEDIATE` transactions, or a single statement committed
on its own; `transaction()` groups several calls into one atomic commit (a nested
`transaction()` block is a savepoint; a method's own statements inside a transaction join
it without one: if one fails, the exception rolls the whole transaction back). One
connection serves all threads under an internal lock, so calls are serialised; open one
store per process.

`transaction(durable=False)` (and `durable=False` of `mark_sent`, `record_outcome`) commits
without waiting for the disk (`synchronous=NORMAL`): the commit survives a crash of the
process (`kill -9`: it is in the operating system's cache) and reaches the disk with the next
durable commit or checkpoint, whose fsync of the write-ahead log (one file, appended in commit
order) carries every earlier commit with it. The connection is switched between FULL and
NORMAL only when a commit of the other kind comes, so the writes of an order (all not
synced, in the service) switch nothing. Use it only when something durable stands for the
commit before anything outside the process depends on it (the service: the fsynced
`decision` audit record, see `rules_engine.service.decision_restore`). `checkpoint()` copies
the log into the database off an order's way (the service's housekeeping).

The order of a decision's life, and what a restart does with each status:

    record_decision(pending) -> audit "decision" (sync) -> send -> record_outcome
    pending          left this process only if its `decision` audit record was written (that
                     record is its "sent" mark: the dispatcher looks the audit log up, and
                     looks such a decision up on Kraken; one without it is abandoned)
    sent / unknown   may have reached Kraken: look it up by cl_ord_id before anything else
                     (`mark_sent`: a decision restored from the audit log after a power cut)
    accepted         on the book; rejected / filled / cancelled / abandoned are final

Statuses only move forward (pending < sent < unknown < accepted < final), so a late or
out-of-order outcome never moves a decision back.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules_engine import jsoncodec

SCHEMA_VERSION = 3

STATUSES = ("pending", "sent", "unknown", "accepted", "rejected", "filled", "cancelled", "abandoned")
OUTCOME_STATUSES = ("accepted", "rejected", "unknown", "filled", "cancelled", "abandoned")
UNRESOLVED_STATUSES = ("pending", "sent", "unknown")
FINAL_STATUSES = frozenset({"rejected", "filled", "cancelled", "abandoned"})
_RANK = {"pending": 0, "sent": 1, "unknown": 2, "accepted": 3, **{s: 4 for s in FINAL_STATUSES}}

_NONCE_DIGITS = 20  # 2**64 - 1 has 20 digits; zero-padded text compares in numeric order
_MAX_NONCE = 2**64 - 1

_STATUS_CHECK = "CHECK (status IN (" + ",".join(f"'{s}'" for s in STATUSES) + "))"
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE snapshots (name TEXT PRIMARY KEY, data TEXT NOT NULL, saved_at REAL NOT NULL)",
        f"""CREATE TABLE decisions (
            cl_ord_id TEXT PRIMARY KEY,
            rule_id TEXT NOT NULL,
            decision_id TEXT NOT NULL,
            intent TEXT NOT NULL,
            status TEXT NOT NULL {_STATUS_CHECK},
            outcome TEXT,
            created_at REAL NOT NULL,
            sent_at REAL,
            updated_at REAL NOT NULL)""",
        "CREATE INDEX decisions_by_decision_id ON decisions (decision_id)",
        "CREATE INDEX decisions_by_status ON decisions (status)",
        "CREATE TABLE nonces (key_fingerprint TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE seen_signals (
            source TEXT NOT NULL, signal_id TEXT NOT NULL, expires_at REAL NOT NULL,
            PRIMARY KEY (source, signal_id))""",
        "CREATE INDEX seen_signals_by_expiry ON seen_signals (expires_at)",
    ),
    2: ("CREATE TABLE engine_parts (name TEXT PRIMARY KEY, data TEXT NOT NULL)",),
    3: ("""CREATE TABLE signal_inbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, signal_id TEXT NOT NULL,
            payload TEXT NOT NULL, time REAL NOT NULL)""",),
}

_DISK_ERRORS = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN})
"""SQLite's primary result codes for a disk that refuses writes."""

CHECKPOINT_BACKSTOP_PAGES = 10_000
"""With `defer_checkpoints`: the log size (pages of 4 KiB, about 1,000 orders) at which a
commit checkpoints the log itself, should the regular checkpoints fall behind."""

_BATCH = 500
"""Transactions of a store that is not durable committed together."""
_DECISION_COLUMNS = "cl_ord_id, rule_id, decision_id, intent, status, outcome, created_at, sent_at, updated_at"
_INSERT_DECISION = (f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, ?) "
                    "ON CONFLICT (cl_ord_id) DO NOTHING RETURNING rowid")
_MARK_SENT = ("UPDATE decisions SET status = 'sent', sent_at = ?, updated_at = ? "
              f"WHERE cl_ord_id = ? AND status = 'pending' RETURNING {_DECISION_COLUMNS}")
_MARK_RESENT = ("UPDATE decisions SET status = 'sent', sent_at = ?, updated_at = ? "
                "WHERE cl_ord_id = ? AND status IN ('pending', 'sent', 'unknown') "
                f"RETURNING {_DECISION_COLUMNS}")
RESENT_KEY = "resent:"
"""The `meta` key (+ cl_ord_id) that records a decision's one resend (`mark_resent`)."""
RESTORED_KEY = "restored:"
"""The `meta` key (+ cl_ord_id) of a decision restored from the audit log after a power cut
(`service.decision_restore`), which a restart never sends again: the rule's state saved with
its rows may be lost with them, so the rule may decide again."""
_RECORD_OUTCOME = {  # by the status recorded: the statuses it may replace (never a final one, never a later one)
    status: ("UPDATE decisions SET status = ?, outcome = ?, updated_at = ? WHERE cl_ord_id = ? AND status IN ("
             + ",".join(f"'{s}'" for s in STATUSES if s not in FINAL_STATUSES and _RANK[s] <= _RANK[status])
             + f") RETURNING {_DECISION_COLUMNS}")
    for status in OUTCOME_STATUSES
}
_SAVE_SNAPSHOT = ("INSERT INTO snapshots (name, data, saved_at) VALUES (?, ?, ?) "
                  "ON CONFLICT (name) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at")
_SAVE_PART = "INSERT INTO engine_parts (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data"


class _Replayed(Exception):
    """Internal: `accept_signal` found an id already recorded (rolls its transaction back)."""


class StateStoreError(Exception):
    """The state database cannot be opened, read or written."""


class DecisionConflictError(StateStoreError):
    """A cl_ord_id is already recorded for another rule or decision."""


class UnknownDecisionError(StateStoreError):
    """No decision has this cl_ord_id."""


@dataclass(frozen=True)
class OrderRecord:
    """One order decision. `created` is True only on the `record_decision` call that
    inserted it (False when it returned an existing row)."""

    cl_ord_id: str
    rule_id: str
    decision_id: str
    intent: dict[str, Any]
    status: str
    outcome: dict[str, Any] | None
    created_at: float
    sent_at: float | None
    updated_at: float
    created: bool = field(default=False, compare=False)

    @property
    def resolved(self) -> bool:
        """False while a restart must reconcile it (pending, sent, unknown)."""
        return self.status not in UNRESOLVED_STATUSES


def _nonempty(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def check_decision_args(cl_ord_id: str, rule_id: str, decision_id: str, status: str) -> None:
    """What `record_decision` accepts, in every store."""
    _nonempty("cl_ord_id", cl_ord_id)
    _nonempty("rule_id", rule_id)
    _nonempty("decision_id", decision_id)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")


def same_decision(existing: OrderRecord, rule_id: str, decision_id: str) -> OrderRecord:
    """`existing`, when recording it again is the same decision's retry; else a conflict."""
    if (existing.rule_id, existing.decision_id) != (rule_id, decision_id):
        raise DecisionConflictError(
            f"cl_ord_id {existing.cl_ord_id!r} is already recorded for rule {existing.rule_id!r} "
            f"decision {existing.decision_id!r}, not rule {rule_id!r} decision {decision_id!r}"
        )
    return existing


class StateStore:
    """The state database at `path` (created with its schema if missing)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, durable: bool = True):
        """`durable=False` (replay, rule tests) never waits for the disk: `synchronous=OFF`."""
        self.path = Path(path)
        self._durable = durable
        self._held_engine: tuple[Mapping[str, Any], dict[str, Any], bool] | None = None
        self._batched = 0
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        self._intent_memo: tuple[str, dict[str, Any]] | None = None  # the last intent read (`_decision`)
        self._full = durable  # the connection's `synchronous` is FULL (else NORMAL, or OFF if not durable)
        self._failure: tuple[str, float] | None = None  # a write the disk refused, until one succeeds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # a new one owner-only, as the audit log (SQLite gives its -wal and -shm the database's mode)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateStoreError(f"cannot open state database {self.path}: {exc.strerror}") from None
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot open state database {self.path}: {exc}") from None
        try:
            journal = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(journal).lower() != "wal":
                raise StateStoreError(f"state database {self.path}: WAL journal unavailable (got {journal})")
            self._conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            self._migrate()
        except BaseException as exc:
            self._conn.close()
            self._conn = None
            if isinstance(exc, sqlite3.Error):
                raise StateStoreError(f"cannot open state database {self.path}: {exc}") from None
            raise

    @property
    def durable(self) -> bool:
        """Whether a commit is on disk when it returns (False: replay and rule tests)."""
        return self._durable

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"state database {self.path} has schema version {version}, newer than this "
                    f"rules-engine understands ({SCHEMA_VERSION}); upgrade rules-engine"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('installation_id', ?)",
                         (secrets.token_hex(16),))

    # ------------------------------------------------------------------ plumbing

    @property
    def installation_id(self) -> str:
        """This state dir's installation id: 32 random hex digits made with the database
        and never changed, part of every client order id the service makes."""
        with self._reading() as conn:
            return str(conn.execute("SELECT value FROM meta WHERE key = 'installation_id'").fetchone()[0])

    @property
    def schema_version(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """One atomic commit for everything inside the block (re-entrant: an inner block is a
        savepoint). Other threads wait until it ends. Durable (on disk when the block ends)
        unless `durable=False` (see the module docstring); an inner block takes the outer
        block's durability.

            with store.transaction():
                store.record_decision(...)
                store.save_engine_snapshot(core.snapshot())
        """
        with self._tx(durable):
            yield

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._open_conn()
            depth = self._depth
            if depth == 0 and self._durable and self._full != durable:
                self._set_full(conn, durable)
            # A store that is not durable runs its transactions as savepoints of one long
            # transaction, committed every BATCH of them and on flush/close (nothing else reads it).
            outer = depth == 0 and self._durable
            try:
                if depth == 0 and not self._durable and not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                conn.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT sp{depth}")
            except sqlite3.Error as exc:
                self._note_error(exc)
                raise StateStoreError(f"state database {self.path}: cannot start a transaction: {exc}") from None
            self._depth += 1
            try:
                yield conn
            except BaseException as exc:
                self._note_error(exc)
                self._depth = depth
                try:
                    if outer:
                        conn.execute("ROLLBACK")
                    else:
                        conn.execute(f"ROLLBACK TO sp{depth}")
                        conn.execute(f"RELEASE sp{depth}")
                except sqlite3.Error:
                    pass
                raise
            self._depth = depth
            try:
                conn.execute("COMMIT" if outer else f"RELEASE sp{depth}")
                if depth == 0 and not self._durable:
                    self._batched += 1
                    if self._batched >= _BATCH:
                        self._batched = 0
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._note_error(exc)
                if outer and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StateStoreError(f"state database {self.path}: commit failed: {exc}") from None
            if depth == 0:
                self._failure = None

    def _set_full(self, conn: sqlite3.Connection, full: bool) -> None:
        """Switch the connection's `synchronous` between FULL (a commit waits for the disk) and
        NORMAL (it does not), outside any transaction. It stays so until a commit of the other
        kind: an order's writes, all committed without waiting, switch nothing."""
        try:
            conn.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            self._note_error(exc)
            raise StateStoreError(f"state database {self.path}: cannot set the sync mode: {exc}") from None
        self._full = full

    def _write(self, sql: str, params: tuple[Any, ...], durable: bool = True) -> list[Any]:
        """One write statement, its rows (`RETURNING`): inside a transaction, part of it (one
        statement is atomic, no savepoint needed); else committed on its own, durable or not as
        `_tx` would (a store that is not durable: in its batch, through `_tx`)."""
        with self._lock:
            conn = self._open_conn()
            if self._depth:
                try:
                    return conn.execute(sql, params).fetchall()
                except sqlite3.Error as exc:
                    self._note_error(exc)
                    raise
            if not self._durable:
                with self._tx(durable) as inner:
                    return inner.execute(sql, params).fetchall()
            if self._full != durable:
                self._set_full(conn, durable)
            try:
                rows = conn.execute(sql, params).fetchall()  # autocommit: fetched to the end, committed
            except sqlite3.Error as exc:
                self._note_error(exc)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StateStoreError(f"state database {self.path}: write failed: {exc}") from None
            self._failure = None
            return rows

    @contextmanager
    def _joined(self) -> Iterator[sqlite3.Connection]:
        """A few statements of one method: inside a transaction they join it without a
        savepoint (if one fails the exception leaves the method and the transaction rolls
        back: `transaction()` never commits a block that raised); else in a transaction of
        their own (`_tx`)."""
        with self._lock:
            if not self._depth:
                with self._tx() as conn:
                    yield conn
                return
            try:
                yield self._open_conn()
            except sqlite3.Error as exc:
                self._note_error(exc)
                raise

    def _note_error(self, exc: BaseException) -> None:
        """Remember a write the disk refused (full, I/O error, read-only, cannot open)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _DISK_ERRORS:
            since = self._failure[1] if self._failure is not None else self._clock()
            self._failure = (f"{exc} ({getattr(exc, 'sqlite_errorname', code)})", since)

    @property
    def failure(self) -> tuple[str, float] | None:
        """Why the last write failed on the disk, and since when (epoch seconds); None once a
        write succeeded again (see `probe`)."""
        return self._failure

    def defer_checkpoints(self, backstop_pages: int = CHECKPOINT_BACKSTOP_PAGES) -> None:
        """Leave the write-ahead log's checkpoints to `checkpoint` (called regularly off an
        order's way: the service's housekeeping). A commit then runs one itself only once the
        log holds `backstop_pages` pages (SQLite's default: 1,000, about 100 orders)."""
        with self._lock:
            self._open_conn().execute(f"PRAGMA wal_autocheckpoint={int(backstop_pages)}").fetchall()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database now (a passive checkpoint: it does not
        wait for readers), and start the log over. SQLite otherwise runs one inside the commit
        that takes the log past 1,000 pages (see `defer_checkpoints`), on that commit's way (two
        fsyncs), and the commit after it syncs the restarted log's header; the service's
        housekeeping calls this every second or so, off the way of an order."""
        if not self._durable:
            return
        with self._lock:
            try:
                busy, frames, copied = self._open_conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                self._note_error(exc)
                raise StateStoreError(f"state database {self.path}: checkpoint failed: {exc}") from None
            if not busy and frames > 0 and copied == frames:
                # The next commit writes the log from its start again, and syncs the log's new
                # header first: let that be this small write, not an order's commit.
                self._write("INSERT INTO meta (key, value) VALUES ('checkpointed_at', ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            (repr(self._clock()),), durable=self._full)

    def probe(self) -> bool:
        """Try one small durable write (the `meta` row `probe`); whether the disk takes it."""
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO meta (key, value) VALUES ('probe', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (repr(self._clock()),))
        except (StateStoreError, sqlite3.Error):
            return False
        return True

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._open_conn()
            except sqlite3.Error as exc:
                raise StateStoreError(f"state database {self.path}: {exc}") from None

    def _open_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateStoreError(f"state database {self.path} is closed")
        return self._conn

    def close(self) -> None:
        """Close the database (after writing what it holds in memory). Idempotent."""
        if self._conn is not None:
            self.flush()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StateStore({str(self.path)!r})"

    # ------------------------------------------------------------------ snapshots

    def _save_snapshot(self, name: str, snapshot: Mapping[str, Any]) -> None:
        if not isinstance(snapshot, Mapping):
            raise TypeError(f"the {name} snapshot must be a mapping")
        self._write(_SAVE_SNAPSHOT, (name, jsoncodec.dumps(snapshot, name), self._clock()))

    def _load_snapshot(self, name: str) -> dict[str, Any] | None:
        with self._reading() as conn:
            row = conn.execute("SELECT data FROM snapshots WHERE name = ?", (name,)).fetchone()
        return None if row is None else jsoncodec.loads(row[0])

    def save_engine_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the engine core's snapshot: `Engine.snapshot()` as it is, plain data with
        Decimals, written with `rules_engine.jsoncodec` (the key "$decimal" is reserved).
        Any parts saved by `save_engine_changes` are dropped."""
        with self._tx() as conn:
            self._save_snapshot("engine", snapshot)
            conn.execute("DELETE FROM engine_parts")

    def save_engine_changes(
        self, base: Mapping[str, Any], parts: Mapping[str, Mapping[str, Mapping[str, Any]] | None],
        *, complete: bool = False,
    ) -> None:
        """Save the engine snapshot incrementally (`Engine.snapshot_changes()`): `base`
        replaces the stored snapshot; each part (`{section: {key: value}}`, one rule's entries)
        replaces the stored part of that name, None deletes it; `complete` first deletes
        every stored part. `load_engine_snapshot` merges every stored part into the base.

        A store that is not durable (replay, rule tests: nothing reads it back while it runs)
        keeps the latest changes in memory and writes them when read, flushed or closed."""
        if not self._durable:
            with self._lock:
                held = self._held_engine
                if held is None or complete:
                    self._held_engine = (base, dict(parts), complete)
                else:
                    held[1].update(parts)
                    self._held_engine = (base, held[1], held[2])
            return
        self._write_engine_changes(base, parts, complete)

    def flush(self) -> None:
        """Write and commit what a store that is not durable holds (see `save_engine_changes`
        and `_tx`)."""
        with self._lock:
            held, self._held_engine = self._held_engine, None
            if held is not None:
                self._write_engine_changes(*held)
            conn = self._conn
            if conn is not None and not self._durable and self._depth == 0 and conn.in_transaction:
                self._batched = 0
                conn.execute("COMMIT")

    def _write_engine_changes(self, base: Mapping[str, Any],
                              parts: Mapping[str, Mapping[str, Mapping[str, Any]] | None], complete: bool) -> None:
        if not isinstance(base, Mapping):
            raise TypeError("the engine snapshot must be a mapping")
        base_text = jsoncodec.dumps(base, "engine")
        texts = [(name, None if part is None else jsoncodec.dumps(part, f"part {name!r}"))
                 for name, part in parts.items()]
        with self._joined() as conn:
            conn.execute(_SAVE_SNAPSHOT, ("engine", base_text, self._clock()))
            if complete:
                conn.execute("DELETE FROM engine_parts")
            dropped = [(name,) for name, text in texts if text is None]
            if dropped:
                conn.executemany("DELETE FROM engine_parts WHERE name = ?", dropped)
            kept = [(name, text) for name, text in texts if text is not None]
            if len(kept) == 1:
                conn.execute(_SAVE_PART, kept[0])
            elif kept:
                conn.executemany(_SAVE_PART, kept)

    def load_engine_snapshot(self) -> dict[str, Any] | None:
        """The last saved engine snapshot, Decimals included, exactly as given to
        `save_engine_snapshot` (tuples come back as lists), or as the base and parts given
        to `save_engine_changes` joined: each part's `{section: {key: value}}` entries added
        to the base's sections, in the order the parts were first saved. None if none was saved."""
        self.flush()
        base = self._load_snapshot("engine")
        with self._reading() as conn:
            rows = conn.execute("SELECT data FROM engine_parts ORDER BY rowid").fetchall()
        if base is None or not rows:
            return base
        for (text,) in rows:
            for section, entries in jsoncodec.loads(text).items():
                base.setdefault(section, {}).update(entries)
        return base

    def save_paper_wallet(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the paper wallet's snapshot (JSON types and Decimal)."""
        self._save_snapshot("paper_wallet", snapshot)

    def load_paper_wallet(self) -> dict[str, Any] | None:
        """The last saved paper wallet, None if none was saved."""
        return self._load_snapshot("paper_wallet")

    # ------------------------------------------------------------------ decisions

    def _decision(self, row: tuple[Any, ...], created: bool = False) -> OrderRecord:
        text, memo = row[3], self._intent_memo
        if memo is not None and memo[0] == text:  # the decision just recorded, sent, settled:
            intent = memo[1]  # its intent read once (records are read-only, as `OrderRecord` is frozen)
        else:
            intent = jsoncodec.loads(text)
            self._intent_memo = (text, intent)
        return OrderRecord(
            cl_ord_id=row[0],
            rule_id=row[1],
            decision_id=row[2],
            intent=intent,
            status=row[4],
            outcome=None if row[5] is None else jsoncodec.loads(row[5]),
            created_at=row[6],
            sent_at=row[7],
            updated_at=row[8],
            created=created,
        )

    def _fetch(self, conn: sqlite3.Connection, cl_ord_id: str) -> OrderRecord | None:
        row = conn.execute(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE cl_ord_id = ?", (cl_ord_id,)).fetchone()
        return None if row is None else self._decision(row)

    def record_decision(
        self,
        cl_ord_id: str,
        rule_id: str,
        decision_id: str,
        intent: Mapping[str, Any],
        status: str = "pending",
        created_at: float | None = None,
    ) -> OrderRecord:
        """Record a decision before anything is sent (`created_at`: its time, default now).
        Idempotent by `cl_ord_id`: if it is already recorded, return that row unchanged
        (`created=False`). Raises DecisionConflictError if that row belongs to another rule or
        decision."""
        check_decision_args(cl_ord_id, rule_id, decision_id, status)
        intent_text = jsoncodec.dumps(dict(intent), "intent")
        now = self._clock() if created_at is None else created_at
        with self._lock:
            if self._write(_INSERT_DECISION, (cl_ord_id, rule_id, decision_id, intent_text, status, now, now)):
                return self._decision((cl_ord_id, rule_id, decision_id, intent_text, status, None, now, None, now),
                                      True)
            with self._reading() as conn:
                existing = self._require(conn, cl_ord_id)
            return same_decision(existing, rule_id, decision_id)

    def mark_sent(self, cl_ord_id: str, *, durable: bool = True) -> OrderRecord:
        """pending -> sent; call right before the request leaves. Later statuses are kept.
        `durable=False` when the decision's fsynced audit record stands for it after a power
        cut (see `rules_engine.service.decision_restore`)."""
        now = self._clock()
        with self._lock:
            rows = self._write(_MARK_SENT, (now, now, cl_ord_id), durable)
            if rows:
                return self._decision(rows[0])
            with self._reading() as conn:  # not pending (or not recorded): unchanged
                return self._require(conn, cl_ord_id)

    def mark_resent(self, cl_ord_id: str, note: Mapping[str, Any]) -> OrderRecord | None:
        """An unresolved decision proven never placed is sent again, once: in one durable
        commit, back to `sent` with a new `sent_at` (its lookup waits for the new deadline)
        and `note` kept under the `meta` key `resent:<cl_ord_id>`. None, changing nothing, if
        it was resent before or is settled (`execution.resend`)."""
        now = self._clock()
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM meta WHERE key = ?", (RESENT_KEY + cl_ord_id,)).fetchone():
                return None
            rows = conn.execute(_MARK_RESENT, (now, now, cl_ord_id)).fetchall()
            if not rows:
                return None
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                         (RESENT_KEY + cl_ord_id, jsoncodec.dumps(dict(note), "resend note")))
            return self._decision(rows[0])

    def resent(self, cl_ord_id: str) -> dict[str, Any] | None:
        """The note of the decision's resend (`mark_resent`), None if it was never resent."""
        value = self.meta(RESENT_KEY + cl_ord_id)
        return None if value is None else dict(jsoncodec.loads(value))

    def record_outcome(self, cl_ord_id: str, status: str, outcome: Mapping[str, Any] | None = None, *,
                       durable: bool = True) -> OrderRecord:
        """Record what became of the order: accepted, rejected, unknown, filled, cancelled
        or abandoned (never sent). A status that would move the decision backwards, or
        any change to a final one, is ignored; the stored decision is returned.
        `durable=False`: an outcome lost in a power cut leaves the decision `sent`, and the
        next start looks the order up again."""
        if status not in OUTCOME_STATUSES:
            raise ValueError(f"outcome status must be one of {', '.join(OUTCOME_STATUSES)}")
        outcome_text = jsoncodec.dumps(dict(outcome or {}), "outcome")
        with self._lock:
            rows = self._write(_RECORD_OUTCOME[status], (status, outcome_text, self._clock(), cl_ord_id), durable)
            if rows:
                return self._decision(rows[0])
            with self._reading() as conn:  # a final status, or a later one: unchanged
                return self._require(conn, cl_ord_id)

    def _require(self, conn: sqlite3.Connection, cl_ord_id: str) -> OrderRecord:
        decision = self._fetch(conn, cl_ord_id)
        if decision is None:
            raise UnknownDecisionError(f"no decision is recorded with cl_ord_id {cl_ord_id!r}")
        return decision

    def decision_times(self, since: float) -> list[float]:
        """When each order decision recorded after `since` was made, oldest first: the order
        times the per-minute and per-day risk limits count, restored after a restart."""
        with self._reading() as conn:
            rows = conn.execute("SELECT created_at FROM decisions WHERE created_at > ? ORDER BY created_at",
                                (since,)).fetchall()
        return [float(row[0]) for row in rows]

    def decision_status(self, cl_ord_id: str) -> str | None:
        """The decision's status alone (None if not recorded): cheaper than `get_decision`."""
        with self._reading() as conn:
            row = conn.execute("SELECT status FROM decisions WHERE cl_ord_id = ?", (cl_ord_id,)).fetchone()
        return None if row is None else str(row[0])

    def get_decision(self, cl_ord_id: str) -> OrderRecord | None:
        with self._reading() as conn:
            return self._fetch(conn, cl_ord_id)

    def decisions_for(self, decision_id: str) -> list[OrderRecord]:
        """Every order of one decision, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE decision_id = ? ORDER BY created_at, rowid",
                (decision_id,),
            ).fetchall()
        return [self._decision(row) for row in rows]

    def unresolved_decisions(self) -> list[OrderRecord]:
        """Decisions a restart must reconcile before doing anything else (pending, sent,
        unknown), oldest first."""
        marks = ",".join("?" * len(UNRESOLVED_STATUSES))
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE status IN ({marks}) ORDER BY created_at, rowid",
                UNRESOLVED_STATUSES,
            ).fetchall()
        return [self._decision(row) for row in rows]

    # ------------------------------------------------------------------ audit checkpoint

    def audit_checkpoint(self) -> int | None:
        """The audit seq up to which every decision's rows are on disk (None: never saved)."""
        value = self.meta("audit_checkpoint")
        return None if value is None else int(value)

    def meta(self, key: str) -> str | None:
        """A value of the `meta` table (None if unset)."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Durably set a value of the `meta` table."""
        with self._tx() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def save_audit_checkpoint(self, seq: int) -> None:
        """Durably record that the rows of every decision audited up to `seq` are on disk (this
        durable commit carries every earlier commit to disk with it)."""
        with self._tx() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('audit_checkpoint', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(int(seq)),))

    # ------------------------------------------------------------------ nonces (NonceStore)

    def load(self, key_fingerprint: str) -> int:
        """The nonce high-water mark for a key, 0 if none."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM nonces WHERE key_fingerprint = ?", (key_fingerprint,)).fetchone()
        return 0 if row is None else int(row[0])

    def save(self, key_fingerprint: str, value: int) -> None:
        """Raise the key's high-water mark to `value` (a lower value changes nothing)."""
        _nonempty("key_fingerprint", key_fingerprint)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_NONCE:
            raise ValueError("a nonce must be an integer from 0 to 2**64-1")
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO nonces (key_fingerprint, value) VALUES (?, ?) "
                "ON CONFLICT (key_fingerprint) DO UPDATE SET value = max(value, excluded.value)",
                (key_fingerprint, str(value).zfill(_NONCE_DIGITS)),
            )

    # ------------------------------------------------------------------ signal replay protection and inbox

    def signal_seen(self, source: str, signal_id: str, now: float) -> bool:
        """Whether `signal_id` is recorded for `source` and not expired (records nothing:
        `accept_signal` records it together with the signal)."""
        with self._reading() as conn:
            row = conn.execute("SELECT 1 FROM seen_signals WHERE source = ? AND signal_id = ? AND expires_at > ?",
                               (source, signal_id, now)).fetchone()
        return row is not None

    def accept_signal(self, source: str, signal_id: str, payload: Mapping[str, Any], time: float,
                      seen: Mapping[str, float] | None = None) -> int | None:
        """Durably record an accepted signal until it is decided, and its ids as seen
        (`seen`: id -> expiry), in one transaction: returns the signal's inbox number, or
        None (nothing recorded) if one of the ids was recorded meanwhile (a replay)."""
        _nonempty("source", source)
        text = jsoncodec.dumps(dict(payload), "signal payload")
        try:
            with self._tx() as conn:
                conn.execute("DELETE FROM seen_signals WHERE expires_at <= ?", (time,))
                for key, expires in (seen or {}).items():
                    cursor = conn.execute(
                        "INSERT OR IGNORE INTO seen_signals (source, signal_id, expires_at) VALUES (?, ?, ?)",
                        (source, key, expires))
                    if cursor.rowcount == 0:
                        raise _Replayed
                cursor = conn.execute(
                    "INSERT INTO signal_inbox (source, signal_id, payload, time) VALUES (?, ?, ?, ?)",
                    (source, signal_id, text, time))
                return int(cursor.lastrowid or 0)
        except _Replayed:
            return None

    def pending_signals(self) -> list[tuple[int, str, str, dict[str, Any], float]]:
        """Signals accepted but not yet decided, in arrival order: (number, source, id, payload, time)."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, source, signal_id, payload, time FROM signal_inbox ORDER BY seq").fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), jsoncodec.loads(r[3]), float(r[4])) for r in rows]

    def consume_signals(self, numbers: Iterable[int]) -> None:
        """Drop decided signals from the inbox (in the transaction that saves their decision)."""
        with self._joined() as conn:
            conn.executemany("DELETE FROM signal_inbox WHERE seq = ?", [(n,) for n in numbers])

    def seen_signal(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        """True if `signal_id` was already recorded for `source` and has not expired;
        otherwise record it until `now + ttl` and return False. Expired ids are purged."""
        _nonempty("source", source)
        _nonempty("signal_id", signal_id)
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        with self._tx() as conn:
            conn.execute("DELETE FROM seen_signals WHERE expires_at <= ?", (now,))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO seen_signals (source, signal_id, expires_at) VALUES (?, ?, ?)",
                (source, signal_id, now + ttl),
            )
            return cursor.rowcount == 0
