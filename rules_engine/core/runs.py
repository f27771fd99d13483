"""Runs: one firing's actions, executed in order.

An action whose outcome matters (orders, cancels, the dead man's switch, a balance read for
`check_balance`) emits its intent and suspends the run until the `ActionResult` with that
intent id arrives; `log` and `notify` do not wait. Each action's `if` is evaluated at its
turn, with the context of the firing and the time of the event that resumed the run.
A run stops, and the reason is traced, when an `if`/value expression fails, `check_balance`
fails, a risk limit is breached, a result reports failure or never arrives within
`result_timeout`, or the kill switch is engaged.

What an action does is its spec's `run` (in `rules_engine/actions/<type>.py`), called with an
`ActionRun`: the small API below that evaluates the action's values, checks risk limits,
tracks orders and emits intents. A run function raises `Halt` to stop the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal

from rules_engine.core import intents, model
from rules_engine.core.env import EvalFailure, build_env, decimal_value, evaluate, evaluate_bool, render
from rules_engine.core.events import ActionResult
from rules_engine.core.ids import client_order_id, decision_id, intent_id
from rules_engine.core.order_errors import with_hint
from rules_engine.core.risk import OrderProposal, RiskLimits, check_order
from rules_engine.core.state import EngineState, InFlight, RuleState, Run
from rules_engine.core.trace import Step, TraceKind, intent_detail
from rules_engine.core.views import OrderView, to_decimal

_RELATIVE_PRICE = ("+", "-", "#")


class Halt(Exception):
    """Stop the run: `kind` is the trace kind (blocked / error), `detail` what was seen."""

    def __init__(self, kind: Literal["blocked", "error"], reason: str, **detail: Any):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.detail = detail


class Runner:
    """Executes runs against the engine's state. `on_status(rule_id, step)` is called
    whenever a rule's run starts or ends, so the engine can trace status changes."""

    def __init__(
        self,
        state: EngineState,
        limits: RiskLimits,
        functions: Mapping[str, Callable[..., Any]],
        on_status: Callable[[str, Step], None],
        *,
        balance_max_age: float,
        result_timeout: float,
        installation: str = "",
    ):
        self.state = state
        self.limits = limits
        self.functions = functions
        self.on_status = on_status
        self.balance_max_age = balance_max_age
        self.result_timeout = result_timeout
        self.installation = installation
        self.rules: Mapping[str, model.Rule] = {}
        self.blank: Mapping[str, None] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self, rule: model.Rule, rs: RuleState, run: Run, step: Step) -> None:
        rs.run = run
        self.on_status(rule.id, step)
        self.advance(rule, rs, step)

    def advance(self, rule: model.Rule, rs: RuleState, step: Step) -> None:
        run = rs.run
        assert run is not None
        while run.next_action < len(rule.actions):
            if self.state.kill.engaged:
                self._stop(rule, rs, step, "blocked", "kill switch engaged")
                return
            index = run.next_action
            action = rule.actions[index]
            try:
                waiting = self._do(rule, run, index, action, step)
            except EvalFailure as failure:
                self._stop(rule, rs, step, "error", failure.reason, action=index, **failure.detail())
                return
            except Halt as halt:
                self._stop(rule, rs, step, halt.kind, halt.reason, action=index, **halt.detail)
                return
            if waiting is not None:
                run.waiting = waiting
                run.waiting_since = step.now
                self.on_status(rule.id, step)  # a new deadline: the result is due
                return
            run.next_action += 1
        step.record("decision", rule.id, decision_id=decision_id(rule.id, run.fire_seq), outcome="completed")
        self._end(rule, rs, step)

    def on_result(self, result: ActionResult, step: Step) -> None:
        """Apply an action's result to the view, then resume the run that awaited it."""
        flight = self.state.inflight.pop(result.intent_id, None)
        if flight is None:
            step.record("dropped", None, reason="result for an intent not awaited", intent_id=result.intent_id,
                        ok=result.ok)
            return
        ok, error = result.ok, result.error
        try:
            self._apply(flight, result)
        except (ArithmeticError, ValueError, TypeError, AttributeError) as exc:
            ok, error = False, f"malformed result data: {exc}"
        step.record("action", flight.rule_id, intent_id=result.intent_id, type=flight.kind,
                    result="ok" if ok else "failed", error=error)
        rule = self.rules.get(flight.rule_id or "")
        rs = self.state.rules.get(flight.rule_id or "")
        if rule is None or rs is None or rs.run is None or rs.run.waiting != result.intent_id:
            return
        run = rs.run
        run.waiting = run.waiting_since = None
        index = run.next_action
        if not ok:
            self._stop(rule, rs, step, "error", f"{flight.kind} failed: {with_hint(error)}", action=index,
                       intent_id=result.intent_id)
            return
        action = rule.actions[index]
        try:
            action.resume(self._action_run(rule, run, index, step))
        except EvalFailure as failure:
            self._stop(rule, rs, step, "error", failure.reason, action=index, **failure.detail())
            return
        except Halt as halt:
            self._stop(rule, rs, step, halt.kind, halt.reason, action=index, **halt.detail)
            return
        run.next_action += 1
        self.advance(rule, rs, step)

    def expire(self, rule_ids: list[str], step: Step) -> None:
        """Stop runs whose awaited result is overdue (the order view keeps the order as in flight)."""
        for rule_id in rule_ids:
            rs, rule = self.state.rules.get(rule_id), self.rules.get(rule_id)
            run = rs.run if rs else None
            if rule is None or rs is None or run is None or run.waiting is None or run.waiting_since is None:
                continue
            if step.now >= run.waiting_since + self.result_timeout:
                self._stop(rule, rs, step, "error", f"no result within {self.result_timeout:g}s",
                           action=run.next_action, intent_id=run.waiting)

    def deadline(self, rs: RuleState) -> float | None:
        run = rs.run
        if run is None or run.waiting_since is None:
            return None
        return run.waiting_since + self.result_timeout

    def abort(self, rule: model.Rule, rs: RuleState, step: Step, reason: str) -> None:
        """Stop the rule's run and drop its queue (kill switch, rule changed or removed)."""
        self._drop_queue(rule.id, rs, step, reason)
        if rs.run is not None:
            self._stop(rule, rs, step, "blocked", reason, action=rs.run.next_action)

    def _stop(self, rule: model.Rule, rs: RuleState, step: Step, kind: TraceKind, reason: str, **detail: Any) -> None:
        run = rs.run
        assert run is not None
        did = decision_id(rule.id, run.fire_seq)
        step.record(kind, rule.id, decision_id=did, reason=reason, **detail)
        step.record("decision", rule.id, decision_id=did, outcome="stopped", reason=reason)
        self._end(rule, rs, step)

    def _end(self, rule: model.Rule, rs: RuleState, step: Step) -> None:
        rs.run = None
        if self.state.kill.engaged:
            self._drop_queue(rule.id, rs, step, "kill switch engaged")
        if rs.queue:
            self.start(rule, rs, rs.queue.pop(0), step)
        else:
            self.on_status(rule.id, step)

    def _drop_queue(self, rule_id: str, rs: RuleState, step: Step, reason: str) -> None:
        for queued in rs.queue:
            step.record("dropped", rule_id, decision_id=decision_id(rule_id, queued.fire_seq), reason=reason)
        rs.queue.clear()

    # ------------------------------------------------------------------ results

    def _apply(self, flight: InFlight, result: ActionResult) -> None:
        state = self.state
        if flight.kind in ("place_order", "futures_send_order"):
            order = state.orders.find(cl_ord_id=flight.order_key)
            state.balances.invalidate()
            if order is None:
                return
            ids = _order_ids(result.data, flight.kind) if result.ok else []
            if ids:
                state.orders.set_txids(order, ids)
                order.status = "open"
            else:  # refused, or validate-only: nothing rests on the book
                state.orders.remove(order)
        elif flight.kind in ("cancel_order", "futures_cancel_order") and result.ok:
            state.balances.invalidate()
            for txid in flight.txids:
                if (order := state.orders.find(txid=txid)) is not None:
                    state.orders.remove(order)
            for cl_ord_id in flight.cl_ord_ids:
                if (order := state.orders.find(cl_ord_id=cl_ord_id)) is not None:
                    state.orders.remove(order)
        elif flight.kind == "cancel_all" and result.ok:
            state.balances.invalidate()
            state.orders.clear_market(flight.market)
        elif flight.kind == "read_balance" and result.ok:
            balances = result.data.get("balances")
            if not isinstance(balances, Mapping):
                raise ValueError("a balance read result needs data['balances'] mapping asset -> amount")
            state.balances.apply({k: to_decimal(v) for k, v in balances.items()}, result.time, snapshot=True)

    # ------------------------------------------------------------------ actions

    def _do(self, rule: model.Rule, run: Run, index: int, action: model.ActionSpec, step: Step) -> str | None:
        """Run one action; return the intent id to wait for, or None to go on."""
        ctx = self._action_run(rule, run, index, step)
        if action.condition is not None and not evaluate_bool(action.condition, ctx.env, f"{ctx.where}.if"):
            step.record("action", rule.id, decision_id=ctx.decision_id, action=index,
                        type=action.type, skipped="if is false", expression=action.condition.source)
            return None
        return action.run(ctx)

    def _action_run(self, rule: model.Rule, run: Run, index: int, step: Step) -> ActionRun:
        env = build_env(run.context, rule.id, step.now, self.functions, self.blank)
        return ActionRun(self, rule, run, index, env, step)


