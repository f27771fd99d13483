"""Events fed to the engine core. Each carries its own time (epoch seconds): the core
never reads a clock.

Adapters produce them (WebSocket feed -> Tick, webhook -> Signal, timers -> TimerBeat,
executors -> ActionResult); replay and rule tests produce the same objects from files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping


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


Event = Tick | Signal | TimerBeat | ActionResult | Clock
