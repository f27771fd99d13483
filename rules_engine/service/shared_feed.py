"""One public market-data feed for many key cells (a worker): one `MarketFeeds` (one WebSocket
per market) subscribed to the union of the cells' symbols, each tick handed to the cells
that watch its symbol, each feed status to every cell.

    shared = SharedFeeds(endpoints, "v2", clock=time.time)
    view = shared.attach(service._on_tick, service._on_feed_status)   # EngineService does this
    await view.apply(needs)      # the cell's symbols join the union (subscribed if new)
    await view.stop()            # the cell leaves; symbols no other cell needs are unsubscribed
    await shared.stop()

A view has the part of `MarketFeeds`' interface the service uses (`apply`, `stop`, `health`,
`feeds`), so a cell runs the same code as `rules-engine run`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from rules_engine.core.events import Tick
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.ws_feed import FeedStatus, TickerFeed
from rules_engine.needs import RuleNeeds
from rules_engine.service.market_feeds import MARKETS, MarketFeeds


class CellFeeds:
    """One cell's view of the shared feeds."""

    def __init__(self, shared: SharedFeeds, on_tick: Callable[[Tick], None],
                 on_status: Callable[[str, FeedStatus], None]) -> None:
        self._shared = shared
        self.on_tick = on_tick
        self.on_status = on_status
        self.symbols: dict[str, frozenset[str]] = {market: frozenset() for market in MARKETS}

    @property
    def feeds(self) -> dict[str, TickerFeed]:
        return self._shared.feeds.feeds

    async def apply(self, needs: RuleNeeds) -> None:
        self.symbols = {market: frozenset(needs.symbols(market)) for market in MARKETS}
        await self._shared.update(self)

    async def stop(self) -> None:
        await self._shared.detach(self)

    def health(self, now: float) -> dict[str, dict[str, Any]]:
        """The shared feeds' health, for the markets this cell needs."""
        return {market: report for market, report in self._shared.feeds.health(now).items() if self.symbols[market]}


class SharedFeeds:
    """The worker's feeds (see the module). `on_tick` and `on_status` run on the loop."""

    def __init__(self, endpoints: KrakenEndpoints, spot_protocol: str, *, clock: Callable[[], float] = time.time,
                 options: Mapping[str, Any] | None = None) -> None:
        self.feeds = MarketFeeds(endpoints, spot_protocol, self._on_tick, self._on_status, clock=clock,
                                 options=options)
        self.views: list[CellFeeds] = []
        self._by_symbol: dict[tuple[str, str], list[CellFeeds]] = {}
        self._lock = asyncio.Lock()

    def attach(self, on_tick: Callable[[Tick], None], on_status: Callable[[str, FeedStatus], None]) -> CellFeeds:
        view = CellFeeds(self, on_tick, on_status)
        self.views.append(view)
        return view

    async def update(self, view: CellFeeds) -> None:
        """A view's symbols changed: subscribe the union, route ticks anew."""
        if view not in self.views:
            self.views.append(view)
        await self._apply()

    async def detach(self, view: CellFeeds) -> None:
        if view in self.views:
            self.views.remove(view)
            await self._apply()

    async def stop(self) -> None:
        self.views.clear()
        self._by_symbol.clear()
        await self.feeds.stop()

    def symbols(self, market: str) -> frozenset[str]:
        """The union of the cells' symbols of `market`."""
        return frozenset().union(*(view.symbols[market] for view in self.views))

    async def _apply(self) -> None:
        async with self._lock:
            union = RuleNeeds(self.symbols("spot"), self.symbols("futures"), (), frozenset(), {})
            await self.feeds.apply(union)
            routes: dict[tuple[str, str], list[CellFeeds]] = {}
            for view in self.views:
                for market, symbols in view.symbols.items():
                    for symbol in symbols:
                        routes.setdefault((market, self._canonical(market, symbol)), []).append(view)
            self._by_symbol = routes

    def _canonical(self, market: str, symbol: str) -> str:
        feed = self.feeds.feeds.get(market)
        if feed is None:
            return symbol
        try:
            return feed.dialect.canonical(symbol)
        except ValueError:
            return symbol

    def _on_tick(self, tick: Tick) -> None:
        for view in self._by_symbol.get((tick.market, tick.symbol), ()):
            view.on_tick(tick)

    def _on_status(self, market: str, status: FeedStatus) -> None:
        for view in list(self.views):
            if view.symbols[market]:
                view.on_status(market, status)
