"""The PostgreSQL backend of the state store and the audit chain (`store: postgresql://...` in
the engine config): one database for many API keys, each key's rows under its `key_id`, a
lease row per key whose epoch fences every write (see docs/audit-and-state.md).

    settings = StoreSettings.parse("postgresql://engine@db:5432/rules", key_id="main", environ=os.environ)
    lease = acquire_lease(settings, holder="host-1:4242")        # epoch + 1: this engine holds the key
    store = PgStateStore(settings, epoch=lease.epoch)            # the StateStore interface, fenced
    audit = PgAuditLog(settings, epoch=lease.epoch, mode="live") # the AuditLog interface, fenced
    export_jsonl(settings, "audit.jsonl")                         # today's JSONL: `audit verify` takes it

Needs the `postgres` extra (`pip install 'rules-engine[postgres]'`: psycopg 3).
"""

from rules_engine.pgstore.audit import PgAuditLog, export_jsonl, export_lines
from rules_engine.pgstore.connection import ConnectionPool, FencedError, StoreSettings, redact_dsn
from rules_engine.pgstore.lease import Lease, acquire_lease, read_leases
from rules_engine.pgstore.store import PgStateStore

__all__ = [
    "ConnectionPool",
    "FencedError",
    "Lease",
    "PgAuditLog",
    "PgStateStore",
    "StoreSettings",
    "acquire_lease",
    "export_jsonl",
    "export_lines",
    "read_leases",
    "redact_dsn",
]
