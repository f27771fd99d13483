"""Events fed to the engine core. Each carries its own time (epoch seconds): the core
never reads a clock.

Adapters produce them (WebSocket feed -> Tick, webhook -> Signal, timers -> TimerBeat,
executors -> ActionResult); replay and rule tests produce the same objects from files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Tick:
    """A ticker update for one symbol. `time` is when it was received (or replayed);
    `exchange_time` is Kraken's own timestamp where the feed sends one."""

    symbol: str  # spot: altname (XBTUSD); futures: product id (PF_XBTUSD)
    market: str  # "spot" | "futures"
    time: float
    last: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    exchange_time: float | None = None

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2


def _tick_maker() -> Callable[[str, str, float, Decimal | None, Decimal | None, Decimal | None, float | None], Tick]:
    """`Tick(symbol, market, time, last, bid, ask, exchange_time)` for the hot paths (feeds,
    replay): the same object, built by filling its `__dict__` in one call instead of the frozen
    dataclass's seven `object.__setattr__` calls. Falls back to the constructor should `Tick`
    ever gain slots or a `__post_init__` check."""
    names = tuple(Tick.__dataclass_fields__)
    if hasattr(Tick, "__slots__") or hasattr(Tick, "__post_init__") or names != (
        "symbol", "market", "time", "last", "bid", "ask", "exchange_time"
    ):
        return Tick
    new = object.__new__

    def make(symbol: str, market: str, time: float, last: Decimal | None, bid: Decimal | None,
             ask: Decimal | None, exchange_time: float | None) -> Tick:
        tick: Tick = new(Tick)
        fields = tick.__dict__  # item by item: cheaper than update() with keywords
        fields["symbol"] = symbol
        fields["market"] = market
        fields["time"] = time
        fields["last"] = last
        fields["bid"] = bid
        fields["ask"] = ask
        fields["exchange_time"] = exchange_time
        return tick

    return make


make_tick = _tick_maker()


@dataclass(frozen=True)
class Signal:
    """An authenticated, schema-checked signal from `/signals/{source}`."""

    source: str
    payload: Mapping[str, Any]
    time: float
    signal_id: str = ""


@dataclass(frozen=True)
class TimerBeat:
    """A timer trigger's scheduled beat for one rule (`trigger_index` into its triggers)."""

    rule_id: str
    trigger_index: int
    time: float
    scheduled_time: float | None = None


@dataclass(frozen=True)
class ActionResult:
    """The outcome of an intent, fed back so multi-step rules stay pure."""

    intent_id: str
    ok: bool
    time: float
    data: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Clock:
    """Time passing with no market event, so `for:` holds and cooldowns can resolve."""

    time: float


@dataclass(frozen=True)
class BalanceUpdate:
    """Balances seen by an adapter (the `balances` feed, a Balance read outside any rule).
    `snapshot=True` means the mapping is complete: assets missing from it hold zero, as in
    Kraken's Balance result; otherwise only the listed assets change."""

    balances: Mapping[str, Decimal]
    time: float
    snapshot: bool = False


@dataclass(frozen=True)
class OrderUpdate:
    """An order's status from the executions feed or an order query. Either id may be
    missing; `status` uses Kraken's words (pending, open, closed, canceled, expired, or the
    WebSocket v2 / Futures ones such as new, partially_filled, filled, placed, cancelled)."""

    time: float
    status: str
    txid: str | None = None
    cl_ord_id: str | None = None
    pair: str | None = None
    market: str = "spot"
    volume: Decimal | None = None
    filled: Decimal | None = None
    price: Decimal | None = None


@dataclass(frozen=True)
class KillSwitch:
    """Engage (or clear) the kill switch: while engaged no rule action runs.
    Engaging with `cancel_all=True` also cancels every open order."""

    engaged: bool
    time: float
    cancel_all: bool = False
    reason: str = ""


@dataclass(frozen=True)
class FeedReset:
    """The price feed for `market` reconnected (or lost data) for `symbols` (empty: all):
    the next tick of each is a first observation again, so a reconnect never fires a rule."""

    market: str
    time: float
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenOrders:
    """Every order open on `market` at `time`, by exchange id (an account read). An order the
    core tracks, placed before `time` and known by an exchange id not listed, has closed (filled,
    cancelled or expired) since: it leaves the view. Orders still being sent are kept."""

    time: float
    market: str = "spot"
    txids: tuple[str, ...] = ()


Event = (
    Tick | Signal | TimerBeat | ActionResult | Clock | BalanceUpdate | OrderUpdate | OpenOrders | KillSwitch
    | FeedReset
)
