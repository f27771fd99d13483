"""Kraken's rate-limit arithmetic, shared by the client-side limiter and the simulator.

REST call counter (per API key): every call adds its cost, the counter decays each second,
and a call that would take it over the tier maximum gets `EAPI:Rate limit exceeded`.
Ledger and trade-history calls cost 2, AddOrder/CancelOrder (and other trading calls) 0
(they use the trading counter), everything else 1.

Trading counter (per key and pair): AddOrder +1; a cancel costs by the order's age
(+8 under 5 s, +6 under 10 s, +5 under 15 s, +4 under 45 s, +2 under 90 s, +1 under 300 s,
0 after); going over gives `EOrder:Rate limit exceeded`.
Source: ../shared/reference/kraken-api.md section 5 (docs.kraken.com rate-limit guides).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    name: str
    rest_max: float
    rest_decay: float  # per second
    trade_max: float
    trade_decay: float  # per second
    max_open_orders: int  # per pair


TIERS: dict[str, Tier] = {
    "starter": Tier("starter", 15, 0.33, 60, 1.0, 60),
    "intermediate": Tier("intermediate", 20, 0.5, 125, 2.34, 80),
    "pro": Tier("pro", 20, 1.0, 180, 3.75, 225),
}

_TWO_POINT_CALLS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades"})
_TRADING_CALLS = frozenset(
    {"AddOrder", "AddOrderBatch", "AmendOrder", "EditOrder", "CancelOrder", "CancelOrderBatch"}
)
_CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))


def rest_cost(method: str) -> int:
    """What one private REST call adds to the REST call counter."""
    if method in _TRADING_CALLS:
        return 0
    return 2 if method in _TWO_POINT_CALLS else 1


def cancel_penalty(order_age_seconds: float) -> int:
    """What cancelling an order of this age adds to the pair's trading counter."""
    for limit, cost in _CANCEL_PENALTY:
        if order_age_seconds < limit:
            return cost
    return 0


class DecayingCounter:
    """A counter that drains at `decay` per second and may not exceed `maximum`.

    Pure arithmetic: every method takes the current time, so it is deterministic in tests.
    """

    def __init__(self, maximum: float, decay: float):
        self.maximum = maximum
        self.decay = decay
        self._value = 0.0
        self._at = 0.0

    def value(self, now: float) -> float:
        """The counter's value at `now` (never negative)."""
        return max(0.0, self._value - max(0.0, now - self._at) * self.decay)

    def would_exceed(self, cost: float, now: float) -> bool:
        return cost > 0 and self.value(now) + cost > self.maximum

    def add(self, cost: float, now: float) -> bool:
        """Add `cost` if it fits; return False (and add nothing) if it would exceed."""
        if self.would_exceed(cost, now):
            return False
        self._value = self.value(now) + cost
        self._at = max(now, self._at)
        return True

    def force_add(self, cost: float, now: float) -> None:
        """Add `cost` even past the maximum (Kraken counts rejected calls too)."""
        self._value = self.value(now) + cost
        self._at = max(now, self._at)

    def seconds_until_room(self, cost: float, now: float) -> float:
        """How long until `cost` fits (0 when it fits now)."""
        excess = self.value(now) + cost - self.maximum
        return 0.0 if excess <= 0 or self.decay <= 0 else excess / self.decay
