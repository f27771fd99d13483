"""Armed price crossings and the sorted index that finds them.

A `PriceWatch` is one price trigger's arming state:

- `unobserved`: the price has not been seen since the trigger was loaded.
- `armed`: the price was seen on the near side of the level; crossing it fires.
- `disarmed`: it fired, or was first seen beyond the level; it re-arms once the price is
  back on the near side by the re-arm distance (hysteresis; just strictly back without one).

For `above` a fire is `value >= level` and re-arming `value < level and value <= level - rearm`;
`below` mirrors it. A first observation never fires: a trigger seen on the near side arms,
one seen beyond the level stays disarmed. The same first-observation rule applies after a
restart, a feed reset or a rule reload, so none of them can fire a rule by itself.

A `LevelBook` holds every watch on one (market, symbol, field) as a sorted array of its
thresholds (the level, and the re-arm point when there is hysteresis). A move from p0 to p1
can only change the state of a watch with a threshold in [min(p0,p1), max(p0,p1)], so the
update visits exactly that slice (two bisections) instead of every watch.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal
from typing import Literal

from rules_engine.core.model import PriceTrigger

WatchState = Literal["unobserved", "armed", "disarmed"]
Transition = Literal["armed", "disarmed", "fired"]


class PriceWatch:
    """The arming state of trigger `index` of rule `rule_id`."""

    __slots__ = ("rule_id", "index", "trigger", "level", "above", "arm_limit", "state")

    def __init__(self, rule_id: str, index: int, trigger: PriceTrigger, state: WatchState = "unobserved"):
        self.rule_id = rule_id
        self.index = index
        self.trigger = trigger
        self.level = trigger.level
        self.above = trigger.direction == "above"
        distance = trigger.rearm.distance(trigger.level) if trigger.rearm else Decimal(0)
        self.arm_limit = self.level - distance if self.above else self.level + distance
        self.state: WatchState = state

    def thresholds(self) -> tuple[Decimal, ...]:
        return (self.level,) if self.arm_limit == self.level else (self.level, self.arm_limit)

    def beyond(self, value: Decimal) -> bool:
        """True when `value` is on the firing side of the level."""
        return value >= self.level if self.above else value <= self.level

    def rearms(self, value: Decimal) -> bool:
        if self.above:
            return value < self.level and value <= self.arm_limit
        return value > self.level and value >= self.arm_limit

    def observe(self, value: Decimal) -> Transition | None:
        """A price move: fire if armed and beyond the level, re-arm if back far enough."""
        if self.state == "armed":
            if self.beyond(value):
                self.state = "disarmed"
                return "fired"
            return None
        if self.state == "disarmed":
            if self.rearms(value):
                self.state = "armed"
                return "armed"
            return None
        return self.observe_first(value)

    def observe_first(self, value: Decimal) -> Transition | None:
        """A first observation (start-up, restore, feed reset, reload): never fires."""
        previous = self.state
        if previous == "unobserved":
            self.state = "disarmed" if self.beyond(value) else "armed"
        elif previous == "armed" and self.beyond(value):
            self.state = "disarmed"
        elif previous == "disarmed" and self.rearms(value):
            self.state = "armed"
        if self.state == previous:
            return None
        return "armed" if self.state == "armed" else "disarmed"


class LevelBook:
    """Every watch on one (market, symbol, field), indexed by threshold."""

    __slots__ = ("_all", "_points", "_watches", "last")

    def __init__(self, watches: list[PriceWatch]):
        self._all = list(watches)
        pairs = sorted(
            ((point, n, watch) for n, watch in enumerate(watches) for point in watch.thresholds()),
            key=lambda item: (item[0], item[1]),
        )
        self._points = [point for point, _, _ in pairs]
        self._watches = [watch for _, _, watch in pairs]
        self.last: Decimal | None = None

    def update(self, value: Decimal) -> list[tuple[PriceWatch, Transition]]:
        """Move to `value`; return the watches whose state changed and how.
        The first value after construction or `reset()` is a first observation."""
        previous = self.last
        self.last = value
        if previous is None:
            changes = []
            for watch in self._all:
                change = watch.observe_first(value)
                if change is not None:
                    changes.append((watch, change))
            return changes
        if previous == value:
            return []
        low, high = (previous, value) if previous < value else (value, previous)
        start = bisect_left(self._points, low)
        stop = bisect_right(self._points, high, start)
        changes = []
        for watch in self._watches[start:stop]:
            change = watch.observe(value)
            if change is not None:
                changes.append((watch, change))
        return changes

    def reset(self) -> None:
        """Forget the last value: the next update is a first observation."""
        self.last = None
