"""Where the engine's audit records go: the `AuditSink` protocol, met by the hash-chained
`AuditLog` on disk and by `MemoryAudit`, which keeps the records of a throwaway run (a replay
or a rule test with no state folder) in memory, unencoded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from rules_engine.audit.log import check_entry

Entry = tuple[str, str | None, str | None, Mapping[str, Any] | None]
"""(kind, rule id, rule file hash, data)."""


class AuditSink(Protocol):
    """What the driver and the dispatcher write audit records to."""

    def append(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
               data: Mapping[str, Any] | None = None, sync: bool = False) -> dict[str, Any]: ...

    def append_many(self, entries: Iterable[Entry]) -> list[dict[str, Any]]: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class DurableAuditSink(AuditSink, Protocol):
    """A sink that keeps its records (the JSONL `AuditLog`, the PostgreSQL `PgAuditLog`): its
    chain's head, and why it cannot take records (None while it can)."""

    @property
    def head(self) -> tuple[int, str]: ...

    @property
    def failure(self) -> tuple[str, float] | None: ...


class MemoryAudit:
    """The records in a list, in order, as `{"seq", "kind", "rule_id", "rule_hash", "data"}`
    (not redacted, not hashed: nothing leaves the process)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
               data: Mapping[str, Any] | None = None, sync: bool = False) -> dict[str, Any]:
        return self.append_many([(kind, rule_id, rule_file_hash, data)])[0]

    def append_many(self, entries: Iterable[Entry]) -> list[dict[str, Any]]:
        added = []
        for kind, rule_id, rule_hash, data in entries:
            check_entry(kind, rule_id, rule_hash, data)
            record = {"seq": len(self.records) + 1, "kind": kind, "rule_id": rule_id, "rule_hash": rule_hash,
                      "data": dict(data or {})}
            self.records.append(record)
            added.append(record)
        return added

    def sync(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to release."""
