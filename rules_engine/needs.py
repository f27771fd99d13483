"""What a loaded rule set needs from the adapters: which symbols each ticker feed must subscribe
to, which timers to schedule, which signal sources must exist, and the file hash behind each rule
id (for the audit log). Each trigger and action type says what one of its own needs
(`TriggerType.needs`, `ActionType.needs` in `rules_engine.registry`); this collects them over
the enabled rules. The service and the offline driver both use it."""

from __future__ import annotations

from dataclasses import dataclass

from rules_engine.core.model import Market, RuleSet
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
    price must be known), their timers and signal sources."""
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
    hashes = {rule.id: rule.source.file_hash for rule in ruleset.rules if rule.source is not None}
    return RuleNeeds(frozenset(feeds[Market.SPOT.value]), frozenset(feeds[Market.FUTURES.value]), tuple(timers),
                     frozenset(sources), hashes)
