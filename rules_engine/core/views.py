"""The core's own view of the market and the account, fed only by events.

- Quotes: the latest last/bid/ask per (market, symbol) from ticks; never persisted (after a
  restart the first tick is a first observation).
- Balances: from balance reads and `BalanceUpdate`; each entry remembers when it was seen
  and the balance epoch, which moves on every order result or fill so that `check_balance`
  reads again after the account changed.
- Orders: every order the engine knows to be open or in flight, keyed by client order id
  (or txid for orders placed elsewhere), with the rule that placed it and its notional.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rules_engine.core.decimals import plain

_LEGACY_FIAT = {"ZUSD", "ZEUR", "ZGBP", "ZCAD", "ZJPY", "ZCHF", "ZAUD"}
_MODERN = {"XBT": "BTC", "XDG": "DOGE"}
CLOSED_STATUSES = frozenset({"closed", "canceled", "cancelled", "expired", "filled", "rejected"})


def asset_key(asset: str) -> str:
    """One name per asset whatever Kraken calls it: `XXBT`, `XBT`, `BTC` -> `BTC`; `ZUSD`, `USD` -> `USD`."""
    code = asset.strip().upper()
    if len(code) == 4 and (code in _LEGACY_FIAT or code[0] == "X"):
        code = code[1:]
    return _MODERN.get(code, code)


def to_decimal(value: Any) -> Decimal:
    """Decimal from a Decimal, int or numeric string (Kraken sends amounts as strings)."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value))


