"""A cell's audit records commit with its state writes (`PgStateStore.pair_audit`): the order's
`decision` record goes into the lane's commit of the decision's rows (one transaction, still
committed before the send), and records queued meanwhile ride the next write of the store (the
order's outcome) instead of a transaction of their own. Seen from libpq's trace of each
connection and from another session; a failed commit sends nothing and refuses the records."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from rules_engine.audit import verify
from rules_engine.core.events import ActionResult
from rules_engine.core.intents import PlaceOrder
from rules_engine.driver import CommitLane
from rules_engine.driver.lane import Job
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.report import ExecutionReport
from rules_engine.pgstore import PgAuditLog, PgStateStore, StoreSettings, acquire_lease, export_jsonl
from rules_engine.pgstore import audit as pg_audit
from rules_engine.pgstore.fanout import DeliveryClaimer, store_signal

pytestmark = pytest.mark.cluster


@pytest.fixture
def settings(pg_server, pg_dsn) -> StoreSettings:
    return StoreSettings(pg_dsn, "key-rides", pg_server.password)


@pytest.fixture(autouse=True)
def held_queue(monkeypatch):
    """The flusher leaves queues alone for a minute: what commits them is what the test does."""
    monkeypatch.setattr(pg_audit, "LINGER", 60.0)


class Watching:
    """An exchange that accepts every order and looks, from another session, at what is
    committed when an order is sent."""

    concurrent = False

    def __init__(self, look) -> None:
        self.look = look
        self.seen: list[tuple[list[str], list[str]]] = []

    def execute(self, intent, now):
        self.seen.append(self.look())
        return ExecutionReport(ActionResult(intent.intent_id, True, now, {"txid": [f"T-{intent.cl_ord_id}"]}),
                               {"AddOrder": intent.cl_ord_id}, {"result": {"txid": [f"T-{intent.cl_ord_id}"]}})

    def observe(self, tick):
        return []

    def advance(self, now):
        return []


def order(n: int) -> PlaceOrder:
    return PlaceOrder(intent_id=f"i{n}", rule_id="r1", decision_id=f"r1#{n}", cl_ord_id=f"c{n}", pair="XBTUSD",
                      side="buy", ordertype="market", volume=Decimal("0.01"))


class Traces:
    """libpq's trace of a connection, switched on and read back."""

    def __init__(self, conn, path: Path) -> None:
        self.conn, self.path = conn, path
        self.out = path.open("w")
        conn.pgconn.trace(self.out.fileno())

    def read(self) -> str:
        self.conn.pgconn.untrace()
        self.out.close()
        return self.path.read_text()


def sent(trace: str, text: str) -> int:
    """How many messages the client sent (`F` lines of the trace) hold `text`."""
    return sum(1 for line in trace.splitlines() if "\tF\t" in line and text in line)


def world(settings, pg_server, pg_dsn):
    epoch = acquire_lease(settings, "worker-1").epoch
    store = PgStateStore(settings, epoch=epoch)
    log = PgAuditLog(settings, epoch=epoch, mode="live")
    store.pair_audit(log)
    other = pg_server.connect(pg_dsn.rsplit("/", 1)[1])

    def look() -> tuple[list[str], list[str]]:
        decisions = [r[0] for r in other.execute("SELECT cl_ord_id FROM decisions ORDER BY cl_ord_id").fetchall()]
        kinds = [r[0] for r in other.execute("SELECT kind FROM audit ORDER BY seq").fetchall()]
        return decisions, kinds

    executor = Watching(look)
    lane = CommitLane(store, Dispatcher(executor, store, log, mode="live", sent_in_audit=True))
    return store, log, lane, executor, other


def test_the_decision_record_commits_with_the_decisions_rows_before_the_send(settings, pg_server, pg_dsn,
                                                                             tmp_path):
    store, log, lane, executor, other = world(settings, pg_server, pg_dsn)
    with store, log, other:
        log.append("trigger", rule_id="r1", data={"n": 1})  # the decision's trace, queued
        state, audit = Traces(store._db._conn, tmp_path / "state"), Traces(log._db._conn, tmp_path / "audit")
        ((_, report),) = lane.run(Job((order(1),)))
        state_sent, audit_sent = state.read(), audit.read()
        assert report.result.ok
        # at the send: the row and its decision record (after the queued trace) were committed
        assert executor.seen == [(["c1"], ["trigger", "decision"])]
        assert audit_sent == ""  # the chain's own connection sent nothing: its records rode the store's commits
        # two transactions on the store's connection: the decision's rows with its records, then the
        # outcome with the request and response records
        assert sent(state_sent, '"BEGIN"') == 2 and sent(state_sent, '"COMMIT"') == 2
        assert sent(state_sent, "INSERT INTO audit") >= 1 and sent(state_sent, "INSERT INTO decisions") == 1
        assert store.get_decision("c1").status == "accepted"
        kinds = [k for _, k in other.execute("SELECT seq, kind FROM audit ORDER BY seq").fetchall()]
        assert kinds == ["trigger", "decision", "request", "response"]
        assert log.head[0] == 4
    export_jsonl(settings, tmp_path / "chain.jsonl")
    assert verify(tmp_path / "chain.jsonl").ok


