"""The typed, immutable rule model every other part consumes.

The loader (`rules_engine.rules`) turns YAML into these objects after schema validation;
the engine core, replay and rule tests read only these, never raw dicts. Each trigger and
action type's spec lives in its own module (`rules_engine/triggers/`, `rules_engine/actions/`)
and derives from `TriggerSpec` or `ActionSpec` here.

Conventions
- Times are float seconds since the Unix epoch; durations are float seconds.
- Money amounts written as literals are `Decimal` (parsed from the YAML text, never via float).
- A field typed `Value` holds either a literal or an `Expr`: in rule files a string that
  starts with `=` is an expression (`volume: "=balance('ZUSD') * 0.1 / price"`).
- Spot symbols are canonical Kraken altnames (`XBTUSD`), whatever form the file used
  (`XBT/USD`, `BTC/USD`); futures symbols are product ids in upper case (`PF_XBTUSD`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, dataclass, field
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from rules_engine.core.runs import ActionRun
    from rules_engine.core.watch import Watcher


@dataclass(frozen=True)
class SourceRef:
    """Where something was written: file, 1-based line and column, and the file's sha256."""

    file: str
    line: int
    column: int
    file_hash: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Expr:
    """An expression from a rule file, parsed and name-checked at load time.

    `compiled` is the sandbox's compiled form (`rules_engine.expr.Expression`); it is
    excluded from equality so that two loads of the same file compare equal.
    """

    source: str
    compiled: Any = field(compare=False, repr=False)
    where: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Template:
    """A `log`/`notify` message with `{name}` placeholders, compiled at load time."""

    text: str
    compiled: Any = field(compare=False, repr=False)


Literal_ = Decimal | int | str | bool | None
Value = Literal_ | Expr


# Not StrEnum: that would turn str()/format() from "Market.SPOT" into "spot".
class Market(str, Enum):  # noqa: UP042
    SPOT = "spot"
    FUTURES = "futures"


# ----------------------------------------------------------------------------- crossings


@dataclass(frozen=True)
class Rearm:
    """Hysteresis before a crossing can fire again: an absolute distance or a percent of the level."""

    amount: Decimal
    percent: bool = False

    def distance(self, level: Decimal) -> Decimal:
        return level * self.amount / Decimal(100) if self.percent else self.amount


# ----------------------------------------------------------------------------- guards


@dataclass(frozen=True)
class Guard:
    """A `when` condition: one expression, or all/any/not of nested guards."""

    kind: Literal["expr", "all", "any", "not"]
    expr: Expr | None = None
    children: tuple[Guard, ...] = ()
    where: SourceRef | None = field(default=None, compare=False)


# ----------------------------------------------------------------------------- trigger and action types


WatcherClass = type["Watcher"]
"""A trigger type's watcher class (the alias keeps `type` free for the spec's field)."""


class TriggerSpec:
    """The base of every trigger type's spec: a frozen dataclass in `rules_engine/triggers/<type>.py`
    with a `type` field defaulting to the type's name and a `where` field (compare=False).

    `watcher` is the class that matches triggers of this type in the engine (see
    `rules_engine.core.watch`); `provides` the expression names a firing sets. The engine
    finds a type's behaviour only through these, never by naming the type."""

    type: str
    where: SourceRef | None
    watcher: ClassVar[WatcherClass]
    provides: ClassVar[frozenset[str]] = frozenset()


class ActionSpec:
    """The base of every action type's spec: a frozen dataclass in `rules_engine/actions/<type>.py`
    with a `type` field defaulting to the type's name, and `condition` (its `if:`) and `where`
    fields defaulting to None.

    `run` is called when the action's turn comes in a run (see `rules_engine.core.runs.ActionRun`);
    it returns the intent id to wait for, or None to go on. `resume` is called when that awaited
    result arrived and was ok. `order_market` names the market whose orders the action places or
    cancels (None for none); `places_orders` marks actions that place orders."""

    type: str
    condition: Expr | None
    where: SourceRef | None
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # declared only: each subclass is a dataclass
    order_market: ClassVar[str | None] = None
    places_orders: ClassVar[bool] = False

    def run(self, run: ActionRun) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} has no run function")

    def resume(self, run: ActionRun) -> None:
        """The awaited result arrived and was ok (nothing more to do by default)."""


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class MaxFires:
    """At most `count` fires within any `window` seconds."""

    count: int
    window: float


@dataclass(frozen=True)
class Rule:
    """One rule. Rules with a higher `priority` run first on the same event; ties run in
    load order (file path order, then position in the file)."""

    id: str
    triggers: tuple[TriggerSpec, ...]
    actions: tuple[ActionSpec, ...]
    description: str = ""
    enabled: bool = True
    priority: int = 0
    when: Guard | None = None
    cooldown: float | None = None
    max_fires: MaxFires | None = None
    hold: float | None = None  # the rule file's `for:`
    mode: Literal["single", "queued"] = "single"
    source: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RuleSet:
    """Every rule loaded from a set of files, in evaluation order."""

    rules: tuple[Rule, ...]
    files: tuple[str, ...] = ()
    # Every spelling of a spot pair (upper case: `BTC/USD`, `XXBTZUSD`) -> its altname, so
    # `price_of()` reads a pair however it is written; filled by the loader from AssetPairs.
    pair_names: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}

    def order_markets(self) -> set[str]:
        """The markets whose orders the rules' actions place (`spot`, `futures`)."""
        return {a.order_market for rule in self.rules for a in rule.actions if a.order_market}
