"""What a loaded rule set needs from the adapters: which symbols each price feed must
subscribe to, which timers to schedule, which signal sources must exist, and the file
hash behind each rule id (for the audit log)."""

from __future__ import annotations

from dataclasses import dataclass

from rules_engine.core.model import (
    FuturesSendOrder,
    Market,
    PlaceOrder,
    PriceTrigger,
    RuleSet,
    SignalTrigger,
    TimerTrigger,
)
from rules_engine.driver.timetable import TimerEntry


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
    """Symbols watched by enabled rules' price triggers, plus the pairs their orders name
    (risk limits value a market order at the last price seen, so that price must be known)."""
    spot: set[str] = set()
    futures: set[str] = set()
    timers: list[TimerEntry] = []
    sources: set[str] = set()
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        for index, trigger in enumerate(rule.triggers):
            if isinstance(trigger, PriceTrigger):
                (spot if trigger.market is Market.SPOT else futures).add(trigger.symbol)
            elif isinstance(trigger, TimerTrigger):
                timers.append((rule.id, index, trigger))
            elif isinstance(trigger, SignalTrigger):
                sources.add(trigger.source)
        for action in rule.actions:
            if isinstance(action, PlaceOrder):
                spot.add(action.pair)
            elif isinstance(action, FuturesSendOrder):
                futures.add(action.symbol)
    hashes = {rule.id: rule.source.file_hash for rule in ruleset.rules if rule.source is not None}
    return RuleNeeds(frozenset(spot), frozenset(futures), tuple(timers), frozenset(sources), hashes)
