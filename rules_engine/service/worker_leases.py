"""A worker's leases: every key cell's lease on one store through five connections and one
thread, instead of a connection, a thread and two queries a second per cell.

    leases = WorkerLeases(settings, holder="host:4242")   # one per worker and store
    leases.start()
    session = leases.session(cell_settings, ttl=2.0)      # a LeaseSession on the shared connection
    leases.wait_takeable("acct-1")                        # a standby cell: until one poll finds the key takeable
    keeper = leases.keeper(session, lease, sent_at=..., renew_every=...)   # renewed with every other key
    leases.close()                                        # waiting cells raise WorkerStopping

- **Standing by.** Every poll (0.5 s, or a third of the shortest TTL) reads the lease of every
  key a cell waits for in ONE query: a key is takeable when it has no lease, its lease expired
  by the database's clock, or its holder's session advisory lock (the crash fast path of
  `pgstore.lease`) is gone. Only those cells wake and try `LeaseSession.try_take`, which
  decides as before (a race with another worker is lost by one of them).
- **Renewing.** Every held key whose renewal is due is renewed in ONE `UPDATE ... RETURNING`
  (each key's epoch and holder checked as `LeaseSession.renew` does): a key missing from the
  answer was taken by a newer epoch and its cell halts; a failed statement is a failed renewal
  for each (the cell stops sending when its lease lapses, as `LeaseKeeper` does).
- **Connections.** Renewals have a connection of their own (never held up by a take waiting
  for a lease row's lock); takes, releases and the advisory locks of the held keys are spread
  over TAKE_CONNECTIONS more (each key always on the same one; the first also polls), so the
  worker's death ends them all at once and a takeover of many keys runs four takes at a time.

The fencing is unchanged: every write of a cell checks its epoch in its own transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rules_engine.pgstore import StoreSettings
from rules_engine.pgstore.connection import _first_line, connect
from rules_engine.pgstore.lease import Lease, LeaseSession, lock_id
from rules_engine.service.ha import LeaseKeeper
from rules_engine.service.startup import StartupError
from rules_engine.state.store import StateStoreError

log = logging.getLogger("rules_engine.worker.leases")

TAKE_CONNECTIONS = 8
"""Connections the worker's takes run on (each key always on the same one, which holds its
advisory lock): a takeover of many keys at once runs this many takes at a time."""
BUSY_RETRY = 0.05
"""Seconds before a key skipped by a renewal (its row locked by a write in flight) is tried again."""
POLL = 0.5
"""Seconds between two reads of the waiting keys' leases (at most; a third of the shortest TTL)."""


class WorkerStopping(StartupError):
    """The worker stops: a cell standing by gives up waiting for its key."""


