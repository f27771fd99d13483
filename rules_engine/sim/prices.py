"""Where simulated prices come from: a seeded random walk, or a replay file.

A source hands out `PriceStep`s: a delay (seconds of market time since the previous step)
and the new prices. The simulator sleeps `delay / speed` between steps; tests can apply
steps directly (`Simulator.step()`), so nothing here reads a clock.

Replay files are read by `rules_engine.replay.data`, the reader `rules-engine replay` uses, in
any of its formats: Kraken OHLCVT/OHLC CSV, a saved REST OHLC answer, or recorded WebSocket
frames (JSONL, parsed by `rules_engine.kraken.ws_frames`). Each candle plays open, the nearer
extreme, the other extreme and close, at quarters of the candle's interval, so resting orders
see its range; the steps keep the recorded spacing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rules_engine.pairs import PairRegistry

if TYPE_CHECKING:
    from rules_engine.replay.data import DataFile


@dataclass(frozen=True)
class PricePoint:
    symbol: str  # spot altname
    price: Decimal
    volume: Decimal = Decimal(0)
    quoted: tuple[Decimal, Decimal] | None = None  # the bid and ask, when they are not one tick away


@dataclass(frozen=True)
class PriceStep:
    delay: float
    points: tuple[PricePoint, ...]


class PriceSource(Protocol):
    def next_step(self, current: Mapping[str, Decimal]) -> PriceStep | None:
        """The next step given the current prices by altname; None when exhausted."""


class RandomWalk:
    """Every `interval` seconds each priced pair moves by a log-normal step of
    `volatility` (standard deviation per step), rounded to the pair's tick size."""

    def __init__(self, pairs: PairRegistry, seed: int = 0, interval: float = 0.5, volatility: float = 0.0005):
        self.pairs = pairs
        self.interval = interval
        self.volatility = volatility
        self._rng = random.Random(seed)

    def next_step(self, current: Mapping[str, Decimal]) -> PriceStep:
        points = []
        for symbol in sorted(current):
            pair = self.pairs.resolve(symbol)
            tick = pair.tick_size if pair.tick_size > 0 else Decimal(1).scaleb(-pair.pair_decimals)
            factor = Decimal(repr(math.exp(self._rng.gauss(0.0, self.volatility))))
            price = max(tick, (current[symbol] * factor / tick).to_integral_value() * tick)
            volume = Decimal(repr(round(self._rng.uniform(0.001, 1.0), 8)))
            points.append(PricePoint(pair.altname, price, volume))
        return PriceStep(self.interval, tuple(points))


class Replay:
    """Timed price points played in order (points at the same time form one step)."""

    def __init__(self, events: Iterable[tuple[float, PricePoint]]):
        self._events = sorted(events, key=lambda e: e[0])
        self._index = 0
        self._previous: float | None = None

    def __len__(self) -> int:
        return len(self._events)

    def next_step(self, current: Mapping[str, Decimal]) -> PriceStep | None:
        if self._index >= len(self._events):
            return None
        time = self._events[self._index][0]
        points = []
        while self._index < len(self._events) and self._events[self._index][0] == time:
            points.append(self._events[self._index][1])
            self._index += 1
        delay = 0.0 if self._previous is None else time - self._previous
        self._previous = time
        return PriceStep(delay, tuple(points))


# rules_engine.replay.data is imported where it is used: importing the replay package loads
# the paper exchange from this package, so a module-level import would be circular.


def replay_events(data: DataFile, pairs: PairRegistry) -> list[tuple[float, PricePoint]]:
    """The timed price points of one file opened by `rules_engine.replay.data.open_data`.

    A candle gives the four ticks `candle_ticks` plays, each with a quarter of its volume.
    A recorded frame gives its tickers' `last` price (else the bid/ask mid, else the one
    side there is); a futures product is priced as its underlying spot pair (`PF_XBTUSD`
    moves `XBTUSD`). Frames before the first one with a time start at 0."""
    from rules_engine.replay.data import DataError, candle_ticks

    events: list[tuple[float, PricePoint]] = []
    if data.format == "ws-jsonl":
        for tick in data.ticks(start=0.0):
            symbol = tick.symbol if tick.market == "spot" else _underlying(tick.symbol, pairs)
            if symbol is None:
                raise DataError(f"{data.path}: futures product {tick.symbol} has no spot pair to price")
            price = tick.last if tick.last is not None else tick.mid
            if price is None:
                price = tick.bid or tick.ask
            if price is None:  # the frame parsers refuse a ticker without last, bid and ask
                raise DataError(f"{data.path}: ticker for {tick.symbol} has no last, bid or ask")
            events.append((tick.time, PricePoint(symbol, price)))
        return events
    assert data.symbol is not None and data.interval is not None
    for candle in data.candles():
        share = candle.volume / 4
        for tick in candle_ticks(data.symbol, candle, data.interval):
            assert tick.last is not None  # a candle's ticks carry its prices as `last`
            events.append((tick.time, PricePoint(tick.symbol, tick.last, share)))
    return events


def _underlying(product: str, pairs: PairRegistry) -> str | None:
    """`PF_XBTUSD` -> `XBTUSD`, or None when no spot pair has that name."""
    pair = pairs.get(product.split("_", 1)[-1])
    return pair.altname if pair is not None else None


def open_replay(paths: Iterable[Path | str], pairs: PairRegistry, pair: str | None = None) -> Replay:
    """A replay of one or more market data files, merged by time. Files are read by
    `rules_engine.replay.data.open_data` (format by extension, else by content); `pair` names
    the pair of candle files not named `PAIR_INTERVAL.csv`. Raises `DataError` (a ValueError)."""
    from rules_engine.replay.data import DataError, open_data

    events: list[tuple[float, PricePoint]] = []
    for path in paths:
        events += replay_events(open_data(path, pair=pair, registry=pairs, pair_option="--replay-pair"), pairs)
    if not events:
        raise DataError("the replay files hold no ticker data")
    return Replay(events)
