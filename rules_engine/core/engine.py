"""The engine: events in, a decision (intents plus the trace of why) out.

Pure: no I/O, no clock, no asyncio. Time comes with each event; `next_deadline()` tells the
adapter when to send a `Clock` event so that `for:` holds, cooldowns and overdue results
resolve without a market event. One `handle(event)` call, in order:

1. update the view from the event (quotes, balances, orders, action results -> resumed runs);
2. re-check `for:` holds (guard, and the price still beyond the level) and fire those that matured;
3. expire overdue results and finished cooldowns;
4. fire the rules the event triggered, in descending priority, ties in load order.

A rule passes these gates before its actions run: kill switch, not already pending, not
cooling down, `max_fires` not reached, `mode` (single drops a fire while a run is in progress,
queued queues it), then its guard (`when`), then its hold (`for:`). Risk limits are checked
later, on each order, by the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rules_engine.core.crossing import LevelBook, PriceWatch
from rules_engine.core.env import EvalFailure, build_env, evaluate_bool, evaluate_guard
from rules_engine.core.events import (
    ActionResult,
    BalanceUpdate,
    Clock,
    Event,
    FeedReset,
    KillSwitch,
    OrderUpdate,
    Signal,
    Tick,
    TimerBeat,
)
from rules_engine.core.ids import decision_id
from rules_engine.core.intents import CancelAll
from rules_engine.core.model import (
    FuturesCancelOrder,
    FuturesSendOrder,
    PriceTrigger,
    Rule,
    RuleSet,
    SignalTrigger,
    TimerTrigger,
)
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

Candidate = tuple[Rule, int, dict[str, Any]]


class Engine:
    """The rule engine core. Feed it events with `handle`; persist `snapshot()` (or, cheaper,
    what `snapshot_changes()` reports); restore with
    `Engine(ruleset, limits, EngineState.from_snapshot(data))`; hot-reload with `replace_rules`.

    - `balance_max_age`: how long a seen balance is fresh enough for `check_balance`.
    - `result_timeout`: a run awaiting an action result longer than this is stopped.
    - `max_queued`: queued-mode firings waiting behind a run (more are dropped).
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
    ):
        self.limits = limits or RiskLimits()
        self._state = state or EngineState()
        self._max_queued = max_queued
        functions = {"balance": self._balance, "price_of": self._price_of, "open_orders": self._open_orders}
        self._functions: dict[str, Callable[..., Any]] = functions
        self._runner = Runner(self._state, self.limits, functions, self._refresh,
                              balance_max_age=balance_max_age, result_timeout=result_timeout)
        self._handlers: dict[type, Callable[[Any, Step], list[Candidate]]] = {
            Tick: self._on_tick,
            Signal: self._on_signal,
            TimerBeat: self._on_timer,
            ActionResult: self._on_result,
            Clock: lambda event, step: [],
            BalanceUpdate: self._on_balance,
            OrderUpdate: self._on_order,
            KillSwitch: self._on_kill,
            FeedReset: self._on_feed_reset,
        }
        self._ruleset = RuleSet(())
        self._by_id: dict[str, Rule] = {}
        self._rank: dict[str, tuple[int, int]] = {}
        self._watches: dict[tuple[str, int], tuple[PriceWatch, str]] = {}
        self._watches_of: dict[str, list[tuple[int, PriceWatch, str]]] = {}
        self._changed: set[str] = set()  # rules whose part of the snapshot may have changed
        self._all_changed = True  # every rule's part: after construction and reloads
        self._books: dict[tuple[str, str], list[tuple[str, LevelBook]]] = {}
        self._signals: dict[str, list[tuple[Rule, int, SignalTrigger]]] = {}
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
        candidates = handler(event, step)
        if self._pending:
            self._check_pending(step)
        if self._due_at is not None and now >= self._due_at:
            self._resolve_due(step)
        if candidates:
            candidates.sort(key=lambda c: self._rank[c[0].id])
            for rule, index, context in candidates:
                self._on_trigger(rule, index, context, step)
        if step.records:
            changed = self._changed
            for record in step.records:  # every change to a rule's state is traced under its id
                if record.rule_id is not None:
                    changed.add(record.rule_id)
        return step.decision()

    def next_deadline(self) -> float | None:
        """The earliest time a hold matures, a cooldown ends or an awaited result is overdue."""
        return self._due_at

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data with Decimals (JSON via `rules_engine.jsoncodec`, as the state
        store writes it); restore with `EngineState.from_snapshot`."""
        self._state.watches = {f"{rid}#{i}": (fp, w.state) for (rid, i), (w, fp) in self._watches.items()}
        return self._state.to_snapshot()

    def snapshot_changes(self) -> SnapshotChanges:
        """What changed since the previous call (everything on the first call and after a
        reload): the engine-wide part and the parts of the rules that may have changed. A
        store that applies each in turn holds `snapshot()` (see `SnapshotChanges`)."""
        state = self._state
        complete = self._all_changed
        if complete:
            ids = list(dict.fromkeys([*state.rules, *state.fire_seq, *self._watches_of]))
        else:
            ids = sorted(self._changed)
        self._changed = set()
        self._all_changed = False
        return SnapshotChanges(state.base_snapshot(), {rule_id: self._rule_part(rule_id) for rule_id in ids}, complete)

    def _rule_part(self, rule_id: str) -> RulePart | None:
        part: RulePart = {}
        rs = self._state.rules.get(rule_id)
        if rs is not None:
            part["rules"] = {rule_id: rs.to_json()}
        watches = self._watches_of.get(rule_id)
        if watches:
            part["watches"] = {f"{rule_id}#{i}": [fp, w.state] for i, w, fp in watches}
        seq = self._state.fire_seq.get(rule_id)
        if seq is not None:
            part["fire_seq"] = {rule_id: seq}
        return part or None

    def replace_rules(self, ruleset: RuleSet) -> Decision:
        """Hot reload: state carries over by rule id (and unchanged definition); new rules and
        changed price triggers start unobserved, removed rules are dropped."""
        step = Step(self._state.now)
        self._load(ruleset, step)
        self._all_changed = True
        return step.decision()

    def rule_status(self, rule_id: str) -> RuleStatus | None:
        rs = self._state.rules.get(rule_id)
        return rs.status if rs else None

    def trigger_states(self, rule_id: str) -> dict[int, str]:
        """Arming state of each price trigger of the rule (unobserved / armed / disarmed)."""
        return {i: w.state for (rid, i), (w, _) in self._watches.items() if rid == rule_id}

    # ------------------------------------------------------------------ loading

    def _load(self, ruleset: RuleSet, step: Step) -> None:
        state = self._state
        self._active, self._pending = set(), set()
        if self._watches:
            previous = {f"{rid}#{i}": (fp, w.state) for (rid, i), (w, fp) in self._watches.items()}
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
        self._runner.rules = by_id
        self._index(ruleset, previous, step)
        state.watches = {}
        step.record("state", None, rules_loaded=len(ruleset.rules), added=added, changed=changed, removed=removed)
        for rule in ruleset.rules:
            self._refresh(rule.id, step)

    def _index(self, ruleset: RuleSet, previous: dict[str, tuple[str, str]], step: Step) -> None:
        self._watches = {}
        self._watches_of = {}
        grouped: dict[tuple[str, str, str], list[PriceWatch]] = {}
        self._signals = {}
        for rule in ruleset.rules:
            if not rule.enabled:
                continue
            for index, trigger in enumerate(rule.triggers):
                if isinstance(trigger, PriceTrigger):
                    fp = fingerprint(trigger)
                    kept = previous.get(f"{rule.id}#{index}")
                    watch = PriceWatch(rule.id, index, trigger, kept[1] if kept and kept[0] == fp else "unobserved")  # type: ignore[arg-type]
                    self._watches[(rule.id, index)] = (watch, fp)
                    self._watches_of.setdefault(rule.id, []).append((index, watch, fp))
                    grouped.setdefault((trigger.market.value, trigger.symbol, trigger.field), []).append(watch)
                elif isinstance(trigger, SignalTrigger):
                    self._signals.setdefault(trigger.source, []).append((rule, index, trigger))
        self._books = {}
        for (market, symbol, field), watches in grouped.items():
            book = LevelBook(watches)
            last = self._state.quotes.get(market, symbol).get(field)
            if last is not None:
                self._trace_first(step, market, symbol, field, last, book.update(last))
            self._books.setdefault((market, symbol), []).append((field, book))

    def _abandon(self, rule_id: str, rs: RuleState, step: Step, reason: str, keep_pending: bool = False) -> None:
        """Drop a rule's run and queue (their in-flight intents stay tracked) and, unless kept, its hold."""
        for run in ([rs.run] if rs.run else []) + rs.queue:
            step.record("dropped", rule_id, decision_id=decision_id(rule_id, run.fire_seq), reason=reason)
        rs.run = None
        rs.queue.clear()
        if rs.pending and not keep_pending:
            self._cancel_pending(rule_id, rs, step, reason)

    # ------------------------------------------------------------------ event handlers

    def _on_tick(self, tick: Tick, step: Step) -> list[Candidate]:
        last, bid, ask = tick.last, tick.bid, tick.ask
        values: dict[str, Decimal] = {}
        if last is not None:
            values["last"] = last
        if bid is not None:
            values["bid"] = bid
        if ask is not None:
            values["ask"] = ask
        merged = self._state.quotes.update(tick.market, tick.symbol, values)
        books = self._books.get((tick.market, tick.symbol))
        if not books:
            return []
        quote_moved = "bid" in values or "ask" in values
        fired: dict[str, Candidate] = {}
        for field, book in books:
            if field not in values and not (field == "mid" and quote_moved):
                continue
            value = merged.get(field)
            if value is None:
                continue
            first = book.last is None
            changes = book.update(value)
            if first:
                self._trace_first(step, tick.market, tick.symbol, field, value, changes)
                continue
            for watch, change in changes:
                step.record("trigger", watch.rule_id, trigger=watch.index, state=change, field=field,
                            value=value, level=watch.level, direction=watch.trigger.direction)
                if change == "fired":
                    current = fired.get(watch.rule_id)
                    if current is None or watch.index < current[1]:
                        rule = self._by_id[watch.rule_id]
                        fired[watch.rule_id] = (rule, watch.index, _price_context(watch.trigger, value, merged))
        return list(fired.values())

    def _on_signal(self, signal: Signal, step: Step) -> list[Candidate]:
        found: dict[str, Candidate] = {}
        for rule, index, trigger in self._signals.get(signal.source, ()):
            if rule.id in found:
                continue
            context = {"trigger": "signal", "signal": dict(signal.payload), "source": signal.source}
            if trigger.where_expr is not None:
                env = build_env(context, rule.id, step.now, self._functions)
                try:
                    passed = evaluate_bool(trigger.where_expr, env, f"triggers[{index}].where")
                except EvalFailure as failure:
                    step.record("error", rule.id, reason=failure.reason, signal_id=signal.signal_id, **failure.detail())
                    continue
                step.record("guard", rule.id, trigger=index, where=trigger.where_expr.source, result=passed,
                            signal_id=signal.signal_id)
                if not passed:
                    continue
            step.record("trigger", rule.id, trigger=index, state="fired", source=signal.source,
                        signal_id=signal.signal_id)
            found[rule.id] = (rule, index, context)
        return list(found.values())

    def _on_timer(self, beat: TimerBeat, step: Step) -> list[Candidate]:
        rule = self._by_id.get(beat.rule_id)
        if rule is None or not rule.enabled:
            step.record("dropped", beat.rule_id, reason="timer beat for an unknown or disabled rule")
            return []
        if not (0 <= beat.trigger_index < len(rule.triggers)) or not isinstance(
            rule.triggers[beat.trigger_index], TimerTrigger
        ):
            step.record("error", rule.id, reason=f"trigger {beat.trigger_index} is not a timer trigger")
            return []
        scheduled = beat.scheduled_time if beat.scheduled_time is not None else beat.time
        step.record("trigger", rule.id, trigger=beat.trigger_index, state="fired", scheduled_time=scheduled)
        return [(rule, beat.trigger_index, {"trigger": "timer", "scheduled_time": scheduled})]

    def _on_result(self, result: ActionResult, step: Step) -> list[Candidate]:
        self._runner.on_result(result, step)
        return []

    def _on_balance(self, update: BalanceUpdate, step: Step) -> list[Candidate]:
        try:
            balances = {asset: to_decimal(amount) for asset, amount in update.balances.items()}
        except (ArithmeticError, ValueError) as exc:
            step.record("error", None, reason=f"balance update ignored: {exc}")
            return []
        self._state.balances.apply(balances, update.time, update.snapshot)
        return []

    def _on_order(self, update: OrderUpdate, step: Step) -> list[Candidate]:
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
            return []
        if closed:
            orders.remove(order)
        else:
            order.status = "open"
            if update.txid and update.txid not in order.txids:
                orders.set_txids(order, order.txids + [update.txid])
            if update.filled is not None:
                order.filled = update.filled
        if order.rule_id is not None:
            step.record("action", order.rule_id, order=order.key, txid=update.txid, status=update.status,
                        filled=update.filled)
        return []

    def _on_kill(self, event: KillSwitch, step: Step) -> list[Candidate]:
        kill = self._state.kill
        if not event.engaged:
            if kill.engaged:
                kill.engaged, kill.since, kill.reason = False, None, ""
                step.record("state", None, kill_switch="cleared", reason=event.reason)
            return []
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
        return []

    def _on_feed_reset(self, event: FeedReset, step: Step) -> list[Candidate]:
        quotes = self._state.quotes
        symbols = event.symbols or tuple(
            sorted(set(quotes.symbols(event.market)) | {s for (m, s) in self._books if m == event.market})
        )
        quotes.forget(event.market, symbols)
        for symbol in symbols:
            for _, book in self._books.get((event.market, symbol), ()):
                book.reset()
        step.record("trigger", None, feed_reset=event.market, symbols=list(symbols))
        return []

    # ------------------------------------------------------------------ gates, holds, fires

    def _on_trigger(self, rule: Rule, index: int, context: dict[str, Any], step: Step) -> None:
        rs = self._state.rules[rule.id]
        now = step.now
        if self._state.kill.engaged:
            step.record("blocked", rule.id, trigger=index, reason="kill switch engaged")
            return
        if rs.pending is not None:
            step.record("dropped", rule.id, trigger=index, reason="already pending (for: hold in progress)")
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
        if not self._guard(rule, context, step, index):
            return
        if rule.hold:
            rs.pending = PendingHold(index, now, now + rule.hold, context)
            step.record("state", rule.id, trigger=index, pending_until=now + rule.hold)
            self._refresh(rule.id, step)
            return
        self._fire(rule, rs, index, context, step)

    def _guard(self, rule: Rule, context: dict[str, Any], step: Step, index: int, phase: str = "trigger") -> bool:
        """Evaluate `when`; trace the result and the values seen. An error counts as false."""
        if rule.when is None:
            return True
        seen: list[dict[str, Any]] = []
        env = build_env(context, rule.id, step.now, self._functions)
        try:
            result = evaluate_guard(rule.when, env, "when", seen)
        except EvalFailure as failure:
            step.record("error", rule.id, trigger=index, phase=phase, reason=failure.reason, **failure.detail())
            return False
        step.record("guard", rule.id, trigger=index, phase=phase, result=result, values=seen)
        return result

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
            hold = rs.pending
            if hold is None:
                continue
            context = dict(hold.context)
            trigger = rule.triggers[hold.trigger_index]
            if isinstance(trigger, PriceTrigger):
                quote = self._state.quotes.get(trigger.market.value, trigger.symbol)
                value = quote.get(trigger.field)
                watched = self._watches.get((rule_id, hold.trigger_index))
                if value is None or watched is None or not watched[0].beyond(value):
                    self._cancel_pending(rule_id, rs, step, "price no longer beyond the level",
                                         value=value, level=trigger.level)
                    continue
                context.update(_price_context(trigger, value, quote))
            matured = step.now >= hold.until
            if rule.when is not None:
                seen: list[dict[str, Any]] = []
                env = build_env(context, rule_id, step.now, self._functions)
                try:
                    holds = evaluate_guard(rule.when, env, "when", seen)
                except EvalFailure as failure:
                    step.record("error", rule_id, phase="hold", reason=failure.reason, **failure.detail())
                    self._cancel_pending(rule_id, rs, step, "guard failed to evaluate")
                    continue
                if not holds:
                    self._cancel_pending(rule_id, rs, step, "guard no longer holds", values=seen)
                    continue
                if matured:
                    step.record("guard", rule_id, trigger=hold.trigger_index, phase="hold matured", result=True,
                                values=seen)
            if matured:
                rs.pending = None
                self._refresh(rule_id, step)
                self._fire(rule, rs, hold.trigger_index, context, step)

    def _cancel_pending(self, rule_id: str, rs: RuleState, step: Step, reason: str, **detail: Any) -> None:
        hold = rs.pending
        rs.pending = None
        if hold is not None:
            step.record("dropped", rule_id, trigger=hold.trigger_index, reason=f"pending cancelled: {reason}",
                        pending_since=hold.since, **detail)
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
            status = "pending"
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
                times.append(rs.pending.until)
            if rs.cooldown_until is not None and rs.cooldown_until > self._state.now:
                times.append(rs.cooldown_until)
            overdue = self._runner.deadline(rs)
            if overdue is not None:
                times.append(overdue)
        return min(times) if times else None

    # ------------------------------------------------------------------ helpers

    def _trace_first(self, step: Step, market: str, symbol: str, field: str, value: Decimal,
                     changes: list[tuple[PriceWatch, str]]) -> None:
        armed = sum(1 for _, change in changes if change == "armed")
        self._changed.update(watch.rule_id for watch, _ in changes)  # traced without the rule's id
        step.record("trigger", None, first_observation=f"{market}:{symbol}:{field}", value=value,
                    armed=armed, disarmed=len(changes) - armed)

    def _markets(self) -> list[str]:
        futures = any(isinstance(a, (FuturesSendOrder, FuturesCancelOrder))
                      for rule in self._ruleset.rules for a in rule.actions)
        futures = futures or any(o.market == "futures" for o in self._state.orders)
        return ["spot", "futures"] if futures else ["spot"]

    def _balance(self, asset: str) -> Decimal:
        found = self._state.balances.lookup(asset)
        if found is None:
            raise LookupError(f"balance of {asset} is not known yet")
        return found[0]

    def _price_of(self, symbol: str) -> Decimal:
        price = self._state.quotes.price(symbol)
        if price is None:
            raise LookupError(f"no price seen for {symbol}")
        return price

    def _open_orders(self, pair: str | None = None) -> int:
        return self._state.orders.count(pair)


def _price_context(trigger: PriceTrigger, value: Decimal, quote: Any) -> dict[str, Any]:
    return {
        "trigger": "price",
        "symbol": trigger.symbol,
        "market": trigger.market.value,
        "price": value,
        "bid": quote.get("bid"),
        "ask": quote.get("ask"),
        "mid": quote.get("mid"),
        "last": quote.get("last"),
        "level": trigger.level,
    }
