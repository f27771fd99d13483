"""What a loaded rule set needs from the adapters: which symbols each ticker feed must subscribe
to, which timers to schedule, which signal sources must exist, and the file hash behind each rule
id (for the audit log). Each trigger and action type says what one of its own needs
(`TriggerType.needs`, `ActionType.needs` in `rules_engine.registry`); this collects them over
the enabled rules, with the symbols their expressions name in `price_of('...')` (so those
prices are known) and whether they read balances. The service and the offline driver both use it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rules_engine.core.model import Expr, Market, RuleSet
from rules_engine.pairs import FUTURES_PREFIXED, default_registry
from rules_engine.registry import Needs, action_types, trigger_types
from rules_engine.schedule import Schedule

TimerEntry = tuple[str, int, Schedule]
"""A timer to schedule: (rule id, trigger index, its schedule)."""


@dataclass(frozen=True)
class RuleNeeds:
    spot_symbols: frozenset[str]
    futures_symbols: frozenset[str]
    timers: tuple[TimerEntry, ...]
    signal_sources: frozenset[str]
    rule_hashes: dict[str, str]

    def symbols(self, market: str) -> frozenset[str]:
        return self.spot_symbols if market == Market.SPOT.value else self.futures_symbols


def rule_needs(ruleset: RuleSet) -> RuleNeeds:
    """Everything the enabled rules' triggers and actions need: the symbols they watch, plus the
    pairs their orders name (risk limits value a market order at the last price seen, so that
    price must be known) and those their expressions read with `price_of('...')`, their timers
    and signal sources."""
    feeds: dict[str, set[str]] = {Market.SPOT.value: set(), Market.FUTURES.value: set()}
    timers: list[TimerEntry] = []
    sources: set[str] = set()
    triggers, actions = trigger_types(), action_types()
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        found: list[tuple[int | None, Needs]] = [(i, triggers[t.type].needs(t)) for i, t in enumerate(rule.triggers)]
        found.extend((None, actions[a.type].needs(a)) for a in rule.actions)
        for index, needs in found:
            for market, symbol in needs.feeds:
                feeds[market].add(symbol)
            timers.extend((rule.id, index, timer) for timer in needs.timers if index is not None)
            sources.update(needs.signal_sources)
        for market, symbol in _priced_feeds(rule_expressions(rule)):
            feeds[market].add(symbol)
    hashes = {rule.id: rule.source.file_hash for rule in ruleset.rules if rule.source is not None}
    return RuleNeeds(frozenset(feeds[Market.SPOT.value]), frozenset(feeds[Market.FUTURES.value]), tuple(timers),
                     frozenset(sources), hashes)


def rule_expressions(value: Any) -> Iterator[Expr]:
    """Every expression inside a model object (a rule, its triggers, guard and actions)."""
    if isinstance(value, Expr):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from rule_expressions(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from rule_expressions(getattr(value, field.name))


def reads_balances(ruleset: RuleSet) -> bool:
    """Whether an enabled rule calls `balance(...)` in any expression."""
    return any("balance" in expr.compiled.names
               for rule in ruleset.rules if rule.enabled for expr in rule_expressions(rule))


def _priced_feeds(expressions: Iterator[Expr]) -> Iterator[tuple[str, str]]:
    """(market, symbol) of each symbol named in `price_of('...')`: a futures product id, or a
    spot pair the AssetPairs snapshot knows (by its altname)."""
    registry = default_registry()
    for expr in expressions:
        if "price_of" not in expr.compiled.names:
            continue
        for symbol in expr.compiled.literal_arguments("price_of"):
            if FUTURES_PREFIXED.match(symbol.upper()):
                yield Market.FUTURES.value, symbol.upper()
            elif (pair := registry.get(symbol)) is not None:
                yield Market.SPOT.value, pair.altname
