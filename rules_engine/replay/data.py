"""Recorded market data as ticks, in time order, for replays.

Formats (chosen by `--data-format`, else by the file):
- `ohlcvt`: Kraken's downloadable OHLCVT CSV, `timestamp,open,high,low,close,volume,trades`,
  no header, one pair per file named `PAIR_INTERVAL.csv` (`XBTUSD_60.csv`: 60-minute candles).
- `ohlc`: the same without volume and trades (`timestamp,open,high,low,close`); a header
  line is skipped. Any `.csv` with 5 or more columns is read by its first five.
- `rest-json`: a saved answer of Kraken's REST `GET /0/public/OHLC` (`{"error": [], "result":
  {"XXBTZUSD": [[time, open, high, low, close, vwap, volume, count], ...], "last": ...}}`).
  The last row, "the current, not-yet-committed timeframe" (newer than `last`), is dropped.
- `ws-jsonl`: recorded WebSocket frames, one per line: spot v2 (`{"channel": "ticker", ...}`),
  spot v1 (`[channelID, {...}, "ticker", "XBT/USD"]`) and futures ticker frames, bare or
  wrapped as `{"time": <epoch seconds or RFC 3339>, "frame": <the frame, or its text>}`.
  Frames are parsed by `rules_engine.kraken.ws_frames`, exactly as the live feed parses
  them; a malformed frame is an error. Spot v2 `book` frames (snapshot and updates) keep a
  book per symbol and play a tick with the best bid and ask (no `last`) whenever either
  changes, so spread triggers and guards can be replayed (an update with `qty` 0 removes a
  level; the book is truncated to the snapshot's depth, as Kraken's guide says). A ticker
  (or book) for a pair AssetPairs does not list is skipped and counted by wire name
  (`DataFile.unknown_pairs`). Frames
  that make no tick (heartbeats, acks, status, other channels) are skipped and counted by
  kind (`skipped`, reported by the replay).
  A tick's time is the wrapper's `time`, else the frame's own timestamp (v2 `timestamp`,
  futures `time`), else one second after the previous frame.

Candles become ticks deterministically. A candle starting at `t` with interval `i` plays four
ticks at `t`, `t + i/4`, `t + i/2` and `t + 3i/4`: the open, then both extremes along the
shorter path through the candle, then the close. A rising candle (close >= open) goes
open, low, high, close; a falling one open, high, low, close. Candles carry no spread, so
each tick sets `last`, `bid` and `ask` to the same price. The interval is `--interval`, else
the file name's (`_60` = 60 minutes), else the smallest gap between two candles of the file.
The simulator's replay (`rules_engine.sim.prices`) reads files with this module, so it plays
the same ticks; it also uses each candle's volume (`Candle.volume`, OHLCVT and REST rows).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from rules_engine.core.events import Tick, make_tick
from rules_engine.kraken.ws_frames import Dialect, Ignored, Malformed, UnknownPair, dialect_for
from rules_engine.pairs import PairRegistry, default_registry

FORMATS = ("ohlcvt", "ohlc", "rest-json", "ws-jsonl")
CANDLE_FRACTIONS = (0.0, 0.25, 0.5, 0.75)
FRAME_SPACING = 1.0  # seconds between frames that carry no time


class DataError(ValueError):
    """Unusable market data; the message starts with `file:line:` where there is one."""


_ZERO = Decimal(0)

class Candle(NamedTuple):
    """One candle. `volume` is read from OHLCVT CSV and REST OHLC rows (0 for plain OHLC)."""

    start: float
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)


def candle_path(open_: Decimal, high: Decimal, low: Decimal,
                close: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The four prices a candle plays, in order (see the module docstring)."""
    return (open_, low, high, close) if close >= open_ else (open_, high, low, close)


