"""Which names an expression may use: the sandbox's own, the engine's runtime functions,
and the context values each trigger type provides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

RUNTIME_NAMES: frozenset[str] = frozenset({"balance", "price_of", "open_orders", "now"})
RUNTIME_FUNCTIONS: frozenset[str] = frozenset({"balance", "price_of", "open_orders"})
RULE_NAMES: frozenset[str] = frozenset({"trigger", "rule_id"})

CONTEXT_NAMES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "price": frozenset({"price", "bid", "ask", "mid", "last", "symbol", "market", "level"}),
        "signal": frozenset({"signal", "source"}),
        "timer": frozenset({"scheduled_time"}),
    }
)

ALL_CONTEXT_NAMES: frozenset[str] = frozenset().union(*CONTEXT_NAMES.values())


def names_for_triggers(trigger_types: Iterable[str]) -> frozenset[str]:
    """The names a rule's expressions may use, given the types of the rule's triggers.

    A context name is allowed only when every trigger of the rule provides it: a rule
    fired by a price crossing or a signal cannot rely on `price` being set.
    Raises ValueError for a trigger type that has no entry in CONTEXT_NAMES.
    """
    context: frozenset[str] | None = None
    for trigger_type in trigger_types:
        try:
            provided = CONTEXT_NAMES[trigger_type]
        except KeyError:
            raise ValueError(f"unknown trigger type {trigger_type!r}") from None
        context = provided if context is None else context & provided
    return RUNTIME_NAMES | RULE_NAMES | (context or frozenset())


def triggers_providing(name: str) -> list[str]:
    """The trigger types whose context provides `name`."""
    return sorted(kind for kind, provided in CONTEXT_NAMES.items() if name in provided)
