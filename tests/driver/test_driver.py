"""The driver on its own: what it delivers when, in simulated and in real time, the account
read before the first event and again while rules read balances, and how a failed read is
handled. Built from the real parts (state store, dispatcher, dry-run executor) on a paper
wallet; the clock is a number the test moves."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from rules_engine.audit.sink import MemoryAudit
from rules_engine.core import Engine
from rules_engine.core.events import Tick
from rules_engine.driver import CommitLane, Driver, Timetable
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.dry_run import DryRunExecutor
from rules_engine.execution.paper import PaperExecutor
from rules_engine.execution.report import ExecutionReport, refused
from rules_engine.needs import rule_needs
from rules_engine.paper.exchange import PaperExchange
from rules_engine.rules import load_rules_text
from rules_engine.state import StateStore

T0 = 1767225600.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def ruleset(body: str):
    loaded = load_rules_text("version: 1\nrules:\n" + body)
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    return loaded.ruleset


class FlakyAccount(DryRunExecutor):
    """A dry-run executor whose account reads fail while `failing` is set."""

    failing = False

    def read_account(self, now: float) -> ExecutionReport:
        if self.failing:
            return ExecutionReport(refused("account", now, "EService:Unavailable", "ServiceUnavailable"))
        return super().read_account(now)


def build(tmp_path: Path, body: str, clock: Clock, *, realtime: bool = False, account_every: float | None = None,
          wallet: dict[str, str] | None = None) -> tuple[Driver, MemoryAudit, FlakyAccount]:
    rules = ruleset(body)
    exchange = PaperExchange()
    exchange.set_balances("paper", wallet or {"ZUSD": "1000"})
    store = StateStore(tmp_path / "engine.sqlite", clock=clock, durable=False)
    executor = FlakyAccount(PaperExecutor(exchange), store)
    audit = MemoryAudit()
    needs = rule_needs(rules)
    lane = CommitLane(store, Dispatcher(executor, store, audit, mode="dry-run", clock=clock), clock=clock)
    engine = Engine(rules, balance_max_age=10)
    driver = Driver(engine, lane, audit, Timetable(needs.timers, clock.now, max_lateness=60.0),
                    rule_hashes=dict(needs.rule_hashes), realtime=realtime, account_every=account_every)
    return driver, audit, executor


BALANCE_GUARD = """\
  - id: rich-breakout
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    when: "balance('ZUSD') >= 500"
    actions: [{type: log, message: "breakout with {price}"}]
"""

TIMER = """\
  - id: beat
    triggers: [{type: timer, every: 10s}]
    actions: [{type: log, message: "beat"}]
"""


def tick(seconds: float, price: str) -> Tick:
    p = Decimal(price)
    return Tick("XBTUSD", "spot", T0 + seconds, last=p, bid=p, ask=p)


def kinds(audit: MemoryAudit, kind: str) -> list[dict]:
    return [r for r in audit.records if r["kind"] == kind]


def test_the_account_is_read_before_the_first_event_so_a_balance_guard_holds_on_the_first_crossing(tmp_path):
    clock = Clock()
    driver, audit, _ = build(tmp_path, BALANCE_GUARD, clock)
    driver.start(clock.now)
    assert [r["data"]["kind"] for r in kinds(audit, "request")] == ["account"]
    driver.feed(tick(1, "69000"))
    driver.feed(tick(2, "70500"))
    (guard,) = kinds(audit, "guard")
    assert guard["data"]["result"] is True
    assert [r["data"]["message"] for r in kinds(audit, "action")] == ["breakout with 70500"]
    assert not kinds(audit, "error")


def test_simulated_time_delivers_every_timer_slot_at_its_own_time(tmp_path):
    clock = Clock()
    driver, audit, _ = build(tmp_path, TIMER, clock)
    driver.start(clock.now)
    driver.advance_to(T0 + 35)
    fired = [r["data"]["event_time"] - T0 for r in kinds(audit, "decision") if "fire_seq" in r["data"]]
    assert fired == [10.0, 20.0, 30.0]
    assert driver.next_wakeup() == T0 + 40


def test_real_time_delivers_what_is_due_at_the_moment_it_is_woken_and_coalesces_a_stall(tmp_path):
    clock = Clock()
    driver, audit, _ = build(tmp_path, TIMER, clock, realtime=True)
    driver.start(clock.now)
    clock.now = T0 + 35  # woken 25 s late: slots 10, 20 and 30 coalesce into one beat, none is old enough to drop
    driver.advance_to(clock.now, inclusive=True)
    fires = [r["data"] for r in kinds(audit, "decision") if "fire_seq" in r["data"]]
    assert [(f["event_time"] - T0) for f in fires] == [35.0]
    assert [f["context"]["scheduled_time"] - T0 for f in fires] == [10.0]
    clock.now = T0 + 500  # a long stall: the old slots are dropped and audited
    driver.advance_to(clock.now, inclusive=True)
    dropped = kinds(audit, "dropped")
    assert dropped and "timer slot missed" in dropped[0]["data"]["reason"]


def test_accounts_are_read_again_on_schedule_while_rules_read_balances(tmp_path):
    clock = Clock()
    driver, audit, executor = build(tmp_path, BALANCE_GUARD, clock, account_every=10.0)
    driver.start(clock.now)
    assert driver.next_wakeup() == T0 + 10
    driver.advance_to(T0 + 25)
    reads = [r for r in kinds(audit, "request") if r["data"]["kind"] == "account"]
    assert len(reads) == 3  # at start, +10 s and +20 s
    executor.failing = True
    driver.advance_to(T0 + 31)
    (error,) = kinds(audit, "error")
    assert error["data"]["where"] == "account read" and error["data"]["error"] == "EService:Unavailable"


def test_a_failed_read_at_start_makes_a_balance_guard_wait_instead_of_consuming_the_crossing(tmp_path):
    clock = Clock()
    driver, audit, executor = build(tmp_path, BALANCE_GUARD, clock, account_every=10.0)
    executor.failing = True
    driver.start(clock.now)
    driver.feed(tick(1, "69000"))
    driver.feed(tick(2, "70500"))  # crosses, but the balance is not known: the rule waits
    assert not [r for r in kinds(audit, "action") if "message" in r["data"]]
    assert any("waiting" in str(r["data"].get("reason", "")) for r in kinds(audit, "blocked"))
    executor.failing = False
    driver.advance_to(T0 + 10, inclusive=True)  # the next read succeeds: the waiting rule fires
    assert [r["data"]["message"] for r in kinds(audit, "action") if "message" in r["data"]] == ["breakout with 70500"]


@pytest.mark.parametrize("every", [None, 10.0])
def test_reload_starts_or_stops_the_account_reads(tmp_path, every):
    clock = Clock()
    driver, audit, _ = build(tmp_path, TIMER, clock)
    driver.start(clock.now)
    assert driver.next_wakeup() == T0 + 10  # the timer only
    driver.account_every = every
    rules = ruleset(BALANCE_GUARD)
    driver.reload(rules, rule_needs(rules).timers, T0 + 1)
    assert driver.next_wakeup() == (None if every is None else T0 + 11)
