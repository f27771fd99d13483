"""Where the PostgreSQL store is and how a cell talks to it: settings (the URL without its
password, the key id, the password from the environment), one connection per part (state,
audit) that reconnects by itself, the schema, and the epoch check that opens every write.

The password is never in the config: `store_password_env` names the variable (default
`RULES_ENGINE_STORE_PASSWORD`; `<NAME>_FILE` names a file instead, the Docker/Kubernetes
form). A URL that holds a password is refused, and every message shows the URL through
`redact_dsn`.

A write transaction of a cell begins with `SELECT ... FROM key_lease WHERE key_id = k FOR
SHARE` and goes on only if the row's epoch is the cell's: a cell whose key was taken over
(a newer epoch) gets `FencedError` and its transaction is rolled back. The share lock makes a
takeover (`UPDATE key_lease SET epoch = epoch + 1`) wait for the cell's transaction in flight,
so no write of an old epoch commits after a new epoch began.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rules_engine.pgstore.fanout_schema import apply_fanout_schema
from rules_engine.redact import register_secret
from rules_engine.secret_reader import secret_from_env
from rules_engine.state.store import StateStoreError

try:
    import psycopg
except ImportError:  # pragma: no cover - the `postgres` extra is not installed
    psycopg = None  # type: ignore[assignment]

PASSWORD_ENV = "RULES_ENGINE_STORE_PASSWORD"
SCHEMA_VERSION = 1
CONNECT_TIMEOUT = 3
"""Seconds to wait for a connection: a store that cannot be reached refuses writes quickly."""
STATEMENT_TIMEOUT_MS = 10_000
"""No statement waits longer (a lock held by a stuck cell, a server under recovery)."""
IDLE_IN_TRANSACTION_MS = 5_000
"""The server ends a session idle inside a transaction this long (a cell cut off from the
database mid-transaction): its locks, among them the share lock on its key's lease row, would
otherwise hold a takeover back for as long as the dead connection looks alive. A cell's
transactions hold no network call, so a live one never waits this long between statements."""


class FencedError(StateStoreError):
    """This cell's epoch is no longer the key's: another engine took the key over."""


def redact_dsn(url: str) -> str:
    """The URL with any password replaced by `***` (safe to log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def is_store_url(text: str | None) -> bool:
    return bool(text) and str(text).startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class StoreSettings:
    """A PostgreSQL store: `url` (no password), this engine's `key_id` and the password."""

    url: str
    key_id: str = "default"
    password: str | None = None

    @classmethod
    def parse(cls, url: str, *, key_id: str = "default", password_env: str = PASSWORD_ENV,
              environ: Mapping[str, str] | None = None) -> StoreSettings:
        """Check the URL and read the password from `password_env` (or `<password_env>_FILE`).
        ValueError with a message that never shows a password."""
        if not is_store_url(url):
            raise ValueError(f"store: {redact_dsn(url)!r} is not a postgresql:// URL")
        parts = urlsplit(url)
        if parts.password is not None:
            raise ValueError(f"store: {redact_dsn(url)}: the URL holds a password; put it in ${password_env} "
                             f"or the file ${password_env}_FILE names, never in the config")
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError(f"store: {url}: name the host and the database (postgresql://user@host:port/db)")
        if not isinstance(key_id, str) or not key_id or len(key_id) > 128:
            raise ValueError("store key: a non-empty name of at most 128 characters")
        password = secret_from_env(password_env, environ)
        if password:
            register_secret(password)
        return cls(url, key_id, password)

    @property
    def shown(self) -> str:
        """The URL and key as messages show them."""
        return f"{redact_dsn(self.url)} (key {self.key_id})"


def require_psycopg() -> None:
    if psycopg is None:
        raise StateStoreError("the PostgreSQL store needs psycopg: pip install 'rules-engine[postgres]'")


def session_name(holder: str | None = None) -> str:
    """The `application_name` of this process's store sessions: "rules-engine host:pid", the
    same name as the process's lease holder, so a standby can find an expired holder's
    sessions (`LeaseSession.try_take`)."""
    return "rules-engine " + (holder or f"{socket.gethostname()}:{os.getpid()}")


def connect(settings: StoreSettings) -> Any:
    """A new autocommit connection (StateStoreError if the store cannot be reached)."""
    require_psycopg()
    try:
        conn = psycopg.connect(
            settings.url, password=settings.password, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            application_name=session_name(), keepalives=1, keepalives_idle=5, keepalives_interval=2,
            keepalives_count=3, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c synchronous_commit=on "
                    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
        )
    except psycopg.Error as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot connect: {_first_line(exc)}") from None
    if settings.url in _SCHEMA_CHECKED:
        return conn
    try:
        ensure_schema(conn)
    except psycopg.Error as exc:
        conn.close()
        raise StateStoreError(f"state store {settings.shown}: cannot set up its tables: {_first_line(exc)}") from None
    _SCHEMA_CHECKED.add(settings.url)
    return conn


_SCHEMA_CHECKED: set[str] = set()
"""The stores whose schema this process has checked (`ensure_schema`) on a connection already:
a worker's cells open hundreds of connections, and each check takes the schema lock (one
transaction at a time across every process)."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


MAX_IDLE = 24
"""Connections a `ConnectionPool` keeps (idle, or out with a cell) before a taker waits for one
to come back (at most `TAKE_WAIT`) rather than open another."""
TAKE_WAIT = 0.25
"""Seconds a taker waits for a connection to come back when `MAX_IDLE` are out, before it opens
one more anyway (a thread holding one connection may need a second, e.g. an audit commit inside
a state transaction: waiting without end could deadlock)."""


class ConnectionPool:
    """The idle connections of one store, shared by the `Connection`s of a worker's key cells.

    A cell's `Connection` with a pool holds a connection only for a transaction (or a read)
    and gives it back when that ends, so a worker's cells need as many connections as they run
    transactions at once, not two each; and a cell starting (a takeover of many keys at once)
    takes connections already open instead of opening two of its own (each a new server
    process and a password exchange, SCRAM: several milliseconds of CPU on either side).
    Nothing of a cell's stays on a connection between its transactions: the epoch check opens
    every write transaction, and a session's settings are the same for every cell of the
    process (`connect`). A connection found lost empties the pool: the others are most likely
    gone too (the server restarted), and a transaction's first statement may be retried once
    only (`Connection._begin`)."""

    def __init__(self, *, max_idle: int = MAX_IDLE, take_wait: float = TAKE_WAIT) -> None:
        self.max_idle = max_idle
        self.take_wait = take_wait
        self._lock = threading.Condition()
        self._idle: list[Any] = []
        self._out = 0  # connections taken and not given back (or forgotten) yet
        self._closed = False
        self.opened = 0  # connections made (tests, metrics)

    def take(self, settings: StoreSettings) -> Any:
        """An idle connection, or a new one (StateStoreError if the store cannot be reached);
        with `max_idle` out already, first waits up to `take_wait` for one to come back."""
        deadline = None
        with self._lock:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed and not conn.broken:
                        self._out += 1
                        return conn
                if self._out < self.max_idle:
                    break
                now = time.monotonic()
                deadline = now + self.take_wait if deadline is None else deadline
                if now >= deadline or self._closed:
                    break
                self._lock.wait(deadline - now)
            self._out += 1
        try:
            conn = connect(settings)
        except BaseException:
            self.forget()
            raise
        with self._lock:
            self.opened += 1
        return conn

    def give_back(self, conn: Any) -> None:
        """Keep `conn` for the next taker if it is idle and healthy, else close it."""
        healthy = not conn.closed and not conn.broken and not conn.pgconn.pipeline_status and \
            conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            self._out -= 1
            if healthy and not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                self._lock.notify()
                return
            self._lock.notify()
        _close_quietly(conn)

    def forget(self) -> None:
        """A connection taken from the pool was closed by its taker (lost)."""
        with self._lock:
            self._out -= 1
            self._lock.notify()

    def discard_idle(self) -> None:
        """Close every idle connection (one was found lost)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.discard_idle()


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass


_STATUS_CHECK = ("CHECK (status IN ('pending','sent','unknown','accepted','rejected','filled','cancelled',"
                 "'abandoned'))")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cluster_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS key_lease (
        key_id TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL,
        acquired_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cell_meta (
        key_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key_id, key))""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        key_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, saved_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key_id, name))""",
    """CREATE TABLE IF NOT EXISTS engine_parts (
        key_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, ord BIGSERIAL,
        PRIMARY KEY (key_id, name))""",
    f"""CREATE TABLE IF NOT EXISTS decisions (
        key_id TEXT NOT NULL, cl_ord_id TEXT NOT NULL, rule_id TEXT NOT NULL, decision_id TEXT NOT NULL,
        intent TEXT NOT NULL, status TEXT NOT NULL {_STATUS_CHECK}, outcome TEXT,
        created_at DOUBLE PRECISION NOT NULL, sent_at DOUBLE PRECISION, updated_at DOUBLE PRECISION NOT NULL,
        epoch BIGINT NOT NULL, ord BIGSERIAL, PRIMARY KEY (key_id, cl_ord_id))""",
    "CREATE INDEX IF NOT EXISTS decisions_by_decision_id ON decisions (key_id, decision_id)",
    "CREATE INDEX IF NOT EXISTS decisions_by_status ON decisions (key_id, status)",
    """CREATE TABLE IF NOT EXISTS nonces (
        key_id TEXT NOT NULL, key_fingerprint TEXT NOT NULL, value NUMERIC(20) NOT NULL,
        PRIMARY KEY (key_id, key_fingerprint))""",
    """CREATE TABLE IF NOT EXISTS seen_signals (
        key_id TEXT NOT NULL, source TEXT NOT NULL, signal_id TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key_id, source, signal_id))""",
    """CREATE TABLE IF NOT EXISTS signal_inbox (
        seq BIGSERIAL PRIMARY KEY, key_id TEXT NOT NULL, source TEXT NOT NULL, signal_id TEXT NOT NULL,
        payload TEXT NOT NULL, time DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS signal_inbox_by_key ON signal_inbox (key_id, seq)",
    """CREATE TABLE IF NOT EXISTS audit (
        key_id TEXT NOT NULL, seq BIGINT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
        epoch BIGINT NOT NULL, time DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, rule_id TEXT,
        line TEXT NOT NULL, PRIMARY KEY (key_id, seq))""",
)


