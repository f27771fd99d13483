"""The price feeds the loaded rules need: one `TickerFeed` per market (spot over WebSocket
v2 or v1, futures), each subscribed to exactly the symbols the rules watch or trade.
`apply(needs)` starts, re-subscribes or stops them after a (re)load."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from rules_engine.core.events import Tick
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.ws_feed import FeedStatus, TickerFeed
from rules_engine.needs import RuleNeeds

log = logging.getLogger(__name__)

MARKETS = ("spot", "futures")


class MarketFeeds:
    """Owns the feeds. `on_tick(tick)` and `on_status(market, status)` run on the loop."""

    def __init__(
        self,
        endpoints: KrakenEndpoints,
        spot_protocol: str,
        on_tick: Callable[[Tick], None],
        on_status: Callable[[str, FeedStatus], None],
        *,
        clock: Callable[[], float] = time.time,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._protocols = {"spot": spot_protocol, "futures": "futures"}
        self._on_tick = on_tick
        self._on_status = on_status
        self._clock = clock
        self._options = dict(options or {})
        self.feeds: dict[str, TickerFeed] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    async def apply(self, needs: RuleNeeds) -> None:
        """Make each market's feed follow `needs`: subscribe the new symbols, unsubscribe the
        ones no rule needs any more, start a feed that is newly needed, stop an unneeded one."""
        for market in MARKETS:
            symbols = needs.symbols(market)
            feed = self.feeds.get(market)
            if not symbols:
                if feed is not None:
                    await self._stop(market)
                continue
            if feed is None:
                feed = TickerFeed(self._endpoints, self._protocols[market], sorted(symbols), self._on_tick,
                                  on_status=functools.partial(self._on_status, market),
                                  clock=self._clock, **self._options)
                self.feeds[market] = feed
                self._tasks[market] = asyncio.ensure_future(feed.run())
                log.info("%s feed (%s) starting with %d symbols", market, feed.dialect.name, len(symbols))
            elif feed.symbols != frozenset(feed.dialect.canonical(s) for s in symbols):
                await feed.set_symbols(sorted(symbols))
                log.info("%s feed now follows %d symbols", market, len(symbols))

    async def _stop(self, market: str) -> None:
        feed = self.feeds.pop(market)
        task = self._tasks.pop(market)
        feed.stop()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        log.info("%s feed stopped", market)

    async def stop(self) -> None:
        for market in list(self.feeds):
            await self._stop(market)

    def health(self, now: float) -> dict[str, dict[str, Any]]:
        """Per market: connected, age of the last tick, symbols wanted / subscribed / rejected."""
        report = {}
        for market, feed in self.feeds.items():
            stats = feed.stats
            report[market] = {
                "protocol": stats.protocol,
                "connected": stats.connected,
                "last_tick_age": None if stats.last_tick_at is None else round(max(0.0, now - stats.last_tick_at), 3),
                "symbols": len(feed.symbols),
                "subscribed": len(stats.subscribed),
                "rejected": dict(stats.rejected),
                "reconnects": stats.reconnects,
                "ticks": stats.ticks,
            }
        return report
