"""The engine: events in, a decision (intents plus the trace of why) out.

Pure: no I/O, no clock, no asyncio. Time comes with each event; `next_deadline()` tells the
adapter when to send a `Clock` event so that `for:` holds, cooldowns and overdue results
resolve without a market event. One `handle(event)` call, in order:

1. update the view from the event (quotes, balances, orders, action results -> resumed runs);
2. pass it to the watchers of the loaded trigger types (`rules_engine.core.watch`), which say
   which rules it fired; the engine names no trigger type;
3. re-check pending rules (`for:` holds, and guards waiting for a value not known yet: the
   trigger still holds, the guard can be evaluated and holds) and fire those that are due;
4. expire overdue results and finished cooldowns;
5. fire the rules the event triggered, in descending priority, ties in load order.

A rule passes these gates before its actions run: kill switch, not already pending, not
cooling down, `max_fires` not reached, `mode` (single drops a fire while a run is in progress,
queued queues it), then its guard (`when`), then its hold (`for:`). A guard that reads a value
not known yet (`StateNotReady`) makes the rule wait for it, at most `result_timeout`. Risk
limits are checked later, on each order, by the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rules_engine.core.env import RUNTIME_NAMES, EvalFailure, StateNotReady, build_env, evaluate_guard
from rules_engine.core.events import (
    ActionResult,
    BalanceUpdate,
    Clock,
    Event,
    FeedReset,
    KillSwitch,
    OpenOrders,
    OrderUpdate,
    Signal,
    Tick,
    TimerBeat,
)
from rules_engine.core.futures_ids import FUTURES_PRODUCT_ID
from rules_engine.core.ids import decision_id
from rules_engine.core.intents import CancelAll
from rules_engine.core.model import Rule, RuleSet, TriggerSpec
from rules_engine.core.risk import RiskLimits
from rules_engine.core.runs import Runner
from rules_engine.core.state import (
    EngineState,
    InFlight,
    PendingHold,
    RulePart,
    RuleState,
    RuleStatus,
    Run,
    SnapshotChanges,
    fingerprint,
)
from rules_engine.core.trace import Decision, Step, TraceRecord, intent_detail
from rules_engine.core.views import CLOSED_STATUSES, OrderView, to_decimal
from rules_engine.core.watch import UNBOUNDED, Armed, Band, Fire, Lapsed, Watcher, WatchHost, narrow


class Engine:
    """The rule engine core. Feed it events with `handle`; persist `snapshot()` (or, cheaper,
    what `snapshot_changes()` reports); restore with
    `Engine(ruleset, limits, EngineState.from_snapshot(data))`; hot-reload with `replace_rules`.

    - `balance_max_age`: how long a seen balance is fresh enough for `check_balance`.
    - `result_timeout`: a run awaiting an action result longer than this is stopped; a guard
      waiting for a value not known yet longer than this is dropped.
    - `max_queued`: queued-mode firings waiting behind a run (more are dropped).
    - `installation`: the state dir's installation id, part of every client order id
      (`core.ids.client_order_id`); empty in replay and rule tests.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        limits: RiskLimits | None = None,
        state: EngineState | None = None,
        *,
        balance_max_age: float = 10.0,
        result_timeout: float = 60.0,
        max_queued: int = 10,
        installation: str = "",
    ):
        self.limits = limits or RiskLimits()
        self._state = state or EngineState()
        self._max_queued = max_queued
        self._result_timeout = result_timeout
        functions: dict[str, Callable[..., Any]] = {
            "balance": self._balance, "price_of": self._price_of, "open_orders": self._open_orders,
        }
        self._functions = functions
        self._runner = Runner(self._state, self.limits, functions, self._refresh,
                              balance_max_age=balance_max_age, result_timeout=result_timeout,
                              installation=installation)
        self._handlers: dict[type, Callable[[Any, Step], None]] = {
            Tick: self._on_tick,
            Signal: _nothing,
            TimerBeat: _nothing,
            ActionResult: self._on_result,
            Clock: _nothing,
            BalanceUpdate: self._on_balance,
            OrderUpdate: self._on_order,
            OpenOrders: self._on_open_orders,
            KillSwitch: self._on_kill,
            FeedReset: self._on_feed_reset,
        }
        self._ruleset = RuleSet(())
        self._by_id: dict[str, Rule] = {}
        self._rank: dict[str, tuple[int, int]] = {}
        self._changed: set[str] = set()  # rules whose part of the snapshot may have changed
        self._all_changed = True  # every rule's part: after construction and reloads
        self._host = WatchHost(self._state, functions, self._changed)
        self._watchers: dict[type[Watcher], Watcher] = {}
        self._routes: dict[type, list[Callable[[Any, Step], list[Fire]]]] = {}
        self._armed: dict[tuple[str, int], tuple[Armed, str]] = {}
        self._armed_of: dict[str, list[tuple[int, Armed, str]]] = {}
        self._active: set[str] = set()
        self._pending: set[str] = set()
        self._due_at: float | None = None
        self._preamble: list[TraceRecord] = []
        self._load(ruleset, Step(self._state.now, self._preamble))

    # ------------------------------------------------------------------ public API

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    def handle(self, event: Event) -> Decision:
        """Process one event; never raises for a rule's errors (they are traced)."""
        now = max(self._state.now, event.time)
        self._state.now = now
        step = Step(now, self._preamble)
        self._preamble = []
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not an engine event: {type(event).__name__}")
        handler(event, step)
        candidates: list[Fire] = []
        for watch in self._routes.get(type(event), ()):
            fires = watch(event, step)
            if fires:
                candidates = _lowest_per_rule(candidates + fires) if candidates else list(fires)
        if self._pending:
            self._check_pending(step)
        if self._due_at is not None and now >= self._due_at:
            self._resolve_due(step)
        if candidates:
            candidates.sort(key=lambda c: self._rank[c.rule.id])
            for fire in candidates:
                self._on_trigger(fire, step)
        if step.records:
            changed = self._changed
            for record in step.records:  # every change to a rule's state is traced under its id
                if record.rule_id is not None:
                    changed.add(record.rule_id)
        return step.decision()

    def awaited(self) -> dict[str, tuple[str, str | None]]:
        """The intents whose result the core still awaits: `{intent_id: (kind, order key)}`
        (the order key is the order's client order id). After a restart the driver hands
        each its result (`Dispatcher.settle_awaited`), so no run stays waiting."""
        return {intent_id: (flight.kind, flight.order_key) for intent_id, flight in self._state.inflight.items()}

    def fired(self, rule_id: str, fire_seq: int) -> tuple[TriggerSpec, float] | None:
        """The trigger that made fire `fire_seq` of a rule and when it fired, while that run
        is kept (running, waiting for a result, or queued); None otherwise. Read at start-up
        to judge whether an order that was never placed is still fresh enough to send."""
        rule, rs = self._by_id.get(rule_id), self._state.rules.get(rule_id)
        if rule is None or rs is None:
            return None
        for run in (rs.run, *rs.queue):
            if run is not None and run.fire_seq == fire_seq and 0 <= run.trigger_index < len(rule.triggers):
                return rule.triggers[run.trigger_index], run.fired_at
        return None
    def quiet_band(self, market: str, symbol: str, firing: bool = False) -> Band | None:
        """The open interval of prices a tick of `symbol` with bid = ask = last can move to and
        change nothing but the quotes (no crossing changes state, no hold or deadline is
        checked), from the watchers' sorted level indexes; None when no such promise holds.
        It holds while `holding` is False and before `next_deadline()`. An offline source may
        hold such ticks back and deliver the latest before anything else. With `firing`: the
        prices at which no trigger fires (crossings may re-arm: state of this symbol only)."""
        quiet = UNBOUNDED
        for watcher in self._watchers.values():
            if Tick not in watcher.events:
                continue
            band = watcher.quiet_band(market, symbol, firing)
            if band is None:
                return None
            quiet = narrow(quiet, band)
        return quiet

    @property
    def holding(self) -> bool:
        """A `for:` hold or a wait is pending: every event re-checks it."""
        return bool(self._pending)

    def deadlines_end_cooldowns_only(self) -> bool:
        """Whether every deadline pending is a cooldown's end: no hold, wait, run or queued run
        is pending, so what is due reads no price and changes only statuses (an offline source
        may deliver it before the ticks it holds back in the quiet band)."""
        rules = self._state.rules
        for rule_id in self._active:
            rs = rules.get(rule_id)
            if rs is not None and (rs.run is not None or rs.pending is not None or rs.queue):
                return False
        return True

    def next_deadline(self) -> float | None:
        """The earliest time a hold matures, a wait or a cooldown ends or an awaited result is overdue."""
        return self._due_at

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data with Decimals (JSON via `rules_engine.jsoncodec`, as the state
        store writes it); restore with `EngineState.from_snapshot`."""
        self._state.watches = {f"{rid}#{i}": (fp, a.state) for (rid, i), (a, fp) in self._armed.items()}
        return self._state.to_snapshot()

    def snapshot_changes(self) -> SnapshotChanges:
        """What changed since the previous call (everything on the first call and after a
        reload): the engine-wide part and the parts of the rules that may have changed. A
        store that applies each in turn holds `snapshot()` (see `SnapshotChanges`)."""
        state = self._state
        complete = self._all_changed
        if complete:
            ids = list(dict.fromkeys([*state.rules, *state.fire_seq, *self._armed_of]))
        else:
            ids = sorted(self._changed)
        self._changed.clear()
        self._all_changed = False
        return SnapshotChanges(state.base_snapshot(), {rule_id: self._rule_part(rule_id) for rule_id in ids}, complete)

    def _rule_part(self, rule_id: str) -> RulePart | None:
        part: RulePart = {}
        rs = self._state.rules.get(rule_id)
        if rs is not None:
            part["rules"] = {rule_id: rs.to_json()}
        armed = self._armed_of.get(rule_id)
        if armed:
            part["watches"] = {f"{rule_id}#{i}": [fp, a.state] for i, a, fp in armed}
        seq = self._state.fire_seq.get(rule_id)
        if seq is not None:
            part["fire_seq"] = {rule_id: seq}
        return part or None

    def replace_rules(self, ruleset: RuleSet) -> Decision:
        """Hot reload: state carries over by rule id (and unchanged definition); new rules and
        changed triggers start unobserved, removed rules are dropped."""
        step = Step(self._state.now)
        self._load(ruleset, step)
        self._all_changed = True
        return step.decision()

    def rule_status(self, rule_id: str) -> RuleStatus | None:
        rs = self._state.rules.get(rule_id)
        return rs.status if rs else None

    def trigger_states(self, rule_id: str) -> dict[int, str]:
        """Arming state of each of the rule's triggers that keeps one (price and spread crossings:
        unobserved / armed / disarmed)."""
        return {i: a.state for i, a, _ in self._armed_of.get(rule_id, ())}

    # ------------------------------------------------------------------ loading

    def _load(self, ruleset: RuleSet, step: Step) -> None:
        state = self._state
        self._active, self._pending = set(), set()
        if self._armed:
            previous = {f"{rid}#{i}": (fp, a.state) for (rid, i), (a, fp) in self._armed.items()}
        else:
            previous = dict(state.watches)
        by_id = {rule.id: rule for rule in ruleset.rules}
        removed = [rid for rid in state.rules if rid not in by_id]
        for rule_id in removed:
            self._abandon(rule_id, state.rules.pop(rule_id), step, "rule removed")
        added, changed = [], []
        for rule in ruleset.rules:
            rs = state.rules.get(rule.id)
            actions_fp = fingerprint(rule.actions)
            gate_fp = fingerprint((rule.triggers, rule.when, rule.hold))
            if rs is None:
                rs = state.rules[rule.id] = RuleState()
                added.append(rule.id)
            else:
                if rs.actions_fp != actions_fp or rs.gate_fp != gate_fp:
                    changed.append(rule.id)
                if rs.actions_fp != actions_fp:
                    self._abandon(rule.id, rs, step, "rule actions changed", keep_pending=True)
                if rs.pending and (rs.gate_fp != gate_fp or not rule.enabled):
                    self._cancel_pending(rule.id, rs, step, "rule triggers, guard or hold changed"
                                         if rule.enabled else "rule disabled")
            rs.actions_fp, rs.gate_fp = actions_fp, gate_fp
        self._ruleset, self._by_id = ruleset, by_id
        self._rank = {rule.id: (-rule.priority, n) for n, rule in enumerate(ruleset.rules)}
        self._runner.rules = self._host.rules = by_id
        provided = {name for rule in ruleset.rules for trigger in rule.triggers for name in trigger.provides}
        self._runner.blank = self._host.blank = dict.fromkeys(sorted(provided | {RUNTIME_NAMES[0]}))
        self._watch(ruleset, previous, step)
        state.watches = {}
        step.record("state", None, rules_loaded=len(ruleset.rules), added=added, changed=changed, removed=removed)
        for rule in ruleset.rules:
            self._refresh(rule.id, step)

    def _watch(self, ruleset: RuleSet, previous: dict[str, tuple[str, str]], step: Step) -> None:
        """One watcher per trigger type in the enabled rules, each given its triggers."""
        self._watchers, self._routes = {}, {}
        self._armed, self._armed_of = {}, {}
        for rule in ruleset.rules:
            if not rule.enabled:
                continue
            for index, trigger in enumerate(rule.triggers):
                cls = trigger.watcher
                watcher = self._watchers.get(cls)
                if watcher is None:
                    watcher = self._watchers[cls] = cls(self._host)
                    for event_type in cls.events:
                        self._routes.setdefault(event_type, []).append(watcher.on_event)
                if not cls.keeps_state:
                    watcher.add(rule, index, trigger, None)
                    continue
                fp = fingerprint(trigger)
                kept = previous.get(f"{rule.id}#{index}")
                armed = watcher.add(rule, index, trigger, kept[1] if kept and kept[0] == fp else None)
                if armed is not None:
                    self._armed[(rule.id, index)] = (armed, fp)
                    self._armed_of.setdefault(rule.id, []).append((index, armed, fp))
        for watcher in self._watchers.values():
            watcher.start(step)

    def _abandon(self, rule_id: str, rs: RuleState, step: Step, reason: str, keep_pending: bool = False) -> None:
        """Drop a rule's run and queue (their in-flight intents stay tracked) and, unless kept, its hold."""
        for run in ([rs.run] if rs.run else []) + rs.queue:
            step.record("dropped", rule_id, decision_id=decision_id(rule_id, run.fire_seq), reason=reason)
        rs.run = None
        rs.queue.clear()
        if rs.pending and not keep_pending:
            self._cancel_pending(rule_id, rs, step, reason)

    # ------------------------------------------------------------------ the view

    def _on_tick(self, tick: Tick, step: Step) -> None:
        values: dict[str, Decimal] = {}
        if tick.last is not None:
            values["last"] = tick.last
        if tick.bid is not None:
            values["bid"] = tick.bid
        if tick.ask is not None:
            values["ask"] = tick.ask
        self._state.quotes.update(tick.market, tick.symbol, values)

    def _on_result(self, result: ActionResult, step: Step) -> None:
        self._runner.on_result(result, step)

    def _on_balance(self, update: BalanceUpdate, step: Step) -> None:
        try:
            balances = {asset: to_decimal(amount) for asset, amount in update.balances.items()}
        except (ArithmeticError, ValueError) as exc:
            step.record("error", None, reason=f"balance update ignored: {exc}")
            return
        self._state.balances.apply(balances, update.time, update.snapshot)

    def _on_order(self, update: OrderUpdate, step: Step) -> None:
        orders = self._state.orders
        order = orders.find(txid=update.txid, cl_ord_id=update.cl_ord_id)
        closed = update.status.lower() in CLOSED_STATUSES
        if closed or update.filled:
            self._state.balances.invalidate()
        if order is None:
            key = update.cl_ord_id or update.txid
            if not closed and key is not None:
                orders.add(OrderView(key=key, market=update.market, pair=update.pair, status="open",
                                     cl_ord_id=update.cl_ord_id, txids=[update.txid] if update.txid else [],
                                     volume=update.volume, price=update.price,
                                     filled=update.filled or Decimal(0), placed_at=step.now))
            return
        if closed:
            orders.remove(order)
        else:
            order.status = "open"
            if update.txid and update.txid not in order.txids:
                orders.set_txids(order, order.txids + [update.txid])
            if update.filled is not None:
                orders.set_filled(order, update.filled)
        if order.rule_id is not None:
            step.record("action", order.rule_id, order=order.key, txid=update.txid, status=update.status,
                        filled=update.filled)

    def _on_open_orders(self, event: OpenOrders, step: Step) -> None:
        listed = set(event.txids)
        orders = self._state.orders
        for order in orders:
            if (order.market != event.market or not order.txids or listed.intersection(order.txids)
                    or order.placed_at > event.time):
                continue
            orders.remove(order)
            self._state.balances.invalidate()
            if order.rule_id is not None:
                step.record("action", order.rule_id, order=order.key, txid=order.txids[0], status="closed",
                            reason="no longer open on the exchange")

    def _on_kill(self, event: KillSwitch, step: Step) -> None:
        kill = self._state.kill
        if not event.engaged:
            if kill.engaged:
                kill.engaged, kill.since, kill.reason = False, None, ""
                step.record("state", None, kill_switch="cleared", reason=event.reason)
            return
        kill.count += 1
        if not kill.engaged:
            kill.engaged, kill.since, kill.reason = True, step.now, event.reason
        step.record("blocked", None, kill_switch="engaged", reason=event.reason, cancel_all=event.cancel_all)
        for rule in self._ruleset.rules:
            rs = self._state.rules[rule.id]
            if rs.pending:
                self._cancel_pending(rule.id, rs, step, "kill switch engaged")
            if rs.run or rs.queue:
                self._runner.abort(rule, rs, step, "kill switch engaged")
        if event.cancel_all:
            for market in self._markets():
                intent = CancelAll(intent_id=f"kill-switch#{kill.count}/{market}", rule_id=None,
                                   decision_id=None, market=market)
                self._state.inflight[intent.intent_id] = InFlight("cancel_all", None, market, step.now)
                step.emit(intent)
                step.record("action", None, **intent_detail(intent))

    def _on_feed_reset(self, event: FeedReset, step: Step) -> None:
        quotes = self._state.quotes
        market = event.market
        symbols = event.symbols or tuple(sorted(
            set(quotes.symbols(market)).union(*(w.symbols(market) for w in self._watchers.values()))
        ))
        quotes.forget(market, symbols)
        for watcher in self._watchers.values():
            watcher.reset(market, symbols)
        step.record("trigger", None, feed_reset=market, symbols=list(symbols))

    # ------------------------------------------------------------------ gates, holds, fires

    def _on_trigger(self, fire: Fire, step: Step) -> None:
        rule, index, context = fire.rule, fire.trigger_index, fire.context
        rs = self._state.rules[rule.id]
        now = step.now
        if self._state.kill.engaged:
            step.record("blocked", rule.id, trigger=index, reason="kill switch engaged")
            return
        if rs.pending is not None:
            what = f"waiting for {rs.pending.waiting}" if rs.pending.waiting else "for: hold in progress"
            step.record("dropped", rule.id, trigger=index, reason=f"already pending ({what})")
            return
        if rs.cooldown_until is not None and now < rs.cooldown_until:
            step.record("dropped", rule.id, trigger=index, reason="cooling down", until=rs.cooldown_until)
            return
        if rule.max_fires is not None:
            rs.fire_times = [t for t in rs.fire_times if t > now - rule.max_fires.window]
            if len(rs.fire_times) >= rule.max_fires.count:
                step.record("dropped", rule.id, trigger=index, reason="max_fires reached",
                            fires=len(rs.fire_times), count=rule.max_fires.count, window=rule.max_fires.window)
                return
        if rs.run is not None and rule.mode == "single":
            step.record("dropped", rule.id, trigger=index, reason="previous run still in progress",
                        decision_id=decision_id(rule.id, rs.run.fire_seq))
            return
        if fire.waiting is not None:  # the trigger's own condition could not be evaluated yet
            self._wait(rule, rs, PendingHold(index, now, now + self._result_timeout, context, "wait",
                                             trigger_ready=False), fire.waiting, step)
            return
        verdict = self._guard(rule, context, step, index)
        if isinstance(verdict, StateNotReady):
            self._wait(rule, rs, PendingHold(index, now, now + self._result_timeout, context, "wait"), verdict, step)
        elif verdict:
            self._proceed(rule, rs, index, context, step)

    def _proceed(self, rule: Rule, rs: RuleState, index: int, context: dict[str, Any], step: Step) -> None:
        """The guard holds: start the `for:` hold, or fire."""
        if rule.hold:
            now = step.now
            rs.pending = PendingHold(index, now, now + rule.hold, context)
            step.record("state", rule.id, trigger=index, pending_until=now + rule.hold)
            self._refresh(rule.id, step)
            return
        self._fire(rule, rs, index, context, step)

    def _guard(self, rule: Rule, context: dict[str, Any], step: Step, index: int,
               phase: str = "trigger") -> bool | StateNotReady:
        """Evaluate `when`; trace the result and the values seen. An error counts as false; a
        value not known yet is returned (the caller waits for it)."""
        if rule.when is None:
            return True
        seen: list[dict[str, Any]] = []
        env = build_env(context, rule.id, step.now, self._functions, self._host.blank)
        try:
            result = evaluate_guard(rule.when, env, "when", seen)
        except EvalFailure as failure:
            if failure.not_ready is not None:
                return failure.not_ready
            step.record("error", rule.id, trigger=index, phase=phase, reason=failure.reason, **failure.detail())
            return False
        step.record("guard", rule.id, trigger=index, phase=phase, result=result, values=seen)
        return result

    def _wait(self, rule: Rule, rs: RuleState, pending: PendingHold, missing: StateNotReady, step: Step) -> None:
        """Hold on to the fired trigger until `missing` is known (traced once per thing missing)."""
        rs.pending = pending
        self._note_waiting(rule.id, pending, missing, step)
        self._refresh(rule.id, step)

    def _note_waiting(self, rule_id: str, pending: PendingHold, missing: StateNotReady, step: Step) -> None:
        if pending.waiting != missing.what:
            pending.waiting = missing.what
            step.record("blocked", rule_id, trigger=pending.trigger_index, reason=f"waiting for {missing.what}",
                        waiting=missing.what, until=self._pending_deadline(pending))

    def _fire(self, rule: Rule, rs: RuleState, index: int, context: dict[str, Any], step: Step) -> None:
        if rs.run is not None and len(rs.queue) >= self._max_queued:
            step.record("dropped", rule.id, trigger=index, reason="queue full", max_queued=self._max_queued)
            return
        state = self._state
        seq = state.fire_seq.get(rule.id, 0) + 1
        state.fire_seq[rule.id] = seq
        if rule.max_fires is not None:
            rs.fire_times.append(step.now)
        if rule.cooldown:
            rs.cooldown_until = step.now + rule.cooldown
        run = Run(seq, index, context, step.now)
        step.record("decision", rule.id, decision_id=decision_id(rule.id, seq), fire_seq=seq, trigger=index,
                    context={k: v for k, v in context.items() if v is not None})
        if rs.run is not None:
            rs.queue.append(run)
            step.record("state", rule.id, decision_id=decision_id(rule.id, seq), queued=len(rs.queue),
                        behind=decision_id(rule.id, rs.run.fire_seq))
            self._refresh(rule.id, step)
        else:
            self._runner.start(rule, rs, run, step)

    def _check_pending(self, step: Step) -> None:
        for rule_id in sorted(self._pending, key=self._rank.__getitem__):
            rule, rs = self._by_id[rule_id], self._state.rules[rule_id]
            pending = rs.pending
            if pending is None:
                continue
            index = pending.trigger_index
            trigger = rule.triggers[index]
            watcher = self._watchers.get(trigger.watcher)
            checked: dict[str, Any] | Lapsed | StateNotReady
            if watcher is None:
                checked = Lapsed("trigger no longer watched", {})
            else:
                checked = watcher.recheck(rule, index, dict(pending.context), step, pending.trigger_ready)
            if isinstance(checked, Lapsed):
                self._cancel_pending(rule_id, rs, step, checked.reason, **checked.detail)
                continue
            if isinstance(checked, StateNotReady):
                self._still_waiting(rule_id, rs, pending, checked, step)
                continue
            context = checked
            pending.trigger_ready = True
            if pending.kind == "wait":
                self._check_wait(rule, rs, pending, context, step)
            else:
                self._check_hold(rule, rs, pending, context, step)

    def _check_wait(self, rule: Rule, rs: RuleState, pending: PendingHold, context: dict[str, Any],
                    step: Step) -> None:
        verdict = self._guard(rule, context, step, pending.trigger_index, phase="wait")
        if isinstance(verdict, StateNotReady):
            self._still_waiting(rule.id, rs, pending, verdict, step)
            return
        rs.pending = None
        self._refresh(rule.id, step)
        if verdict:
            self._proceed(rule, rs, pending.trigger_index, context, step)

    def _check_hold(self, rule: Rule, rs: RuleState, pending: PendingHold, context: dict[str, Any],
                    step: Step) -> None:
        rule_id = rule.id
        matured = step.now >= pending.until
        if rule.when is not None:
            seen: list[dict[str, Any]] = []
            env = build_env(context, rule_id, step.now, self._functions, self._host.blank)
            try:
                holds = evaluate_guard(rule.when, env, "when", seen)
            except EvalFailure as failure:
                if failure.not_ready is not None:
                    self._still_waiting(rule_id, rs, pending, failure.not_ready, step)
                    return
                step.record("error", rule_id, phase="hold", reason=failure.reason, **failure.detail())
                self._cancel_pending(rule_id, rs, step, "guard failed to evaluate")
                return
            if not holds:
                self._cancel_pending(rule_id, rs, step, "guard no longer holds", values=seen)
                return
            if pending.waiting is not None:
                pending.waiting = None
                self._refresh(rule_id, step)
            if matured:
                step.record("guard", rule_id, trigger=pending.trigger_index, phase="hold matured", result=True,
                            values=seen)
        if matured:
            rs.pending = None
            self._refresh(rule_id, step)
            self._fire(rule, rs, pending.trigger_index, context, step)

    def _still_waiting(self, rule_id: str, rs: RuleState, pending: PendingHold, missing: StateNotReady,
                       step: Step) -> None:
        """The guard still cannot be evaluated: trace a new reason, drop the wait when overdue."""
        self._note_waiting(rule_id, pending, missing, step)
        if step.now >= self._pending_deadline(pending):
            self._cancel_pending(rule_id, rs, step, f"guard never became ready within {self._result_timeout:g}s",
                                 waiting=missing.what)
        else:
            self._refresh(rule_id, step)

    def _pending_deadline(self, pending: PendingHold) -> float:
        """When a pending rule must be looked at: a hold matures (or, waiting past maturity,
        is dropped `result_timeout` later); a wait is dropped."""
        if pending.kind == "hold" and pending.waiting is not None and self._state.now >= pending.until:
            return pending.until + self._result_timeout
        return pending.until

    def _cancel_pending(self, rule_id: str, rs: RuleState, step: Step, reason: str, **detail: Any) -> None:
        pending = rs.pending
        rs.pending = None
        if pending is not None:
            what = "wait" if pending.kind == "wait" else "pending"
            step.record("dropped", rule_id, trigger=pending.trigger_index, reason=f"{what} cancelled: {reason}",
                        pending_since=pending.since, **detail)
        self._refresh(rule_id, step)

    def _resolve_due(self, step: Step) -> None:
        self._runner.expire(sorted(self._active, key=self._rank.__getitem__), step)
        for rule_id in sorted(self._active, key=self._rank.__getitem__):
            self._refresh(rule_id, step)

    def _refresh(self, rule_id: str, step: Step) -> None:
        """Recompute the rule's status (trace a change) and the engine's next deadline."""
        rs = self._state.rules.get(rule_id)
        if rs is None:
            self._active.discard(rule_id)
            self._pending.discard(rule_id)
            return
        status: RuleStatus
        if rs.run is not None:
            status = "running"
        elif rs.pending is not None:
            status = "waiting" if rs.pending.waiting is not None else "pending"
        elif rs.cooldown_until is not None and step.now < rs.cooldown_until:
            status = "cooling_down"
        else:
            status = "idle"
        if status != rs.status:
            step.record("state", rule_id, previous=rs.status, status=status)
            rs.status = status
        (self._active.add if status != "idle" or rs.queue else self._active.discard)(rule_id)
        (self._pending.add if rs.pending is not None else self._pending.discard)(rule_id)
        self._due_at = self._earliest_deadline()

    def _earliest_deadline(self) -> float | None:
        times = []
        for rule_id in self._active:
            rs = self._state.rules.get(rule_id)
            if rs is None:
                continue
            if rs.pending is not None:
                times.append(self._pending_deadline(rs.pending))
            if rs.cooldown_until is not None and rs.cooldown_until > self._state.now:
                times.append(rs.cooldown_until)
            overdue = self._runner.deadline(rs)
            if overdue is not None:
                times.append(overdue)
        return min(times) if times else None

    # ------------------------------------------------------------------ helpers

    def _markets(self) -> list[str]:
        """The markets whose orders the kill switch cancels: spot, and futures when the rules'
        actions or the known orders involve futures."""
        markets = self._ruleset.order_markets()
        markets.update(o.market for o in self._state.orders)
        return ["spot", *sorted(markets - {"spot"})]

    def _balance(self, asset: str) -> Decimal:
        found = self._state.balances.lookup(asset)
        if found is None:
            raise StateNotReady("balance", asset, f"balance of {asset} is not known yet")
        return found[0]

    def _price_of(self, symbol: str) -> Decimal:
        price = self._state.quotes.price(symbol)
        names = self._ruleset.pair_names
        if price is None and isinstance(symbol, str):
            name = symbol.strip().upper()
            if names and name not in names and not FUTURES_PRODUCT_ID.match(name):
                raise UnknownSymbol(f"{symbol!r} is no Kraken pair (or Futures product id), so it has no price")
            price = self._state.quotes.price(names.get(name, symbol))
        if price is None:
            raise StateNotReady("price", symbol, f"no price seen for {symbol}")
        return price

    def _open_orders(self, pair: str | None = None) -> int:
        return self._state.orders.count(pair)



class UnknownSymbol(LookupError):
    """`price_of` of a name that is not in Kraken's pair list: no price will ever come."""


def _nothing(event: Any, step: Step) -> None:
    """Events the engine's view does not take (the watchers do, or time passing)."""


def _lowest_per_rule(fires: list[Fire]) -> list[Fire]:
    """One fire per rule, from its lowest-numbered trigger (several watchers fired it)."""
    best: dict[str, Fire] = {}
    for fire in fires:
        current = best.get(fire.rule.id)
        if current is None or fire.trigger_index < current.trigger_index:
            best[fire.rule.id] = fire
    return list(best.values())
