"""A damaged audit log is never continued: the engine refuses to start on it, unless the
operator starts a new chain segment that records the break.

    log = open_checked(path, mode="live")                       # AuditDamagedError if damaged
    log = open_checked(path, mode="live", accept_damaged="--accept-damaged-audit")

`open_checked` verifies the whole log (`verify`: every record's hash, the chain, the head
file) before opening it. With `accept_damaged` (who accepted it: the `run` flag or the
`audit new-segment` command), `start_new_segment` moves the damaged log and its head file
aside, unchanged, as `audit.jsonl.damaged-<UTC time>` (the evidence), and begins a new log
whose first record, `chain_break`, names that file, its size and SHA-256, the first problem
(line, kind, reason) and the last good record before it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rules_engine.audit.errors import AuditError, AuditLockedError
from rules_engine.audit.head import head_path
from rules_engine.audit.log import AuditLog
from rules_engine.audit.verify import VerifyReport, verify

ACCEPT_FLAG = "--accept-damaged-audit"
_log = logging.getLogger("rules_engine.audit")


class AuditDamagedError(AuditError):
    """The log's chain is damaged: the engine does not add to it."""

    def __init__(self, report: VerifyReport):
        self.report = report
        problem = report.problem
        assert problem is not None
        where = f"line {problem.line}" if problem.line else "its head file"
        super().__init__(
            f"audit log {report.path} is damaged at {where} ({problem.kind}): {problem.reason}. "
            f"The engine does not add to a broken chain. Keep the file as evidence; to go on with a new "
            f"chain segment that records the break, start with {ACCEPT_FLAG} or run "
            f"`rules-engine audit new-segment {report.path.parent}`"
        )


def damage(path: str | os.PathLike[str]) -> VerifyReport | None:
    """The verify report of the log at `path` if it is damaged (None if intact or absent).
    A torn final line alone is not damage: opening the log seals it."""
    path = Path(path)
    if not path.exists():
        return None
    report = verify(path)
    return None if report.ok else report


def open_checked(
    path: str | os.PathLike[str],
    *,
    mode: str,
    clock: Callable[[], float] = time.time,
    accept_damaged: str | None = None,
) -> AuditLog:
    """Open the log at `path` after verifying all of it. A damaged log raises
    AuditDamagedError, unless `accept_damaged` names who accepted it: then a new segment
    begins (see the module docstring)."""
    try:
        report = damage(path)
    except OSError as exc:  # a folder in its place, a file the engine's user cannot read
        raise AuditError(f"cannot read audit log {path}: {exc.strerror}") from None
    if report is not None:
        if not accept_damaged:
            raise AuditDamagedError(report)
        log = start_new_segment(path, report, mode=mode, clock=clock, accepted_by=accept_damaged)
        # said at every start that does it: a flag left in a unit file must not pass damage by unseen
        _log.warning("audit log %s is damaged at %s; kept unchanged beside it as %s.damaged-<UTC time>, and a "
                     "new chain segment begins with a chain_break record (%s)", report.path, report.problem,
                     Path(path).name, accept_damaged)
        return log
    return AuditLog(path, mode=mode, clock=clock)


def start_new_segment(
    path: str | os.PathLike[str],
    report: VerifyReport,
    *,
    mode: str,
    clock: Callable[[], float] = time.time,
    accepted_by: str,
) -> AuditLog:
    """Move the damaged log (and its head file) aside and open a new log whose first record
    is a synced `chain_break` describing the break. Refused (AuditLockedError) while another
    process writes the log."""
    path = Path(path)
    problem = report.problem
    if problem is None:
        raise ValueError("the log is intact: there is no break to record")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    moved = _free_name(path.with_name(f"{path.name}.damaged-{stamp}"))
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AuditLockedError(f"audit log {path} is open for writing in another process") from None
        size, digest = _size_and_digest(fd)
        os.rename(path, moved)
        head = head_path(path)
        moved_head = head_path(moved)
        if head.exists():
            os.rename(head, moved_head)
        _fsync_dir(path.parent)
    finally:
        os.close(fd)
    log = AuditLog(path, mode=mode, clock=clock)
    data: dict[str, Any] = {
        "previous_log": moved.name,
        "previous_head_file": moved_head.name if moved_head.exists() else None,
        "size": size,
        "sha256": digest,
        "problem": {"line": problem.line, "kind": problem.kind, "reason": problem.reason},
        "last_good": {"seq": report.head_seq, "hash": report.head_hash, "records": report.records},
        "accepted_by": accepted_by,
        "note": "the previous log's chain is damaged; it is kept unchanged under previous_log, "
                "and this log is a new chain segment",
    }
    try:
        log.append("chain_break", data=data, sync=True)
    except BaseException:
        log.close()
        raise
    return log


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _size_and_digest(fd: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := os.pread(fd, 1 << 20, size):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
