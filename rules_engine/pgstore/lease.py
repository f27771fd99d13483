"""The lease row of each key: who holds it, its epoch (the fencing token) and until when.

    lease = acquire_lease(settings, holder="host-1:4242")        # epoch + 1; the previous holder is fenced
    lease = acquire_lease(settings, holder="host-2:99", takeover=False)  # only if free or expired

Taking a key raises its epoch by one in one statement; every write of a cell checks its
epoch first (`connection.check_epoch`), so from the moment the new epoch commits, anything
the previous holder still tries to write fails with `FencedError`. Expiry is judged by the
database's clock (`now()`), never a worker's.

What exists today is this building block: the single engine takes its key at start
(`takeover=True`: the last engine started holds the key, an earlier one is fenced and stops
acting). Renewal, standby workers and the takeover protocol (fence, reconcile, act) are to come.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rules_engine.pgstore.connection import StoreSettings, _first_line, connect
from rules_engine.state.store import StateStoreError

DEFAULT_TTL = 6.0
"""Seconds a lease lasts unless renewed (the design note's TTL)."""


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