def candle_ticks(symbol: str, candle: tuple[Any, ...], interval: float, market: str = "spot") -> list[Tick]:
    """The ticks of one candle (a `Candle`, or a `(start, open, high, low, close)` tuple):
    `candle_path` spread over the interval at fixed fractions."""
    start, open_, high, low, close = candle[:5]
    first, second = (low, high) if close >= open_ else (high, low)  # `candle_path`, unrolled: replay's hot path
    quarter = interval * CANDLE_FRACTIONS[1]
    return [make_tick(symbol, market, start, open_, open_, open_, None),
            make_tick(symbol, market, start + quarter, first, first, first, None),
            make_tick(symbol, market, start + 2 * quarter, second, second, second, None),
            make_tick(symbol, market, start + 3 * quarter, close, close, close, None)]


@dataclass(frozen=True)
class DataFile:
    """One market data file, ready to play. `symbol` and `interval` apply to candle formats."""

    path: Path
    format: str
    symbol: str | None = None
    interval: float | None = None
    registry: PairRegistry | None = None
    rows: tuple[Candle, ...] | None = field(default=None, compare=False, repr=False)  # rest-json, read once
    # Recorded tickers of pairs the AssetPairs snapshot does not list, by wire name (counted
    # while `ticks()` plays the file; such frames are skipped, not errors).
    unknown_pairs: Counter[str] = field(default_factory=Counter, compare=False, repr=False)

    def ticks(self, start: float | None = None, skipped: Counter[str] | None = None) -> Iterator[Tick]:
        """The file's ticks, in time order. `start` is the time of recorded frames that come
        before any frame with a time; without it such a frame is an error. Frames that make
        no tick are counted by kind in `skipped`."""
        if self.format == "ws-jsonl":
            self.unknown_pairs.clear()
            return _frame_ticks(self.path, self.registry or default_registry(), start,
                                skipped if skipped is not None else Counter(), self.unknown_pairs)
        assert self.symbol is not None and self.interval is not None
        return _candle_stream(self.symbol, self.candles(), self.interval)

    def candles(self) -> Iterator[Candle]:
        if self.rows is not None:
            return iter(self.rows)
        return _csv_candles(self.path, with_volume=self.format == "ohlcvt")

    def estimate(self) -> int:
        """About how many ticks the file holds (for a progress bar)."""
        if self.rows is not None:
            return 4 * len(self.rows)
        lines = _count_lines(self.path)
        return lines if self.format == "ws-jsonl" else 4 * lines


def open_data(
    path: Path | str,
    *,
    data_format: str | None = None,
    pair: str | None = None,
    interval: float | None = None,
    registry: PairRegistry | None = None,
    pair_option: str = "--pair",
) -> DataFile:
    """Describe a data file: its format, and for candles the pair and interval.
    Raises `DataError` with a readable message when it cannot be played; an unknown pair's
    message suggests `pair_option`, the caller's way to name the pair."""
    path = Path(path)
    registry = registry or default_registry()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt = data_format or _guess_format(path)
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown data format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "ws-jsonl":
        return DataFile(path, fmt, registry=registry)
    rows: tuple[Candle, ...] | None = None
    if fmt == "rest-json":
        symbol, candles = _rest_candles(path, registry, pair_option)
        symbol = _resolve_pair(registry, pair, path, pair_option) if pair else symbol
        rows = tuple(candles)
    else:
        symbol = _resolve_pair(registry, pair or path.stem.split("_", 1)[0], path, pair_option)
        interval = interval if interval is not None else _interval_from_name(path)
    if interval is None:
        interval = _smallest_gap(rows if rows is not None else _csv_candles(path))
    if interval <= 0:
        raise DataError(f"{path}: the candle interval must be positive")
    return DataFile(path, fmt, symbol, interval, registry, rows)


def merged_ticks(files: Iterable[DataFile], skipped: Counter[str] | None = None) -> Iterator[Tick]:
    """The ticks of several files merged by time (ties keep the files' order); frames that
    make no tick are counted by kind in `skipped`."""
    streams = [f.ticks(skipped=skipped) for f in files]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=attrgetter("time"))


Played = tuple[float, str, float | None, "Decimal | str | None", Tick | None]
"""An item of `played`: `(time, symbol, value, exact, None)` for a candle's tick (spot, bid =
ask = last = the price; `value` is the price as a float, `exact` the price itself: the
file's text, or a Decimal; `played_tick` builds the tick), `(time, symbol, None, None, tick)`
for a recorded one. A candle's price stays text until a tick is made of it (replay's hot
path: most ticks are deferred by a float comparison and never delivered)."""


