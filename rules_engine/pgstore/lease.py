"""The lease row of each key: who holds it, its epoch (the fencing token) and until when.

    lease = acquire_lease(settings, holder="host-1:4242")        # epoch + 1; the previous holder is fenced
    lease = acquire_lease(settings, holder="host-2:99", takeover=False)  # only if free or expired

Taking a key raises its epoch by one in one statement; every write of a cell checks its
epoch first (`connection.check_epoch`), so from the moment the new epoch commits, anything
the previous holder still tries to write fails with `FencedError`. Expiry is judged by the
database's clock (`now()`), never a worker's.

An engine without `standby` takes its key at start (`takeover=True`: the last engine started
holds the key, an earlier one is fenced and stops acting). A high-availability engine
(`standby: true`, `service.ha`) holds a `LeaseSession` instead:

    session = LeaseSession(settings, holder="host-2:99", ttl=6.0)
    lease = session.try_take()          # None while another holder's lease is live
    session.renew(lease.epoch)          # False: the key is held by a newer epoch (fenced)
    session.release(lease.epoch)        # a clean stop: the lease expires now

`try_take` takes the key with epoch + 1 only if its lease has expired by the database's
clock, or if the holder's session has visibly ended (the crash fast path: a holder keeps a
session advisory lock on its key while it holds it, so a killed holder's lock is gone as
soon as PostgreSQL sees its connection close; the lock names the epoch, so a demoted holder
still alive does not hide the current holder's death; only for a lease renewed since the
server's start, as a restart ends every session, a live holder's too, and the holder locks again
before it renews).
Safety never depends on that wait: the epoch
fences every write, and the new holder's first Kraken call fences the old holder's nonces.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules_engine.pgstore.connection import StoreSettings, _first_line, connect, session_name
from rules_engine.state.store import StateStoreError

log = logging.getLogger(__name__)

DEFAULT_TTL = 6.0
"""Seconds a lease lasts unless renewed (the design note's TTL)."""

TAKE_LOCK_TIMEOUT_MS = 1000
"""How long a standby waits for the lease row's lock before looking for a stuck expired holder."""
LOCK_NOT_AVAILABLE = "55P03"


class LeaseHeldError(StateStoreError):
    """The key's lease is held by another holder and has not expired."""


@dataclass(frozen=True)
class Lease:
    key_id: str
    holder: str
    epoch: int
    acquired_at: datetime
    expires_at: datetime


def acquire_lease(settings: StoreSettings, holder: str, *, ttl: float = DEFAULT_TTL, takeover: bool = True) -> Lease:
    """Take the key's lease with a new epoch. Without `takeover`, only if no lease exists, it
    has expired or `holder` already holds it (LeaseHeldError otherwise)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    conn = connect(settings)
    try:
        with conn.transaction():
            conn.execute("INSERT INTO key_lease (key_id, holder, epoch, acquired_at, expires_at) "
                         "VALUES (%s, %s, 0, now(), now()) ON CONFLICT (key_id) DO NOTHING", (settings.key_id, holder))
            current = conn.execute("SELECT holder, epoch, expires_at > now() FROM key_lease WHERE key_id = %s "
                                   "FOR UPDATE", (settings.key_id,)).fetchone()
            if not takeover and current[2] and current[0] != holder and current[1] > 0:
                raise LeaseHeldError(f"key {settings.key_id} is held by {current[0]} (epoch {current[1]}) "
                                     f"and its lease has not expired")
            row = conn.execute(
                "UPDATE key_lease SET holder = %s, epoch = epoch + 1, acquired_at = now(), "
                "expires_at = now() + make_interval(secs => %s) WHERE key_id = %s "
                "RETURNING key_id, holder, epoch, acquired_at, expires_at",
                (holder, ttl, settings.key_id)).fetchone()
    except StateStoreError:
        raise
    except Exception as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot take the key's lease: "
                              f"{_first_line(exc)}") from None
    finally:
        conn.close()
    return Lease(str(row[0]), str(row[1]), int(row[2]), row[3], row[4])


def read_leases(settings: StoreSettings) -> list[Lease]:
    """Every key's lease, by key id."""
    conn = connect(settings)
    try:
        rows = conn.execute("SELECT key_id, holder, epoch, acquired_at, expires_at FROM key_lease "
                            "ORDER BY key_id").fetchall()
    finally:
        conn.close()
    return [Lease(str(r[0]), str(r[1]), int(r[2]), r[3], r[4]) for r in rows]


def lock_id(key_id: str) -> int:
    """The first half of a key's advisory lock (the second is the epoch): a signed 32-bit int,
    the same in every process."""
    return zlib.crc32(key_id.encode()) - 2**31


_lock_id = lock_id


class LeaseSession:
    """One engine's connection for its key's lease: taking, renewing and releasing it (see
    the module). The holder of epoch e keeps the session advisory lock (hash of the key, e):
    a standby that can take that lock knows the holder's session has ended. Not thread-safe:
    one thread (the lease keeper) uses it."""

    def __init__(self, settings: StoreSettings, holder: str, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.settings = settings
        self.holder = holder
        self.ttl = ttl
        self._conn: Any = None
        self._locked: int | None = None  # the epoch whose advisory lock this session holds

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings)
            self._locked = None
        return self._conn

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn(self._connection())
        except StateStoreError:
            raise
        except Exception as exc:
            self._drop()
            raise StateStoreError(f"state store {self.settings.shown}: {what}: {_first_line(exc)}") from None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._conn, self._locked = None, None

    def _lock(self, conn: Any, epoch: int) -> None:
        if self._locked != epoch and conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                                  (_lock_id(self.settings.key_id), epoch)).fetchone()[0]:
            self._locked = epoch

    def current(self) -> Lease | None:
        """The key's lease row as it is now (None if the key was never taken)."""
        def read(conn: Any) -> Lease | None:
            row = conn.execute("SELECT key_id, holder, epoch, acquired_at, expires_at FROM key_lease "
                               "WHERE key_id = %s", (self.settings.key_id,)).fetchone()
            return None if row is None else Lease(str(row[0]), str(row[1]), int(row[2]), row[3], row[4])
        return self._call("cannot read the key's lease", read)

    def try_take(self) -> Lease | None:
        """Take the key with a new epoch if its lease has expired (database clock) or its
        holder's session has ended; None (nothing changed) while another holder is live."""
        def take(conn: Any) -> Lease | None:
            try:
                return locked_take(conn)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
            self._end_expired_holders_sessions(conn)
            return None  # taken at the next poll

        def locked_take(conn: Any) -> Lease | None:
            key = self.settings.key_id
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{TAKE_LOCK_TIMEOUT_MS}ms",))
                conn.execute("INSERT INTO key_lease (key_id, holder, epoch, acquired_at, expires_at) "
                             "VALUES (%s, %s, 0, now(), now()) ON CONFLICT (key_id) DO NOTHING", (key, self.holder))
                epoch, expired, since_restart = conn.execute(
                    "SELECT epoch, expires_at <= now(), expires_at - make_interval(secs => %s) > "
                    "pg_postmaster_start_time() FROM key_lease WHERE key_id = %s FOR UPDATE",
                    (self.ttl, key)).fetchone()
                # the crash fast path: a live lease whose holder's advisory lock is gone; only if the lease was
                # renewed since the server started (a restart ends every session, a live holder's too, which
                # locks again as it renews)
                if not expired and epoch > 0 and (not since_restart or not conn.execute(
                        "SELECT pg_try_advisory_xact_lock(%s, %s)", (_lock_id(key), epoch)).fetchone()[0]):
                    return None
                row = conn.execute(
                    "UPDATE key_lease SET holder = %s, epoch = epoch + 1, acquired_at = now(), "
                    "expires_at = now() + make_interval(secs => %s) WHERE key_id = %s "
                    "RETURNING key_id, holder, epoch, acquired_at, expires_at", (self.holder, self.ttl, key)).fetchone()
                self._lock(conn, int(row[2]))  # before the commit: nobody sees the epoch unlocked
            return Lease(str(row[0]), str(row[1]), int(row[2]), row[3], row[4])
        return self._call("cannot take the key's lease", take)

    def _end_expired_holders_sessions(self, conn: Any) -> None:
        """The key's lease row is locked by a holder whose lease has expired (database clock):
        its session is stuck inside a transaction, e.g. cut off mid-message, which
        `idle_in_transaction_session_timeout` does not end. End that holder's sessions that are
        inside a transaction (they roll back: an expired holder must not commit anything more)."""
        row = conn.execute("SELECT holder FROM key_lease WHERE key_id = %s AND expires_at <= now()",
                           (self.settings.key_id,)).fetchone()
        if row is None or str(row[0]) == self.holder:
            return
        try:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                         "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()", (session_name(str(row[0])),))
        except Exception as exc:  # noqa: BLE001 - e.g. not allowed: the lease then waits for the server
            log.warning("standby: cannot end the expired holder %s's sessions: %s", row[0], _first_line(exc))

    def renew(self, epoch: int) -> bool:
        """Extend the lease by `ttl` from the database's now; False if the key is held by
        another epoch (this holder is fenced). StateStoreError if the store cannot be reached."""
        def renew(conn: Any) -> bool:
            self._lock(conn, epoch)  # after a reconnect: hold the crash detector again, before the renewal
            row = conn.execute("UPDATE key_lease SET expires_at = now() + make_interval(secs => %s) "
                               "WHERE key_id = %s AND epoch = %s AND holder = %s RETURNING epoch",
                               (self.ttl, self.settings.key_id, epoch, self.holder)).fetchone()
            return row is not None
        return bool(self._call("cannot renew the key's lease", renew))

    def release(self, epoch: int) -> None:
        """Let the lease expire now (a clean stop: a standby takes the key at once)."""
        def release(conn: Any) -> None:
            conn.execute("UPDATE key_lease SET expires_at = now() WHERE key_id = %s AND epoch = %s AND holder = %s",
                         (self.settings.key_id, epoch, self.holder))
        self._call("cannot release the key's lease", release)

    def close(self) -> None:
        self._drop()


__all__ = ["DEFAULT_TTL", "Lease", "LeaseHeldError", "LeaseSession", "acquire_lease", "read_leases"]
