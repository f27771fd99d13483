"""Simulated market data: one price per pair, its running statistics and OHLC candles,
and the ticker shapes Kraken publishes (REST, WebSocket v1 and v2). Pure: time is passed in.

The published bid and ask sit one tick either side of the last price, unless the price was
set with its own bid and ask (`Simulator.set_price(..., bid=, ask=)`). "Today" and
"last 24 hours" both cover the time since the simulator started.

Numbers are strings with fixed decimals, per pair: market-data prices with the larger of the
pair's `pair_decimals` and `cost_decimals` (Kraken's own examples: XBTUSD, `pair_decimals` 1 and
`cost_decimals` 5, tickers at `"30300.10000"`), volumes with `lot_decimals`; the book's
top-of-book sizes (`rules_engine.sim.book`) are the ticker's bid and ask quantities.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rules_engine.pairs import PairInfo, PairRegistry
from rules_engine.paper.assets import fmt

INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
MAX_CANDLES = 720
_ZERO = Decimal(0)


@dataclass
class PriceCandle:
    time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = _ZERO
    cost: Decimal = _ZERO
    count: int = 0

    def row(self, places: int) -> list[Any]:
        vwap = self.cost / self.volume if self.volume else self.close
        return [
            self.time,
            fmt(self.open, places),
            fmt(self.high, places),
            fmt(self.low, places),
            fmt(self.close, places),
            fmt(vwap, places),
            fmt(self.volume, 8),
            self.count,
        ]


@dataclass(frozen=True)
class Print:
    """One trade in the simulated market (a random-walk step with volume, a replayed trade,
    or an account's fill): a row of the public `Trades` endpoint."""

    price: Decimal
    volume: Decimal
    time: float
    side: str  # "b" or "s"
    kind: str  # "m" (market) or "l" (limit)
    trade_id: int


MAX_PRINTS = 1000


def price_decimals(pair: PairInfo) -> int:
    """Decimals of market-data prices: the larger of `pair_decimals` and `cost_decimals`."""
    return max(pair.pair_decimals, pair.cost_decimals)


@dataclass
class PairStats:
    """Running statistics of one pair since the simulator started."""

    pair: PairInfo
    price: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    updated: float
    volume: Decimal = _ZERO
    cost: Decimal = _ZERO
    trades: int = 0
    last_volume: Decimal = _ZERO
    quoted: tuple[Decimal, Decimal] | None = None  # bid and ask set with the price, else one tick either side
    candles: dict[int, deque[PriceCandle]] = field(default_factory=dict)
    prints: deque[Print] = field(default_factory=lambda: deque(maxlen=MAX_PRINTS))
    print_count: int = 0

    def add_print(self, price: Decimal, volume: Decimal, now: float, side: str, kind: str) -> None:
        self.print_count += 1
        self.prints.append(Print(price, volume, now, side, kind, self.print_count))

    @property
    def tick(self) -> Decimal:
        return self.pair.tick_size if self.pair.tick_size > 0 else Decimal(1).scaleb(-self.pair.pair_decimals)

    @property
    def bid(self) -> Decimal:
        return self.quoted[0] if self.quoted is not None else self.price - self.tick

    @property
    def ask(self) -> Decimal:
        return self.quoted[1] if self.quoted is not None else self.price + self.tick

    @property
    def vwap(self) -> Decimal:
        return self.cost / self.volume if self.volume else self.price

    def record(self, price: Decimal, volume: Decimal, now: float,
               quoted: tuple[Decimal, Decimal] | None = None) -> None:
        previous = self.price
        self.price, self.updated, self.quoted = price, now, quoted
        self.high, self.low = max(self.high, price), min(self.low, price)
        if volume > 0:
            self.add_print(price, volume, now, "b" if price >= previous else "s", "m")
            self.volume += volume
            self.cost += volume * price
            self.trades += 1
            self.last_volume = volume
        for interval in INTERVALS:
            start = int(now) // (interval * 60) * interval * 60
            series = self.candles.setdefault(interval, deque(maxlen=MAX_CANDLES))
            if not series or series[-1].time != start:
                series.append(PriceCandle(start, price, price, price, price))
            candle = series[-1]
            candle.high, candle.low, candle.close = max(candle.high, price), min(candle.low, price), price
            if volume > 0:
                candle.volume += volume
                candle.cost += volume * price
                candle.count += 1


class MarketData:
    """Prices and statistics of every pair that has a price."""

    def __init__(self, pairs: PairRegistry, seed: int | str = 0):
        self.pairs = pairs
        self.seed = seed  # of the seeded order book's sizes
        self._stats: dict[str, PairStats] = {}

    def update(self, symbol: str, price: Decimal, now: float, volume: Decimal = _ZERO,
               quoted: tuple[Decimal, Decimal] | None = None) -> PairInfo:
        """Record a trade (or a bare price move, volume 0), with the bid and ask if `quoted`;
        returns the pair."""
        pair = self.pairs.resolve(symbol)
        price = Decimal(price)
        stats = self._stats.get(pair.altname)
        if stats is None:
            stats = PairStats(pair, price, price, price, price, now)
            self._stats[pair.altname] = stats
        stats.record(price, Decimal(volume), now, quoted)
        return pair

    def stats(self, symbol: str) -> PairStats | None:
        pair = self.pairs.get(symbol)
        return None if pair is None else self._stats.get(pair.altname)

    def price(self, symbol: str) -> Decimal | None:
        stats = self.stats(symbol)
        return None if stats is None else stats.price

    def prices(self) -> dict[str, Decimal]:
        """Last price by altname."""
        return {k: s.price for k, s in self._stats.items()}

    def ohlc(self, symbol: str, interval: int, since: float | None = None) -> tuple[list[list[Any]], int]:
        """Kraken OHLC rows (oldest first) and `last` (the newest committed candle's time)."""
        stats = self.stats(symbol)
        if stats is None:
            return [], 0
        candles = list(stats.candles.get(interval, ()))
        rows = [c.row(price_decimals(stats.pair)) for c in candles if since is None or c.time > since]
        last = candles[-2].time if len(candles) > 1 else (candles[0].time if candles else 0)
        return rows, last


def rfc3339(now: float) -> str:
    """`2023-09-25T09:04:31.742648Z` (WebSocket v2 timestamps)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rest_ticker(stats: PairStats, seed: int | str = 0) -> dict[str, Any]:
    """One pair of the REST Ticker result (`a b c v p t l h o`)."""
    pair = stats.pair
    p, lots = price_decimals(pair), pair.lot_decimals
    ask_qty, bid_qty = top_sizes(stats, seed)
    return {
        "a": [fmt(stats.ask, p), str(int(ask_qty)), fmt(ask_qty, 3)],
        "b": [fmt(stats.bid, p), str(int(bid_qty)), fmt(bid_qty, 3)],
        "c": [fmt(stats.price, p), fmt(stats.last_volume, lots)],
        "v": [fmt(stats.volume, lots)] * 2,
        "p": [fmt(stats.vwap, p)] * 2,
        "t": [stats.trades] * 2,
        "l": [fmt(stats.low, p)] * 2,
        "h": [fmt(stats.high, p)] * 2,
        "o": fmt(stats.open, p),
    }


def v1_ticker(stats: PairStats, seed: int | str = 0) -> dict[str, Any]:
    """The payload of a WebSocket v1 ticker array (`a`/`b` carry an integer whole-lot volume
    and the lot volume with `lot_decimals`; `o` has two values there)."""
    payload = rest_ticker(stats, seed)
    ask_qty, bid_qty = top_sizes(stats, seed)
    lots = stats.pair.lot_decimals
    payload["a"] = [payload["a"][0], int(ask_qty), fmt(ask_qty, lots)]
    payload["b"] = [payload["b"][0], int(bid_qty), fmt(bid_qty, lots)]
    payload["o"] = [payload["o"]] * 2
    return payload


def top_sizes(stats: PairStats, seed: int | str = 0) -> tuple[Decimal, Decimal]:
    """The seeded book's sizes at the ask and the bid (`rules_engine.sim.book`)."""
    return level_volume(stats.pair, "ask", 0, seed), level_volume(stats.pair, "bid", 0, seed)


def level_volume(pair: PairInfo, side: str, index: int, seed: int | str = 0) -> Decimal:
    """The seeded size of the book's `index`-th level on `side` (`bid` or `ask`)."""
    digest = hashlib.sha256(f"{seed}:{pair.altname}:{side}:{index}".encode()).digest()
    units = 20 + int.from_bytes(digest[:4], "big") % 1981
    minimum = pair.ordermin if pair.ordermin > 0 else Decimal(1).scaleb(-pair.lot_decimals)
    return (minimum * units).quantize(Decimal(1).scaleb(-pair.lot_decimals))


def v2_ticker(stats: PairStats, seed: int | str = 0) -> dict[str, Any]:
    """One entry of a WebSocket v2 ticker message's `data` (JSON numbers), with every field
    the docs list (and `trades`, which live frames carry)."""
    change = stats.price - stats.open
    ask_qty, bid_qty = top_sizes(stats, seed)
    return {
        "symbol": stats.pair.v2_symbol,
        "bid": float(stats.bid),
        "bid_qty": float(bid_qty),
        "ask": float(stats.ask),
        "ask_qty": float(ask_qty),
        "last": float(stats.price),
        "volume": float(stats.volume),
        "vwap": float(stats.vwap),
        "low": float(stats.low),
        "high": float(stats.high),
        "change": float(change),
        "change_pct": float(round(change / stats.open * 100, 2)) if stats.open else 0.0,
        "trades": stats.trades,
        "timestamp": rfc3339(stats.updated),
    }