class Quotes:
    """Latest prices per (market, symbol)."""

    def __init__(self) -> None:
        self._fields: dict[tuple[str, str], dict[str, Decimal]] = {}

    def update(self, market: str, symbol: str, values: Mapping[str, Decimal]) -> dict[str, Decimal]:
        """Merge the fields present; return the merged fields including `mid` when bid and ask are known."""
        current = self._fields.get((market, symbol))
        if current is None:
            current = self._fields[(market, symbol)] = {}
        current.update(values)
        if "bid" in values or "ask" in values:
            bid, ask = current.get("bid"), current.get("ask")
            if bid is not None and ask is not None:
                current["mid"] = (bid + ask) / 2
        return current

    def get(self, market: str, symbol: str) -> Mapping[str, Decimal]:
        return self._fields.get((market, symbol), {})

    def price(self, symbol: str) -> Decimal | None:
        """Last trade price, else mid, for a spot altname or futures product id."""
        for market in ("spot", "futures"):
            values = self._fields.get((market, symbol))
            if values:
                found = values.get("last", values.get("mid"))
                if found is not None:
                    return found
        return None

    def forget(self, market: str, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self._fields.pop((market, symbol), None)

    def symbols(self, market: str) -> list[str]:
        return [symbol for (m, symbol) in self._fields if m == market]


class Balances:
    """Account balances as last seen, with freshness for `check_balance`."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[Decimal, float, int]] = {}
        self.snapshot: tuple[float, int] | None = None
        self.epoch = 0

    def apply(self, balances: Mapping[str, Any], time: float, snapshot: bool) -> None:
        if snapshot:
            self.values = {}
            self.snapshot = (time, self.epoch)
        for asset, amount in balances.items():
            self.values[asset_key(asset)] = (to_decimal(amount), time, self.epoch)

    def invalidate(self) -> None:
        """The account changed (an order result or fill): every balance must be read again."""
        self.epoch += 1

    def lookup(self, asset: str) -> tuple[Decimal, float, int] | None:
        """(amount, seen at, epoch), or None when never seen. After a complete snapshot an
        asset missing from it holds zero, as Kraken leaves empty balances out."""
        found = self.values.get(asset_key(asset))
        if found is None and self.snapshot is not None:
            return Decimal(0), self.snapshot[0], self.snapshot[1]
        return found

    def fresh(self, asset: str, now: float, max_age: float) -> Decimal | None:
        found = self.lookup(asset)
        if found is None or found[2] != self.epoch or now - found[1] > max_age:
            return None
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "values": {a: [plain(v), t, e] for a, (v, t, e) in self.values.items()},
            "snapshot": list(self.snapshot) if self.snapshot else None,
            "epoch": self.epoch,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Balances:
        balances = cls()
        balances.values = {a: (Decimal(v), float(t), int(e)) for a, (v, t, e) in data.get("values", {}).items()}
        snap = data.get("snapshot")
        balances.snapshot = (float(snap[0]), int(snap[1])) if snap else None
        balances.epoch = int(data.get("epoch", 0))
        return balances


@dataclass
class OrderView:
    """One order the engine knows about. `status` is `sending` until its result arrives."""

    key: str
    market: str
    pair: str | None
    status: str
    rule_id: str | None = None
    cl_ord_id: str | None = None
    txids: list[str] = field(default_factory=list)
    volume: Decimal | None = None
    price: Decimal | None = None
    filled: Decimal = Decimal(0)
    placed_at: float = 0.0

    @property
    def notional(self) -> Decimal:
        """Open quantity times price; zero when unknown (orders placed outside the engine)."""
        if self.volume is None or self.price is None:
            return Decimal(0)
        return max(self.volume - self.filled, Decimal(0)) * self.price

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "market": self.market,
            "pair": self.pair,
            "status": self.status,
            "rule_id": self.rule_id,
            "cl_ord_id": self.cl_ord_id,
            "txids": list(self.txids),
            "volume": None if self.volume is None else plain(self.volume),
            "price": None if self.price is None else plain(self.price),
            "filled": plain(self.filled),
            "placed_at": self.placed_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderView:
        return cls(
            key=data["key"],
            market=data["market"],
            pair=data.get("pair"),
            status=data["status"],
            rule_id=data.get("rule_id"),
            cl_ord_id=data.get("cl_ord_id"),
            txids=list(data.get("txids", [])),
            volume=None if data.get("volume") is None else Decimal(data["volume"]),
            price=None if data.get("price") is None else Decimal(data["price"]),
            filled=Decimal(data.get("filled", "0")),
            placed_at=float(data.get("placed_at", 0.0)),
        )


class Orders:
    """Open and in-flight orders, findable by client order id or txid. Their total notional
    is kept as they come, fill and go (`set_filled`), so a risk check costs the same with a
    thousand resting orders as with none."""

    def __init__(self, orders: Iterable[OrderView] = ()) -> None:
        self._orders: dict[str, OrderView] = {}
        self._by_txid: dict[str, str] = {}
        self._notional = Decimal(0)
        for order in orders:
            self.add(order)

    def __iter__(self):
        return iter(list(self._orders.values()))

    def __len__(self) -> int:
        return len(self._orders)

    def add(self, order: OrderView) -> None:
        replaced = self._orders.get(order.key)
        if replaced is not None:
            self._notional -= replaced.notional
        self._orders[order.key] = order
        self._notional += order.notional
        for txid in order.txids:
            self._by_txid[txid] = order.key

    def find(self, txid: str | None = None, cl_ord_id: str | None = None) -> OrderView | None:
        if cl_ord_id is not None and cl_ord_id in self._orders:
            return self._orders[cl_ord_id]
        if txid is not None and txid in self._by_txid:
            return self._orders.get(self._by_txid[txid])
        return None

    def set_txids(self, order: OrderView, txids: Iterable[str]) -> None:
        order.txids = list(txids)
        for txid in order.txids:
            self._by_txid[txid] = order.key

    def set_filled(self, order: OrderView, filled: Decimal) -> None:
        """Record how much of `order` (one of these) has filled."""
        self._notional -= order.notional
        order.filled = filled
        self._notional += order.notional

    def remove(self, order: OrderView) -> None:
        removed = self._orders.pop(order.key, None)
        if removed is not None:
            self._notional -= removed.notional
        for txid in order.txids:
            self._by_txid.pop(txid, None)

    def count(self, pair: str | None = None) -> int:
        return sum(1 for o in self._orders.values() if pair is None or o.pair == pair)

    def total_notional(self) -> Decimal:
        return self._notional

    def of_rule(self, rule_id: str, market: str) -> list[OrderView]:
        return [o for o in self._orders.values() if o.rule_id == rule_id and o.market == market]

    def clear_market(self, market: str) -> None:
        for order in [o for o in self._orders.values() if o.market == market]:
            self.remove(order)