def ensure_schema(conn: Any) -> None:
    """Create the tables once (concurrent starters serialise on an advisory lock); refuse a
    database whose schema is newer than this version understands."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(7246135)")  # any constant: the schema lock
        conn.execute(_SCHEMA[0])
        row = conn.execute("SELECT value FROM cluster_meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StateStoreError(f"the store has schema version {version}, newer than this rules-engine "
                                  f"understands ({SCHEMA_VERSION}); upgrade rules-engine")
        if version < SCHEMA_VERSION:
            for statement in _SCHEMA[1:]:
                conn.execute(statement)
            conn.execute("INSERT INTO cluster_meta (key, value) VALUES ('schema_version', %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
        apply_fanout_schema(conn)  # signal fan-out's tables (pgstore.fanout), whenever missing


def check_epoch(conn: Any, settings: StoreSettings, epoch: int) -> None:
    """The first statement of a cell's write: FencedError unless `epoch` is the key's current one."""
    row = conn.execute("SELECT epoch, holder FROM key_lease WHERE key_id = %s FOR SHARE", (settings.key_id,)).fetchone()
    if row is None:
        raise FencedError(f"state store {settings.shown}: no lease row for the key: writes refused")
    if int(row[0]) != epoch:
        raise FencedError(f"state store {settings.shown}: fenced: this engine holds epoch {epoch}, but the key is "
                          f"now held by epoch {row[0]} ({row[1]}); its writes are refused")


BeforeCommit = Callable[[Any, list[Callable[[], None]]], Callable[[BaseException | None], None] | None]
"""`Connection.before_commit`: (connection, the `at_commit` calls) -> called when the transaction ended."""


class _PipelinedTransaction:
    """An outer transaction in pipeline mode, begun and ended by hand (see `Connection.transaction`):
    BEGIN goes with the statement after it (the epoch check), COMMIT with the statements queued
    before it, each batch one round trip. (psycopg's own transaction block inside a pipeline
    syncs after its BEGIN and twice around its COMMIT: three round trips more.) A savepoint
    inside it (`sync` first) is psycopg's."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._pipe = conn.pipeline()
        self._pipeline: Any = None

    def __enter__(self) -> None:
        self._pipeline = self._pipe.__enter__()
        try:
            self._conn.execute("BEGIN")
        except BaseException as exc:
            self._pipe.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def sync(self) -> None:
        """Wait for every statement queued so far (raises the first one's error)."""
        self._pipeline.sync()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            try:
                self._pipe.__exit__(exc_type, exc, tb)  # waits for what is queued; its errors are dropped
            finally:
                self._rollback()
            return
        try:
            self._conn.execute("COMMIT")
            self._pipe.__exit__(None, None, None)  # sends COMMIT and what is queued; raises the first error
        except BaseException as failed:
            if self._conn.pgconn.pipeline_status:  # still in pipeline mode: the COMMIT was not even queued
                with contextlib.suppress(psycopg.Error):
                    self._pipe.__exit__(type(failed), failed, failed.__traceback__)
            self._rollback()  # a statement failed: the server skipped the rest, the transaction is open
            raise

    def _rollback(self) -> None:
        conn = self._conn
        if conn.closed or conn.broken or conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


