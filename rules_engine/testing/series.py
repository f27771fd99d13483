"""Compact price series: `"70000 70500 69000 every 1m"`.

Prices are separated by spaces only: a comma is an error, since `"30,500 29,900"` is far more
likely thousands separators than four prices; write thousands as `30500` or `30_500`.
`every DURATION` at the end sets the spacing (default: the input's `every:`, else one minute).
Each price becomes one tick, the first at the input's `at`. Prices are read as exact decimals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from rules_engine.durations import parse_duration

DEFAULT_SPACING = 60.0
_EVERY = re.compile(r"\bevery\s+(\S+)\s*$")
_UNDERSCORED = re.compile(r"[0-9]+(_[0-9]+)*(\.[0-9]+)?")
_THOUSANDS = re.compile(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?")


def parse_series(series: str | Sequence[object], every: float | None = None) -> tuple[list[Decimal], float]:
    """The prices and the spacing in seconds; raises ValueError with a readable message."""
    spacing = every
    if isinstance(series, str):
        text = series.strip()
        match = _EVERY.search(text)
        if match:
            spacing = parse_duration(match.group(1))
            text = text[: match.start()]
        if "," in text:
            raise ValueError(_comma_message(text.strip()))
        words = text.split()
    else:
        words = [str(v) for v in series]
    if not words:
        raise ValueError('the series holds no prices; write e.g. "70000 70500 69000 every 1m"')
    prices = []
    for word in words:
        try:
            if "_" in word and not _UNDERSCORED.fullmatch(word):
                raise InvalidOperation
            price = Decimal(word)  # 30_500 is 30500
        except InvalidOperation:
            raise ValueError(f"{word!r} in the series is not a price") from None
        if not price.is_finite() or price <= 0:
            raise ValueError(f"{word!r} in the series is not a positive price")
        prices.append(price)
    spacing = DEFAULT_SPACING if spacing is None else spacing
    if spacing <= 0 and len(prices) > 1:
        raise ValueError("the spacing between prices must be positive")
    return prices, spacing


def _comma_message(text: str) -> str:
    """The error for a series with a comma, with the series rewritten as it was most likely meant."""
    words = [w for w in re.split(r"(?:,?\s+|,(?![0-9]{3}(?:[^0-9]|$)))", text) if w]
    example = " ".join(w.replace(",", "_") if _THOUSANDS.fullmatch(w) else w for w in words)
    return (f'a comma in the series "{text}": prices are separated by spaces only, and thousands are '
            f'written 30500 or 30_500 (e.g. "{example}")')