def test_only_the_first_new_order_of_a_decision_joins_the_commit(settings, pg_server, pg_dsn):
    """The second order's record is written right before it is sent, as without the store's help:
    the chain keeps each order's decision, request and response together."""
    store, log, lane, executor, other = world(settings, pg_server, pg_dsn)
    with store, log, other:
        lane.run(Job((order(1), order(2))))
        assert executor.seen == [(["c1", "c2"], ["decision"]),
                                 (["c1", "c2"], ["decision", "request", "response", "decision"])]


def test_a_commit_that_fails_sends_nothing_and_refuses_the_records_it_carried(settings, pg_server, pg_dsn,
                                                                              tmp_path):
    store, log, lane, executor, other = world(settings, pg_server, pg_dsn)
    with store, log, other:
        log.append("startup", data={}, sync=True)
        log.append("trigger", rule_id="r1", data={"n": 1})
        other.execute("INSERT INTO audit (key_id, seq, prev_hash, hash, epoch, time, kind, rule_id, line) "
                      "VALUES (%s, 2, 'x', 'y', 1, 0, 'intruder', NULL, '{}')", (settings.key_id,))
        ((_, report),) = lane.run(Job((order(1),)))  # its audit rows collide: the whole commit fails
        assert not report.result.ok and "state could not be saved" in (report.result.error or "")
        assert executor.seen == []  # nothing sent
        assert store.get_decision("c1") is None  # nor committed
        assert log.head[0] == 1  # back to the last committed record
        other.execute("DELETE FROM audit WHERE kind = 'intruder'")
        log.append("trigger", rule_id="r1", data={"n": 2}, sync=True)
        records = [json.loads(line) for (line,) in other.execute("SELECT line FROM audit ORDER BY seq").fetchall()]
        assert [r["kind"] for r in records] == ["startup", "storage_recovered", "trigger"]
        assert records[1]["data"]["refused_records"] == 2  # the trigger and the decision
    export_jsonl(settings, tmp_path / "chain.jsonl")
    assert verify(tmp_path / "chain.jsonl").ok


def test_a_commit_of_the_chain_under_way_is_not_waited_for(settings, pg_server, pg_dsn):
    """A write of the store finds the chain committing its queue (the flusher): it does not wait
    for it and commits its own writes alone."""
    store, log, lane, executor, other = world(settings, pg_server, pg_dsn)
    with store, log, other:
        store.record_decision("c1", "r1", "r1#1", {})
        log.append("trigger", rule_id="r1", data={"n": 1})
        held, release = threading.Event(), threading.Event()

        def flusher() -> None:  # holds the chain's commit lock as the flusher does while it commits
            with log._commit_lock:
                held.set()
                release.wait(30)

        thread = threading.Thread(target=flusher)
        thread.start()
        try:
            assert held.wait(30)
            store.record_outcome("c1", "accepted", {})  # returns without waiting for the lock
            assert other.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
        finally:
            release.set()
            thread.join()
        log.flush()
        assert other.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


def test_a_claims_signal_records_commit_with_the_claim(settings, pg_server, pg_dsn, tmp_path):
    store, log, lane, executor, other = world(settings, pg_server, pg_dsn)
    with store, log, other:
        store_signal(other, "prov", "sig-1", [], {"action": "buy"}, {settings.key_id: {"scale": 1}}, 30.0, "intake")
        claimer = DeliveryClaimer(settings, store.epoch, db=store.connection)

        def audit(taken, expired) -> None:  # what the service's consumer does: a `signal` record per delivery
            for delivery in taken:
                log.append("signal", data={"source": delivery.provider, "signal_id": delivery.signal_id})

        state, chain = Traces(store._db._conn, tmp_path / "state"), Traces(log._db._conn, tmp_path / "audit")
        taken, _ = claimer.claim(time=1.0, audit=audit)
        state_sent, audit_sent = state.read(), chain.read()
        assert [t.signal_id for t in taken] == ["sig-1"]
        assert audit_sent == "" and sent(state_sent, '"BEGIN"') == 1  # one transaction: the claim and its record
        assert other.execute("SELECT kind FROM audit").fetchall() == [("signal",)]
        assert other.execute("SELECT status FROM fanout_deliveries").fetchall() == [("taken",)]
