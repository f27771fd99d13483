"""An order's `decision` record is written, and its fsync begun, before its rows are committed
(`CommitLane.prewrite`, called by the driver right after the decision's trace): the disk works
while the rows are committed and the order signed. Built from the real parts (AuditLog on disk,
state store, dispatcher, paper executor); jobs are taken from the driver as the service's lanes
take them, so each step can be looked at in between."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from pathlib import Path

from rules_engine.audit import AuditLog
from rules_engine.audit.tail import audited_decision
from rules_engine.core import Engine
from rules_engine.core.events import Tick
from rules_engine.driver import CommitLane, Driver, Timetable
from rules_engine.driver.lane import Job
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.dry_run import DryRunExecutor
from rules_engine.execution.paper import PaperExecutor
from rules_engine.needs import rule_needs
from rules_engine.paper.exchange import PaperExchange
from rules_engine.rules import load_rules_text
from rules_engine.state import StateStore

T0 = 1767225600.0

BUY = """\
version: 1
rules:
  - id: dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 60000}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 50000}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Counting(DryRunExecutor):
    """A paper executor that counts what it was asked to execute."""

    executed = 0

    def execute(self, intent, now):
        self.executed += 1
        return super().execute(intent, now)


class Parts:
    def __init__(self, tmp_path: Path, *, refuse_commits: bool = False) -> None:
        self.clock = Clock()
        loaded = load_rules_text(BUY)
        assert loaded.ruleset is not None
        exchange = PaperExchange()
        exchange.set_balances("paper", {"ZUSD": "100000"})
        self.store = StateStore(tmp_path / "engine.sqlite", clock=self.clock, durable=False)
        self.audit = AuditLog(tmp_path / "audit.jsonl", mode="dry-run", clock=self.clock)
        self.executor = Counting(PaperExecutor(exchange), self.store)
        self.dispatcher = Dispatcher(self.executor, self.store, self.audit, mode="dry-run", clock=self.clock)
        self.lane = CommitLane(self.store, self.dispatcher, clock=self.clock)
        self.jobs: list[Job] = []
        needs = rule_needs(loaded.ruleset)
        self.driver = Driver(Engine(loaded.ruleset), self.lane, self.audit,
                             Timetable(needs.timers, self.clock.now, max_lateness=60.0),
                             rule_hashes=dict(needs.rule_hashes), realtime=True, submit=self.jobs.append)
        self.driver.start(self.clock.now)
        if refuse_commits:
            self.store.transaction = self._refuse  # type: ignore[method-assign]

    @staticmethod
    @contextlib.contextmanager
    def _refuse(*, durable: bool = True):
        raise OSError(28, "No space left on device")
        yield

    def cross(self) -> Job:
        for seconds, price in ((1, "61000"), (2, "59000")):
            self.clock.now = T0 + seconds
            p = Decimal(price)
            self.driver.feed(Tick("XBTUSD", "spot", self.clock.now, last=p, bid=p, ask=p), self.clock.now)
        (job,) = [j for j in self.jobs if j.intents]
        return job

    def records(self, kind: str) -> list[dict]:
        return [r for r in map(json.loads, self.audit.path.read_text().splitlines()) if r["kind"] == kind]

    def close(self) -> None:
        self.audit.close()
        self.store.close()


def test_the_decision_record_is_written_before_its_rows_and_written_once(tmp_path):
    parts = Parts(tmp_path)
    job = parts.cross()
    prewritten = job.prewritten
    assert prewritten is not None
    (decision,) = [r for r in parts.records("decision") if "cl_ord_id" in r["data"]]
    assert decision["data"]["cl_ord_id"] == prewritten.cl_ord_id and decision["seq"] == prewritten.seq
    assert parts.store.get_decision(prewritten.cl_ord_id) is None, "handed over before its rows are committed"
    assert parts.executor.executed == 0

    ((intent, report),) = parts.lane.run(job)
    assert report.result.ok, report.result.error
    row = parts.store.get_decision(prewritten.cl_ord_id)
    assert row is not None and row.status != "pending" and row.created_at == decision["time"]
    assert [r["data"]["cl_ord_id"] for r in parts.records("decision") if "cl_ord_id" in r["data"]] == \
        [prewritten.cl_ord_id], "the dispatcher does not write it again"
    assert parts.executor.executed == 1
    parts.close()


def test_the_audit_checkpoint_stays_before_a_prewritten_record_until_its_rows_are_committed(tmp_path):
    """A power cut before the rows reach the disk must find the record after the checkpoint."""
    parts = Parts(tmp_path)
    job = parts.cross()
    assert job.prewritten is not None and job.prewritten.seq is not None
    assert parts.dispatcher.audit_checkpoint() == job.prewritten.seq - 1
    parts.lane.run(job)
    assert parts.dispatcher.audit_checkpoint() == parts.audit.head[0]
    parts.close()


def test_a_lane_that_runs_late_still_finds_the_record_when_looking_back_from_the_row(tmp_path):
    """A restart decides whether a pending order may have left by reading the log back from its
    row's time (less 5 s): the row takes the record's time, however late the lane ran."""
    parts = Parts(tmp_path)
    job = parts.cross()
    parts.clock.now += 60
    parts.lane.commit(job.intents, job.prewritten)  # the rows alone, as if killed right after the commit
    assert job.prewritten is not None
    row = parts.store.get_decision(job.prewritten.cl_ord_id)
    assert row is not None and row.status == "pending"
    for _ in range(50):
        parts.audit.append("trigger", data={"later": True})
    assert audited_decision(parts.audit.path, row.cl_ord_id, row.created_at)
    assert parts.dispatcher.may_have_left(row)
    parts.close()


def test_rows_that_cannot_be_saved_leave_the_order_unsent_and_audited_abandoned(tmp_path):
    parts = Parts(tmp_path, refuse_commits=True)
    job = parts.cross()
    assert job.prewritten is not None
    ((intent, report),) = parts.lane.run(job)
    assert not report.result.ok and "state could not be saved" in str(report.result.error)
    assert parts.executor.executed == 0
    (abandoned,) = parts.records("abandoned")
    assert abandoned["data"]["cl_ord_id"] == job.prewritten.cl_ord_id
    assert "not sent" in abandoned["data"]["reason"]
    assert parts.dispatcher.audit_checkpoint() == parts.audit.head[0], "a record never sent holds nothing back"
    parts.close()


def test_no_prewrite_where_the_record_commits_with_the_rows_or_a_decision_is_not_all_orders(tmp_path):
    parts = Parts(tmp_path)
    job = parts.cross()
    parts.lane.run(job)
    order = job.intents[0]
    assert parts.lane.prewrite(()) is None

    class Cancel:  # any intent that is not an order
        rule_id = "dip"

    assert parts.lane.prewrite((order, Cancel())) is None  # type: ignore[arg-type]
    parts.store.audit_with_commit = lambda append: append()  # type: ignore[attr-defined]
    assert parts.lane.prewrite((order,)) is None
    parts.close()
