"""The typed, immutable rule model every other part consumes.

The loader (`rules_engine.rules`) turns YAML into these objects after schema validation;
the engine core, replay and rule tests read only these, never raw dicts.

Conventions
- Times are float seconds since the Unix epoch; durations are float seconds.
- Money amounts written as literals are `Decimal` (parsed from the YAML text, never via float).
- A field typed `Value` holds either a literal or an `Expr`: in rule files a string that
  starts with `=` is an expression (`volume: "=balance('ZUSD') * 0.1 / price"`).
- Spot symbols are canonical Kraken altnames (`XBTUSD`), whatever form the file used
  (`XBT/USD`, `BTC/USD`); futures symbols are product ids in upper case (`PF_XBTUSD`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, Union


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


Literal_ = Union[Decimal, int, str, bool, None]
Value = Union[Literal_, Expr]


class Market(str, Enum):
    SPOT = "spot"
    FUTURES = "futures"


# ----------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class Rearm:
    """Hysteresis before a crossing can fire again: an absolute distance or a percent of the level."""

    amount: Decimal
    percent: bool = False

    def distance(self, level: Decimal) -> Decimal:
        return level * self.amount / Decimal(100) if self.percent else self.amount


@dataclass(frozen=True)
class PriceTrigger:
    """Fires when `field` of `symbol` crosses `level` in `direction` (an armed crossing)."""

    symbol: str
    market: Market
    field: Literal["last", "bid", "ask", "mid"]
    direction: Literal["above", "below"]
    level: Decimal
    rearm: Rearm | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["price"] = "price"


@dataclass(frozen=True)
class SignalTrigger:
    """Fires on a signal POSTed to `/signals/{source}` whose payload passes `where`."""

    source: str
    where_expr: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["signal"] = "signal"


@dataclass(frozen=True)
class TimerTrigger:
    """Fires every `every` seconds, or on a `cron` schedule in `timezone`."""

    every: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["timer"] = "timer"


Trigger = Union[PriceTrigger, SignalTrigger, TimerTrigger]

# ----------------------------------------------------------------------------- guards


@dataclass(frozen=True)
class Guard:
    """A `when` condition: one expression, or all/any/not of nested guards."""

    kind: Literal["expr", "all", "any", "not"]
    expr: Expr | None = None
    children: tuple[Guard, ...] = ()
    where: SourceRef | None = field(default=None, compare=False)


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class CheckBalance:
    """Stop the remaining actions unless `asset` balance >= `minimum`."""

    asset: str
    minimum: Value
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["check_balance"] = "check_balance"


@dataclass(frozen=True)
class CloseOrder:
    """AddOrder's conditional close (`close[ordertype]`, `close[price]`, `close[price2]`)."""

    ordertype: str
    price: Value = None
    price2: Value = None


@dataclass(frozen=True)
class PlaceOrder:
    """Kraken Spot AddOrder. Field names follow Kraken's parameters."""

    pair: str
    side: Literal["buy", "sell"]
    ordertype: str
    volume: Value
    price: Value = None
    price2: Value = None
    trigger: Literal["last", "index"] | None = None
    leverage: str | None = None
    reduce_only: bool = False
    oflags: tuple[str, ...] = ()
    timeinforce: Literal["GTC", "IOC", "GTD"] | None = None
    starttm: str | None = None
    expiretm: str | None = None
    displayvol: Value = None
    close: CloseOrder | None = None
    expire_after: float | None = None
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["place_order"] = "place_order"


@dataclass(frozen=True)
class CancelOrder:
    """CancelOrder by one selector; `own=True` means the orders this rule placed."""

    txid: Value = None
    cl_ord_id: Value = None
    userref: int | None = None
    own: bool = False
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["cancel_order"] = "cancel_order"


@dataclass(frozen=True)
class CancelAll:
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["cancel_all"] = "cancel_all"


@dataclass(frozen=True)
class DeadManSwitch:
    """CancelAllOrdersAfter(timeout); 0 disables the switch."""

    timeout: float
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["dead_man_switch"] = "dead_man_switch"


@dataclass(frozen=True)
class FuturesSendOrder:
    """Kraken Futures sendorder."""

    symbol: str
    side: Literal["buy", "sell"]
    order_type: Literal["lmt", "post", "ioc", "mkt", "stp", "take_profit", "trailing_stop", "fok"]
    size: Value
    limit_price: Value = None
    stop_price: Value = None
    trigger_signal: Literal["mark", "index", "last"] | None = None
    reduce_only: bool = False
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["futures_send_order"] = "futures_send_order"


@dataclass(frozen=True)
class FuturesCancelOrder:
    """Futures cancelorder by order_id / cliOrdId, or the orders this rule placed."""

    order_id: Value = None
    cli_ord_id: Value = None
    own: bool = False
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["futures_cancel_order"] = "futures_cancel_order"


@dataclass(frozen=True)
class Log:
    message: Template
    level: Literal["debug", "info", "warning", "error"] = "info"
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["log"] = "log"


@dataclass(frozen=True)
class Notify:
    message: Template
    channel: str = "default"
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["notify"] = "notify"


Action = Union[
    CheckBalance,
    PlaceOrder,
    CancelOrder,
    CancelAll,
    DeadManSwitch,
    FuturesSendOrder,
    FuturesCancelOrder,
    Log,
    Notify,
]

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
    triggers: tuple[Trigger, ...]
    actions: tuple[Action, ...]
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

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}