class ActionRun:
    """One action's turn in a run: what its run function reads, and the core's helpers it calls.

    - `rule`, `run`, `index`, `env` (the expression environment), `where` (`actions[i]`),
      `step`, `now`, `decision_id`, `intent_id(suffix)`, `state` (the core's view);
    - values: `decimal`, `positive`, `price`, `text` resolve a literal or `=expression` field
      (raising EvalFailure), `render` a message template;
    - orders: `client_order_id()`, `market_price(symbol)`, `valuation_price(prices, symbol)`,
      `check_risk(pair, notional)`,
      `track_order(...)`, `own_orders(market)`, `cancel_targets(...)`;
    - intents: `emit(intent)` for fire-and-forget ones, `send(intent, market, ...)` for one whose
      result the run waits for (returns its intent id);
    - `balance_max_age`: how fresh a balance must be for `check_balance`.
    """

    __slots__ = ("_runner", "rule", "run", "index", "env", "where", "step", "decision_id")

    def __init__(self, runner: Runner, rule: model.Rule, run: Run, index: int, env: dict[str, Any], step: Step):
        self._runner = runner
        self.rule, self.run, self.index, self.env, self.step = rule, run, index, env, step
        self.where = f"actions[{index}]"
        self.decision_id = decision_id(rule.id, run.fire_seq)

    @property
    def now(self) -> float:
        return self.step.now

    @property
    def state(self) -> EngineState:
        return self._runner.state

    @property
    def balance_max_age(self) -> float:
        return self._runner.balance_max_age

    def intent_id(self, suffix: str = "") -> str:
        return intent_id(self.rule.id, self.run.fire_seq, self.index, suffix)

    def client_order_id(self) -> str:
        """The deterministic client order id of this action's order (in this installation)."""
        return client_order_id(self.rule.id, self.run.fire_seq, self.index, self._runner.installation)

    def record(self, kind: TraceKind, **detail: Any) -> None:
        """A trace record of this action (`decision_id` and `action` added)."""
        self.step.record(kind, self.rule.id, decision_id=self.decision_id, action=self.index, **detail)

    # ------------------------------------------------------------------ values

    def decimal(self, value: model.Value, name: str) -> Decimal:
        """Field `name` as a finite Decimal."""
        raw, source = self._resolve(value, name)
        return decimal_value(raw, f"{self.where}.{name}", source, _written_at(value))

    def positive(self, value: model.Value, name: str) -> Decimal | None:
        """Field `name` as a positive Decimal, None when not given."""
        if value is None:
            return None
        result = self.decimal(value, name)
        if result <= 0:
            raise EvalFailure(f"{self.where}.{name}", str(value), f"expected a positive price, got {result}")
        return result

    def price(self, value: model.Value, name: str) -> Decimal | str | None:
        """A positive Decimal, or a Kraken relative price string (`+50`, `-1.5%`, `#10`) as written."""
        if value is None:
            return None
        raw, source = self._resolve(value, name)
        if isinstance(raw, str) and raw.strip().startswith(_RELATIVE_PRICE):
            return raw.strip()
        where = f"{self.where}.{name}"
        result = decimal_value(raw, where, source, _written_at(value))
        if result <= 0:
            raise EvalFailure(where, source, f"expected a positive price, got {result}")
        return result

    def text(self, value: model.Value, name: str) -> str | None:
        """Field `name` as text, None when not given (or the expression gave None)."""
        if value is None:
            return None
        raw, _ = self._resolve(value, name)
        return None if raw is None else str(raw)

    def render(self, template: model.Template, name: str) -> str:
        return render(template, self.env, f"{self.where}.{name}")

    def _resolve(self, value: model.Value, name: str) -> tuple[Any, str]:
        if isinstance(value, model.Expr):
            return evaluate(value, self.env, f"{self.where}.{name}"), value.source
        return value, str(value)

    # ------------------------------------------------------------------ orders and intents

    def market_price(self, symbol: str) -> Decimal | None:
        return self.state.quotes.price(symbol)

    def valuation_price(self, prices: tuple[Decimal | str | None, ...], symbol: str) -> Decimal | None:
        """The unit price an order's notional is counted at: the highest absolute price given,
        else the market price (relative prices are valued there); None when unknown."""
        absolute = [p for p in prices if isinstance(p, Decimal)]
        return max(absolute) if absolute else self.market_price(symbol)

    def check_risk(self, pair: str, notional: Decimal | None) -> None:
        """Raise Halt (and trace each breach) when this order would break a risk limit."""
        runner = self._runner
        orders = runner.state.orders
        breaches = check_order(runner.limits, OrderProposal(pair, notional), now=self.now,
                               open_orders=len(orders), open_notional=orders.total_notional(),
                               sent=runner.state.order_times)
        for breach in breaches:
            self.record("risk", **breach.detail())
        if breaches:
            raise Halt("blocked", "risk limit: " + ", ".join(b.text() for b in breaches),
                       limits=[b.limit for b in breaches])

    def track_order(self, kind: str, market: str, pair: str, client_id: str, volume: Decimal,
                    unit_price: Decimal | None) -> None:
        """Count the order as in flight (risk limits, own orders) until its result arrives."""
        state = self.state
        state.orders.add(OrderView(key=client_id, market=market, pair=pair, status="sending", rule_id=self.rule.id,
                                   cl_ord_id=client_id, volume=volume, price=unit_price, placed_at=self.now))
        state.order_times.record(self.now)
        state.inflight[self.intent_id()] = InFlight(kind, self.rule.id, market, self.now, order_key=client_id)

    def own_orders(self, market: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The exchange ids of this rule's open orders, or client ids for those still in flight."""
        own = self.state.orders.of_rule(self.rule.id, market)
        txids = tuple(t for o in own for t in o.txids)
        client_ids = tuple(o.cl_ord_id for o in own if not o.txids and o.cl_ord_id)
        if not own:
            self.record("action", skipped="no open orders placed by this rule")
        return txids, client_ids

    def cancel_targets(self, market: str, own: bool, exchange_id: model.Value, client_id: model.Value,
                       fields: tuple[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The exchange ids and client ids a cancel names: the rule's own open orders on `market`,
        or the action's (possibly computed) ids. None when `own` finds nothing to cancel."""
        if own:
            ids, client_ids = self.own_orders(market)
            return (ids, client_ids) if ids or client_ids else None
        exchange = self.text(exchange_id, fields[0])
        client = self.text(client_id, fields[1])
        return tuple(filter(None, [exchange])), tuple(filter(None, [client]))

    def emit(self, intent: intents.AnyIntent) -> None:
        """Emit an intent (its trace record names this action)."""
        self.step.emit(intent)
        self.step.record("action", self.rule.id, action=self.index, **intent_detail(intent))

    def send(self, intent: intents.AnyIntent, market: str, ids: tuple[str, ...] = (),
             client_ids: tuple[str, ...] = ()) -> str:
        """Emit an intent whose result the run waits for; `ids` / `client_ids` are the orders a
        cancel names (removed from the view when it succeeds). Returns its intent id."""
        self.state.inflight[intent.intent_id] = InFlight(intent.kind, self.rule.id, market, self.now,
                                                         txids=ids, cl_ord_ids=client_ids)
        self.emit(intent)
        return intent.intent_id


def _order_ids(data: Mapping[str, Any], kind: str) -> list[str]:
    raw = data.get("txid") if kind == "place_order" else data.get("order_id")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    return [str(t) for t in raw]


def _written_at(value: model.Value) -> str | None:
    """`file:line:column` of an expression value, for its errors."""
    return str(value.where) if isinstance(value, model.Expr) and value.where is not None else None
