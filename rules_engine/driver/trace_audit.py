"""Every core `TraceRecord` becomes one audit record of the same kind (`trigger`, `guard`,
`decision`, `risk`, `blocked`, `action`, `state`, `dropped`, `error`), with the rule's id
and the SHA-256 of the rule file it came from, and the event time the core saw."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rules_engine.audit.sink import AuditSink, Entry
from rules_engine.core import TraceRecord


def audit_trace(audit: AuditSink, records: Iterable[TraceRecord], rule_hashes: Mapping[str, str]) -> int:
    """Append one audit record per trace record, all with one write; returns how many were written."""
    entries: list[Entry] = []
    for record in records:
        data = dict(record.detail)
        data["event_time"] = record.time
        rule_id = record.rule_id
        entries.append((record.kind, rule_id, rule_hashes.get(rule_id) if rule_id is not None else None, data))
    return len(audit.append_many(entries))
