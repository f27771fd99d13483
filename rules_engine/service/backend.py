"""Where a running engine keeps its state and its audit chain: the state dir's SQLite file and
JSONL log (the default, unchanged), or PostgreSQL (`store:` in the config).

On PostgreSQL the engine first takes its key's lease (a new epoch: an engine still running on
the same key is fenced from then on and refuses to act; with `standby: true` it waits until
the key's lease lapses and keeps renewing it, `service.ha`), then opens the store and the audit
chain under that epoch. Every commit there is synchronous, so nothing needs restoring from the
audit log after a power cut (`restore_sent_decisions` applies to the state dir only).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rules_engine.audit import AuditError, AuditLockedError, AuditLog, open_checked
from rules_engine.audit.segment import ACCEPT_FLAG
from rules_engine.audit.sink import DurableAuditSink
from rules_engine.config import EngineConfig
from rules_engine.pgstore import ConnectionPool, PgAuditLog, PgStateStore, StoreSettings, acquire_lease
from rules_engine.secret_reader import SecretError
from rules_engine.service.ha import HaCell
from rules_engine.service.kraken_clock import SharedKrakenClock
from rules_engine.service.startup import StartupError
from rules_engine.state import StateStore, StateStoreError, audit_log_path, database_path
from rules_engine.state.protocol import EngineStore

if TYPE_CHECKING:
    from rules_engine.service.worker_leases import WorkerLeases


@dataclass
class Backend:
    audit: DurableAuditSink
    store: EngineStore
    local_log: AuditLog | None  # the JSONL log (state dir only): read back after a power cut
    describe: dict[str, Any]  # for the startup record and /healthz (no password)
    cell: HaCell | None = None  # high availability (`store: {standby: true}`): the lease and the takeover


def holder_name() -> str:
    """Who holds a lease: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def open_backend(config: EngineConfig, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 accept_damaged: bool = False, environ: Mapping[str, str] | None = None,
                 standby_sleep: Callable[[float], None] | None = None,
                 leases: WorkerLeases | None = None, kraken_clock: SharedKrakenClock | None = None,
                 pool: ConnectionPool | None = None) -> Backend:
    """Open the audit chain and the state store the config names (StartupError if it cannot)."""
    if config.store is None:
        try:
            audit = open_checked(audit_log_path(state_dir), mode=config.mode, clock=clock,
                                 accept_damaged=ACCEPT_FLAG if accept_damaged else None)
            try:
                store = StateStore(database_path(state_dir), clock=clock)
            except BaseException:
                audit.close()
                raise
        except AuditLockedError:
            raise StartupError(f"the state dir {state_dir} is in use: another rules-engine (or an audit command) "
                               f"holds its audit log. Only one engine runs on a state dir: stop the other one "
                               f"first, or give this one its own --state-dir") from None
        except (AuditError, StateStoreError) as exc:
            raise StartupError(str(exc)) from None
        return Backend(audit, store, audit, {"kind": "state_dir", "path": str(state_dir)})
    spec = config.store
    try:
        settings = StoreSettings.parse(spec.url, key_id=spec.key, password_env=spec.password_env, environ=environ)
        cell = None
        if spec.standby:  # wait while another engine holds the key, then take it (epoch + 1)
            cell = HaCell(settings, spec, holder_name(), environ=os.environ if environ is None else environ,
                          dead_man_timeout=config.dead_man_timeout, sleep=standby_sleep or time.sleep,
                          leases=leases, kraken_clock=kraken_clock)  # a worker's cell: the worker's shared parts
            try:
                lease = cell.wait_for_key()  # a worker's `standby_sleep` raises StartupError once it stops
            except BaseException:
                cell.close()
                raise
        else:
            lease = acquire_lease(settings, holder_name())
        try:
            pg_store = PgStateStore(settings, epoch=lease.epoch, clock=clock, pool=pool)  # pool: a worker's
            try:
                pg_audit = PgAuditLog(settings, epoch=lease.epoch, mode=config.mode, clock=clock, pool=pool)
            except BaseException:
                pg_store.close()
                raise
            pg_store.pair_audit(pg_audit)  # the key's audit records commit with its state writes
        except BaseException:
            if cell is not None:
                cell.close()
            raise
    except (ValueError, SecretError, StateStoreError, AuditError) as exc:
        raise StartupError(str(exc)) from None
    describe = {"kind": "postgresql", "store": settings.shown, "key": settings.key_id, "epoch": lease.epoch,
                "holder": lease.holder}
    if cell is not None:
        describe.update(standby=True, lease_ttl=spec.lease_ttl)
        cell.store_fenced = lambda: pg_store.fenced or pg_audit.fenced
    return Backend(pg_audit, pg_store, None, describe, cell)
