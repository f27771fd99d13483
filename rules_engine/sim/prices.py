"""Where simulated prices come from: a seeded random walk, or a replay file.

A source hands out `PriceStep`s: a delay (seconds of market time since the previous step)
and the new prices. The simulator sleeps `delay / speed` between steps; tests can apply
steps directly (`Simulator.step()`), so nothing here reads a clock.

Replay files:
- Kraken OHLCVT CSV (`timestamp,open,high,low,close,volume,trades`, no header) or OHLC CSV
  (`timestamp,open,high,low,close`); one pair per file, named by `pair` or by the file name
  (`XBTUSD_60.csv`). Each candle is played as open, then the nearer extreme, the other
  extreme, and close, spread over the candle's interval, so resting orders see its range.
- JSONL of recorded WebSocket frames, one per line: v2 ticker objects, v1 ticker arrays or
  Futures ticker objects, bare or wrapped as `{"time": <epoch seconds>, "frame": ...}`.
  Other frames (heartbeats, acks) are skipped.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

from rules_engine.pairs import PairRegistry

DEFAULT_SPACING = 1.0  # seconds between frames that carry no time


@dataclass(frozen=True)
class PricePoint:
    symbol: str  # spot altname
    price: Decimal
    volume: Decimal = Decimal(0)


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


def _decimal(text: str, where: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{where}: {text.strip()!r} is not a number") from None


def read_ohlc_csv(path: Path, pair: str) -> list[tuple[float, PricePoint]]:
    """Events from a Kraken OHLC or OHLCVT CSV file for one pair (altname)."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        cells = [c.strip() for c in line.split(",")]
        if not line.strip() or (number == 1 and not cells[0].replace(".", "", 1).isdigit()):
            continue
        where = f"{path}:{number}"
        if len(cells) < 5:
            raise ValueError(f"{where}: expected timestamp,open,high,low,close[,volume,trades]")
        values = [_decimal(c, where) for c in cells[:6]]
        rows.append((float(values[0]), values[1:5], values[5] if len(values) > 5 else Decimal(0)))
    events = []
    for index, (start, (open_, high, low, close), volume) in enumerate(rows):
        following = rows[index + 1][0] if index + 1 < len(rows) else None
        previous = rows[index - 1][0] if index else None
        span = (following - start) if following is not None else (start - previous if previous is not None else 60.0)
        path_ = (open_, low, high, close) if close >= open_ else (open_, high, low, close)
        share = volume / 4
        for part, price in enumerate(path_):
            events.append((start + span * part / 4, PricePoint(pair, price, share)))
    return events


def _frame_time(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _points_from_frame(frame: Any, pairs: PairRegistry) -> tuple[float | None, list[PricePoint]]:
    if isinstance(frame, list) and len(frame) >= 4 and frame[-2] == "ticker" and isinstance(frame[1], dict):
        pair = pairs.resolve(frame[-1])
        return None, [PricePoint(pair.altname, Decimal(str(frame[1]["c"][0])))]
    if isinstance(frame, dict) and frame.get("channel") == "ticker":
        points, time = [], None
        for entry in frame.get("data", ()):
            pair = pairs.resolve(entry["symbol"])
            points.append(PricePoint(pair.altname, Decimal(str(entry["last"]))))
            time = _frame_time(entry.get("timestamp")) or time
        return time, points
    if isinstance(frame, dict) and frame.get("feed") == "ticker" and "product_id" in frame:
        underlying = frame["product_id"].upper().split("_", 1)[-1]
        pair = pairs.resolve(underlying)
        price = frame.get("last") or frame.get("markPrice")
        time = frame["time"] / 1000 if isinstance(frame.get("time"), (int, float)) else None
        return time, [PricePoint(pair.altname, Decimal(str(price)))]
    return None, []


def read_frames_jsonl(path: Path, pairs: PairRegistry) -> list[tuple[float, PricePoint]]:
    """Events from recorded WebSocket ticker frames (JSON Lines)."""
    events: list[tuple[float, PricePoint]] = []
    clock = 0.0
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from None
        wrapped = isinstance(record, dict) and "frame" in record
        frame = record["frame"] if wrapped else record
        if isinstance(frame, str):
            frame = json.loads(frame)
        try:
            frame_time, points = _points_from_frame(frame, pairs)
        except (KeyError, IndexError, TypeError, ValueError, InvalidOperation) as exc:
            raise ValueError(f"{where}: unreadable ticker frame ({exc})") from None
        if not points:
            continue
        time = _frame_time(record.get("time")) if wrapped else None
        time = time if time is not None else frame_time
        clock = time if time is not None else (clock + DEFAULT_SPACING if events else clock)
        events.extend((clock, p) for p in points)
    return events


def pair_from_filename(path: Path) -> str:
    """`XBTUSD_60.csv` -> `XBTUSD` (Kraken's OHLCVT download naming)."""
    return Path(path).stem.split("_", 1)[0]


def open_replay(paths: Iterable[Path | str], pairs: PairRegistry, pair: str | None = None) -> Replay:
    """A replay of one or more files (CSV or JSONL, by extension), merged by time."""
    events: list[tuple[float, PricePoint]] = []
    for raw in paths:
        path = Path(raw)
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            events += read_frames_jsonl(path, pairs)
        else:
            name = pair or pair_from_filename(path)
            info = pairs.get(name)
            if info is None:
                raise ValueError(f"{path}: unknown pair {name!r}; name the file PAIR_INTERVAL.csv or pass the pair")
            events += read_ohlc_csv(path, info.altname)
    if not events:
        raise ValueError("the replay files hold no ticker data")
    return Replay(events)
