"""What a rule set reads from the account and the market in its expressions, so the driver
can have it ready before the first event (balances) and the service can subscribe to it
(prices named in `price_of('...')`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from rules_engine.core.model import Expr, RuleSet


def expressions(value: Any) -> Iterator[Expr]:
    """Every expression inside a model object (rules, triggers, guards, actions)."""
    if isinstance(value, Expr):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from expressions(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from expressions(getattr(value, field.name))


def _enabled_expressions(ruleset: RuleSet) -> Iterator[Expr]:
    for rule in ruleset.rules:
        if rule.enabled:
            yield from expressions(rule)


def reads_balances(ruleset: RuleSet) -> bool:
    """Whether an enabled rule calls `balance(...)` in any expression."""
    return any("balance" in expr.compiled.names for expr in _enabled_expressions(ruleset))


def priced_symbols(ruleset: RuleSet) -> frozenset[str]:
    """The symbols enabled rules name in `price_of('...')` calls, as written."""
    symbols: set[str] = set()
    for expr in _enabled_expressions(ruleset):
        if "price_of" in expr.compiled.names:
            symbols.update(expr.compiled.literal_arguments("price_of"))
    return frozenset(symbols)
