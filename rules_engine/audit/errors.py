"""Audit log errors.

    AuditError                 the log cannot be written (I/O failure, closed, unusable)
    ├── AuditCorruptError      the existing file is damaged or truncated: appending refused
    └── AuditLockedError       another process has the log open for writing
"""

from __future__ import annotations

from pathlib import Path


class AuditError(Exception):
    """The audit log cannot be written."""


class AuditCorruptError(AuditError):
    """The log on disk is damaged or truncated, so its chain cannot be continued."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(
            f"audit log {path} cannot be continued: {reason}. Nothing was appended. "
            f"Run `rules-engine audit verify {path}` to see the first bad line, then move the "
            f"file and its .head file aside (keep them as evidence) to start a new log."
        )


class AuditLockedError(AuditError):
    """Another process holds the log's write lock."""
