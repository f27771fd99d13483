"""The one engine loop: events in, intents out through the commit-then-send lane, results back.

Every mode runs this code: the service (`rules-engine run`), replay, rule tests and the demo.
Only the sources of events (WebSocket feeds, webhook, recorded data, test series) and the
executor behind the dispatcher (paper, validate, live) differ, plus the clock:

- **simulated** (`realtime=False`): time is what the inputs say. `advance_to(t)` delivers
  everything due before `t` at its own due time, in time order, so a replay is a pure
  function of its inputs. The lane runs inline and results go straight back in (`feed`
  returns once nothing is left to do).
- **real time** (`realtime=True`): the service wakes up at `next_wakeup()` and calls
  `advance_to(now, inclusive=True)`; what is due is delivered at `now` (a stall coalesces
  timer beats, see `Timetable`). The lane runs on a worker thread (`submit`) and results
  come back through the service's queue (`post`) to `feed`.

For each event, in order:
1. timer beats, `Clock` deadlines (holds maturing, cooldowns ending, results overdue) and
   account syncs due before the event's time are delivered first; the executor is told the
   time too (paper expiries, its dead man's switch);
2. a tick first moves the paper market (fills come back as `OrderUpdate`/`BalanceUpdate`
   events and are handled before the tick);
3. the event goes to the core; the trace is audited; an order's `decision` record is written
   and its fsync begun (`CommitLane.prewrite`); intents, or a fire, become a `Job`: the
   core's state changes are committed with a row per order, then each intent is dispatched
   (`CommitLane`); each result and follow-up event goes back to the core.

**Account state before the first event.** `start` reads the account through the dispatcher
(`Dispatcher.read_account`: balances and open orders, audited as a request and a response)
and hands it to the core, a complete `BalanceUpdate` and an `OrderUpdate` per open order,
before any event, so a guard such as `balance('ZUSD') > 100` or `open_orders() == 0` is
evaluated on the real account from the first tick. An executor that does not report fills as
they happen (validate, live) is read again every `account_every` seconds while rules read
balances; the paper wallet reports every fill itself.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rules_engine.audit import AuditError
from rules_engine.audit.sink import AuditSink
from rules_engine.core import Engine
from rules_engine.core.events import ActionResult, Clock, Event, OrderUpdate, Signal, Tick
from rules_engine.core.intents import Intent
from rules_engine.core.model import RuleSet
from rules_engine.core.trace import Decision, TraceRecord
from rules_engine.crashpoints import crash_point
from rules_engine.driver.lane import CommitLane, Job
from rules_engine.driver.timetable import MissedSlot, Timetable
from rules_engine.driver.trace_audit import audit_trace
from rules_engine.execution.report import ExecutionReport
from rules_engine.needs import TimerEntry

log = logging.getLogger(__name__)

class DriverObserver:
    """Told what the driver did; override what you need (each call must not block)."""

    def decision(self, decision: Decision, received: float | None) -> None:
        """A decision with a trace or intents (quiet ones are not reported)."""

    def report(self, intent: Intent | None, report: ExecutionReport) -> None:
        """An intent was carried out (`intent` None: an order settled at start-up, or an
        account read)."""

    def order_update(self, update: OrderUpdate) -> None:
        """An order's status is about to reach the core (a fill, a cancel, an expiry)."""

    def missed(self, slot: MissedSlot) -> None:
        """A timer slot was dropped as too late (real time only)."""


