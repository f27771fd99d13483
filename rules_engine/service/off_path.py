"""Disk writes the service does off the tick-to-order path, so that an order waits for one
fsync only (its `decision` audit record's).

- The audit log's periodic sync: an append syncs the log itself (two fsyncs and a rename)
  when `fsync_interval` has passed since the last durable sync; on the event loop that is
  the audit of a tick's decision, on an order's way. The service's housekeeping syncs the
  log every `snapshot_interval` on a worker thread, so `sync_audit_off_path` leaves the
  append's own sync to the case where the housekeeping is far behind.
- The nonce reservation: a Kraken client writes its key's nonce high-water mark to the
  state store (durably) when a nonce would pass the reservation
  (`kraken.nonce.NonceSource`). The housekeeping calls `keep_nonces_ahead` every
  `snapshot_interval`, which renews every reservation with less than half its lease left
  (`execution.factory.NONCE_LEASE_SECONDS`), so no order makes that write.
- The state store's write-ahead log checkpoints: SQLite runs one inside the commit that
  takes the log past 1,000 pages (every 100 orders or so: two fsyncs, a few milliseconds, on
  that order's way), and the next commit syncs the restarted log's header.
  `defer_state_checkpoints` raises that to `CHECKPOINT_BACKSTOP_PAGES` and the housekeeping
  checkpoints the log and starts it over every `snapshot_interval` (`checkpoint_state`).
"""

from __future__ import annotations

from typing import Any

from rules_engine.audit import AuditLog
from rules_engine.kraken.nonce import NonceSource
from rules_engine.state.store import StateStore


def sync_audit_off_path(audit: Any, snapshot_interval: float) -> None:
    """Let an append sync the audit log only when the housekeeping (every `snapshot_interval`)
    is three intervals late (at least 1 s, the log's default)."""
    if isinstance(audit, AuditLog):
        audit.fsync_interval = max(3 * snapshot_interval, audit.fsync_interval)


def nonce_sources(executor: Any) -> list[NonceSource]:
    """The nonce sources of the executor's Kraken clients (none in dry-run)."""
    inner = getattr(executor, "inner", executor)
    sources: list[NonceSource] = []
    for name in ("spot", "futures"):
        source = getattr(getattr(inner, name, None), "nonces", None)
        if isinstance(source, NonceSource) and all(source is not s for s in sources):
            sources.append(source)
    return sources


def nonces_running_low(executor: Any) -> bool:
    """Whether `keep_nonces_ahead` would renew a reservation now (no I/O, no lock)."""
    return any(source.running_low() for source in nonce_sources(executor))


def keep_nonces_ahead(executor: Any) -> int:
    """Renew every reservation running low (see the module docstring); how many were renewed."""
    return sum(source.keep_ahead() for source in nonce_sources(executor))


def defer_state_checkpoints(store: Any) -> None:
    """Leave the SQLite store's checkpoints to `checkpoint_state` (see the module docstring)."""
    if isinstance(store, StateStore):
        store.defer_checkpoints()


def keeps_audit_checkpoint(store: Any) -> bool:
    """Whether the store needs the audit checkpoint (`Dispatcher.audit_checkpoint`): the SQLite
    store's commits may precede the disk, so `restore_sent_decisions` reads the audit log from
    it after a power cut; PostgreSQL's commits are synchronous and nothing is restored (a
    transaction per key and second saved)."""
    return isinstance(store, StateStore)


def checkpoints_state(store: Any) -> bool:
    """Whether the store has a write-ahead log for `checkpoint_state` to checkpoint (SQLite)."""
    return isinstance(store, StateStore)


def checkpoint_state(store: Any) -> None:
    """Checkpoint the SQLite store's write-ahead log (the housekeeping, on a worker thread)."""
    if isinstance(store, StateStore):
        store.checkpoint()
