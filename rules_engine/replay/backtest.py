"""The backtest accounts of a replay: orders, fees, trades, profit and loss, equity, drawdown.

`Ledger` listens to the offline runner (orders placed, fills, order ends, settled fires) and
to the prices of every tick, and keeps only running figures; the rows of the report (fires,
trades, order lifetimes) are streamed to JSON Lines files in a spool folder as they happen,
so a replay's memory does not grow with the number of fires.

Accounting, per pair, first in first out: a fill first closes open lots of the other side
(oldest first), each match is a **trade** (entry and exit, size, both fees' shares, PnL), and
what is left opens a lot. A trade belongs to the rule whose fill opened it (its `entry_rule`;
`exit_rule` closed it). A sell with no open buy lot opens a short lot against the wallet's
holdings. Fees paid in the base currency are valued at the fill price.

- realised PnL: the trades' `(exit - entry) * size` (negated for short lots) minus both fees;
- unrealised PnL: the open lots at the last price (mark to market) minus their entry fees;
- equity: the wallet valued in the valuation currency (the quote currency of the data's
  first pair; assets with no price in it are not valued, and named) at every tick; an asset
  held from the start counts in the starting equity at its first price; the return is on the
  starting equity; max drawdown is the largest fall from a running peak of equity, measured
  at every tick for the total and at every fill and equity sample for a rule (a rule's equity
  is its realised plus unrealised PnL);
- exposure time: how long lots were open (per rule: lots the rule opened).

PnL figures are in the pair's quote currency (by asset, if rules trade several quotes).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from rules_engine.core.trace import jsonable
from rules_engine.pairs import PairInfo, PairRegistry
from rules_engine.paper.orders import Order
from rules_engine.replay.outcomes import FillRecord, OrderEnd
from rules_engine.replay.runner import OrderListener

_ZERO = Decimal(0)
MAX_CURVE_POINTS = 2000
MAX_ERRORS_PER_RULE = 20
MAX_PENDING_FIRES = 10_000  # fire rows waiting for their orders to end before they are written


@dataclass
class RuleBook:
    """One rule's running figures (money by quote asset)."""

    rule_id: str
    where: str = ""
    fires: int = 0
    completed: int = 0
    stopped: dict[str, int] = field(default_factory=dict)
    not_fired: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    placed: int = 0
    filled: int = 0
    partially_filled: int = 0
    expired: int = 0
    cancelled: int = 0
    fills: int = 0
    trades: int = 0
    wins: int = 0
    fees: dict[str, Decimal] = field(default_factory=dict)
    realised: dict[str, Decimal] = field(default_factory=dict)
    unrealised: dict[str, Decimal] = field(default_factory=dict)
    exposure: float = 0.0  # seconds with an open lot
    max_drawdown: float = 0.0  # in the valuation currency
    open_lots: int = 0
    _exposed_since: float | None = None
    _peak: float = 0.0
    _realised_value: float = 0.0  # in floats, for drawdown

    def to_dict(self, period: float) -> dict[str, Any]:
        return {
            "rule": self.rule_id, "where": self.where, "fires": self.fires, "completed": self.completed,
            "stopped": self.stopped, "not_fired": self.not_fired, "errors": self.errors,
            "orders": {"placed": self.placed, "filled": self.filled, "partially_filled": self.partially_filled,
                       "expired": self.expired, "cancelled": self.cancelled},
            "fills": self.fills, "trades": self.trades, "wins": self.wins,
            "fees": _amounts(self.fees), "realised_pnl": _amounts(self.realised),
            "unrealised_pnl": _amounts(self.unrealised), "pnl": _amounts(_add(self.realised, self.unrealised)),
            "max_drawdown": round(self.max_drawdown, 8),
            "exposure_seconds": round(self.exposure, 3),
            "exposure": round(self.exposure / period, 6) if period > 0 else 0.0,
        }


@dataclass
class _Lot:
    rule_id: str
    sign: int  # +1 long (bought), -1 short (sold)
    size: Decimal
    price: Decimal
    fee: Decimal  # its remaining share of the entry fee, in quote
    time: float


