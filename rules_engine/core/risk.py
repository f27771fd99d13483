"""Risk limits: configured for the engine, never by a rule, and checked on every order
after the rule's guard and the action's `if`, just before the intent would leave.

The engine config file's `risk:` section is parsed straight into a `RiskLimits`
(`rules_engine.config.EngineConfig.risk`).
Notional is volume x price in the pair's quote currency; `max_order_notional` is per pair,
with the key `default` for pairs not listed; `max_total_notional` caps the notional of the
engine's open and in-flight orders plus the new one.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MINUTE = 60.0
DAY = 86400.0


@dataclass(frozen=True)
class RiskLimits:
    """None (or an empty mapping) means no limit of that kind."""

    allowed_pairs: frozenset[str] | None = None
    max_order_notional: Mapping[str, Decimal] = field(default_factory=dict)
    max_total_notional: Decimal | None = None
    max_orders_per_minute: int | None = None
    max_orders_per_day: int | None = None
    max_open_orders: int | None = None


@dataclass(frozen=True)
class Breach:
    """One limit an order would break: `value` is what the order would make it, `allowed` the limit."""

    limit: str
    value: Any
    allowed: Any
    pair: str

    def detail(self) -> dict[str, Any]:
        return {"limit": self.limit, "value": self.value, "allowed": self.allowed, "pair": self.pair}

    def text(self) -> str:
        """`max_order_notional (would be 701.75 for XBTUSD, the limit is 500)`: the limit and how."""
        if self.limit == "allowed_pairs":
            return f"allowed_pairs ({self.pair} is not one of {', '.join(self.allowed)})"
        if self.limit == "notional_unknown":
            return f"notional_unknown (no price of {self.pair} is known to value the order)"
        value = format(self.value, "f") if isinstance(self.value, Decimal) else self.value
        allowed = format(self.allowed, "f") if isinstance(self.allowed, Decimal) else self.allowed
        what = f"{value} for {self.pair}" if self.limit == "max_order_notional" else value
        return f"{self.limit} (would be {what}, the limit is {allowed})"


@dataclass(frozen=True)
class OrderProposal:
    """What the checker needs to know about one order. `notional` is None when no price is known."""

    pair: str
    notional: Decimal | None


class OrderTimes:
    """When the engine sent its orders, for the per-minute and per-day limits (kept one day),
    in order, so a count is a binary search however many orders the day holds."""

    def __init__(self, times: list[float] | None = None):
        self._times: list[float] = sorted(times or [])

    def record(self, now: float) -> None:
        times = self._times
        if times and now < times[-1]:  # the clock stepped back: keep them in order
            bisect.insort(times, now)
        else:
            times.append(now)
        self._trim(now)

    def count_since(self, since: float) -> int:
        return len(self._times) - bisect.bisect_right(self._times, since)

    def _trim(self, now: float) -> None:
        times = self._times
        if times and times[0] <= now - DAY:
            del times[:bisect.bisect_right(times, now - DAY)]

    def to_json(self, now: float) -> list[float]:
        self._trim(now)
        return list(self._times)


def check_order(
    limits: RiskLimits,
    order: OrderProposal,
    *,
    now: float,
    open_orders: int,
    open_notional: Decimal,
    sent: OrderTimes,
) -> list[Breach]:
    """Every limit the order would break (empty: it may go)."""
    breaches: list[Breach] = []
    pair = order.pair
    if limits.allowed_pairs is not None and pair.upper() not in {p.upper() for p in limits.allowed_pairs}:
        breaches.append(Breach("allowed_pairs", pair, sorted(limits.allowed_pairs), pair))
    per_pair = _pair_limit(limits.max_order_notional, pair)
    if order.notional is None:
        if per_pair is not None or limits.max_total_notional is not None:
            breaches.append(Breach("notional_unknown", None, "a known price for the pair", pair))
    else:
        if per_pair is not None and order.notional > per_pair:
            breaches.append(Breach("max_order_notional", order.notional, per_pair, pair))
        total = open_notional + order.notional
        if limits.max_total_notional is not None and total > limits.max_total_notional:
            breaches.append(Breach("max_total_notional", total, limits.max_total_notional, pair))
    if limits.max_open_orders is not None and open_orders + 1 > limits.max_open_orders:
        breaches.append(Breach("max_open_orders", open_orders + 1, limits.max_open_orders, pair))
    windows = (("max_orders_per_minute", limits.max_orders_per_minute, MINUTE),
               ("max_orders_per_day", limits.max_orders_per_day, DAY))
    for name, allowed, window in windows:
        if allowed is not None:
            count = sent.count_since(now - window) + 1
            if count > allowed:
                breaches.append(Breach(name, count, allowed, pair))
    return breaches


def _pair_limit(limits: Mapping[str, Decimal], pair: str) -> Decimal | None:
    for key, value in limits.items():
        if key.upper() == pair.upper():
            return value
    return limits.get("default")
