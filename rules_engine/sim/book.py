"""Public `Depth` and `Trades`: the simulated market's order book and its prints.

The book is seeded around the price: its best bid and ask are the ticker's (one tick either
side of the last price, or the quoted bid/ask), then levels thinning outward (level `i` sits
`i(i+1)/2` ticks beyond the top, so 500 levels of XBTUSD span about 12,500 USD), each with a
size drawn deterministically from the simulator's seed, the pair, the side and the level
(between 20 and 2,000 times the pair's `ordermin`). The accounts' resting limit orders are on
the book too, added to the size of their level; so a limit buy below the bid rests where
Depth shows it, and one at or above the ask is marketable and fills (the simulator fills
marketable orders at the last price). The top level's seeded size is the ticker's `bid_qty` /
`ask_qty`.

Trades are the market's prints (every random-walk or replay step with volume) and the
accounts' fills, oldest first, as `[price, volume, time, "b"|"s", "m"|"l", "", trade_id]`;
`last` is the newest row's time in nanoseconds (a string), the cursor to pass back as `since`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rules_engine.pairs import PairInfo
from rules_engine.paper.add_order import _invalid, integer, text
from rules_engine.paper.assets import fmt
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.exchange import PaperExchange
from rules_engine.sim.market import MarketData, PairStats, level_volume, price_decimals

DEPTH_DEFAULT, DEPTH_MAX = 100, 500
TRADES_DEFAULT, TRADES_MAX = 1000, 1000
_LIMIT_TYPES = frozenset({"limit", "iceberg"})


def _tick(pair: PairInfo) -> Decimal:
    return pair.tick_size if pair.tick_size > 0 else Decimal(1).scaleb(-pair.pair_decimals)


def book(stats: PairStats, exchange: PaperExchange, count: int, seed: int | str = 0) -> dict[str, list[list[Any]]]:
    """`{"asks": [...], "bids": [...]}`, best first, `count` levels a side."""
    pair, tick = stats.pair, _tick(stats.pair)
    places, lots, stamp = price_decimals(pair), pair.lot_decimals, int(stats.updated)
    sides: dict[str, dict[Decimal, Decimal]] = {"asks": {}, "bids": {}}
    for index in range(count):
        offset = tick * (index * (index + 1) // 2)
        sides["asks"][stats.ask + offset] = level_volume(pair, "ask", index, seed)
        sides["bids"][stats.bid - offset] = level_volume(pair, "bid", index, seed)
    for order in exchange.open_orders_of_pair(pair.altname):  # the accounts' resting limit orders
        if order.status != "open" or not order.resting:
            continue
        limit = order.limit_price()
        if limit is None or (order.ordertype not in _LIMIT_TYPES and not order.triggered):
            continue
        levels = sides["bids" if order.side == "buy" else "asks"]
        levels[limit] = levels.get(limit, Decimal(0)) + order.volume - order.vol_exec
    asks = sorted(sides["asks"].items())[:count]
    bids = sorted(sides["bids"].items(), reverse=True)[:count]
    return {
        "asks": [[fmt(price, places), fmt(volume, lots), stamp] for price, volume in asks],
        "bids": [[fmt(price, places), fmt(volume, lots), stamp] for price, volume in bids if price > 0],
    }


class MarketBook:
    """The `Depth` and `Trades` public methods over the market data and the paper exchange."""

    def __init__(self, market: MarketData, exchange: PaperExchange):
        self.market = market
        self.exchange = exchange
        self._fills_seen = 0

    def _stats(self, params: Mapping[str, Any]) -> PairStats:
        name = text(params, "pair")
        if not name:
            raise _invalid("pair")
        pair = self.exchange.pair(name)
        stats = self.market.stats(pair.altname)
        if stats is None:
            raise ExchangeError("EService:Unavailable")  # no price yet: nothing trades
        return stats

    def depth(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        stats = self._stats(params)
        count = integer(params, "count")
        count = DEPTH_DEFAULT if count is None or count == 0 else count
        if not 1 <= count <= DEPTH_MAX:
            raise _invalid("count")
        return {stats.pair.pair_id: book(stats, self.exchange, count, self.market.seed)}

    def _absorb_fills(self) -> None:
        """Add the accounts' fills made since the last call to their pair's prints."""
        fills = list(self.exchange.trades.values())
        for fill in fills[self._fills_seen:]:
            stats = self.market.stats(fill.pair)
            if stats is not None:
                kind = "l" if fill.ordertype in _LIMIT_TYPES else "m"
                stats.add_print(fill.price, fill.volume, fill.time, "b" if fill.side == "buy" else "s", kind)
        self._fills_seen = len(fills)

    def trades(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        stats = self._stats(params)
        self._absorb_fills()
        count = integer(params, "count")
        count = TRADES_DEFAULT if count is None else count
        if not 1 <= count <= TRADES_MAX:
            raise _invalid("count")
        since = _since_ns(text(params, "since"))
        prints = sorted(stats.prints, key=lambda p: (p.time, p.trade_id))
        rows = [p for p in prints if since is None or int(p.time * 1e9) > since][:count]
        places, lots = price_decimals(stats.pair), stats.pair.lot_decimals
        last = int(rows[-1].time * 1e9) if rows else (since if since is not None else int(now * 1e9))
        return {
            stats.pair.pair_id: [[fmt(p.price, places), fmt(p.volume, lots), round(p.time, 4), p.side, p.kind, "",
                                  p.trade_id] for p in rows],
            "last": str(last),
        }


def _since_ns(raw: str | None) -> int | None:
    """`since` in nanoseconds: Kraken's `last` cursor (ns), or plain epoch seconds."""
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise _invalid("since") from None
    if not value.is_finite() or value < 0:
        raise _invalid("since")
    return int(value) if value > 10**12 else int(value * 10**9)