class Spool:
    """Rows appended to a JSON Lines file, read back in order."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._handle = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, row: Mapping[str, Any]) -> None:
        self._handle.write(_encode(row) + b"\n")
        self.count += 1

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def rows(self) -> Iterator[dict[str, Any]]:
        self.close()
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


class Ledger(OrderListener):
    """See the module docstring. Call `price` (or `prices`, for a run of ticks) for every
    tick, `fire` for every settled outcome, `finish` at the end; it is the runner's
    `OrderListener`."""

    def __init__(self, rule_ids: Sequence[str], registry: PairRegistry, spool: Path,
                 where: Mapping[str, str] | None = None, valuation: str | None = None):
        self.registry = registry
        self.books: dict[str, RuleBook] = {r: RuleBook(r, (where or {}).get(r, "")) for r in rule_ids}
        spool.mkdir(parents=True, exist_ok=True)
        self.fires = Spool(spool / "fires.jsonl")
        self.trades = Spool(spool / "trades.jsonl")
        self.orders = Spool(spool / "orders.jsonl")
        self.errors: list[dict[str, Any]] = []
        self.valuation = valuation
        self.lots: dict[str, deque[_Lot]] = {}
        self._lots_of: dict[tuple[str, str], int] = {}  # (rule, pair) -> its lots open in `lots`
        self.fees: dict[str, Decimal] = {}
        self.realised: dict[str, Decimal] = {}
        self.unrealised: dict[str, Decimal] = {}
        self.last: dict[str, Decimal] = {}  # pair -> last price (Decimal, for marks)
        self.fills_count = 0
        self.trade_count = 0
        self.wins = 0
        self.counts = {"placed": 0, "filled": 0, "partially_filled": 0, "expired": 0, "cancelled": 0}
        # equity in floats, updated per tick
        self._wallet: Mapping[str, Decimal] = {}
        self._qty: dict[str, float] = {}  # asset -> amount held
        self._mark: dict[str, float] = {}  # asset -> price in the valuation currency
        self._asset_of: dict[str, str | None] = {}  # pair -> its base asset when quoted in the valuation currency
        self.equity = 0.0
        self.equity_start: float | None = None
        self.peak = 0.0
        self.max_drawdown = 0.0  # in the valuation currency
        self.max_drawdown_pct = 0.0
        self.curve_times: list[float] = []
        self.curve_values: list[float] = []
        self._stride = 1
        self._since_sample = 0
        self.exposure = 0.0
        self._exposed_since: float | None = None
        self._open_lots = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._waiting: dict[str, tuple[dict[str, Any], int]] = {}  # decision_id -> (row, open orders)
        self._segments: dict[str, dict[str, Any]] = {}  # txid -> resting order being drawn
        self._filled_at: dict[str, tuple[Decimal, Decimal]] = {}  # txid -> (volume, value) filled until its end
        self._positions: dict[str, dict[str, list[float]]] = {}  # rule -> pair -> [signed size, signed cost]

    # ------------------------------------------------------------------ inputs

    def start(self, wallet: Mapping[str, Decimal]) -> None:
        self._set_wallet(wallet)

    def price(self, symbol: str, price: float, time: float) -> None:
        """A tick's price (last, else mid). Hot path: floats only."""
        asset = self._asset_of.get(symbol, "")
        if asset == "":
            asset = self._asset_of[symbol] = self._base_in_valuation(symbol)
        if asset is None:
            return
        old = self._mark.get(asset)
        self._mark[asset] = price
        held = self._qty.get(asset, 0.0)
        if old is None:  # its first price: valued from now on, and counted in the start as well
            self.equity += held * price
            if self.equity_start is not None:
                self.equity_start += held * price
                self.peak += held * price
        elif held:
            self.equity += held * (price - old)
        if self.equity_start is None:
            self.equity_start = self.peak = self.equity
            self._sample(time)
            return
        if self.equity > self.peak:
            self.peak = self.equity
        elif self.peak - self.equity > self.max_drawdown:
            self.max_drawdown = self.peak - self.equity
            self.max_drawdown_pct = self.max_drawdown / self.peak if self.peak > 0 else 0.0
        self._since_sample += 1
        if self._since_sample >= self._stride:
            self._sample(time)

    def prices(self, items: Iterable[tuple[float, str, float | None, Any, Any]]) -> None:
        """`price` of each item `(time, symbol, price, ...)` in order (items with no price are
        skipped): the same figures, kept in locals between fills (replay's hot path)."""
        mark, qty, asset_of = self._mark, self._qty, self._asset_of
        equity, peak, drawdown, since = self.equity, self.peak, self.max_drawdown, self._since_sample
        stride, started = self._stride, self.equity_start is not None
        for time, symbol, price, _, _ in items:
            if price is None:
                continue
            asset = asset_of.get(symbol, "")
            if asset is None:
                continue
            old = mark.get(asset) if started and asset else None
            if old is None:  # the first price of a symbol, or of the run: `price` does it
                self.equity, self.peak, self.max_drawdown, self._since_sample = equity, peak, drawdown, since
                self.price(symbol, price, time)
                qty, equity, peak, drawdown = self._qty, self.equity, self.peak, self.max_drawdown
                since, stride, started = self._since_sample, self._stride, self.equity_start is not None
                continue
            mark[asset] = price
            held = qty.get(asset, 0.0)
            if held:
                equity += held * (price - old)
            if equity > peak:
                peak = equity
            elif peak - equity > drawdown:
                drawdown = peak - equity
                self.max_drawdown_pct = drawdown / peak if peak > 0 else 0.0
            since += 1
            if since >= stride:
                self.equity, self.peak, self.max_drawdown = equity, peak, drawdown
                self._sample(time)
                since, stride = self._since_sample, self._stride
        self.equity, self.peak, self.max_drawdown, self._since_sample = equity, peak, drawdown, since

    def fire(self, row: dict[str, Any], open_orders: int, decision_id: str | None) -> None:
        """A settled fire's report row; written once its `open_orders` have ended."""
        row["waiting"] = bool(open_orders and decision_id is not None)
        if row["waiting"]:
            self._waiting[str(decision_id)] = (row, open_orders)
        self._pending.append(row)
        self._flush_fires()

    def outcome_counts(self, rule_id: str, fired: bool, status: str, block: tuple[str, str] | None,
                       time: float, where: str | None = None) -> None:
        """Count a settled outcome; an error is kept (up to a limit per rule) with `where` it
        happened (file:line of the action, else of the rule)."""
        book = self._book(rule_id)
        if not fired:
            kind = block[0] if block else "unknown"
            book.not_fired[kind] = book.not_fired.get(kind, 0) + 1
            return
        book.fires += 1
        if block is not None:
            book.stopped[block[0]] = book.stopped.get(block[0], 0) + 1
            if block[0] in ("error", "exchange"):
                book.errors += 1
                if sum(1 for e in self.errors if e["rule"] == rule_id) < MAX_ERRORS_PER_RULE:
                    self.errors.append({"time": time, "rule": rule_id, "where": where or book.where, "by": block[0],
                                        "reason": block[1]})
        elif status == "completed":
            book.completed += 1

    def placed(self, order: Order, rule_id: str | None) -> None:
        if rule_id is None:
            return
        self._book(rule_id).placed += 1
        self.counts["placed"] += 1
        if order.is_open and order.ordertype != "market":
            self._segments[order.txid] = {"txid": order.txid, "rule": rule_id, "pair": order.pair,
                                          "side": order.side, "ordertype": order.ordertype,
                                          "price": order.price, "placed": order.opentm}

    def filled(self, fill: FillRecord) -> None:
        self.fills_count += 1
        info = self.registry.get(fill.pair)
        if info is None:
            return
        quote = info.quote
        fee = fill.fee * fill.price if fill.fee_asset == info.base else fill.fee
        rule_id = fill.rule_id or "(outside the rules)"
        book = self._book(rule_id)
        book.fills += 1
        _inc(book.fees, quote, fee)
        _inc(self.fees, quote, fee)
        self.last[fill.pair] = fill.price
        volume, value = self._filled_at.get(fill.txid, (Decimal(0), Decimal(0)))
        self._filled_at[fill.txid] = (volume + fill.volume, value + fill.volume * fill.price)
        touched = self._match(fill, info, rule_id, fee)
        if fill.balances_after is not None:
            self._set_wallet(fill.balances_after)
        self._sample(fill.time, rules=touched)
        if fill.decision_id in self._waiting:
            row, _ = self._waiting[fill.decision_id]
            row["balances_after"] = fill.balances_after
            row["fills"].append({"time": fill.time, "txid": fill.txid, "pair": fill.pair, "side": fill.side,
                                 "ordertype": fill.ordertype, "volume": fill.volume, "price": fill.price,
                                 "fee": fill.fee})

    def ended(self, end: OrderEnd) -> None:
        rule_id = end.rule_id
        if rule_id is not None:
            key = end.status.replace(" ", "_")
            self.counts[key] += 1
            setattr(self._book(rule_id), key, getattr(self._book(rule_id), key) + 1)
        segment = self._segments.pop(end.txid, None)
        volume, value = self._filled_at.pop(end.txid, (Decimal(0), Decimal(0)))
        if segment is not None or (end.ordertype != "market" and end.price is not None):
            self.orders.write({**(segment or {"txid": end.txid, "rule": rule_id, "pair": end.pair, "side": end.side,
                                              "ordertype": end.ordertype, "price": end.price,
                                              "placed": end.placed}),
                               "end": end.time, "status": end.status, "filled": end.filled,
                               # where it filled (volume-weighted): a limit order that could fill at once
                               # fills at the book's better price, not its own
                               **({"fill_price": value / volume} if volume else {})})
        if end.decision_id in self._waiting:
            row, remaining = self._waiting.pop(end.decision_id)
            if end.status != "filled":
                row.setdefault("ended", []).append({"time": end.time, "txid": end.txid, "status": end.status,
                                                    "filled": end.filled})
            if remaining > 1:
                self._waiting[end.decision_id] = (row, remaining - 1)
            else:
                row["waiting"] = False
                self._flush_fires()

    def finish(self, time: float, open_orders: Sequence[Order]) -> None:
        """Mark open lots at the last prices, close exposure and the resting segments."""
        for pair, lots in self.lots.items():
            info = self.registry.get(pair)
            mark = self.last.get(pair)
            if info is None or mark is None:
                continue
            for lot in lots:
                pnl = (mark - lot.price) * lot.size * lot.sign - lot.fee
                _inc(self.unrealised, info.quote, pnl)
                _inc(self._book(lot.rule_id).unrealised, info.quote, pnl)
        self._sample(time, rules=list(self.books), force=True)
        if self._exposed_since is not None:
            self.exposure += time - self._exposed_since
        for book in self.books.values():
            if book._exposed_since is not None:
                book.exposure += time - book._exposed_since
        for order in open_orders:
            segment = self._segments.pop(order.txid, None)
            if segment is not None:
                self.orders.write({**segment, "end": time, "status": "open", "filled": order.vol_exec})
        for row in self._pending:
            row["waiting"] = False
        self._flush_fires()
        self.close()

    def close(self) -> None:
        """Close the spool files (they can still be read)."""
        for spool in (self.fires, self.trades, self.orders):
            spool.close()

    # ------------------------------------------------------------------ figures

    def totals(self, period: float) -> dict[str, Any]:
        start = self.equity_start
        return {
            "orders": dict(self.counts), "fills": self.fills_count, "trades": self.trade_count, "wins": self.wins,
            "fees": _amounts(self.fees), "realised_pnl": _amounts(self.realised),
            "unrealised_pnl": _amounts(self.unrealised), "pnl": _amounts(_add(self.realised, self.unrealised)),
            "valuation": self.valuation,
            "not_valued": sorted(a for a in self._qty if a != self.valuation and a not in self._mark),
            "equity_start": None if start is None else round(start, 8),
            "equity_end": round(self.equity, 8),
            "return": None if not start else round((self.equity - start) / start, 8),
            "max_drawdown": round(self.max_drawdown, 8),
            "max_drawdown_pct": round(self.max_drawdown_pct, 8),
            "exposure_seconds": round(self.exposure, 3),
            "exposure": round(self.exposure / period, 6) if period > 0 else 0.0,
        }

    def curve(self) -> list[tuple[float, float]]:
        return list(zip(self.curve_times, self.curve_values, strict=True))

    # ------------------------------------------------------------------ internals

    def _book(self, rule_id: str) -> RuleBook:
        book = self.books.get(rule_id)
        if book is None:
            book = self.books[rule_id] = RuleBook(rule_id)
        return book

    def _base_in_valuation(self, symbol: str) -> str | None:
        info = self.registry.get(symbol)
        if info is None:
            return None
        if self.valuation is None:
            self.valuation = info.quote
            self._set_wallet(self._wallet)
        return info.base if info.quote == self.valuation else None

    def _set_wallet(self, wallet: Mapping[str, Decimal]) -> None:
        self._wallet = wallet
        self._qty = {asset: float(amount) for asset, amount in wallet.items() if amount}
        equity = 0.0
        for asset, amount in self._qty.items():
            if asset == self.valuation:
                equity += amount
            elif asset in self._mark:
                equity += amount * self._mark[asset]
        self.equity = equity
        if self.equity_start is not None and self.equity > self.peak:
            self.peak = self.equity

    def _sample(self, time: float, rules: Iterable[str] | None = None, force: bool = False) -> None:
        """A point of the equity curve; the drawdown of `rules` (default: those holding lots)."""
        self._since_sample = 0
        if self.equity_start is None and not force:
            return
        if self.curve_times and self.curve_times[-1] == time:
            self.curve_values[-1] = self.equity
        else:
            self.curve_times.append(time)
            self.curve_values.append(self.equity)
        if len(self.curve_times) > MAX_CURVE_POINTS:  # keep every other point, sample half as often
            self.curve_times = self.curve_times[::2]
            self.curve_values = self.curve_values[::2]
            self._stride *= 2
        self._rule_drawdowns(list(self._positions) if rules is None else rules)

    def _rule_drawdowns(self, rule_ids: Iterable[str]) -> None:
        """A rule's equity (realised plus open lots at the marks) against its running peak."""
        books, positions, asset_of, marks = self.books, self._positions, self._asset_of, self._mark
        for rule_id in rule_ids:
            book = books.get(rule_id) or self._book(rule_id)
            value = book._realised_value
            held = positions.get(rule_id)
            if held:
                for pair, (size, cost) in held.items():
                    asset = asset_of.get(pair)
                    mark = marks.get(asset) if asset else None
                    if mark is not None:
                        value += size * mark - cost
            if value > book._peak:
                book._peak = value
            elif book._peak - value > book.max_drawdown:
                book.max_drawdown = book._peak - value

    def _match(self, fill: FillRecord, info: PairInfo, rule_id: str, fee: Decimal) -> set[str]:
        """Close open lots of the other side first in first out, open a lot with the rest;
        returns the rules whose figures changed."""
        touched = {rule_id}
        sign = 1 if fill.side == "buy" else -1
        lots = self.lots.setdefault(fill.pair, deque())
        remaining = fill.volume
        fee_per_unit = fee / fill.volume if fill.volume else _ZERO
        while remaining > 0 and lots and lots[0].sign != sign:
            lot = lots[0]
            size = min(lot.size, remaining)
            entry_fee = lot.fee if size == lot.size else lot.fee * size / lot.size
            exit_fee = fee_per_unit * size
            pnl = (fill.price - lot.price) * size * lot.sign - entry_fee - exit_fee
            self.trade_count += 1
            self.wins += pnl > 0
            owner = self._book(lot.rule_id)
            touched.add(lot.rule_id)
            owner.trades += 1
            owner.wins += pnl > 0
            _inc(owner.realised, info.quote, pnl)
            _inc(self.realised, info.quote, pnl)
            if info.quote == self.valuation:
                owner._realised_value += float(pnl)
            self.trades.write({
                "pair": fill.pair, "direction": "long" if lot.sign > 0 else "short",
                "entry_time": lot.time, "entry_rule": lot.rule_id, "entry_price": lot.price,
                "exit_time": fill.time, "exit_rule": rule_id, "exit_price": fill.price, "size": size,
                "fee": entry_fee + exit_fee, "pnl": pnl, "quote": info.quote,
            })
            remaining -= size
            if size == lot.size:
                lots.popleft()
                self._lots_of[lot.rule_id, fill.pair] -= 1
                self._lot_closed(lot.rule_id, fill.time)
            else:
                lot.size -= size
                lot.fee -= entry_fee
            self._position(lot.rule_id, fill.pair, -lot.sign * size, -(lot.sign * size * lot.price + entry_fee))
        if remaining > 0:
            lots.append(_Lot(rule_id, sign, remaining, fill.price, fee_per_unit * remaining, fill.time))
            self._lots_of[rule_id, fill.pair] = self._lots_of.get((rule_id, fill.pair), 0) + 1
            opened = fee_per_unit * remaining
            self._position(rule_id, fill.pair, sign * remaining, sign * remaining * fill.price + opened)
            self._lot_opened(rule_id, fill.time)
        return touched

    def _position(self, rule_id: str, pair: str, size: Decimal, cost: Decimal) -> None:
        """Keep a rule's open lots on a pair as one signed size and cost (value = size * mark - cost)."""
        pairs = self._positions.setdefault(rule_id, {})
        entry = pairs.setdefault(pair, [0.0, 0.0])
        entry[0] += float(size)
        entry[1] += float(cost)
        if not self._lots_of.get((rule_id, pair)):  # no lot of the rule's left on the pair
            del pairs[pair]
            if not pairs:
                del self._positions[rule_id]

    def _lot_opened(self, rule_id: str, time: float) -> None:
        if self._open_lots == 0:
            self._exposed_since = time
        self._open_lots += 1
        book = self._book(rule_id)
        if book.open_lots == 0:
            book._exposed_since = time
        book.open_lots += 1

    def _lot_closed(self, rule_id: str, time: float) -> None:
        self._open_lots -= 1
        if self._open_lots == 0 and self._exposed_since is not None:
            self.exposure += time - self._exposed_since
            self._exposed_since = None
        book = self._book(rule_id)
        book.open_lots -= 1
        if book.open_lots == 0 and book._exposed_since is not None:
            book.exposure += time - book._exposed_since
            book._exposed_since = None

    def _flush_fires(self) -> None:
        pending = self._pending
        while pending and (not pending[0].get("waiting") or len(pending) > MAX_PENDING_FIRES):
            row = pending.popleft()
            row.pop("waiting", None)
            self._waiting.pop(row.get("decision_id") or "", None)
            self.fires.write(row)


def _json_default(value: Any) -> Any:
    if type(value) is Decimal:  # the usual case, first
        return format(value, "f")
    return dict(value) if isinstance(value, Mapping) else jsonable(value)


_json_encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME  # as `json` does: to the default


def _encode(row: Mapping[str, Any]) -> bytes:
    """A row as one line of JSON (UTF-8), Decimals as plain strings (`core.decimals.plain`):
    by orjson (about four times the standard encoder's speed), else by the standard encoder
    (what orjson refuses, such as an integer beyond 64 bits). Rows hold no NaN floats (times
    and marks), which orjson would write as null."""
    try:
        return orjson.dumps(row, default=_json_default, option=_ORJSON_OPTIONS)
    except TypeError:
        return _json_encode(row).encode()


def _inc(values: dict[str, Decimal], key: str, amount: Decimal) -> None:
    values[key] = values.get(key, _ZERO) + amount


def _add(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> dict[str, Decimal]:
    out = dict(a)
    for key, value in b.items():
        _inc(out, key, value)
    return out


def _amounts(values: Mapping[str, Decimal]) -> dict[str, str]:
    return {key: format(value.quantize(Decimal("0.00000001")).normalize(), "f") if value else "0"
            for key, value in sorted(values.items())}
