"""Build model objects for core tests without the YAML loader: rules, triggers, actions,
with expressions compiled by the real sandbox against every name an expression may use."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rules_engine.actions.check_balance import CheckBalanceAction
from rules_engine.actions.log import LogAction
from rules_engine.actions.place_order import PlaceOrderAction
from rules_engine.core import model
from rules_engine.core.events import Tick
from rules_engine.expr import compile_expression, compile_template
from rules_engine.registry import env_names
from rules_engine.triggers.price import PriceTrigger
from rules_engine.triggers.signal import SignalTrigger
from rules_engine.triggers.spread import SpreadTrigger
from rules_engine.triggers.timer import TimerTrigger

ENV_NAMES = env_names()


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


def expr(source: str) -> model.Expr:
    return model.Expr(source, compile_expression(source, ENV_NAMES))


def value(text: Any) -> model.Value:
    """`"=..."` is an expression (as in rule files); numeric strings become Decimals."""
    if isinstance(text, str) and text.startswith("="):
        return expr(text[1:])
    if isinstance(text, (int, str)) and not isinstance(text, bool):
        try:
            return Decimal(str(text))
        except ArithmeticError:
            return text
    return text


def template(text: str) -> model.Template:
    return model.Template(text, compile_template(text, ENV_NAMES))


def when(source: str) -> model.Guard:
    return model.Guard("expr", expr(source))


def all_of(*children: model.Guard) -> model.Guard:
    return model.Guard("all", children=children)


def any_of(*children: model.Guard) -> model.Guard:
    return model.Guard("any", children=children)


def not_(child: model.Guard) -> model.Guard:
    return model.Guard("not", children=(child,))


def price(level: str | int, direction: str = "above", symbol: str = "XBTUSD", field: str = "last",
          rearm: str | int | None = None, percent: bool = False, market: str = "spot") -> PriceTrigger:
    return PriceTrigger(
        symbol=symbol, market=model.Market(market), field=field, direction=direction, level=D(level),  # type: ignore[arg-type]
        rearm=None if rearm is None else model.Rearm(D(rearm), percent),
    )


def spread(level: str | int, direction: str = "above", symbol: str = "XBTUSD", percent: bool = False,
           rearm: str | int | None = None, market: str = "spot") -> SpreadTrigger:
    return SpreadTrigger(
        symbol=symbol, market=model.Market(market), direction=direction, level=D(level), percent=percent,  # type: ignore[arg-type]
        rearm=None if rearm is None else model.Rearm(D(rearm)),
    )


def signal(source: str, where: str | None = None) -> SignalTrigger:
    return SignalTrigger(source, expr(where) if where else None)


def timer(every: float = 60.0) -> TimerTrigger:
    return TimerTrigger(every=every)


def log(message: str = "fired {rule_id}", condition: str | None = None) -> LogAction:
    return LogAction(template(message), condition=expr(condition) if condition else None)


def order(volume: Any = "0.1", pair: str = "XBTUSD", side: str = "buy", ordertype: str = "limit",
          price: Any = "100", condition: str | None = None, **kw: Any) -> PlaceOrderAction:
    return PlaceOrderAction(pair=pair, side=side, ordertype=ordertype, volume=value(volume),  # type: ignore[arg-type]
                            price=None if price is None else value(price),
                            condition=expr(condition) if condition else None, **kw)


def check_balance(asset: str = "ZUSD", minimum: Any = "50") -> CheckBalanceAction:
    return CheckBalanceAction(asset, value(minimum))


def rule(rule_id: str, *triggers: model.TriggerSpec, actions: tuple = (), **kw: Any) -> model.Rule:
    return model.Rule(id=rule_id, triggers=tuple(triggers), actions=tuple(actions) or (log(),), **kw)


def ruleset(*rules: model.Rule) -> model.RuleSet:
    return model.RuleSet(tuple(rules))


def tick(time: float, last: Any = None, symbol: str = "XBTUSD", bid: Any = None, ask: Any = None,
         market: str = "spot") -> Tick:
    conv = lambda v: None if v is None else D(v)  # noqa: E731
    return Tick(symbol=symbol, market=market, time=time, last=conv(last), bid=conv(bid), ask=conv(ask))


def kinds(decision: Any, kind: str) -> list[Any]:
    """Trace records of one kind."""
    return [r for r in decision.trace if r.kind == kind]


def fired(decision: Any, rule_id: str | None = None) -> list[str]:
    """Decision ids started by this decision (optionally of one rule)."""
    return [r.detail["decision_id"] for r in decision.trace
            if r.kind == "decision" and "fire_seq" in r.detail and (rule_id is None or r.rule_id == rule_id)]
