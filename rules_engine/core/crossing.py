"""Armed crossings, the sorted index that finds them, and the watcher base of the trigger types
that cross a level with a value read from each tick (the price, the spread).

A `Crossing` is one such trigger's arming state:

- `unobserved`: the price has not been seen since the trigger was loaded.
- `armed`: the price was seen on the near side of the level; crossing it fires.
- `disarmed`: it fired, or was first seen beyond the level; it re-arms once the price is
  back on the near side by the re-arm distance (hysteresis; just strictly back without one).

For `above` a fire is `value >= level` and re-arming `value < level and value <= level - rearm`;
`below` mirrors it. A first observation never fires: a trigger seen on the near side arms,
one seen beyond the level stays disarmed. The same first-observation rule applies after a
restart, a feed reset or a rule reload, so none of them can fire a rule by itself.

A `LevelBook` holds every crossing on one (market, symbol, key) as a sorted array of its
thresholds (the level, and the re-arm point when there is hysteresis). A move from p0 to p1
can only change the state of a crossing with a threshold in [min(p0,p1), max(p0,p1)], so the
update visits exactly that slice (two bisections) instead of every crossing.

A `CrossingWatcher` keeps one LevelBook per (market, symbol, key) of its triggers; the trigger
type's module says which value a key reads from a quote (`value`) and from a tick (`read`: None
when the tick does not move it), and what a firing provides (`context`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal

from rules_engine.core.env import StateNotReady
from rules_engine.core.events import Tick
from rules_engine.core.model import Rearm, Rule
from rules_engine.core.trace import Step
from rules_engine.core.watch import NO_FIRES, UNBOUNDED, Band, Fire, Lapsed, TriggerT, Watcher, narrow

WatchState = Literal["unobserved", "armed", "disarmed"]
Transition = Literal["armed", "disarmed", "fired"]


def restored_state(saved: str | None) -> WatchState:
    """A crossing's state saved before (`armed` / `disarmed`); anything else is `unobserved`."""
    if saved == "armed":
        return "armed"
    if saved == "disarmed":
        return "disarmed"
    return "unobserved"


class Crossing(Generic[TriggerT]):
    """The arming state of trigger `index` of rule `rule_id`: `direction` across `level`, re-armed
    past `rearm`; `watched` is the (market, symbol, key) whose value it watches."""

    __slots__ = ("rule_id", "index", "trigger", "watched", "level", "direction", "above", "arm_limit", "state")

    def __init__(self, rule_id: str, index: int, trigger: TriggerT, watched: tuple[str, str, str],
                 level: Decimal, direction: str, rearm: Rearm | None, state: WatchState = "unobserved"):
        self.rule_id = rule_id
        self.index = index
        self.trigger = trigger
        self.watched = watched
        self.level = level
        self.direction = direction
        self.above = direction == "above"
        distance = rearm.distance(level) if rearm else Decimal(0)
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


