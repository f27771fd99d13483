"""Group commit of the PostgreSQL audit chain (`PgAuditLog`): `sync=False` records are queued
with their seq and hash and committed later in one transaction, a `sync=True` record commits
the queue before it, a failed commit refuses the queue (the chain still verifies, with a
`storage_recovered` record), and a fenced chain commits nothing queued."""

from __future__ import annotations

import asyncio
import json

import pytest
from e2e_harness import wait_for

from rules_engine.audit import AuditError, verify
from rules_engine.pgstore import PgAuditLog, StoreSettings, acquire_lease, export_jsonl
from rules_engine.pgstore import audit as pg_audit

pytestmark = pytest.mark.cluster


@pytest.fixture
def settings(pg_server, pg_dsn) -> StoreSettings:
    return StoreSettings(pg_dsn, "key-g", pg_server.password)


@pytest.fixture
def held_queue(monkeypatch):
    """The flusher leaves queues alone for a minute: what commits them is what the test does."""
    monkeypatch.setattr(pg_audit, "LINGER", 60.0)


def committed(settings, path) -> list[tuple[int, str]]:
    """(seq, kind) of every record in the table, as another session sees them."""
    export_jsonl(settings, path)
    return [(r["seq"], r["kind"]) for r in map(json.loads, path.read_text().splitlines())]


def test_queued_records_are_committed_in_order_by_the_next_sync_append(settings, tmp_path, held_queue):
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live") as log:
        queued = [log.append("trigger", rule_id="r1", data={"n": n}) for n in range(3)]
        queued += log.append_many([("guard", "r1", "h", {"ok": True}), ("risk", "r1", "h", {"ok": True})])
        assert [r["seq"] for r in queued] == [1, 2, 3, 4, 5]  # numbered in the order appended
        assert [r["prev"] for r in queued[1:]] == [r["hash"] for r in queued[:-1]]
        assert log.head == (5, queued[-1]["hash"])
        assert committed(settings, tmp_path / "before.jsonl") == []  # queued, not committed yet
        decision = log.append("decision", rule_id="r1", data={"cl_ord_id": "c1"}, sync=True)
        assert decision["seq"] == 6 and decision["prev"] == queued[-1]["hash"]
        assert committed(settings, tmp_path / "after.jsonl") == [  # the queue, then the decision
            (1, "trigger"), (2, "trigger"), (3, "trigger"), (4, "guard"), (5, "risk"), (6, "decision")]
        log.append("response", rule_id="r1", data={"cl_ord_id": "c1", "result": {"ok": True}})
        assert log.find_answer("c1", 0) == {"ok": True}  # a reader in the process flushes first
    assert committed(settings, tmp_path / "closed.jsonl")[-1] == (7, "response")
    assert verify(tmp_path / "closed.jsonl").ok


def test_needs_sync_says_whether_records_wait_in_the_queue(settings, tmp_path, held_queue):
    """What the housekeeping looks at before it takes a thread to `sync` the chain."""
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live") as log:
        assert not log.needs_sync()
        log.append("trigger", rule_id="r1", data={"n": 1})
        assert log.needs_sync()
        log.sync()
        assert not log.needs_sync() and committed(settings, tmp_path / "x.jsonl") == [(1, "trigger")]


def test_the_flusher_commits_a_queue_left_alone(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(pg_audit, "LINGER", 0.01)
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live") as log:
        log.append("startup", data={})
        asyncio.run(wait_for(lambda: committed(settings, tmp_path / "x.jsonl") == [(1, "startup")], timeout=10))


def test_a_failed_commit_refuses_the_queue_and_the_chain_still_verifies(settings, pg_server, tmp_path, held_queue):
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live") as log:
        log.append("startup", data={}, sync=True)
        log.append("trigger", rule_id="r1", data={"n": 1})
        log.append("trigger", rule_id="r1", data={"n": 2})
        pg_server.stop_immediate()
        try:
            with pytest.raises(AuditError, match="audit chain"):
                log.flush()
            assert log.failure is not None  # readiness says so
            assert log.head[0] == 1  # back to the last committed record
            with pytest.raises(AuditError):  # while failed, appends are synchronous and refused
                log.append("trigger", rule_id="r1", data={"n": 3})
        finally:
            pg_server.start_again()
        decision = log.append("decision", rule_id="r1", data={"cl_ord_id": "c1"}, sync=True)
        assert decision["seq"] == 3 and log.failure is None
    records = [json.loads(line) for line in _export(settings, tmp_path / "chain.jsonl")]
    assert [(r["seq"], r["kind"]) for r in records] == [(1, "startup"), (2, "storage_recovered"), (3, "decision")]
    assert records[1]["data"]["refused_records"] == 3  # two queued, one refused while failed
    assert verify(tmp_path / "chain.jsonl").ok


def test_a_fenced_chain_commits_nothing_queued(settings, tmp_path, held_queue):
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live") as log:
        log.append("startup", data={}, sync=True)
        log.append("trigger", rule_id="r1", data={"n": 1})
        acquire_lease(settings, "other")  # a takeover: epoch + 1
        with pytest.raises(AuditError, match="fenced"):
            log.append("decision", rule_id="r1", data={"cl_ord_id": "c1"}, sync=True)
        assert log.fenced
        with pytest.raises(AuditError, match="fenced"):
            log.append("trigger", rule_id="r1", data={"n": 2})  # takes nothing, not even into the queue
    assert committed(settings, tmp_path / "chain.jsonl") == [(1, "startup")]


def _export(settings, path) -> list[str]:
    export_jsonl(settings, path)
    return path.read_text().splitlines()
