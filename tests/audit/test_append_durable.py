"""`AuditLog.append_durable`: a record's fsync runs on the log's sync thread while the caller
works, and its `wait` returns only once the record is on disk (or raises the fsync's error)."""

import json
import os
import threading
import time

import pytest

from rules_engine.audit import log as log_module
from rules_engine.audit.errors import AuditError
from rules_engine.audit.head import read_head
from rules_engine.audit.log import AuditLog
from rules_engine.audit.verify import verify

WAIT = 10  # seconds: a bound for a wedged thread, never reached when the code works


class HeldFsync:
    """os.fsync that, once armed, blocks until released: shows what runs while the disk works."""

    def __init__(self, real):
        self.real = real
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = []

    def __call__(self, fd):
        self.calls.append((fd, threading.current_thread().name))
        if self.armed:
            self.entered.set()
            assert self.release.wait(WAIT), "the test never released the fsync"
        return self.real(fd)


@pytest.fixture
def held(monkeypatch):
    fsync = HeldFsync(os.fsync)
    monkeypatch.setattr(log_module.os, "fsync", fsync)
    return fsync


def test_the_caller_goes_on_while_the_fsync_runs_and_wait_returns_once_it_is_done(tmp_path, held):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live", fsync_interval=60, background_fsync_above=0)
    log.append("startup", sync=True)
    held.armed = True
    record, wait = log.append_durable("decision", data={"cl_ord_id": "x"})
    assert held.entered.is_set(), "append_durable returns once the fsync has started"
    assert held.calls[-1][1] == "audit-fsync"  # on the log's own thread
    assert read_head(path).seq == 1  # not durable yet: the head still names the startup record
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (wait(), done.set()))
    waiter.start()
    assert not done.wait(0.05), "wait returned before the fsync finished"
    held.release.set()
    waiter.join(WAIT)
    assert done.is_set()
    head = read_head(path)
    assert (head.seq, head.hash) == (record["seq"], record["hash"])  # pointed at the record, in place
    log.close()
    assert verify(path).ok and verify(path).records == 2


def test_one_fsync_covers_every_record_written_before_it_started(tmp_path, held):
    log = AuditLog(tmp_path / "audit.jsonl", mode="live", fsync_interval=60, background_fsync_above=0)
    log.append("startup", sync=True)
    held.armed = True
    _, first = log.append_durable("decision", data={"n": 1})
    log.append("trigger")  # written while the first fsync is under way
    held.release.set()
    first()
    before = len(held.calls)
    _, second = log.append_durable("decision", data={"n": 2})  # covers "trigger" too: one more fsync
    second()
    assert len(held.calls) == before + 1
    assert log._synced_size == os.path.getsize(log.path) and log._pending == []
    log.close()


def test_a_failed_fsync_is_raised_by_wait_and_the_log_refuses_records_until_the_disk_recovers(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    now = [1_700_000_000.0]
    log = AuditLog(path, mode="live", clock=lambda: now[0], fsync_interval=60, background_fsync_above=0)
    log.append("startup", sync=True)
    real = os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    _, wait = log.append_durable("decision", data={"n": 1})
    with pytest.raises(AuditError, match="could not sync"):
        wait()
    with pytest.raises(AuditError, match="could not sync"):
        wait()  # asked again: still the same answer, never "durable"
    with pytest.raises(AuditError, match="unusable"):
        log.append_durable("decision", data={"n": 2})
    monkeypatch.setattr(log_module.os, "fsync", real)
    now[0] += 1  # past the retry interval: the next write recovers the log first
    _, wait = log.append_durable("decision", data={"n": 3})
    wait()
    log.close()
    kinds = [r["kind"] for r in _records(path)]
    assert kinds == ["startup", "decision", "storage_recovered", "decision"]
    assert verify(path).ok


def test_a_log_that_is_not_durable_never_waits(tmp_path, held):
    log = AuditLog(tmp_path / "audit.jsonl", mode="dry-run", durable=False, background_fsync_above=0)
    _, wait = log.append_durable("decision")
    wait()
    assert held.calls == []
    log.close()


def test_close_finishes_the_fsync_under_way_and_stops_the_thread(tmp_path, held):
    log = AuditLog(tmp_path / "audit.jsonl", mode="live", fsync_interval=60, background_fsync_above=0)
    _, wait = log.append_durable("decision")
    wait()
    thread = log._syncer._thread
    assert thread is not None and thread.is_alive()
    log.close()
    assert not thread.is_alive()


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_where_an_fsync_costs_less_than_the_hand_off_it_is_done_at_once(tmp_path, monkeypatch):
    """A fast disk (here: an fsync that returns at once) is synced inline; once fsyncs cost
    more than `background_fsync_above` (here: 2 ms each), they move to the sync thread."""
    real = os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: None)
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live", fsync_interval=60)
    log.append("startup", sync=True)
    record, wait = log.append_durable("decision")
    assert log._syncer._thread is None and read_head(path).seq == record["seq"]  # synced before it returned
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: (real(fd), time.sleep(0.002)))  # a slow disk
    for n in range(4):
        log.append("trigger", sync=True)
    _, wait = log.append_durable("decision")
    wait()
    assert log._syncer._thread is not None
    log.close()


def test_writers_on_many_threads_each_get_their_record_on_disk_and_the_chain_stays_whole(tmp_path, monkeypatch):
    """Four threads writing decisions (each waiting for its own) while another appends and syncs:
    every wait returns only once the log's durable size covers its record, and the log verifies."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live", fsync_interval=60, fsync_every=7, background_fsync_above=0)
    real = os.fsync
    durable_sizes = []

    def fsync(fd):
        size = os.fstat(fd).st_size
        real(fd)
        durable_sizes.append(size)

    monkeypatch.setattr(log_module.os, "fsync", fsync)
    errors = []

    def decisions(n):
        try:
            for i in range(40):
                record, wait = log.append_durable("decision", data={"writer": n, "i": i})
                wait()
                end = _end_of(path, record["seq"])
                assert max(durable_sizes) >= end, "wait returned before an fsync covered the record"
        except Exception as exc:  # reported below: an assertion in a thread does not fail the test
            errors.append(exc)

    def others():
        for i in range(60):
            log.append("trigger", data={"i": i})
            if i % 10 == 0:
                log.sync()

    threads = [threading.Thread(target=decisions, args=(n,)) for n in range(4)] + [threading.Thread(target=others)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert not any(thread.is_alive() for thread in threads) and errors == []
    log.close()
    result = verify(path)
    assert result.ok and result.records == 4 * 40 + 60
    assert read_head(path).seq == result.records


def _end_of(path, seq):
    """The byte offset just after record `seq` in the log."""
    offset = 0
    with open(path, "rb") as handle:
        for line in handle:
            offset += len(line)
            if json.loads(line)["seq"] == seq:
                return offset
    raise AssertionError(f"record {seq} is not in the log")


def test_an_unexpected_error_on_the_sync_thread_is_raised_by_wait_never_a_hang(tmp_path, monkeypatch):
    log = AuditLog(tmp_path / "audit.jsonl", mode="live", fsync_interval=60, background_fsync_above=0)
    monkeypatch.setattr(log, "_synced_in_background", lambda *args: 1 / 0)  # a bug after the fsync
    _, wait = log.append_durable("decision")
    with pytest.raises(AuditError, match="ZeroDivisionError"):
        wait()
    log.close()