class LevelBook(Generic[TriggerT]):
    """Every crossing on one (market, symbol, key), indexed by threshold."""

    __slots__ = ("_all", "_points", "_watches", "last")

    def __init__(self, watches: list[Crossing[TriggerT]]):
        self._all = list(watches)
        pairs = sorted(
            ((point, n, watch) for n, watch in enumerate(watches) for point in watch.thresholds()),
            key=lambda item: (item[0], item[1]),
        )
        self._points = [point for point, _, _ in pairs]
        self._watches = [watch for _, _, watch in pairs]
        self.last: Decimal | None = None

    def update(self, value: Decimal) -> list[tuple[Crossing[TriggerT], Transition]]:
        """Move to `value`; return the crossings whose state changed and how.
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

    def band(self, firing: bool = False) -> Band | None:
        """The open interval around the last value in which a move changes no crossing's state:
        between the nearest thresholds that can act now (an armed crossing's level, a disarmed
        one's re-arm point, any threshold of one not yet observed); with `firing`, between the
        levels of the armed crossings: a move inside it fires none (it may re-arm some). None
        before a first value or when the last value sits on such a threshold. Found from the
        sorted thresholds outward, so its cost grows with the thresholds that cannot act, not
        with the book."""
        last = self.last
        if last is None:
            return None
        points = self._points
        watches = self._watches
        start = bisect_left(points, last)
        stop = bisect_right(points, last, start)
        for n in range(start, stop):
            if _acts(watches[n], points[n], firing):
                return None
        low = start - 1
        while low >= 0 and not _acts(watches[low], points[low], firing):
            low -= 1
        high = stop
        count = len(points)
        while high < count and not _acts(watches[high], points[high], firing):
            high += 1
        return (points[low] if low >= 0 else None, points[high] if high < count else None)


def _acts(watch: Crossing[Any], point: Decimal, firing: bool) -> bool:
    """Whether a move across `point` can change `watch` (with `firing`: fire it)."""
    state = watch.state
    if state == "armed":
        return point == watch.level
    if firing:
        return False
    return state == "unobserved" or point == watch.arm_limit


class CrossingWatcher(Watcher[TriggerT]):
    """The watcher of a trigger type that crosses a level with a value read from each tick.
    Subclasses (in the type's module) say how: `crossing` builds a trigger's `Crossing`,
    `value` reads a key's value from a quote, `read` from a tick and the quote it updated (None
    when the tick does not move it: the hot path), and `context` gives the names a firing
    provides. `what` names the value in trace reasons."""

    events: ClassVar[tuple[type, ...]] = (Tick,)
    keeps_state: ClassVar[bool] = True
    what: ClassVar[str] = "value"
    # What a tick with bid = ask = last = p reads: p (a price), or a constant 0 (a spread).
    follows_price: ClassVar[bool] = True

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._crossings: dict[tuple[str, int], Crossing[TriggerT]] = {}
        self._books: dict[tuple[str, str], list[tuple[str, LevelBook[TriggerT]]]] = {}
        self._quotes = self.host.state.quotes

    # ------------------------------------------------------------------ what the type says

    def crossing(self, rule: Rule, index: int, trigger: TriggerT, state: WatchState) -> Crossing[TriggerT]:
        raise NotImplementedError

    def value(self, key: str, quote: Mapping[str, Decimal]) -> Decimal | None:
        raise NotImplementedError

    def read(self, key: str, tick: Tick, quote: Mapping[str, Decimal]) -> Decimal | None:
        raise NotImplementedError

    def context(self, crossing: Crossing[TriggerT], value: Decimal, quote: Mapping[str, Decimal]) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ the watcher

    def add(self, rule: Rule, index: int, trigger: TriggerT, saved: str | None) -> Crossing[TriggerT]:
        crossing = self.crossing(rule, index, trigger, restored_state(saved))
        self._crossings[(rule.id, index)] = crossing
        return crossing

    def start(self, step: Step) -> None:
        grouped: dict[tuple[str, str, str], list[Crossing[TriggerT]]] = {}
        for crossing in self._crossings.values():
            grouped.setdefault(crossing.watched, []).append(crossing)
        for (market, symbol, key), crossings in grouped.items():
            book = LevelBook(crossings)
            last = self.value(key, self._quotes.get(market, symbol))
            if last is not None:
                self._trace_first(step, market, symbol, key, last, book.update(last))
            self._books.setdefault((market, symbol), []).append((key, book))

    def on_event(self, tick: Tick, step: Step) -> list[Fire]:
        books = self._books.get((tick.market, tick.symbol))
        if not books:
            return NO_FIRES
        quote = self._quotes.get(tick.market, tick.symbol)
        fired: dict[str, Fire] | None = None
        for key, book in books:
            value = self.read(key, tick, quote)
            if value is None:
                continue
            first = book.last is None
            changes = book.update(value)
            if first:
                self._trace_first(step, tick.market, tick.symbol, key, value, changes)
                continue
            for crossing, change in changes:
                step.record("trigger", crossing.rule_id, trigger=crossing.index, state=change, field=key,
                            value=value, level=crossing.level, direction=crossing.direction)
                if change == "fired":
                    if fired is None:
                        fired = {}
                    current = fired.get(crossing.rule_id)
                    if current is None or crossing.index < current.trigger_index:
                        rule = self.host.rules[crossing.rule_id]
                        fired[crossing.rule_id] = Fire(rule, crossing.index, self.context(crossing, value, quote))
        return list(fired.values()) if fired else NO_FIRES

    def recheck(self, rule: Rule, index: int, context: dict[str, Any], step: Step,
                ready: bool) -> dict[str, Any] | Lapsed | StateNotReady:
        crossing = self._crossings.get((rule.id, index))
        if crossing is None:
            return Lapsed(f"{self.what} no longer beyond the level", {"value": None, "level": None})
        market, symbol, key = crossing.watched
        quote = self._quotes.get(market, symbol)
        value = self.value(key, quote)
        if value is None or not crossing.beyond(value):
            return Lapsed(f"{self.what} no longer beyond the level", {"value": value, "level": crossing.level})
        return {**context, **self.context(crossing, value, quote)}

    def symbols(self, market: str) -> Iterable[str]:
        return [symbol for (m, symbol) in self._books if m == market]

    def quiet_band(self, market: str, symbol: str, firing: bool = False) -> Band | None:
        books = self._books.get((market, symbol))
        if not books:
            return (None, None)
        quiet = UNBOUNDED
        for _, book in books:
            if not self.follows_price:
                if book.last != 0:  # such a tick reads 0: quiet only if that is no change
                    return None
                continue
            band = book.band(firing)
            if band is None:
                return None
            quiet = narrow(quiet, band)
        return quiet

    def reset(self, market: str, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            for _, book in self._books.get((market, symbol), ()):
                book.reset()

    def _trace_first(self, step: Step, market: str, symbol: str, key: str, value: Decimal,
                     changes: list[tuple[Crossing[TriggerT], Transition]]) -> None:
        armed = sum(1 for _, change in changes if change == "armed")
        self.host.changed.update(crossing.rule_id for crossing, _ in changes)  # traced without the rule's id
        step.record("trigger", None, first_observation=f"{market}:{symbol}:{key}", value=value,
                    armed=armed, disarmed=len(changes) - armed)
