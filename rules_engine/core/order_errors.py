"""What the rule's author can do about Kraken's refusals of an order whose values the rule
wrote: Kraken's error strings say what failed, not what to change. A computed price or volume
is sent as the expression gave it, so rounding it is the rule's job."""

from __future__ import annotations

_HINTS: tuple[tuple[str, str], ...] = (
    ("EOrder:Tick size check failed",
     "a price is not a multiple of the pair's tick size (tick_size in Kraken's AssetPairs): round computed "
     "prices, as in round(ask * 1.001, 1)"),
    ("EGeneral:Invalid arguments:volume",
     "the volume has more decimals than the pair takes (lot_decimals in Kraken's AssetPairs), or is not "
     "positive: round computed volumes, as in round(balance('ZUSD') * 0.1 / ask, 8)"),
    ("EOrder:Order minimum not met",
     "the volume is below the pair's minimum order (`rules-engine pairs list` shows it)"),
    ("EOrder:Cost minimum not met",
     "the order's value (volume times price) is below the pair's minimum cost (costmin in Kraken's AssetPairs)"),
)


def with_hint(error: str | None) -> str | None:
    """`error` followed by what to change in the rule, for the refusals a rule's values cause."""
    if error is None:
        return None
    for prefix, hint in _HINTS:
        if error.startswith(prefix):
            return f"{error} ({hint})"
    return error