def played(files: Iterable[DataFile], skipped: Counter[str] | None = None) -> Iterator[Played]:
    """`merged_ticks`, without building a `Tick` (or a Decimal) for a candle's tick (replay's
    hot path: most are deferred and never delivered, see `OfflineRunner.feed_price`). Candle
    files (whose rows must be in time order) are read a block at a time and the blocks merged
    by one stable sort (ties keep the files' order); recorded frames, whose times may step
    back, are merged tick by tick as `merged_ticks` does. The same rows are errors as for
    `DataFile.candles` (a CSV row's numbers are checked as floats, and as Decimals where the
    floats cannot tell)."""
    files = list(files)
    blocks: list[Callable[[], list[Played]]] = []
    for f in files:
        if f.format != "ws-jsonl":
            assert f.symbol is not None and f.interval is not None
            if f.rows is None:
                blocks.append(_csv_blocks(f.path, f.symbol, f.interval, f.format == "ohlcvt"))
            else:
                blocks.append(_candle_blocks(f.symbol, f.candles(), f.interval))
    if len(blocks) == len(files):
        return itertools.chain.from_iterable(_merged_blocks(blocks))  # no generator step per item
    streams: list[Iterator[Played]] = []
    candles = iter(blocks)
    for f in files:
        if f.format == "ws-jsonl":
            streams.append((t.time, t.symbol, None, None, t) for t in f.ticks(skipped=skipped))
        else:
            streams.append(itertools.chain.from_iterable(iter(next(candles), [])))
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=itemgetter(0))


_BLOCK = 4096  # items read from a file at a time


def _merged_blocks(streams: list[Callable[[], list[Played]]]) -> Iterator[list[Played]]:
    """The items of several time-ordered streams (each a function returning its next block,
    empty at the end) merged by time, a list at a time; ties keep the streams' order. Each
    round yields every item up to the earliest last time of the streams' blocks, sorted stably."""
    key = itemgetter(0)
    blocks: list[list[Played]] = [[] for _ in streams]
    live = list(range(len(streams)))
    while live:
        for n in live:
            if not blocks[n]:
                blocks[n] = streams[n]()
        live = [n for n in live if blocks[n]]
        if not live:
            return
        if len(live) == 1:
            yield blocks[live[0]]
            blocks[live[0]] = []
            continue
        limit = min(blocks[n][-1][0] for n in live)
        batch: list[Played] = []
        for n in live:
            block = blocks[n]
            if block[-1][0] <= limit:
                batch += block
                blocks[n] = []
            else:
                cut = bisect.bisect_right(block, limit, key=key)
                batch += block[:cut]
                blocks[n] = block[cut:]
        batch.sort(key=key)
        yield batch


