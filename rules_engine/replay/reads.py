"""Which prices a spot tick's consequences can read: what lets the offline runner deliver a
tick without first delivering the ticks it holds back of every other symbol.

A tick of `A` that arrives while nothing is due (no timer, deadline, expiry, hold or wait)
can only fire the rules with a price or spread trigger on `A`; what they read is known from
the rule files: the symbols of their triggers and of their orders (`place_order` values a
market order at its pair's last price, and the paper exchange fills it there). A rule that
could read any other price (`price_of(...)` in an expression, a Futures order or trigger,
an action type not listed here) makes every price count: its trigger symbols map to None.
"""

from __future__ import annotations

from rules_engine.core.model import Market, RuleSet
from rules_engine.needs import rule_expressions
from rules_engine.registry import action_types, trigger_types

# Action types that read no price but their own order's pair (named in their needs).
_PRICE_BLIND_ACTIONS = frozenset({"place_order", "cancel_order", "cancel_all", "check_balance", "log", "notify",
                                  "dead_man_switch"})


def tick_reads(ruleset: RuleSet) -> dict[str, frozenset[str] | None]:
    """For each spot symbol a rule's trigger watches: the spot symbols the rules those ticks
    can fire may read (itself included), or None when any price may be read."""
    triggers, actions = trigger_types(), action_types()
    reads: dict[str, frozenset[str] | None] = {}
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        watched = {feed for t in rule.triggers for feed in triggers[t.type].needs(t).feeds}
        if not watched:
            continue  # a timer or a signal: never fired by a tick
        feeds = set(watched)
        anything = False
        for action in rule.actions:
            anything = anything or action.type not in _PRICE_BLIND_ACTIONS
            feeds.update(actions[action.type].needs(action).feeds)
        anything = (anything or any(market != Market.SPOT.value for market, _ in feeds)
                    or any("price_of" in expr.compiled.names for expr in rule_expressions(rule)))
        symbols = frozenset(symbol for _, symbol in feeds)
        for market, symbol in watched:
            if market != Market.SPOT.value:
                continue
            if anything or (symbol in reads and reads[symbol] is None):
                reads[symbol] = None
            else:
                reads[symbol] = symbols | (reads.get(symbol) or frozenset())
    return reads
