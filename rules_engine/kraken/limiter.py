"""A client-side mirror of Kraken's rate counters for one API key: wait instead of being refused.

Kraken keeps a REST call counter per key and a trading counter per key and pair (the
arithmetic lives in `ratelimit.py`, shared with the simulator). `RateLimiter.acquire`
adds a call's cost to our copy of the counters and, when Kraken would refuse it, sleeps
until the counters have decayed enough. Repeated refusals are what escalate to a lockout,
so the engine slows down instead of hammering.

Our copy starts at zero and can only under-count calls made elsewhere with the same key;
`note_rate_limited` fills the counter when Kraken reports a limit anyway, so the next call
waits for a full decay. Cancels cost by the age of the order, so the limiter remembers
when (and on which pair) each order it saw placed was created.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rules_engine.kraken.ratelimit import TIERS, DecayingCounter, Tier, cancel_penalty, rest_cost

# Kraken's trading counter: AddOrder (and a validate-only AddOrder) costs +1 on receipt.
ADD_ORDER_COST = 1
_EPSILON = 1e-6  # seconds
_SLACK = 0.01  # seconds added to each wait, so float rounding never leaves a counter a hair over


@dataclass(eq=False)
class _Order:
    pair: str
    created: float
    ids: tuple[str, ...]


class RateLimiter:
    """REST and per-pair trading counters of one key; thread-safe."""

    def __init__(
        self,
        tier: str | Tier = "starter",
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        headroom: float = 0.0,
        max_tracked_orders: int = 10_000,
    ):
        self.tier = TIERS[tier] if isinstance(tier, str) else tier
        self.headroom = headroom
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rest = DecayingCounter(self.tier.rest_max - headroom, self.tier.rest_decay)
        self._trading: dict[str, DecayingCounter] = {}
        self._orders: dict[str, _Order] = {}  # txid or cl_ord_id -> the order
        self._max_tracked = max_tracked_orders
        self.waited = 0.0  # total seconds slept, for metrics and tests
        self.refusals: dict[str | None, int] = {}  # counter (None: REST, else the pair) -> refusals in a row

    def _pair_counter(self, pair: str) -> DecayingCounter:
        counter = self._trading.get(pair)
        if counter is None:
            counter = self._trading[pair] = DecayingCounter(
                self.tier.trade_max - self.headroom, self.tier.trade_decay
            )
        return counter

    def _charges(self, method: str, pair: str | None, order_id: str | None) -> list[tuple[DecayingCounter, float]]:
        """What a call adds: its REST cost, +1 on the pair for AddOrder, a cancel's age penalty."""
        charges: list[tuple[DecayingCounter, float]] = []
        if rest_cost(method):
            charges.append((self._rest, rest_cost(method)))
        if method == "AddOrder" and pair is not None:
            charges.append((self._pair_counter(pair), ADD_ORDER_COST))
        order = self._orders.get(order_id) if order_id is not None else None
        if method == "CancelOrder" and order is not None:
            charges.append((self._pair_counter(order.pair), cancel_penalty(self._clock() - order.created)))
        return charges

    def _wait(self, method: str, pair: str | None, order_id: str | None, charge: bool) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                pending = self._charges(method, pair, order_id)
                delay = max((c.seconds_until_room(cost, now) for c, cost in pending), default=0.0)
                if delay <= _EPSILON:  # float dust must not turn into endless tiny sleeps
                    if charge:
                        for counter, cost in pending:
                            counter.force_add(cost, now)
                    self.waited += waited
                    return waited
            self._sleep(delay + _SLACK)
            waited += delay + _SLACK

    def wait_for_room(self, method: str, *, pair: str | None = None, order_id: str | None = None) -> float:
        """Sleep until the call would fit, without counting it (done before taking the key's lock)."""
        return self._wait(method, pair, order_id, charge=False)

    def acquire(self, method: str, *, pair: str | None = None, order_id: str | None = None) -> float:
        """Sleep until the call fits, then count it: the REST counter, and for AddOrder
        (`pair`) or CancelOrder (`order_id`) the pair's trading counter. Returns seconds slept.

        The clients call this under the key's lock right before sending, so the calls are
        counted in the order Kraken receives them.
        """
        waited = self._wait(method, pair, order_id, charge=True)
        if method == "CancelOrder" and order_id is not None:
            self.forget_order(order_id)
        return waited

    def record_cancel_all(self, order_ids: Iterable[str] | None = None) -> None:
        """Charge the cancel penalties of a CancelAll (never waits: a kill switch must not)."""
        with self._lock:
            now = self._clock()
            ids = list(self._orders) if order_ids is None else list(order_ids)
            orders = {self._orders[i] for i in ids if i in self._orders}
            for order in orders:
                self._pair_counter(order.pair).force_add(cancel_penalty(now - order.created), now)
                self._drop(order)

    def record_order(self, order_ids: Iterable[str], pair: str) -> None:
        """Remember that these ids (its txids and cl_ord_id) name one order created now on `pair`."""
        with self._lock:
            order = _Order(pair, self._clock(), tuple(order_ids))
            for order_id in order.ids:
                self._orders[order_id] = order
            while len(self._orders) > self._max_tracked:
                self._drop(self._orders[next(iter(self._orders))])

    def forget_order(self, order_id: str) -> None:
        """Stop tracking an order (it was cancelled or has closed)."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is not None:
                self._drop(order)

    def _drop(self, order: _Order) -> None:
        for order_id in order.ids:
            if self._orders.get(order_id) is order:
                del self._orders[order_id]

    def note_rate_limited(self, pair: str | None = None, method: str | None = None) -> None:
        """Kraken refused a call (`method`): its counter (REST, or the pair's) is full, and the
        refused call counted on top of it, as Kraken counts refused calls too. Mirroring that
        matters: a client that only waited for room for one call would come back exactly as
        fast as the counter decays and, if Kraken's counter started above ours (calls made by
        an earlier process with the same key), be refused forever. Refusals in a row count the
        call's cost 1, 2, 4, 8, 16 times, so the waits grow until Kraken's counter has room."""
        with self._lock:
            now = self._clock()
            counter = self._rest if pair is None else self._pair_counter(pair)
            cost = float(ADD_ORDER_COST if pair is not None else (rest_cost(method) if method else 1))
            streak = self.refusals[pair] = self.refusals.get(pair, 0) + 1
            counter.force_add(max(0.0, counter.maximum - counter.value(now)) + cost * 2 ** min(streak - 1, 4), now)

    def note_answered(self, pair: str | None = None) -> None:
        """A call was answered (not refused for the rate): refusals in a row start again at one."""
        if self.refusals:
            with self._lock:
                self.refusals.pop(pair, None)

    def rest_value(self) -> float:
        with self._lock:
            return self._rest.value(self._clock())

    def trading_value(self, pair: str) -> float:
        with self._lock:
            return self._pair_counter(pair).value(self._clock())
