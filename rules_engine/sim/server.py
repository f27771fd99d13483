"""The simulator process: every Kraken API on one aiohttp port.

    sim = Simulator(SimConfig(accounts=[Account("k1", secret, {"ZUSD": "10000"})]))
    with sim.running() as endpoints:        # background thread with its own event loop
        ...                                  # point any Kraken client at `endpoints`
        sim.set_price("XBTUSD", Decimal("59000"))

or inside a running loop: `endpoints = await sim.start()` ... `await sim.stop()`.

Routes (`KrakenEndpoints.local` gives the URLs): Spot REST `/0/public/*`, `/0/private/*`;
Futures REST `/derivatives/api/v3/*`; WebSocket v2 `/v2`, v1 `/`, Futures `/ws/v1`, private
v2 `/auth/v2`.
State lives in pure objects (`exchange`, `futures`, `market`, `spot_api`) guarded by one
lock, so the thread-safe controls (`set_price`, `step`, `advance`, `faults`) may be called
from any thread while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from aiohttp import web

from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.ratelimit import DecayingCounter
from rules_engine.pairs import PairRegistry, default_registry
from rules_engine.paper.exchange import Fill, PaperExchange
from rules_engine.paper.fees import FeeSchedule
from rules_engine.sim.auth import FuturesAuth, SpotAuth
from rules_engine.sim.config import Account, SimConfig
from rules_engine.sim.faults import Faults
from rules_engine.sim.feeds import FeedHub
from rules_engine.sim.futures import FuturesExchange, default_products
from rules_engine.sim.futures_api import FuturesApi
from rules_engine.sim.futures_rest import FuturesRest
from rules_engine.sim.journal import Journal
from rules_engine.sim.market import MarketData
from rules_engine.sim.prices import PricePoint, PriceSource, RandomWalk, open_replay
from rules_engine.sim.private_ws import PrivateFeed
from rules_engine.sim.spot_api import SYSTEM_STATUSES, SpotApi
from rules_engine.sim.spot_rest import SpotRest
from rules_engine.sim.spot_trading import install as install_spot_trading
from rules_engine.sleeping import interruptible_sleep

FUTURES_BUDGET = (500, 50)  # cost units per key: maximum, and decay per second (500 per 10 s)
START_TIMEOUT = 10.0


class Simulator:
    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        pairs: PairRegistry | None = None,
        fees: FeeSchedule | None = None,
    ):
        self.config = config or SimConfig()
        self.clock = clock
        self.pairs = pairs or default_registry()
        self.lock = threading.RLock()
        self.faults = Faults()
        self.market = MarketData(self.pairs, self.config.seed)
        self.exchange = PaperExchange(self.pairs, fees, seed=self.config.seed)
        self.futures = FuturesExchange(default_products(self.pairs), seed=self.config.seed)
        self.spot_api = SpotApi(self.exchange, self.market)
        self.spot_trading = install_spot_trading(self.spot_api)  # Depth, Trades, Amend/Edit, batches
        self.futures_api = FuturesApi(self.futures, self.market)
        self.spot_auth = SpotAuth(self.config.lockout_after, self.config.lockout_seconds)
        self.futures_auth = FuturesAuth(self.config.futures_nonce_window)
        self.journal = Journal()  # every private Spot REST call and its outcome (tests, /_sim/journal)
        self.source: PriceSource = (
            open_replay(self.config.replay, self.pairs, self.config.replay_pair)
            if self.config.replay
            else RandomWalk(self.pairs, self.config.seed, self.config.tick_interval or 0.0, self.config.volatility)
        )
        self.endpoints: KrakenEndpoints | None = None
        self._rest_counters: dict[str, DecayingCounter] = {}
        self._futures_counters: dict[str, DecayingCounter] = {}
        self._tiers: dict[str, str] = {}
        self._hub: FeedHub | None = None
        self._private: PrivateFeed | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping: asyncio.Event | None = None
        now = self.clock()
        for name, price in self.config.starting_prices().items():
            pair = self.pairs.get(name)
            if pair is None:
                if name in self.config.prices:
                    raise ValueError(f"unknown pair {name!r} in prices")
                continue
            self._apply([PricePoint(pair.altname, price)], now)
        for account in self.config.accounts:
            self.add_account(account)

    # ------------------------------------------------------------------ accounts and counters

    def add_account(self, account: Account) -> None:
        """Register an API key with its balances, tier and futures collateral."""
        with self.lock:
            self.spot_auth.add_key(account.api_key, account.secret, account.nonce_window)
            self.futures_auth.add_key(account.api_key, account.secret)
            self.spot_api.set_tier(account.api_key, account.tier)
            self._tiers[account.api_key] = account.tier
            self.exchange.set_balances(account.api_key, account.balances)
            for currency, amount in account.futures_collateral().items():
                self.futures.set_collateral(account.api_key, currency, amount)

    def rest_counter(self, api_key: str) -> DecayingCounter:
        """The key's REST call counter (Kraken's tier maximum and decay)."""
        if api_key not in self._rest_counters:
            tier = self.spot_api.tier(api_key)
            self._rest_counters[api_key] = DecayingCounter(tier.rest_max, tier.rest_decay)
        return self._rest_counters[api_key]

    def futures_counter(self, api_key: str) -> DecayingCounter:
        if api_key not in self._futures_counters:
            self._futures_counters[api_key] = DecayingCounter(*FUTURES_BUDGET)
        return self._futures_counters[api_key]

    # ------------------------------------------------------------------ market controls (thread-safe)

    def _apply(self, points: Iterable[PricePoint], now: float) -> list[Fill]:
        fills: list[Fill] = []
        names = []
        with self.lock:
            for point in points:
                pair = self.market.update(point.symbol, point.price, now, point.volume, point.quoted)
                fills += self.exchange.on_price(pair.altname, point.price, now)
                self.futures.on_spot_price(pair.altname, point.price, now)
                names.append(pair.altname)
            rendered = self._hub.render(names) if self._hub is not None else None
        if rendered is not None:
            self._in_loop(lambda hub: hub.publish(rendered))
        self.notify_private()
        return fills

    def set_price(self, symbol: str, price: Decimal | str, volume: Decimal | str = "0", *,
                  bid: Decimal | str | None = None, ask: Decimal | str | None = None) -> list[Fill]:
        """Move the market now (spot pair, or a futures product's underlying): resting
        orders that the price reaches fill before this returns; ticks go out. The published
        bid and ask are one tick either side of the price unless both are given."""
        product = self.futures.product(symbol)
        name = product.underlying if product is not None else self.pairs.resolve(symbol).altname
        quoted = None
        if bid is not None and ask is not None:
            quoted = (Decimal(str(bid)), Decimal(str(ask)))
        point = PricePoint(name, Decimal(str(price)), Decimal(str(volume)), quoted)
        return self._apply([point], self.clock())

    def step(self, count: int = 1) -> int:
        """Apply the price source's next `count` steps now (ignoring their delays).
        Returns how many were applied (fewer when a replay ends)."""
        applied = 0
        for _ in range(count):
            with self.lock:
                step = self.source.next_step(self.market.prices())
            if step is None:
                break
            self._apply(step.points, self.clock())
            applied += 1
        return applied

    def advance(self) -> None:
        """Run timers at the clock's current time: dead man's switches, order expiry and
        scheduled starts (the server also does this every `housekeeping_interval`)."""
        with self.lock:
            now = self.clock()
            self.exchange.advance(now)
            self.futures.advance(now)
        self.notify_private()

    def notify_private(self) -> None:
        """Send the private WebSocket subscribers what changed (orders, fills, balances)."""
        feed, loop = self._private, self._loop
        if feed is None or loop is None or loop.is_closed():
            return

        def flush() -> None:
            with self.lock:
                feed.flush()

        if threading.get_ident() == self._loop_thread:
            flush()
        else:
            loop.call_soon_threadsafe(flush)

    def set_system_status(self, status: str) -> None:
        """`online`, `maintenance`, `cancel_only` or `post_only` (REST and WS status)."""
        if status not in SYSTEM_STATUSES:
            raise ValueError(f"status must be one of {', '.join(SYSTEM_STATUSES)}")
        with self.lock:
            self.spot_api.status = status
        self._in_loop(lambda hub: hub.publish_status(status))

    def _in_loop(self, action: Callable[[FeedHub], object]) -> None:
        """Run a feed action on the server's loop (now if already on it)."""
        loop, hub = self._loop, self._hub
        if loop is None or hub is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            action(hub)
        else:
            loop.call_soon_threadsafe(action, hub)

    def _on_loop_and_wait(self, action: Callable[[FeedHub], int]) -> int:
        loop, hub = self._loop, self._hub
        if loop is None or hub is None:
            raise RuntimeError("the simulator is not running")
        if threading.get_ident() == self._loop_thread:
            return action(hub)

        async def run() -> int:
            return action(hub)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(START_TIMEOUT)

    async def wait_stopping(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when the server stops."""
        if self._stopping is None or seconds <= 0:
            return
        await interruptible_sleep(seconds, self._stopping)

    # ------------------------------------------------------------------ serving

    def _app(self) -> web.Application:
        assert self._hub is not None
        hub = self._hub
        app = web.Application(middlewares=[self.journal.middleware(self)])
        app.add_routes(SpotRest(self).routes())
        app.add_routes(FuturesRest(self).routes())
        app.add_routes(self.journal.routes())

        async def v2(request: web.Request) -> web.StreamResponse:
            return await hub.handle(request, "v2")

        async def futures_ws(request: web.Request) -> web.StreamResponse:
            return await hub.handle(request, "futures")

        private = self._private
        assert private is not None

        async def root(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await hub.handle(request, "v1")
            return web.Response(text="rules-engine Kraken simulator: see docs/simulator.md\n")

        app.add_routes([web.get("/v2", v2), web.get("/ws/v1", futures_ws), web.get("/", root),
                        web.get("/auth/v2", private.handle)])
        return app

    async def start(self, host: str | None = None, port: int | None = None,
                    ssl_context: ssl.SSLContext | None = None) -> KrakenEndpoints:
        """Serve on host:port (defaults from the config; port 0 picks a free one) in the
        running loop, over TLS with `ssl_context` (see `rules_engine.sim.tls`); returns the
        endpoints."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        host = host or self.config.host
        port = self.config.port if port is None else port
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = asyncio.Event()
        self._hub = FeedHub(self)
        self._private = PrivateFeed(self)
        self.faults.attach(
            lambda code: self._on_loop_and_wait(lambda hub: hub.drop_all(code) + self._drop_private(code)),
            lambda n, kind: self._on_loop_and_wait(lambda hub: hub.send_malformed(n, kind)),
        )
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        self._runner = runner
        self.endpoints = KrakenEndpoints.local(host, sock.getsockname()[1], secure=ssl_context is not None)
        self._tasks = [asyncio.ensure_future(self._housekeeping())]
        if self.config.tick_interval:
            self._tasks.append(asyncio.ensure_future(self._drive_prices()))
        return self.endpoints

    def private_subscribers(self) -> int:
        """Private WebSocket connections subscribed to at least one channel now."""
        feed = self._private
        return 0 if feed is None else sum(1 for conn in list(feed.connections) if conn.channels)

    def _drop_private(self, code: int | None) -> int:
        return self._private.drop_all(code) if self._private is not None else 0

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        if self._runner is None:
            return
        assert self._stopping is not None and self._hub is not None
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.faults.attach(None, None)
        await self._hub.close_all()
        if self._private is not None:
            await self._private.close_all()
        await self._runner.cleanup()
        self._runner, self._hub, self._private, self._tasks = None, None, None, []
        self._loop = self._loop_thread = None
        self.endpoints = None

    @contextlib.contextmanager
    def running(self, host: str | None = None, port: int | None = None,
                ssl_context: ssl.SSLContext | None = None) -> Iterator[KrakenEndpoints]:
        """Serve from a background thread with its own event loop while the block runs."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="kraken-sim", daemon=True)
        thread.start()
        try:
            endpoints = asyncio.run_coroutine_threadsafe(self.start(host, port, ssl_context),
                                                         loop).result(START_TIMEOUT)
            try:
                yield endpoints
            finally:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            loop.close()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.config.housekeeping_interval)
            self.advance()

    async def _drive_prices(self) -> None:
        speed = self.config.speed
        while True:
            with self.lock:
                step = self.source.next_step(self.market.prices())
            if step is None:
                return
            if step.delay > 0:
                await asyncio.sleep(step.delay / speed)
            self._apply(step.points, self.clock())