class Connection:
    """One connection of a cell (thread-safe: calls are serialised), reconnected when lost.

    `failure` is why the store cannot be used and since when, None once a statement succeeded
    again; a fenced cell stays failed."""

    def __init__(self, settings: StoreSettings, epoch: int | None, clock: Callable[[], float] = time.time,
                 on_reconnect: Callable[[Any], None] | None = None, *, pipelined: bool = False,
                 pool: ConnectionPool | None = None) -> None:
        self.settings = settings
        self.pool = pool  # a worker's cell: a connection is taken for each transaction and given back
        self._reconnected = True  # `on_reconnect` is due at the next connection (the first, or after a loss)
        self.pipelined = pipelined  # every outer transaction in pipeline mode (`transaction`)
        self.epoch = epoch
        self._clock = clock
        self._on_reconnect = on_reconnect
        self.lock = threading.RLock()
        self._conn: Any = None
        self._depth = 0
        self._closed = False
        self.failure: tuple[str, float] | None = None
        self._fenced: str | None = None
        self.before_commit: BeforeCommit | None = None
        """Called right before each outer transaction's COMMIT, with the connection and the calls
        `at_commit` added in it (its statements join the transaction); what it returns is called
        once the transaction ended, with None if it committed, else the error (`PgStateStore`:
        its key's audit records commit with its writes)."""
        self._at_commit: list[Callable[[], None]] = []
        self._outer: _PipelinedTransaction | None = None  # the outer transaction, when pipelined

    def _open(self) -> Any:
        if self._closed:
            raise StateStoreError(f"state store {self.settings.shown} is closed")
        if self._fenced is not None:
            raise FencedError(self._fenced)
        if self._conn is None or self._conn.closed:
            if self._conn is not None:  # closed under it: lost
                self._reconnected = True
                self._conn = None
                if self.pool is not None:
                    self.pool.forget()
            try:
                self._conn = connect(self.settings) if self.pool is None else self.pool.take(self.settings)
            except StateStoreError as exc:
                self._note(str(exc))
                raise
            if self._on_reconnect is not None and self._reconnected:
                try:
                    self._on_reconnect(self._conn)
                except psycopg.Error as exc:
                    raise self._lost(exc) from None
            self._reconnected = False
        return self._conn

    def _release(self) -> None:
        """Out of every transaction and read: a pool's connection goes back to it."""
        if self.pool is not None and self._depth == 0 and self._conn is not None:
            conn, self._conn = self._conn, None
            self.pool.give_back(conn)

    def open(self) -> None:
        """Connect now (StateStoreError if the store cannot be reached)."""
        with self.lock:
            self._open()
            self._release()

    def _note(self, reason: str) -> None:
        since = self.failure[1] if self.failure is not None else self._clock()
        self.failure = (reason, since)

    def _lost(self, exc: BaseException) -> StateStoreError:
        """A statement failed: drop a broken connection, note the failure, the error to raise."""
        message = f"state store {self.settings.shown}: {_first_line(exc)}"
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or (
                self._conn is not None and self._conn.broken):
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
                if self.pool is not None:
                    self.pool.forget()
            self._conn = None
            self._reconnected = True
            if self.pool is not None:
                self.pool.discard_idle()
            self._note(message)
        return StateStoreError(message)

    @contextmanager
    def transaction(self, *, pipeline: bool = False, join: bool = False) -> Iterator[Any]:
        """One transaction (nested: a savepoint); the outer one begins with the epoch check.

        `join`: nested, the block's statements go into the enclosing transaction without a
        savepoint (two round trips fewer); for a block that never rolls back on its own, so
        its error aborts the enclosing transaction as it propagates.

        A connection found dead when the outer transaction begins (the server restarted since
        the last call) is replaced once, right away: nothing was written on it yet.

        `pipeline` (or a `pipelined` connection): the outer transaction in psycopg's pipeline
        mode: BEGIN goes with the epoch check, each statement whose result is read (`fetchone`;
        never `rowcount`, which is not known yet) costs a round trip, and every other statement
        goes with the next of those or with the COMMIT; it returns once the commit is answered,
        as without. A statement's error is raised when its result, or the COMMIT, is."""
        with self.lock:
            if join and self._depth > 0 and self._conn is not None:
                self._depth += 1
                try:
                    yield self._conn
                except psycopg.Error as exc:
                    raise self._lost(exc) from None
                finally:
                    self._depth -= 1
                return
            outer = self._depth == 0
            try:
                conn, block = self._begin(outer, (pipeline or self.pipelined) and outer)
            except BaseException:
                self._release()  # (outer only: no transaction is open on it)
                raise
            if outer and isinstance(block, _PipelinedTransaction):
                self._outer = block
            self._depth += 1
            ended: Callable[[BaseException | None], None] | None = None
            try:
                try:
                    yield conn
                    if outer and self.before_commit is not None:
                        calls, self._at_commit = self._at_commit, []
                        ended = self.before_commit(conn, calls)
                except BaseException as exc:
                    try:
                        block.__exit__(type(exc), exc, exc.__traceback__)  # rolls back
                    finally:
                        if ended is not None:
                            ended(exc)
                    raise
                try:
                    block.__exit__(None, None, None)  # commits (or releases the savepoint)
                except BaseException as exc:
                    if ended is not None:
                        ended(exc)
                    raise
                if ended is not None:
                    ended(None)
            except FencedError as exc:
                self._fenced = str(exc)
                self._note(str(exc))
                raise
            except psycopg.Error as exc:
                raise self._lost(exc) from None
            finally:
                self._depth -= 1
                if outer:
                    self._at_commit = []  # a transaction that failed first drops its calls
                    self._outer = None
                    self._release()
            if outer:
                self.failure = None

    def _begin(self, outer: bool, pipeline: bool = False) -> tuple[Any, Any]:
        """Open the transaction block (and check the epoch): the connection and the block."""
        for attempt in (1, 2):
            conn = self._open()
            block = _PipelinedTransaction(conn) if pipeline else conn.transaction()
            try:
                if not outer and self._outer is not None:
                    self._outer.sync()  # a savepoint (psycopg's) needs the BEGIN answered
                block.__enter__()
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                lost = self._lost(exc)
                if attempt == 2 or not outer:
                    raise lost from None
                continue
            except psycopg.Error as exc:
                raise self._lost(exc) from None
            if outer and self.epoch is not None:
                try:
                    check_epoch(conn, self.settings, self.epoch)
                except BaseException as exc:
                    try:
                        block.__exit__(type(exc), exc, exc.__traceback__)
                    except psycopg.Error:
                        pass
                    if isinstance(exc, FencedError):
                        self._fenced = str(exc)
                        self._note(str(exc))
                        raise
                    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and attempt == 1:
                        self._lost(exc)
                        continue
                    if isinstance(exc, psycopg.Error):
                        raise self._lost(exc) from None
                    raise
            return conn, block
        raise AssertionError("unreachable")

    def at_commit(self, call: Callable[[], None]) -> None:
        """Inside a transaction: `call` is handed to `before_commit` right before the outer
        transaction's COMMIT (dropped if the transaction fails first)."""
        with self.lock:
            if self._depth == 0 or self.before_commit is None:
                raise RuntimeError("at_commit: no transaction with a before_commit hook is open")
            self._at_commit.append(call)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self.lock:
            conn = self._open()
            try:
                yield conn
            except psycopg.Error as exc:
                raise self._lost(exc) from None
            finally:
                self._release()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            if self._conn is not None and self.pool is not None and self._depth == 0:
                self._release()
            elif self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
                self._conn = None
                if self.pool is not None:
                    self.pool.forget()