class Driver:
    """Drives one `Engine` (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        lane: CommitLane,
        audit: AuditSink,
        timetable: Timetable,
        *,
        rule_hashes: dict[str, str],
        realtime: bool = False,
        submit: Callable[[Job], None] | None = None,
        post: Callable[[Event], None] | None = None,
        observers: Iterable[DriverObserver] = (),
        account_every: float | None = None,
    ) -> None:
        self.engine = engine
        self.lane = lane
        self.audit = audit
        self.timetable = timetable
        self.rule_hashes = rule_hashes
        self.realtime = realtime
        self.observers: list[DriverObserver] = list(observers)
        self.account_every = account_every
        self.now = float("-inf")
        self.dirty = False  # state changed since the last commit
        self._submit = submit or self._run_inline
        self._observe = lane.dispatcher.observe
        self._inbox: deque[Event] = deque()
        self._post = post or self._inbox.append
        self._sync_at: float | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self, now: float) -> None:
        """Trace the loaded rules, settle orders a previous run left unresolved, hand every
        run the previous run left waiting its result, and read the account, before any event
        (see the module docstring)."""
        self.now = now
        self._handle(Clock(now), None)
        dispatcher = self.lane.dispatcher
        for report in dispatcher.recover():
            self._settled(report)
        for report in dispatcher.settle_awaited(self.engine.awaited()):
            self._settled(report)
        self.read_account(now, inline=True)
        self._drain()

    def _settled(self, report: ExecutionReport) -> None:
        self._tell_report(None, report)
        for event in (report.result, *report.events):
            self._handle(event, None)

    def reload(self, ruleset: RuleSet, timers: Sequence[TimerEntry], now: float) -> Decision:
        """Swap in new rules (state carries over by rule id) and their timers."""
        self.timetable.replace(timers, max(now, self.now))
        if self.account_every is None:
            self._sync_at = None
        elif self._sync_at is None:
            self._sync_at = max(now, self.now) + self.account_every
        decision = self.engine.replace_rules(ruleset)
        self.process(decision, None)
        self._drain()
        return decision

    def flush(self) -> None:
        """Commit state changes that no decision has carried to disk yet."""
        if self.dirty:
            self.dirty = False
            self.lane.take_changes(self.engine.snapshot_changes())
            self._submit(Job((), True, None))

    # ------------------------------------------------------------------ events

    def feed(self, event: Event, received: float | None = None, *, inbox: int | None = None) -> None:
        """Deliver one event after everything due before its time (simulated: and everything
        it causes). `inbox`: the signal's number in the state store's inbox, dropped by the
        commit that saves its decision (`CommitLane.stage_signal`)."""
        time = event.time
        if time > self.now and self._due_before(time):
            self.advance_to(time)
        if inbox is not None:
            self.lane.stage_signal(inbox)
        if type(event) is Tick:
            fills = self._observe(event)
            if fills:
                for fill in fills:
                    self._handle(fill, received)
        self._handle(event, received)
        if self._inbox:
            self._drain()

    def advance_to(self, until: float, inclusive: bool = False) -> None:
        """Deliver the timer beats, deadlines and account syncs due before `until` (or at it)."""
        while True:
            due, kind = self._next_due()
            if due is None or due > until or (due == until and not inclusive):
                return
            now = until if self.realtime else due
            self.now = max(self.now, now)
            events = list(self.lane.dispatcher.advance(now))
            if kind == "timer":
                beats, missed = self.timetable.due(now)
                for slot in missed:
                    self._missed(slot)
                events.extend(beats)
            elif kind == "account":
                self.read_account(now)
            else:
                events.append(Clock(now))
            for event in events:
                self._handle(event, None)
            self._drain()

    def next_wakeup(self) -> float | None:
        """When something is next due without any event (None: nothing is)."""
        return self._next_due()[0]

    def reported(self, intent: Intent | None, report: ExecutionReport) -> None:
        """An intent was carried out (None: the account was read): its result and follow-up
        events go back in."""
        self._tell_report(intent, report)
        if intent is None:
            for event in self._account_events(report):
                self._post(event)
            return
        if intent.awaits_result:
            self._post(report.result)
        for event in report.events:
            self._post(event)

    def read_account(self, now: float, *, inline: bool = False) -> None:
        """Read the account's balances and open orders through the dispatcher for the core
        (inline: handled before this call returns)."""
        if self.account_every is not None:
            self._sync_at = now + self.account_every
        job = Job((), False, None, account=True)
        if not inline:
            self._submit(job)
            return
        for _, report in self.lane.run(job):
            self._tell_report(None, report)
            for event in self._account_events(report):
                self._handle(event, None)

    # ------------------------------------------------------------------ decisions

    def process(self, decision: Decision, received: float | None) -> None:
        """Audit the decision's trace and send its intents through the lane."""
        fired = False
        if decision.trace:
            fired = self._record(decision.trace)
        intents = tuple(decision.intents)
        prewritten = self.lane.prewrite(intents)  # the first order's decision record: its fsync starts now
        if decision.trace or intents:
            for observer in self.observers:
                observer.decision(decision, received)
        if intents or fired:
            self.dirty = False
            self.lane.take_changes(self.engine.snapshot_changes())
            self._submit(Job(intents, True, received, prewritten=prewritten))
        else:
            self.dirty = True

    def _handle(self, event: Event, received: float | None) -> None:
        if event.time > self.now:
            self.now = event.time
        if type(event) is OrderUpdate:
            for observer in self.observers:
                observer.order_update(event)
        try:
            decision = self.engine.handle(event)
        except Exception as exc:
            log.exception("engine failed on %s", type(event).__name__)
            self._audit("error", None, {"where": "engine", "event": type(event).__name__, "error": repr(exc)})
            return
        if type(event) is ActionResult:
            crash_point("result.after_handled")
        elif type(event) is Signal:
            crash_point("signal.after_decided")
        if decision.trace or decision.intents:
            self.process(decision, received)
        else:
            self.dirty = True

    def _record(self, trace: Sequence[TraceRecord]) -> bool:
        """Audit the trace; whether it records a fire."""
        try:
            audit_trace(self.audit, trace, self.rule_hashes)
        except AuditError as exc:  # the disk's trouble, said once per part by StorageHealth: no traceback
            log.error("audit log write failed: %s", exc)
        return any(r.kind == "decision" and "fire_seq" in r.detail for r in trace)

    def _run_inline(self, job: Job) -> None:
        for intent, report in self.lane.run(job):
            self.reported(intent, report)

    def _drain(self) -> None:
        inbox = self._inbox
        while inbox:
            self._handle(inbox.popleft(), None)

    # ------------------------------------------------------------------ helpers

    def _due_before(self, time: float) -> bool:
        """Whether a deadline, a timer slot or an account read is due before `time` (the
        per-event check; `_next_due` says which)."""
        deadline = self.engine.next_deadline()
        if deadline is not None and self.now < deadline < time:
            return True
        slot = self.timetable.next_slot()
        if slot is not None and slot < time:
            return True
        return self._sync_at is not None and self._sync_at < time

    def _next_due(self) -> tuple[float | None, str]:
        due, kind = None, ""
        deadline = self.engine.next_deadline()
        if deadline is not None and deadline > self.now:  # one already due is resolved by the next event
            due, kind = deadline, "clock"
        slot = self.timetable.next_slot()
        if slot is not None and (due is None or slot <= due):
            due, kind = slot, "timer"
        if self._sync_at is not None and (due is None or self._sync_at < due):
            due, kind = self._sync_at, "account"
        return due, kind

    def _account_events(self, report: ExecutionReport) -> tuple[Event, ...]:
        """The account read's events for the core; a failed read is audited (rules that read
        balances wait until a read succeeds)."""
        if report.result.ok:
            return report.events
        self._audit("error", None, {"where": "account read", "error": report.result.error,
                                    "data": dict(report.result.data)})
        return ()

    def _missed(self, slot: MissedSlot) -> None:
        log.warning("timer of rule %s trigger %d missed its slot %.3f (now %.3f)", slot.rule_id,
                    slot.trigger_index, slot.slot, slot.now)
        self._audit("dropped", slot.rule_id, {"reason": "timer slot missed (engine stalled or clock jumped)",
                                              "trigger": slot.trigger_index, "slot": slot.slot, "now": slot.now})
        for observer in self.observers:
            observer.missed(slot)

    def _tell_report(self, intent: Intent | None, report: ExecutionReport) -> None:
        for observer in self.observers:
            observer.report(intent, report)

    def _audit(self, kind: str, rule_id: str | None, data: dict[str, Any]) -> None:
        try:
            self.audit.append(kind, rule_id=rule_id, rule_file_hash=self.rule_hashes.get(rule_id or ""), data=data)
        except AuditError as exc:  # the disk's trouble, said once per part by StorageHealth: no traceback
            log.error("audit log write failed: %s", exc)
