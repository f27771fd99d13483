"""What the service keeps off the tick-to-order path: the audit log's periodic sync (the
housekeeping does it) and the nonce reservation (`tests/service/executors/test_executor_modes.py`)."""

import os

from rules_engine.audit import AuditLog
from rules_engine.audit.head import read_head
from rules_engine.service.off_path import sync_audit_off_path


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_append_leaves_the_periodic_sync_to_the_housekeeping(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    clock = Clock()
    log = AuditLog(path, mode="live", clock=clock)
    log.append("startup", sync=True)
    log.sync()
    before = len(fsyncs)
    sync_audit_off_path(log, 1.0)
    assert log.fsync_interval == 3.0
    clock.now += 1.5  # past the log's default 1 s: an append would have synced the log itself
    log.append("trigger")
    assert len(fsyncs) == before and read_head(path).seq == 1
    log.sync()  # what the housekeeping does every snapshot_interval, on a worker thread
    assert read_head(path).seq == 2
    clock.now += 3.5  # the housekeeping far behind: the append syncs after all
    log.append("trigger")
    assert read_head(path).seq == 3
    log.close()


def test_a_short_housekeeping_interval_keeps_the_logs_default(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", mode="live", clock=Clock())
    sync_audit_off_path(log, 0.05)  # three intervals would be sooner than the log's own second
    assert log.fsync_interval == 1.0
    log.close()
    memory = AuditLog(tmp_path / "other.jsonl", mode="live", clock=Clock(), durable=False)
    memory.fsync_interval = 5.0  # a log that never fsyncs stays so
    assert memory.fsync_interval == float("inf")
    memory.close()
