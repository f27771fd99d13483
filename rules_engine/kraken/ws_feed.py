"""Kraken ticker feed over WebSocket: connect, subscribe, watch, reconnect.

`TickerFeed` owns one connection to a Kraken ticker endpoint (spot v2 by default, spot v1
or futures) and turns its frames into `Tick`s for `on_tick`. Parsing lives in
`rules_engine.kraken.ws_frames`; this module is only the socket loop:

- Subscribes on every connection; Kraken's per-symbol answers are checked. A rejected
  symbol (`Currency pair not supported ...`) is reported once and not asked for again
  until `set_symbols` drops it and asks anew.
- Liveness: any frame counts (ticks, heartbeats, acks, pongs). After `heartbeat_timeout`
  without one (checked every eighth of it) the connection is declared dead, aborted and
  replaced. Kraken sends heartbeats only to subscribers, so while no symbol is subscribed
  the feed sends an application ping after half the bound instead (v2, v1).
- Reconnects back off exponentially with full jitter (`uniform(0, min(max, base * 2**n))`),
  and the exponent resets once a connection has stayed up for `healthy_after` seconds.
- A malformed frame is counted in `stats`, reported to `on_status` and skipped.

Callbacks run on the event loop and must not block: `on_tick(tick)` should hand the tick
to the engine's queue. An exception in a callback is logged and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from rules_engine.core.events import Tick
from rules_engine.kraken.endpoints import KRAKEN, KrakenEndpoints
from rules_engine.kraken.ws_frames import (
    Dialect,
    ErrorReply,
    Heartbeat,
    Ignored,
    Malformed,
    Pong,
    Status,
    SubscribeAck,
    dialect_for,
)
from rules_engine.pairs import PairRegistry
from rules_engine.sleeping import interruptible_sleep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedStatus:
    """A change worth reporting. `kind` is one of: connected, disconnected, silent,
    subscribed, unsubscribed, rejected, error, system, malformed, reconnecting, callback_error."""

    kind: str
    time: float
    detail: str = ""
    symbol: str | None = None


@dataclass
class FeedStats:
    """Counters for /healthz and metrics (all times are `clock()` epoch seconds)."""

    protocol: str
    connected: bool = False
    frames: int = 0
    ticks: int = 0
    malformed: int = 0
    ignored: int = 0
    heartbeats: int = 0
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    silences: int = 0
    callback_errors: int = 0
    last_frame_at: float | None = None
    last_tick_at: float | None = None
    last_malformed: str | None = None
    last_error: str | None = None
    system: str | None = None
    next_backoff: float | None = None
    subscribed: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        out = dict(self.__dict__)
        out["subscribed"] = sorted(self.subscribed)
        out["rejected"] = dict(sorted(self.rejected.items()))
        return out


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2.0 ** min(attempt, 62))))


_CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed)


class TickerFeed:
    """One reconnecting ticker subscription. Run with `await feed.run()`; end with `feed.stop()`."""

    def __init__(
        self,
        endpoints: KrakenEndpoints = KRAKEN,
        protocol: str = "v2",
        symbols: Iterable[str] = (),
        on_tick: Callable[[Tick], None] | None = None,
        *,
        on_status: Callable[[FeedStatus], None] | None = None,
        heartbeat_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        healthy_after: float = 60.0,
        open_timeout: float = 10.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        registry: PairRegistry | None = None,
        event_trigger: str | None = None,
    ):
        options = {"event_trigger": event_trigger} if event_trigger else {}
        self.dialect: Dialect = dialect_for(protocol, registry, **options)
        self.url = self.dialect.url(endpoints)
        try:
            parse_uri(self.url)
        except InvalidURI as exc:
            raise ValueError(f"bad {protocol} WebSocket URL: {exc}") from None
        if heartbeat_timeout <= 0 or backoff_base <= 0 or backoff_max < backoff_base:
            raise ValueError("need heartbeat_timeout > 0 and 0 < backoff_base <= backoff_max")
        self._symbols = self._canonical(symbols)
        self._on_tick = on_tick or (lambda tick: None)
        self._on_status = on_status
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self.open_timeout = open_timeout
        self._rng = rng or random.Random()
        self._clock = clock
        self.stats = FeedStats(protocol=self.dialect.name)
        self._ws: ClientConnection | None = None
        self._active: set[str] = set()  # requested on this connection, not rejected or dropped
        self._req_id = 0
        self._stop: asyncio.Event | None = None
        self._stopped = False

    # -- public API -----------------------------------------------------------------------

    @property
    def symbols(self) -> frozenset[str]:
        """The canonical symbols this feed wants (rejected ones included)."""
        return frozenset(self._symbols)

    async def run(self) -> None:
        """Connect and stream until `stop()`; reconnects on drops and silence."""
        self._stop = asyncio.Event()
        if self._stopped:
            return
        attempt = 0
        first = True
        while not self._stop.is_set():
            session = asyncio.ensure_future(self._session(first))
            stopper = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                if not session.done():
                    session.cancel()
                    await asyncio.gather(session, return_exceptions=True)
            if self._stop.is_set():
                break
            try:
                connected_for = session.result()
            except Exception as exc:  # a bug or an unforeseen library error: log it, keep the feed alive
                log.exception("%s feed session failed", self.dialect.name)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self.stats.connected = False
                self._ws = None
                self._report("disconnected", self.stats.last_error)
                connected_for = None
            if connected_for is not None:
                first = False
                if connected_for >= self.healthy_after:
                    attempt = 0
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, self._rng)
            attempt += 1
            self.stats.next_backoff = delay
            self._report("reconnecting", f"in {delay:.3f} s")
            await interruptible_sleep(delay, self._stop)
        self.stats.connected = False

    def stop(self) -> None:
        """Ask `run()` to close the connection and return. Safe to call more than once."""
        self._stopped = True
        if self._stop is not None:
            self._stop.set()

    async def set_symbols(self, symbols: Iterable[str]) -> None:
        """Replace the wanted symbols; on a live connection subscribe / unsubscribe the difference.

        Raises ValueError (changing nothing) if a name is unknown. Symbols that stay keep
        their rejection; a symbol dropped and later asked for again is tried again."""
        wanted = self._canonical(symbols)
        added = wanted - self._symbols
        removed = self._symbols - wanted
        self._symbols -= removed  # in place: the receive loop holds a reference
        self._symbols |= added
        for symbol in removed:
            self.stats.rejected.pop(symbol, None)
        drop = sorted(removed & self._active)
        self._active -= removed
        self.stats.subscribed -= removed
        ws = self._ws
        if ws is None:
            return
        try:
            if drop:
                await ws.send(self.dialect.unsubscribe_request(drop, self._next_req_id()))
            await self._subscribe_missing(ws)
        except ConnectionClosed:
            pass  # the next connection subscribes to the new set

    # -- connection -----------------------------------------------------------------------

    def _canonical(self, symbols: Iterable[str]) -> set[str]:
        if isinstance(symbols, str):
            raise ValueError("symbols must be a list of names, not one string")
        return {self.dialect.canonical(name) for name in symbols}

    def _next_req_id(self) -> int:
        self._req_id += 1
        return self._req_id

    async def _subscribe_missing(self, ws: ClientConnection) -> None:
        """Subscribe the wanted symbols not yet requested on this connection (nor rejected).
        `_active` is updated before the send, so concurrent callers never ask twice."""
        missing = sorted(self._symbols - self._active - self.stats.rejected.keys())
        if missing:
            self._active.update(missing)
            await ws.send(self.dialect.subscribe_request(missing, self._next_req_id()))

    async def _session(self, first: bool) -> float | None:
        """One connection, until it closes. Returns how long it stayed open, None if it never opened."""
        try:
            ws = await connect(self.url, open_timeout=self.open_timeout, close_timeout=2.0)
        except _CONNECTION_ERRORS as exc:
            self.stats.connect_failures += 1
            self.stats.last_error = f"connect: {exc}"
            self._report("disconnected", f"connect failed: {exc}")
            return None
        opened = time.monotonic()
        watchdog = None
        try:
            self._ws = ws
            self._active = set()
            self.stats.subscribed = set()
            self.stats.connected = True
            self.stats.connects += 1
            if not first:
                self.stats.reconnects += 1
            self._report("connected", self.url)
            watchdog = asyncio.ensure_future(self._watch(ws))
            for request in self.dialect.connect_requests():
                await ws.send(request)
            await self._subscribe_missing(ws)
            await self._receive(ws)
            reason = f"closed by server: {ws.close_code} {ws.close_reason}".strip()
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        except OSError as exc:
            reason = f"socket error: {exc}"
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._ws = None
            self.stats.connected = False
            self.stats.subscribed = set()
            await ws.close()
        self.stats.last_error = reason
        self._report("disconnected", reason)
        return time.monotonic() - opened

    async def _receive(self, ws: ClientConnection) -> None:
        parse = self.dialect.parse
        clock = self._clock
        stats = self.stats
        wanted = self._symbols
        on_tick = self._on_tick
        recv = ws.recv  # as `async for message in ws`, without its async generator per message
        while True:
            try:
                message = await recv()
            except ConnectionClosedOK:
                return
            now = clock()
            stats.frames += 1
            stats.last_frame_at = now
            ticks, events = parse(message, now)
            for tick in ticks:
                if tick.symbol in wanted:
                    stats.ticks += 1
                    stats.last_tick_at = now
                    try:
                        on_tick(tick)
                    except Exception as exc:
                        self._callback_failed("on_tick", exc)
            for event in events:
                self._on_event(event)

    async def _watch(self, ws: ClientConnection) -> None:
        """Abort the connection after `heartbeat_timeout` without a frame. With no symbol
        subscribed Kraken sends no heartbeats, so then the feed probes with an application
        ping after half the bound; the pong counts as a frame.

        Silence is measured by polling the frame counter every bound/8 (the receive loop
        stays free of clock reads), so a dead feed is declared 1 to 1.125 bounds after
        its last frame."""
        bound = self.heartbeat_timeout
        seen = self.stats.frames
        quiet_since = time.monotonic()
        pinged = False
        while True:
            await asyncio.sleep(bound / 8)
            now = time.monotonic()
            if self.stats.frames != seen:
                seen, quiet_since, pinged = self.stats.frames, now, False
                continue
            idle = now - quiet_since
            if idle >= bound:
                self.stats.silences += 1
                self._report("silent", f"no frame for {idle:.2f} s (bound {bound} s)")
                ws.transport.abort()
                return
            if idle >= bound / 2 and not pinged and not self._active:
                pinged = True
                ping = self.dialect.ping_request(self._next_req_id())
                if ping is not None:
                    try:
                        await ws.send(ping)
                    except ConnectionClosed:
                        return

    # -- events ---------------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        stats = self.stats
        kind = type(event)
        if kind is Heartbeat or kind is Pong:
            stats.heartbeats += 1
        elif kind is SubscribeAck:
            self._on_ack(event)
        elif kind is Malformed:
            stats.malformed += 1
            stats.last_malformed = event.reason
            log.warning("malformed %s frame skipped: %s: %r", self.dialect.name, event.reason, event.excerpt)
            self._report("malformed", f"{event.reason}: {event.excerpt}")
        elif kind is Status:
            if event.system is not None and event.system != stats.system:
                stats.system = event.system
                self._report("system", event.system)
        elif kind is ErrorReply:
            stats.last_error = event.message
            log.warning("%s feed error from Kraken: %s", self.dialect.name, event.message)
            self._report("error", event.message)
        elif kind is Ignored:
            stats.ignored += 1

    def _on_ack(self, ack: SubscribeAck) -> None:
        symbol = ack.symbol
        if ack.ok and ack.action == "subscribe":
            if symbol in self._active:
                self.stats.subscribed.add(symbol)
                self._report("subscribed", "", symbol)
        elif ack.ok:
            self.stats.subscribed.discard(symbol)
            self._report("unsubscribed", "", symbol)
        else:
            error = ack.error or "rejected"
            if symbol in self._symbols:
                self.stats.rejected[symbol] = error
                self._active.discard(symbol)
                self.stats.subscribed.discard(symbol)
            log.error("Kraken rejected %s %s for %s: %s", self.dialect.name, ack.action, symbol, error)
            self._report("rejected", error, symbol)

    def _report(self, kind: str, detail: str = "", symbol: str | None = None) -> None:
        if kind in ("connected", "disconnected", "silent", "reconnecting"):
            log.info("%s feed %s %s", self.dialect.name, kind, detail)
        if self._on_status is None:
            return
        try:
            self._on_status(FeedStatus(kind, self._clock(), detail, symbol))
        except Exception as exc:
            self._callback_failed("on_status", exc)

    def _callback_failed(self, name: str, exc: Exception) -> None:
        self.stats.callback_errors += 1
        log.exception("%s callback raised %s", name, type(exc).__name__)
