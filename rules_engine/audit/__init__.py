"""The audit log: append-only, hash-chained JSONL with secrets redacted.

    log = AuditLog(audit_log_path(state_dir), mode="live")
    log.append("trigger", rule_id=rule.id, rule_file_hash=rule.source.file_hash, data={...})
    log.append("decision", rule_id=..., rule_file_hash=..., data={...}, sync=True)  # before sending
    verify(path).ok
    for record in show(path, rule="btc-*", kind=["decision", "risk"], since=t0): ...

Record kinds are free lower-case words; the ones the engine writes, and when, are listed in
docs/audit-and-state.md ("The record kinds").
"""

from rules_engine.audit.errors import AuditCorruptError, AuditError, AuditLockedError
from rules_engine.audit.head import Head, HeadError, head_path, read_head
from rules_engine.audit.log import AuditLog
from rules_engine.audit.query import format_record, parse_time, show
from rules_engine.audit.records import GENESIS, canonical_json, record_hash, to_jsonable
from rules_engine.audit.segment import AuditDamagedError, damage, open_checked, start_new_segment
from rules_engine.audit.verify import Problem, VerifyReport, parse_anchor, verify

__all__ = [
    "GENESIS",
    "AuditLog",
    "AuditError",
    "AuditCorruptError",
    "AuditLockedError",
    "AuditDamagedError",
    "damage",
    "open_checked",
    "start_new_segment",
    "Head",
    "HeadError",
    "head_path",
    "read_head",
    "verify",
    "VerifyReport",
    "Problem",
    "parse_anchor",
    "show",
    "parse_time",
    "format_record",
    "canonical_json",
    "record_hash",
    "to_jsonable",
]