def _candle_blocks(symbol: str, candles: Iterator[Candle], interval: float) -> Callable[[], list[Played]]:
    """A function returning the next block of the candles' ticks as `played` items ([] at the end)."""
    quarter = interval * CANDLE_FRACTIONS[1]
    half, three = 2 * quarter, 3 * quarter
    islice = itertools.islice

    def block() -> list[Played]:
        items: list[Played] = []
        for start, open_, high, low, close, _ in islice(candles, max(1, _BLOCK // 4)):
            first, second = (low, high) if close >= open_ else (high, low)
            items += ((start, symbol, float(open_), open_, None), (start + quarter, symbol, float(first), first, None),
                      (start + half, symbol, float(second), second, None),
                      (start + three, symbol, float(close), close, None))
        return items
    return block


def _csv_blocks(path: Path, symbol: str, interval: float, with_volume: bool) -> Callable[[], list[Played]]:
    """`_candle_blocks` of a CSV file's candles, read without a Decimal per price: a row whose
    prices, as floats, are positive, finite and ordered (low <= open, close <= high, prices
    equal as floats written the same) is valid as Decimals too and plays the same path
    (rounding to float keeps the order), and its prices stay text; any other row is read by
    `_csv_row`, as `DataFile.candles` reads it (same candle, same errors)."""
    lines = _lines(path)
    quarter = interval * CANDLE_FRACTIONS[1]
    half, three = 2 * quarter, 3 * quarter
    islice = itertools.islice
    inf = math.inf
    previous = -inf

    def block() -> list[Played]:
        nonlocal previous
        items: list[Played] = []
        for number, line in islice(lines, max(1, _BLOCK // 4)):
            text = line.strip()
            if not text:
                continue
            cells = text.split(",")
            if len(cells) >= 5 and number > 1:
                try:
                    start, o, h, low, c = (float(cells[0]), float(cells[1]), float(cells[2]), float(cells[3]),
                                           float(cells[4]))
                    good = (0.0 < low <= o <= h < inf and low <= c <= h and start > previous
                            and (not with_volume or len(cells) < 6 or 0.0 < float(cells[5]) < inf))
                except ValueError:
                    good = False
                if good and (low == o or o == h or low == c or c == h or c == o):
                    good = _ties_exact(cells, o, h, low, c)
                if good:
                    previous = start
                    ot, ct = cells[1], cells[4]
                    if c >= o:
                        items += ((start, symbol, o, ot, None), (start + quarter, symbol, low, cells[3], None),
                                  (start + half, symbol, h, cells[2], None), (start + three, symbol, c, ct, None))
                    else:
                        items += ((start, symbol, o, ot, None), (start + quarter, symbol, h, cells[2], None),
                                  (start + half, symbol, low, cells[3], None), (start + three, symbol, c, ct, None))
                    continue
            candle = _csv_row(path, number, cells, with_volume, None if previous == -inf else previous)
            if candle is None:
                continue
            start, open_, high, low_, close, _ = candle
            previous = start
            first, second = (low_, high) if close >= open_ else (high, low_)
            items += ((start, symbol, float(open_), open_, None), (start + quarter, symbol, float(first), first, None),
                      (start + half, symbol, float(second), second, None),
                      (start + three, symbol, float(close), close, None))
        return items
    return block


def played_tick(item: Played) -> Tick:
    """The tick an item of `played` stands for."""
    time, symbol, _, exact, tick = item
    if tick is not None:
        return tick
    price = exact if type(exact) is Decimal else Decimal(exact)  # type: ignore[arg-type]
    return make_tick(symbol, "spot", time, price, price, price, None)


def _candle_stream(symbol: str, candles: Iterator[Candle], interval: float) -> Iterator[Tick]:
    """`candle_ticks` of each candle, unrolled (replay's hot path)."""
    make = make_tick
    quarter = interval * CANDLE_FRACTIONS[1]
    half, three = 2 * quarter, 3 * quarter
    for start, open_, high, low, close, _ in candles:
        first, second = (low, high) if close >= open_ else (high, low)
        yield make(symbol, "spot", start, open_, open_, open_, None)
        yield make(symbol, "spot", start + quarter, first, first, first, None)
        yield make(symbol, "spot", start + half, second, second, second, None)
        yield make(symbol, "spot", start + three, close, close, close, None)


# ----------------------------------------------------------------------------- helpers


def _guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "ws-jsonl"
    if suffix == ".json":
        return "rest-json"
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            cells = line.strip().split(",")
            if line.strip() and _is_number(cells[0]):
                return "ohlcvt" if len(cells) >= 7 else "ohlc"
    raise DataError(f"{path}: no candle rows found (expected timestamp,open,high,low,close[,volume,trades])")


def _is_number(text: str) -> bool:
    return text.strip().replace(".", "", 1).isdigit()


def _resolve_pair(registry: PairRegistry, name: str, path: Path, pair_option: str) -> str:
    info = registry.get(name)
    if info is None:
        raise DataError(f"{path}: unknown Kraken pair {name!r}; name the file PAIR_INTERVAL.csv "
                        f"(Kraken's naming, e.g. XBTUSD_60.csv) or pass {pair_option}")
    return info.altname


def _interval_from_name(path: Path) -> float | None:
    _, _, minutes = path.stem.partition("_")
    return float(minutes) * 60 if minutes.isdigit() and int(minutes) > 0 else None


def _smallest_gap(candles: Iterable[Candle]) -> float:
    previous, gap = None, None
    for candle in candles:
        if previous is not None:
            step = candle[0] - previous
            gap = step if gap is None else min(gap, step)
        previous = candle[0]
    return gap if gap is not None else 60.0


def _decimal(text: Any, where: Callable[[], str], name: str) -> Decimal:
    try:
        value = Decimal(text if type(text) is str else str(text))  # Decimal() ignores surrounding spaces
    except InvalidOperation:
        raise DataError(f"{where()}: {name} {str(text).strip()[:40]!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise DataError(f"{where()}: {name} must be a positive number, not {text}")
    return value


def _volume(text: Any, where: Callable[[], str]) -> Decimal:
    try:
        value = Decimal(text if type(text) is str else str(text))
    except InvalidOperation:
        raise DataError(f"{where()}: volume {str(text).strip()[:40]!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise DataError(f"{where()}: volume must be a number of at least 0, not {text}")
    return value


def _candle(cells: list[Any], where: Callable[[], str], volume: Any = None) -> Candle:
    """One candle from its cells; `where()` names the row, for errors only (built on demand)."""
    try:
        start = float(cells[0])  # float() ignores surrounding spaces
    except (TypeError, ValueError):
        raise DataError(f"{where()}: timestamp {str(cells[0])[:40]!r} is not a number of seconds") from None
    open_ = _decimal(cells[1], where, "open")
    high = _decimal(cells[2], where, "high")
    low = _decimal(cells[3], where, "low")
    close = _decimal(cells[4], where, "close")
    if not (low <= min(open_, close) and high >= max(open_, close)):
        raise DataError(f"{where()}: high {high} and low {low} do not contain open {open_} and close {close}")
    return Candle(start, open_, high, low, close, _ZERO if volume is None else _volume(volume, where))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered from 1; bytes that are not UTF-8 are a `DataError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} in a block read near byte {exc.start})") from None


def _ties_exact(cells: list[str], o: float, h: float, low: float, c: float) -> bool:
    """Whether every two of a row's prices that are equal as floats are written the same
    (so they are equal as Decimals too; else `_csv_row` reads the row)."""
    return ((low != o or cells[3] == cells[1]) and (o != h or cells[1] == cells[2])
            and (low != c or cells[3] == cells[4]) and (c != h or cells[4] == cells[2])
            and (c != o or cells[4] == cells[1]))


def _csv_candles(path: Path, with_volume: bool = False) -> Iterator[Candle]:
    previous = None
    for number, line in _lines(path):
        text = line.strip()
        if not text:
            continue
        candle = _csv_row(path, number, text.split(","), with_volume, previous)
        if candle is not None:
            previous = candle[0]
            yield candle


def _csv_row(path: Path, number: int, cells: list[str], with_volume: bool, previous: float | None) -> Candle | None:
    """The candle of a CSV row's cells (None: the header line); `previous` is the time of the
    row before. Raises `DataError` for a row that is not a candle after `previous`."""
    if len(cells) >= 5 and number > 1:  # the usual row, read without a call per cell
        try:
            start = float(cells[0])
            open_, high, low, close = Decimal(cells[1]), Decimal(cells[2]), Decimal(cells[3]), Decimal(cells[4])
            volume = Decimal(cells[5]) if with_volume and len(cells) > 5 else _ZERO
            good = (_ZERO < low <= open_ <= high and low <= close <= high and high.is_finite()
                    and _ZERO <= volume and volume.is_finite()
                    and (previous is None or start > previous))
        except (ValueError, InvalidOperation):
            good = False
        if good:
            return tuple.__new__(Candle, (start, open_, high, low, close, volume))
    if number == 1 and not _is_number(cells[0]):
        return None  # a header line

    def where() -> str:
        return f"{path}:{number}"

    if len(cells) < 5:
        raise DataError(f"{where()}: expected timestamp,open,high,low,close[,volume,trades], "
                        f"got {len(cells)} columns")
    candle = _candle(cells, where, cells[5] if with_volume and len(cells) > 5 else None)
    if previous is not None and candle[0] <= previous:
        raise DataError(f"{where()}: timestamp {candle[0]:g} is not after the previous row's {previous:g}; "
                        "candles must be in time order")
    return candle


def _rest_candles(path: Path, registry: PairRegistry, pair_option: str) -> tuple[str, list[Candle]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if isinstance(document, dict) and document.get("error"):
        raise DataError(f"{path}: the saved OHLC answer is an error: {document['error']}")
    result = document.get("result", document) if isinstance(document, dict) else None
    if not isinstance(result, dict):
        raise DataError(f"{path}: expected Kraken's OHLC answer, "
                        f"{{\"error\": [], \"result\": {{PAIR: [...], \"last\": ...}}}}")
    series = [(k, v) for k, v in result.items() if k != "last"]
    if len(series) != 1 or not isinstance(series[0][1], list):
        raise DataError(f"{path}: expected exactly one pair's rows in the OHLC result, found {len(series)}")
    name, rows = series[0]
    symbol = _resolve_pair(registry, name, path, pair_option)
    last = result.get("last")
    candles: list[Candle] = []
    for index, row in enumerate(rows):
        def where(index: int = index) -> str:
            return f"{path}: row {index + 1}"

        if not isinstance(row, list) or len(row) < 5:
            raise DataError(f"{where()}: expected [time, open, high, low, close, vwap, volume, count]")
        candle = _candle(row, where, row[6] if len(row) > 6 else None)
        if isinstance(last, (int, Decimal)) and candle[0] > last:
            continue  # the current, not-yet-committed candle
        if candles and candle[0] <= candles[-1][0]:
            raise DataError(f"{where()}: time {candle[0]:g} is not after the previous row's")
        candles.append(candle)
    return symbol, candles


def _count_lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _wrapper_time(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.timestamp()
    raise DataError(f"{where}: \"time\" must be epoch seconds or an RFC 3339 time with a zone, not {value!r}")


def _frame_dialect(text: str, dialects: dict[str, Dialect], registry: PairRegistry) -> Dialect | None:
    """The dialect a frame's text is written in, told by its shape (no decoding)."""
    if text.startswith("["):
        name = "v1"
    elif not text.startswith("{"):
        return None
    elif '"channel"' in text or '"method"' in text:
        name = "v2"
    elif '"feed"' in text or '"product_id"' in text:
        name = "futures"
    elif '"event"' in text:
        name = "v1"
    else:
        return None
    if name not in dialects:
        dialects[name] = dialect_for(name, registry) if name != "futures" else dialect_for(name)
    return dialects[name]


class _Books:
    """The best bid and ask of each symbol's v2 L2 book, from its snapshot and updates."""

    def __init__(self) -> None:
        self.sides: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self.depth: dict[str, int] = {}
        self.best: dict[str, tuple[Decimal | None, Decimal | None]] = {}

    def apply(self, frame: dict[str, Any], dialect: Dialect, where: str, stamp: float | None,
              unknown: Counter[str]) -> list[tuple[str, Decimal | None, Decimal | None, float | None]]:
        """The (symbol, bid, ask, time) of each symbol whose best price changed (a book of a
        pair AssetPairs does not list is counted in `unknown`)."""
        kind = frame.get("type")
        data = frame.get("data")
        if kind not in ("snapshot", "update") or type(data) is not list:
            raise DataError(f"{where}: malformed book frame: expected type snapshot or update and a data list")
        changed = []
        for entry in data:
            if type(entry) is not dict or type(entry.get("symbol")) is not str:
                raise DataError(f"{where}: malformed book frame: a data entry has no symbol")
            symbol = dialect._symbol(entry["symbol"])  # type: ignore[attr-defined]
            if symbol is None:
                unknown[entry["symbol"][:40]] += 1
                continue
            if kind == "snapshot" or symbol not in self.sides:
                self.sides[symbol] = ({}, {})
            bids, asks = self.sides[symbol]
            for book, name in ((bids, "bids"), (asks, "asks")):
                levels = entry.get(name) or []
                if type(levels) is not list:
                    raise DataError(f"{where}: malformed book frame: {name} is not a list")
                for level in levels:
                    try:
                        price, qty = Decimal(str(level["price"])), Decimal(str(level["qty"]))
                    except (TypeError, KeyError, InvalidOperation):
                        raise DataError(f"{where}: malformed book frame: a {name} level needs price and qty") from None
                    if qty == 0:
                        book.pop(price, None)
                    else:
                        book[price] = qty
            if kind == "snapshot":
                self.depth[symbol] = max(len(bids), len(asks), 1)
            depth = self.depth.get(symbol)
            if depth is not None:
                for book, highest_first in ((bids, True), (asks, False)):
                    if len(book) > depth:
                        for price in sorted(book, reverse=highest_first)[depth:]:
                            del book[price]
            best = (max(bids) if bids else None, min(asks) if asks else None)
            if best != self.best.get(symbol) and best != (None, None):
                self.best[symbol] = best
                time = stamp
                if time is None and type(entry.get("timestamp")) is str:
                    time = _wrapper_time(entry["timestamp"], where)
                changed.append((symbol, best[0], best[1], time))
        return changed


def _skip_kind(event: Any) -> str:
    if isinstance(event, Ignored):
        return event.what
    return {"Heartbeat": "heartbeat", "Status": "status", "SubscribeAck": "subscription answer", "Pong": "pong",
            "ErrorReply": "error reply"}.get(type(event).__name__, type(event).__name__)


def _frame_ticks(path: Path, registry: PairRegistry, start: float | None, skipped: Counter[str],
                 unknown: Counter[str]) -> Iterator[Tick]:
    dialects: dict[str, Dialect] = {}
    books = _Books()
    clock: float | None = None
    for number, line in _lines(path):
        text = line.strip()
        if not text:
            continue
        where = f"{path}:{number}"
        stamp, frame_text = None, text
        if '"frame"' in text:
            try:
                record = json.loads(text, parse_float=str)  # keep number text: no float rounding
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not JSON ({exc.msg})") from None
            if isinstance(record, dict) and "frame" in record:
                stamp = _wrapper_time(record.get("time"), where)
                inner = record["frame"]
                frame_text = inner.strip() if isinstance(inner, str) else json.dumps(inner)
        dialect = _frame_dialect(frame_text, dialects, registry)
        if dialect is None:
            raise DataError(f"{where}: not a Kraken WebSocket frame (v2, v1 or futures)")
        ticks: Iterable[Tick]
        if dialect.name == "v2" and '"book"' in frame_text:
            try:
                frame = json.loads(frame_text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not JSON ({exc.msg})") from None
            if type(frame) is dict and frame.get("channel") == "book":
                ticks = [make_tick(symbol, "spot", 0.0, None, bid, ask, time)
                         for symbol, bid, ask, time in books.apply(frame, dialect, where, stamp, unknown)]
                if not ticks:
                    skipped["book (best bid and ask unchanged)"] += 1
            else:
                ticks = _parsed(dialect, frame_text, where, skipped, unknown)
        else:
            ticks = _parsed(dialect, frame_text, where, skipped, unknown)
        fallback = None
        for tick in ticks:
            time = stamp if stamp is not None else tick.exchange_time
            if time is None:
                if fallback is None:
                    if clock is not None:
                        fallback = clock + FRAME_SPACING
                    elif start is not None:
                        fallback = start
                    else:
                        raise DataError(f"{where}: the first frame carries no time; record frames as "
                                        '{"time": <epoch seconds>, "frame": ...}')
                time = fallback
            yield replace(tick, time=time)
            clock = time


def _parsed(dialect: Dialect, text: str, where: str, skipped: Counter[str],
            unknown: Counter[str]) -> tuple[Tick, ...]:
    result = dialect.parse(text, 0.0)
    for event in result.events:
        if isinstance(event, UnknownPair):  # a Malformed too: checked first
            unknown[event.pair] += 1
        elif isinstance(event, Malformed):
            raise DataError(f"{where}: malformed {dialect.name} frame: {event.reason}")
    if not result.ticks:
        for event in result.events:
            if not isinstance(event, UnknownPair):
                skipped[_skip_kind(event)] += 1
    return result.ticks