class _SharedConnection:
    """One autocommit connection used by several threads in turn; opened again when lost.
    `generation` counts the connections made (a new one holds no advisory lock)."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.generation = 0
        self.server_started: Any = None  # pg_postmaster_start_time() when it was opened
        self._conn: Any = None
        self.closed = False

    def get(self) -> Any:
        if self.closed:
            raise StateStoreError("the worker's lease connection is closed")
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings)
            self.generation += 1
            self.server_started = self._conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._conn, self.server_started = None, None

    def run(self, what: str, fn: Callable[[Any], Any]) -> Any:
        with self.lock:
            try:
                return fn(self.get())
            except StateStoreError:
                raise
            except Exception as exc:
                self.drop()
                raise StateStoreError(f"state store {self.settings.shown}: {what}: {_first_line(exc)}") from None

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.drop()


class SharedLeaseSession(LeaseSession):
    """A cell's `LeaseSession` on the worker's shared lease connection: the advisory lock of
    its epoch lives on that connection; `close` lets it go."""

    def __init__(self, leases: WorkerLeases, settings: StoreSettings, holder: str, ttl: float) -> None:
        super().__init__(settings, holder, ttl)
        self._leases = leases
        self.shared = leases.connection_for(settings.key_id)  # its takes, release and advisory lock
        self.locked_at: tuple[int, int] | None = None  # (connection generation, epoch) of the lock held

    def _call(self, what: str, fn: Any) -> Any:
        return self.shared.run(what, fn)

    def _lock(self, conn: Any, epoch: int) -> None:
        held = (self.shared.generation, epoch)  # a connection made again holds no lock
        if self.locked_at != held and conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                                   (lock_id(self.settings.key_id), epoch)).fetchone()[0]:
            self.locked_at = held

    def holds_lock(self, epoch: int) -> bool:
        """Locked on the connection open now (a dropped one took the lock with it)."""
        return self.shared.server_started is not None and self.locked_at == (self.shared.generation, epoch)

    def close(self) -> None:
        """Let the epoch's advisory lock go (the cell no longer holds the key)."""
        with self.shared.lock:
            held, self.locked_at = self.locked_at, None
            if held is None or held[0] != self.shared.generation or self.shared.closed:
                return
            try:
                self.shared.run("cannot let the lease's lock go", lambda conn: conn.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", (lock_id(self.settings.key_id), held[1])))
            except StateStoreError as exc:
                log.warning("key %s: %s", self.settings.key_id, exc)


class SharedLeaseKeeper(LeaseKeeper):
    """A `LeaseKeeper` renewed by the worker's lease thread with every other held key."""

    def __init__(self, leases: WorkerLeases, session: LeaseSession, lease: Lease, **options: Any) -> None:
        super().__init__(session, lease, **options)
        self._leases = leases
        self.due = 0.0  # monotonic time of the next renewal

    def start(self) -> None:
        self.due = self._monotonic() + self.renew_every
        self._leases._hold(self)

    def stop(self, *, release: bool) -> None:
        self._leases._drop(self)
        super().stop(release=release)


class WorkerLeases:
    """Every lease of a worker's cells on one store (see the module)."""

    def __init__(self, settings: StoreSettings, holder: str, *, poll: float = POLL,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.holder = holder
        self.takes = [_SharedConnection(settings) for _ in range(TAKE_CONNECTIONS)]  # takes, releases, locks
        self.shared = self.takes[0]  # also the polls
        self._renewals = _SharedConnection(settings)  # renewals only (this module's thread)
        self.poll = poll
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: dict[str, threading.Event] = {}
        self._held: dict[str, SharedLeaseKeeper] = {}
        self._closed = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="worker-leases", daemon=True)
        self.polls = 0  # reads of the waiting keys' leases (tests, metrics)
        self.last_poll: list[str] = []  # the keys the last read covered
        self.renewal_statements = 0

    def start(self) -> None:
        self._thread.start()

    def stop_waiting(self) -> None:
        """The worker stops: every waiting cell raises WorkerStopping (held keys are still renewed)."""
        with self._lock:
            self._stopping = True
            for event in self._waiting.values():
                event.set()

    def close(self) -> None:
        """Stop the thread and close the connections (after the cells stopped)."""
        self.stop_waiting()
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(10)
        for connection in self.takes:
            connection.close()
        self._renewals.close()

    # ------------------------------------------------------------------ cells

    def connection_for(self, key: str) -> _SharedConnection:
        """The connection a key is taken, released and locked on (always the same one)."""
        return self.takes[lock_id(key) % len(self.takes)]

    def session(self, settings: StoreSettings, ttl: float) -> SharedLeaseSession:
        self.poll = min(self.poll, ttl / 3)
        return SharedLeaseSession(self, settings, self.holder, ttl)

    def keeper(self, session: LeaseSession, lease: Lease, **options: Any) -> SharedLeaseKeeper:
        return SharedLeaseKeeper(self, session, lease, monotonic=self._monotonic, **options)

    def wait_takeable(self, key: str) -> None:
        """Block until a poll finds `key` takeable (no lease, expired, or its holder's session
        ended); WorkerStopping once the worker stops."""
        event = threading.Event()
        with self._lock:
            if self._stopping:
                raise WorkerStopping("the worker is stopping")
            self._waiting[key] = event
            self._wake.notify_all()
        try:
            event.wait()
        finally:
            with self._lock:
                if self._waiting.get(key) is event:
                    del self._waiting[key]
        if self._stopping:
            raise WorkerStopping("the worker is stopping")

    def is_waiting(self, key: str) -> bool:
        """A cell waits for `key` in `wait_takeable` now."""
        return key in self._waiting

    def _hold(self, keeper: SharedLeaseKeeper) -> None:
        with self._lock:
            self._held[keeper.session.settings.key_id] = keeper
            self._wake.notify_all()

    def _drop(self, keeper: SharedLeaseKeeper) -> None:
        with self._lock:
            key = keeper.session.settings.key_id
            if self._held.get(key) is keeper:
                del self._held[key]

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._closed:
            try:
                self._serve()
            except Exception:  # a bug must not end every cell's renewals: logged, then on again
                log.exception("worker leases: unexpected error; going on")
                time.sleep(self.poll)

    def _serve(self) -> None:
        next_poll = 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                now = self._monotonic()
                live = [k for k in self._held.values() if k.halted is None]
                due = []
                if any(k.due <= now for k in live):  # with it, every key due within half a period: the
                    due = [k for k in live if k.due <= now + k.renew_every / 2]  # rounds fall into one statement
                waiting = list(self._waiting) if now >= next_poll else []
                if not due and not waiting:
                    times = [k.due for k in live]
                    if self._waiting:
                        times.append(next_poll)
                    self._wake.wait(max(0.0, min(times) - now) if times else None)
                    continue
            if due:
                self._renew(due)
            if waiting:
                next_poll = self._monotonic() + self.poll
                self._poll(waiting)

    def _renew(self, keepers: list[SharedLeaseKeeper]) -> None:
        sent = self._monotonic()
        for keeper in keepers:
            keeper.due = sent + keeper.renew_every
        keys = [k.session.settings.key_id for k in keepers]
        epochs = [k.epoch for k in keepers]
        ttls = [k.ttl for k in keepers]
        try:
            started = self._renewals.run("cannot renew the keys' leases", lambda conn: conn.execute(
                "SELECT pg_postmaster_start_time()").fetchone()[0])
            if any(c.server_started not in (None, started) for c in self.takes):
                self._relock_after_restart(keepers, started)  # locks first: a renewed lease with no lock is a crash
            renewed, ours = self._renewals.run("cannot renew the keys' leases", lambda conn: self._renew_rows(
                conn, keys, epochs, ttls))
        except StateStoreError as exc:
            for keeper in keepers:
                keeper.renew_failed(exc)
                keeper._note_lapse()
            return
        self.renewal_statements += 1
        for keeper in keepers:
            key = keeper.session.settings.key_id
            if key in renewed or key not in ours:
                keeper.renewal_result(sent, key in renewed)  # not ours: a newer epoch holds it (halt)
            else:  # its row is locked by the cell's write in flight: again shortly
                keeper.due = sent + min(BUSY_RETRY, keeper.renew_every)
            keeper._note_lapse()
        self._relock([k for k in keepers if k.halted is None])

    def _renew_rows(self, conn: Any, keys: list[str], epochs: list[int], ttls: list[float]
                    ) -> tuple[set[str], set[str]]:
        """Renew the keys whose row is not locked now (one statement): the keys renewed, and
        the keys still held by this holder with those epochs (renewed or busy). A row locked
        by a cell's write in flight is skipped rather than waited for: waiting would hold
        every other key's row, and with it every other cell's writes, until that one ends."""
        rows = conn.execute(
            "WITH t AS (SELECT * FROM unnest(%s::text[], %s::bigint[], %s::float8[]) AS t(k, e, ttl)), "
            "free AS (SELECT l.key_id, t.ttl FROM key_lease l JOIN t ON l.key_id = t.k AND l.epoch = t.e "
            "  WHERE l.holder = %s FOR NO KEY UPDATE OF l SKIP LOCKED) "
            "UPDATE key_lease l SET expires_at = now() + make_interval(secs => free.ttl) FROM free "
            "WHERE l.key_id = free.key_id RETURNING l.key_id", (keys, epochs, ttls, self.holder)).fetchall()
        renewed = {str(row[0]) for row in rows}
        if len(renewed) == len(keys):
            return renewed, renewed
        rows = conn.execute(
            "SELECT l.key_id FROM key_lease l JOIN unnest(%s::text[], %s::bigint[]) AS t(k, e) "
            "ON l.key_id = t.k AND l.epoch = t.e WHERE l.holder = %s", (keys, epochs, self.holder)).fetchall()
        return renewed, {str(row[0]) for row in rows}

    def _relock_after_restart(self, keepers: list[SharedLeaseKeeper], started: Any) -> None:
        """The server restarted since some take connections were opened: their sessions, and the
        held keys' advisory locks on them, are gone (a standby reads a renewed lease without its
        lock as its holder's crash). Drop those connections and lock the held keys again on new
        ones, before the renewal."""
        for connection in self.takes:
            if connection.server_started not in (None, started):
                with connection.lock:
                    connection.drop()
        self._relock([k for k in keepers if k.halted is None])

    def _relock(self, keepers: list[SharedLeaseKeeper]) -> None:
        """After the shared connection was made again: take each held key's advisory lock again."""
        for keeper in keepers:
            session = keeper.session
            if not isinstance(session, SharedLeaseSession) or session.holds_lock(keeper.epoch):
                continue
            try:
                session._call("cannot lock the key's lease",
                              lambda conn, s=session, e=keeper.epoch: s._lock(conn, e))
            except StateStoreError as exc:
                log.warning("key %s: %s", session.settings.key_id, exc)

    def _poll(self, keys: list[str]) -> None:
        """Wake the waiting cells whose key is takeable now (one query for all of them)."""
        try:
            rows = self.shared.run("cannot read the keys' leases", lambda conn: conn.execute(
                "SELECT t.k FROM unnest(%s::text[], %s::bigint[]) AS t(k, lk) "
                "LEFT JOIN key_lease l ON l.key_id = t.k "
                "WHERE l.key_id IS NULL OR l.epoch = 0 OR l.expires_at <= now() OR NOT EXISTS ("
                "  SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 2"
                "  AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                "  AND p.classid = t.lk::oid AND p.objid = l.epoch::oid)",
                (keys, [lock_id(k) & 0xFFFFFFFF for k in keys])).fetchall())
        except StateStoreError as exc:
            log.warning("standby: %s; trying again", exc)
            return
        self.polls += 1
        self.last_poll = keys
        with self._lock:
            for (key,) in rows:
                event = self._waiting.get(str(key))
                if event is not None:
                    event.set()
