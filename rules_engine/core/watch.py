"""Watchers: how the engine matches triggers without naming a trigger type.

Every trigger type's spec names its watcher class (`TriggerSpec.watcher`). At each load the
engine makes one watcher per class found in the rules, `add`s every trigger of an enabled rule
to the watcher of its class, then `start`s each watcher (which may observe what the engine
already knows, such as the last quotes). For each event the engine first updates its own view
(quotes, balances, orders), then passes the event to every watcher whose `events` name the
event's class; a watcher returns the rules its triggers fired, as `Fire`s.

A watcher may keep per-trigger state that survives reloads and restarts (`keeps_state`): `add`
then returns an object with a `state` string (an armed crossing's `armed` / `disarmed` /
`unobserved`), which the engine saves under `rule_id#index` with the trigger's fingerprint and
hands back to `add` while the trigger is unchanged.

While a fired rule is pending (a `for:` hold, or a guard waiting for a value the core has not
seen yet), the engine asks the watcher on every event whether the trigger still holds
(`recheck`): a price crossing checks the price is still beyond its level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from rules_engine.core.env import StateNotReady, build_env
from rules_engine.core.model import Rule, TriggerSpec
from rules_engine.core.state import EngineState
from rules_engine.core.trace import Step

Band = tuple[Decimal | None, Decimal | None]  # an open interval of prices; None: unbounded
UNBOUNDED: Band = (None, None)


def narrow(a: Band, b: Band) -> Band:
    """The intersection of two open intervals (None: unbounded)."""
    low = a[0] if b[0] is None or (a[0] is not None and a[0] > b[0]) else b[0]
    high = a[1] if b[1] is None or (a[1] is not None and a[1] < b[1]) else b[1]
    return low, high

class Fire(NamedTuple):
    """Trigger `trigger_index` of `rule` fired with `context` (the names it provides). `waiting` is set
    when the trigger's own condition (a signal's `where`) needs a value not known yet."""

    rule: Rule
    trigger_index: int
    context: dict[str, Any]
    waiting: StateNotReady | None = None


class Lapsed(NamedTuple):
    """A pending trigger no longer holds: why, and the values seen."""

    reason: str
    detail: dict[str, Any]


class Armed(Protocol):
    """A trigger's saved state, as a watcher that `keeps_state` returns it from `add`."""

    @property
    def state(self) -> str: ...


class WatchHost:
    """What the engine lends its watchers: its state (quotes, time), the loaded rules by id, the
    expression environment and the set of rule ids whose saved part changed without a trace
    record naming them."""

    __slots__ = ("state", "rules", "functions", "blank", "changed")

    def __init__(self, state: EngineState, functions: Mapping[str, Callable[..., Any]], changed: set[str]):
        self.state = state
        self.rules: Mapping[str, Rule] = {}
        self.functions = functions
        self.blank: dict[str, None] = {}
        self.changed = changed

    def env(self, context: Mapping[str, Any], rule_id: str, now: float) -> dict[str, Any]:
        """The environment an expression of `rule_id` sees with this firing context."""
        return build_env(context, rule_id, now, self.functions, self.blank)


NO_FIRES: list[Fire] = []

TriggerT = TypeVar("TriggerT", bound=TriggerSpec)
"""The trigger spec type a watcher matches."""


class Watcher(Generic[TriggerT]):
    """Matches the triggers of one type, `TriggerT` (see the module docstring). Subclasses live
    with their trigger type, in `rules_engine/triggers/<type>.py`."""

    events: ClassVar[tuple[type, ...]] = ()
    keeps_state: ClassVar[bool] = False

    def __init__(self, host: WatchHost):
        self.host = host

    def add(self, rule: Rule, index: int, trigger: TriggerT, saved: str | None) -> Armed | None:
        """Watch trigger `index` of `rule`; `saved` is its state from before (same definition)."""
        raise NotImplementedError

    def start(self, step: Step) -> None:
        """Every trigger is added: build indexes, observe what is already known."""

    def on_event(self, event: Any, step: Step) -> list[Fire]:
        """The triggers this event fired (at most one per rule, its lowest index)."""
        return NO_FIRES

    def recheck(self, rule: Rule, index: int, context: dict[str, Any], step: Step,
                ready: bool) -> dict[str, Any] | Lapsed | StateNotReady:
        """Whether the pending trigger still holds: the context updated with current values, a
        `Lapsed`, or a `StateNotReady` when its condition still cannot be evaluated. `ready` is
        False while the trigger's own condition has not been evaluated yet (`Fire.waiting`)."""
        return context

    def symbols(self, market: str) -> Iterable[str]:
        """The symbols of `market` whose feed this watcher reads."""
        return ()

    def quiet_band(self, market: str, symbol: str, firing: bool = False) -> Band | None:
        """The open interval of prices a tick of `symbol` with bid = ask = last can move to
        without changing this watcher's state or firing (with `firing`: without firing; it may
        change state) (None for an open end); None when it cannot say (the default: every
        tick may matter)."""
        return None

    def reset(self, market: str, symbols: Sequence[str]) -> None:
        """The feed of these symbols reconnected: their next value is a first observation."""
