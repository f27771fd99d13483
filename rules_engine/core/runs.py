"""Runs: one firing's actions, executed in order.

An action whose outcome matters (orders, cancels, the dead man's switch, a balance read for
`check_balance`) emits its intent and suspends the run until the `ActionResult` with that
intent id arrives; `log` and `notify` do not wait. Each action's `if` is evaluated at its
turn, with the context of the firing and the time of the event that resumed the run.
A run stops, and the reason is traced, when an `if`/value expression fails, `check_balance`
fails, a risk limit is breached, a result reports failure or never arrives within
`result_timeout`, or the kill switch is engaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from rules_engine.core import intents, model
from rules_engine.core.env import EvalFailure, build_env, decimal_value, evaluate, evaluate_bool, render
from rules_engine.core.events import ActionResult
from rules_engine.core.ids import client_order_id, decision_id, intent_id
from rules_engine.core.risk import OrderProposal, RiskLimits, check_order
from rules_engine.core.state import EngineState, InFlight, RuleState, Run
from rules_engine.core.trace import Step, intent_detail
from rules_engine.core.views import OrderView, to_decimal

_RELATIVE_PRICE = ("+", "-", "#")
# Futures contracts whose size is already a USD amount (inverse perpetuals and futures).
_INVERSE_FUTURES = ("PI_", "FI_")


class _Halt(Exception):
    """Stop the run: `kind` is the trace kind (blocked / error), `detail` what was seen."""

    def __init__(self, kind: str, reason: str, **detail: Any):
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
    ):
        self.state = state
        self.limits = limits
        self.functions = functions
        self.on_status = on_status
        self.balance_max_age = balance_max_age
        self.result_timeout = result_timeout
        self.rules: Mapping[str, model.Rule] = {}

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
            except _Halt as halt:
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
            self._stop(rule, rs, step, "error", f"{flight.kind} failed: {error}", action=index,
                       intent_id=result.intent_id)
            return
        if flight.kind == "read_balance":
            action = rule.actions[index]
            assert isinstance(action, model.CheckBalance)
            found = self.state.balances.lookup(action.asset)
            try:
                self._compare_balance(rule, run, index, action, Decimal(0) if found is None else found[0], step)
            except EvalFailure as failure:
                self._stop(rule, rs, step, "error", failure.reason, action=index, **failure.detail())
                return
            except _Halt as halt:
                self._stop(rule, rs, step, halt.kind, halt.reason, action=index, **halt.detail)
                return
        run.next_action += 1
        self.advance(rule, rs, step)

    def expire(self, rule_ids: list[str], step: Step) -> None:
        """Stop runs whose awaited result is overdue (the order view keeps the order as in flight)."""
        for rule_id in rule_ids:
            rs, rule = self.state.rules.get(rule_id), self.rules.get(rule_id)
            run = rs.run if rs else None
            if rule is None or run is None or run.waiting is None or run.waiting_since is None:
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

    def _stop(self, rule: model.Rule, rs: RuleState, step: Step, kind: str, reason: str, **detail: Any) -> None:
        run = rs.run
        assert run is not None
        did = decision_id(rule.id, run.fire_seq)
        step.record(kind, rule.id, decision_id=did, reason=reason, **detail)  # type: ignore[arg-type]
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

    def _do(self, rule: model.Rule, run: Run, index: int, action: model.Action, step: Step) -> str | None:
        """Run one action; return the intent id to wait for, or None to go on."""
        env = build_env(run.context, rule.id, step.now, self.functions)
        where = f"actions[{index}]"
        if action.condition is not None and not evaluate_bool(action.condition, env, f"{where}.if"):
            step.record("action", rule.id, decision_id=decision_id(rule.id, run.fire_seq), action=index,
                        type=action.type, skipped="if is false", expression=action.condition.source)
            return None
        ctx = _ActionContext(rule, run, index, env, where, step)
        handler = getattr(self, f"_do_{action.type}")
        return handler(ctx, action)

    def _emit(self, ctx: _ActionContext, intent: intents.AnyIntent) -> None:
        ctx.step.emit(intent)
        ctx.step.record("action", ctx.rule.id, action=ctx.index, **intent_detail(intent))

    def _do_log(self, ctx: _ActionContext, action: model.Log) -> None:
        message = render(action.message, ctx.env, f"{ctx.where}.message")
        self._emit(ctx, intents.Log(intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id,
                                    level=action.level, message=message))

    def _do_notify(self, ctx: _ActionContext, action: model.Notify) -> None:
        message = render(action.message, ctx.env, f"{ctx.where}.message")
        self._emit(ctx, intents.Notify(intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id,
                                       channel=action.channel, message=message))

    def _do_check_balance(self, ctx: _ActionContext, action: model.CheckBalance) -> str | None:
        have = self.state.balances.fresh(action.asset, ctx.step.now, self.balance_max_age)
        if have is not None:
            self._compare_balance(ctx.rule, ctx.run, ctx.index, action, have, ctx.step)
            return None
        iid = ctx.intent_id("balance")
        self.state.inflight[iid] = InFlight("read_balance", ctx.rule.id, "spot", ctx.step.now)
        self._emit(ctx, intents.ReadBalance(intent_id=iid, rule_id=ctx.rule.id, decision_id=ctx.decision_id))
        return iid

    def _compare_balance(self, rule: model.Rule, run: Run, index: int, action: model.CheckBalance,
                         have: Decimal, step: Step) -> None:
        env = build_env(run.context, rule.id, step.now, self.functions)
        minimum = _decimal(action.minimum, env, f"actions[{index}].minimum")
        passed = have >= minimum
        step.record("action", rule.id, decision_id=decision_id(rule.id, run.fire_seq), action=index,
                    type="check_balance", asset=action.asset, balance=have, minimum=minimum, passed=passed)
        if not passed:
            raise _Halt("blocked", f"check_balance failed: {action.asset} balance {have} is below {minimum}",
                        asset=action.asset, balance=have, minimum=minimum)

    def _do_place_order(self, ctx: _ActionContext, action: model.PlaceOrder) -> str:
        volume = _decimal(action.volume, ctx.env, f"{ctx.where}.volume")
        if volume < 0 or (volume == 0 and action.leverage is None):
            raise _Halt("error", f"volume must be positive, got {volume}", volume=volume)
        price = _price(action.price, ctx.env, f"{ctx.where}.price")
        price2 = _price(action.price2, ctx.env, f"{ctx.where}.price2")
        displayvol = None if action.displayvol is None else _decimal(action.displayvol, ctx.env, f"{ctx.where}.displayvol")
        close = action.close
        timeinforce, expiretm = action.timeinforce, action.expiretm
        if action.expire_after is not None and expiretm is None and timeinforce in (None, "GTC"):
            timeinforce, expiretm = "GTD", str(math.ceil(ctx.step.now + action.expire_after))
        if "viqc" in action.oflags:
            unit_price: Decimal | None = Decimal(1)  # volume is in the quote currency
        else:
            unit_price = _valuation_price((price, price2), self._market_price(action.pair))
        notional = None if unit_price is None else volume * unit_price
        self._check_risk(ctx, action.pair, notional)
        cl_ord_id = client_order_id(ctx.rule.id, ctx.run.fire_seq, ctx.index)
        intent = intents.PlaceOrder(
            intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id, cl_ord_id=cl_ord_id,
            pair=action.pair, side=action.side, ordertype=action.ordertype, volume=volume, price=price,
            price2=price2, trigger=action.trigger,
            leverage=None if action.leverage is None else str(action.leverage),
            reduce_only=action.reduce_only, oflags=tuple(action.oflags), timeinforce=timeinforce,
            starttm=action.starttm, expiretm=expiretm, displayvol=displayvol,
            close_ordertype=close.ordertype if close else None,
            close_price=_price(close.price, ctx.env, f"{ctx.where}.close.price") if close else None,
            close_price2=_price(close.price2, ctx.env, f"{ctx.where}.close.price2") if close else None,
            notional=notional,
        )
        self._track_order(ctx, "place_order", "spot", action.pair, cl_ord_id, volume, unit_price)
        self._emit(ctx, intent)
        return intent.intent_id

    def _do_futures_send_order(self, ctx: _ActionContext, action: model.FuturesSendOrder) -> str:
        size = _decimal(action.size, ctx.env, f"{ctx.where}.size")
        if size <= 0:
            raise _Halt("error", f"size must be positive, got {size}", size=size)
        limit_price = _positive(action.limit_price, ctx.env, f"{ctx.where}.limit_price")
        stop_price = _positive(action.stop_price, ctx.env, f"{ctx.where}.stop_price")
        if action.symbol.upper().startswith(_INVERSE_FUTURES):
            unit_price: Decimal | None = Decimal(1)  # size is a USD amount
        else:
            unit_price = _valuation_price((limit_price, stop_price), self._market_price(action.symbol))
        notional = None if unit_price is None else size * unit_price
        self._check_risk(ctx, action.symbol, notional)
        cli_ord_id = client_order_id(ctx.rule.id, ctx.run.fire_seq, ctx.index)
        intent = intents.FuturesSendOrder(
            intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id, cli_ord_id=cli_ord_id,
            symbol=action.symbol, side=action.side, order_type=action.order_type, size=size,
            limit_price=limit_price, stop_price=stop_price, trigger_signal=action.trigger_signal,
            reduce_only=action.reduce_only, notional=notional,
        )
        self._track_order(ctx, "futures_send_order", "futures", action.symbol, cli_ord_id, size, unit_price)
        self._emit(ctx, intent)
        return intent.intent_id

    def _do_cancel_order(self, ctx: _ActionContext, action: model.CancelOrder) -> str | None:
        targets = self._cancel_targets(ctx, "spot", action.own, action.txid, action.cl_ord_id, ("txid", "cl_ord_id"))
        if targets is None:
            return None
        txids, cl_ord_ids = targets
        intent = intents.CancelOrder(intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id,
                                     txids=txids, cl_ord_ids=cl_ord_ids,
                                     userref=None if action.own else action.userref)
        return self._send_cancel(ctx, intent, "spot", txids, cl_ord_ids)

    def _do_futures_cancel_order(self, ctx: _ActionContext, action: model.FuturesCancelOrder) -> str | None:
        targets = self._cancel_targets(ctx, "futures", action.own, action.order_id, action.cli_ord_id,
                                       ("order_id", "cli_ord_id"))
        if targets is None:
            return None
        order_ids, cli_ord_ids = targets
        intent = intents.FuturesCancelOrder(intent_id=ctx.intent_id(), rule_id=ctx.rule.id,
                                            decision_id=ctx.decision_id, order_ids=order_ids, cli_ord_ids=cli_ord_ids)
        return self._send_cancel(ctx, intent, "futures", order_ids, cli_ord_ids)

    def _cancel_targets(self, ctx: _ActionContext, market: str, own: bool, exchange_id: Any, client_id: Any,
                        fields: tuple[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The exchange ids and client ids a cancel names: the rule's own open orders on `market`,
        or the action's (possibly computed) ids. None when `own` finds nothing to cancel."""
        if own:
            ids, client_ids = self._own_orders(ctx, market)
            return (ids, client_ids) if ids or client_ids else None
        exchange = _text(exchange_id, ctx.env, f"{ctx.where}.{fields[0]}")
        client = _text(client_id, ctx.env, f"{ctx.where}.{fields[1]}")
        return tuple(filter(None, [exchange])), tuple(filter(None, [client]))

    def _send_cancel(self, ctx: _ActionContext, intent: intents.Intent, market: str,
                     ids: tuple[str, ...], client_ids: tuple[str, ...]) -> str:
        self.state.inflight[intent.intent_id] = InFlight(intent.kind, ctx.rule.id, market, ctx.step.now,
                                                         txids=ids, cl_ord_ids=client_ids)
        self._emit(ctx, intent)
        return intent.intent_id

    def _do_cancel_all(self, ctx: _ActionContext, action: model.CancelAll) -> str:
        intent = intents.CancelAll(intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id)
        self.state.inflight[intent.intent_id] = InFlight("cancel_all", ctx.rule.id, "spot", ctx.step.now)
        self._emit(ctx, intent)
        return intent.intent_id

    def _do_dead_man_switch(self, ctx: _ActionContext, action: model.DeadManSwitch) -> str:
        intent = intents.DeadManSwitch(intent_id=ctx.intent_id(), rule_id=ctx.rule.id, decision_id=ctx.decision_id,
                                       timeout=int(action.timeout))
        self.state.inflight[intent.intent_id] = InFlight("dead_man_switch", ctx.rule.id, "spot", ctx.step.now)
        self._emit(ctx, intent)
        return intent.intent_id

    # ------------------------------------------------------------------ helpers

    def _market_price(self, symbol: str) -> Decimal | None:
        return self.state.quotes.price(symbol)

    def _check_risk(self, ctx: _ActionContext, pair: str, notional: Decimal | None) -> None:
        orders = self.state.orders
        breaches = check_order(self.limits, OrderProposal(pair, notional), now=ctx.step.now,
                               open_orders=len(orders), open_notional=orders.total_notional(),
                               sent=self.state.order_times)
        for breach in breaches:
            ctx.step.record("risk", ctx.rule.id, decision_id=ctx.decision_id, action=ctx.index, **breach.detail())
        if breaches:
            raise _Halt("blocked", "risk limit: " + ", ".join(b.limit for b in breaches),
                        limits=[b.limit for b in breaches])

    def _track_order(self, ctx: _ActionContext, kind: str, market: str, pair: str, client_id: str,
                     volume: Decimal, unit_price: Decimal | None) -> None:
        state = self.state
        state.orders.add(OrderView(key=client_id, market=market, pair=pair, status="sending", rule_id=ctx.rule.id,
                                   cl_ord_id=client_id, volume=volume, price=unit_price, placed_at=ctx.step.now))
        state.order_times.record(ctx.step.now)
        state.inflight[ctx.intent_id()] = InFlight(kind, ctx.rule.id, market, ctx.step.now, order_key=client_id)

    def _own_orders(self, ctx: _ActionContext, market: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The exchange ids of this rule's open orders, or client ids for those still in flight."""
        own = self.state.orders.of_rule(ctx.rule.id, market)
        txids = tuple(t for o in own for t in o.txids)
        client_ids = tuple(o.cl_ord_id for o in own if not o.txids and o.cl_ord_id)
        if not own:
            ctx.step.record("action", ctx.rule.id, decision_id=ctx.decision_id, action=ctx.index,
                            skipped="no open orders placed by this rule")
        return txids, client_ids


class _ActionContext:
    __slots__ = ("rule", "run", "index", "env", "where", "step", "decision_id")

    def __init__(self, rule: model.Rule, run: Run, index: int, env: dict[str, Any], where: str, step: Step):
        self.rule, self.run, self.index, self.env, self.where, self.step = rule, run, index, env, where, step
        self.decision_id = decision_id(rule.id, run.fire_seq)

    def intent_id(self, suffix: str = "") -> str:
        return intent_id(self.rule.id, self.run.fire_seq, self.index, suffix)


def _resolve(value: model.Value, env: Mapping[str, Any], where: str) -> tuple[Any, str]:
    if isinstance(value, model.Expr):
        return evaluate(value, env, where), value.source
    return value, str(value)


def _decimal(value: model.Value, env: Mapping[str, Any], where: str) -> Decimal:
    raw, source = _resolve(value, env, where)
    return decimal_value(raw, where, source)


def _positive(value: model.Value, env: Mapping[str, Any], where: str) -> Decimal | None:
    if value is None:
        return None
    result = _decimal(value, env, where)
    if result <= 0:
        raise EvalFailure(where, str(value), f"expected a positive price, got {result}")
    return result


def _price(value: model.Value, env: Mapping[str, Any], where: str) -> Decimal | str | None:
    """A positive Decimal, or a Kraken relative price string (`+50`, `-1.5%`, `#10`) as written."""
    if value is None:
        return None
    raw, source = _resolve(value, env, where)
    if isinstance(raw, str) and raw.strip().startswith(_RELATIVE_PRICE):
        return raw.strip()
    result = decimal_value(raw, where, source)
    if result <= 0:
        raise EvalFailure(where, source, f"expected a positive price, got {result}")
    return result


def _text(value: model.Value, env: Mapping[str, Any], where: str) -> str | None:
    if value is None:
        return None
    raw, _ = _resolve(value, env, where)
    return None if raw is None else str(raw)


def _valuation_price(prices: tuple[Decimal | str | None, ...], market: Decimal | None) -> Decimal | None:
    """The highest absolute price given, else the market price (relative prices are valued there)."""
    absolute = [p for p in prices if isinstance(p, Decimal)]
    return max(absolute) if absolute else market


def _order_ids(data: Mapping[str, Any], kind: str) -> list[str]:
    raw = data.get("txid") if kind == "place_order" else data.get("order_id")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    return [str(t) for t in raw]
