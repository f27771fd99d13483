"""The public WebSocket feeds: Spot v2 (`/v2`), Spot v1 (`/`) and Futures (`/ws/v1`),
ticker channels only.

- v2: a `status` message on connect; `subscribe`/`unsubscribe` acknowledged per symbol
  (`Currency pair not supported X` for an unknown one; v2 symbols are `BTC/USD`); a
  ticker `snapshot` then `update`s on every price change; `{"channel":"heartbeat"}`
  every `heartbeat_interval` once subscribed; `ping` -> `pong`.
- v1: `systemStatus` on connect; `subscriptionStatus` per pair (`wsname` only, e.g.
  `XBT/USD`; `XBTUSD` gets `Currency pair not in ISO 4217-A3 format XBTUSD`); ticker
  arrays `[channelID, {a,b,c,v,p,t,l,h,o}, "ticker", "XBT/USD"]`; `{"event":"heartbeat"}`.
- Futures: `{"event":"info","version":1}` banner; `ticker`, `ticker_lite` and
  `heartbeat` feeds; flat ticker objects.

Each connection has a queue drained by its own sender task, so publishing is a
synchronous, non-blocking call on the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rules_engine.sim.futures import Product
from rules_engine.sim.market import rfc3339, v1_ticker, v2_ticker
from rules_engine.sim.ws_connections import accept, drop, gone, serve

if TYPE_CHECKING:
    from rules_engine.sim.server import Simulator

V2_VERSION = "2.0.10"
V1_VERSION = "1.9.1"
# Kraken channels this simulator does not serve (subscribing gets a clear error).
UNSERVED_V2 = frozenset({"book", "trade", "ohlc", "instrument", "level3", "executions", "balances"})
UNSERVED_V1 = frozenset({"book", "trade", "ohlc", "spread", "ownTrades", "openOrders"})
MALFORMED: dict[str, Callable[[str], str | bytes]] = {
    "truncated": lambda kind: (
        '{"channel":"ticker","type":"update","data":[{"symbol":' if kind == "v2" else '[42,{"a":["6'
    ),
    "garbage": lambda kind: "\x00not json at all\x7f",
    "binary": lambda kind: b"\xff\xfe\x00\x01",
    "wrong_shape": lambda kind: (
        '{"channel":"ticker","type":"update","data":"oops"}' if kind == "v2" else '[42,"oops","ticker"]'
    ),
}


@dataclass(frozen=True)
class Rendered:
    spot: dict[str, dict[str, str]]  # altname -> {"v2": frame, "v1": frame}
    futures: dict[str, tuple[str, str]]  # product id -> (ticker frame, ticker_lite frame)


@dataclass(eq=False)
class Connection:
    kind: str  # "v2" | "v1" | "futures"
    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    tickers: set[str] = field(default_factory=set)  # spot altnames or futures product ids
    lite: set[str] = field(default_factory=set)  # futures ticker_lite product ids
    heartbeat: bool = False

    def send(self, frame: Any) -> None:
        self.queue.put_nowait(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))


class FeedHub:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.connections: set[Connection] = set()
        self._connection_ids = itertools.count(8628615390848610000)
        self._channel_ids: dict[str, int] = {}

    # ------------------------------------------------------------------ publishing (loop thread)

    def render(self, altnames: Iterable[str]) -> Rendered:
        """The update frames for `altnames` and their futures, encoded once. Called under
        the simulator's lock right after the prices move, so each update shows the price
        it was made for."""
        spot, futures = {}, {}
        for name in dict.fromkeys(altnames):
            spot[name] = {kind: json.dumps(self._spot_ticker(kind, name, "update")) for kind in ("v2", "v1")}
            for product in self.sim.futures.products_of(name):
                if self.sim.futures.mark(product.symbol) is not None:
                    futures[product.symbol] = (
                        json.dumps(self._futures_ticker(product)),
                        json.dumps(self._futures_ticker_lite(product)),
                    )
        return Rendered(spot, futures)

    def publish(self, rendered: Rendered) -> None:
        """Queue rendered updates to the connections subscribed to them."""
        if self.sim.faults.feeds_paused:
            return
        for conn in list(self.connections):
            if conn.kind == "futures":
                for symbol, (ticker, lite) in rendered.futures.items():
                    if symbol in conn.tickers:
                        conn.send(ticker)
                    if symbol in conn.lite:
                        conn.send(lite)
                continue
            for name in rendered.spot.keys() & conn.tickers:
                conn.send(rendered.spot[name][conn.kind])

    def publish_status(self, status: str) -> None:
        for conn in list(self.connections):
            if conn.kind == "v2":
                conn.send(self._v2_status(status))
            elif conn.kind == "v1":
                conn.send(self._v1_status(status))

    def drop_all(self, code: int | None) -> int:
        """Abort every connection (or close it with `code`)."""
        return drop(self.connections, code)

    def send_malformed(self, n: int, kind: str) -> int:
        for conn in list(self.connections):
            for _ in range(n):
                conn.send(MALFORMED[kind](conn.kind))
        return len(self.connections)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.ws.close(code=1001) for c in list(self.connections)), return_exceptions=True)

    # ------------------------------------------------------------------ frames

    def _spot_ticker(self, kind: str, altname: str, type_: str) -> Any:
        stats = self.sim.market.stats(altname)
        assert stats is not None
        if kind == "v2":
            return {"channel": "ticker", "type": type_, "data": [v2_ticker(stats, self.sim.market.seed)]}
        return [self._channel_id(altname), v1_ticker(stats, self.sim.market.seed), "ticker", stats.pair.wsname]

    def _channel_id(self, altname: str) -> int:
        return self._channel_ids.setdefault(altname, 340 + len(self._channel_ids))

    def _v2_status(self, status: str) -> dict[str, Any]:
        return {
            "channel": "status",
            "type": "update",
            "data": [{"version": V2_VERSION, "system": status, "api_version": "v2",
                      "connection_id": next(self._connection_ids)}],
        }

    def _v1_status(self, status: str) -> dict[str, Any]:
        return {"connectionID": next(self._connection_ids), "event": "systemStatus", "status": status,
                "version": V1_VERSION}

    def _futures_ticker(self, product: Product) -> dict[str, Any]:
        now = self.sim.clock()
        mark = self.sim.futures.mark(product.symbol) or Decimal(0)
        stats = self.sim.market.stats(product.underlying)
        open_ = stats.open if stats else mark
        bid, ask = stats.quoted if stats is not None and stats.quoted is not None else (
            mark - product.tick_size, mark + product.tick_size)
        return {
            "time": int(now * 1000),
            "product_id": product.symbol,
            "funding_rate": 0.0,
            "funding_rate_prediction": 0.0,
            "relative_funding_rate": 0.0,
            "relative_funding_rate_prediction": 0.0,
            "next_funding_rate_time": (int(now) // 3600 + 1) * 3600 * 1000,
            "leverage": "50x",
            "premium": 0.0,
            "feed": "ticker",
            "bid": float(bid),
            "ask": float(ask),
            "bid_size": 1.0,
            "ask_size": 1.0,
            "volume": float(stats.volume) if stats else 0.0,
            "dtm": 0,
            "index": float(mark),
            "last": float(mark),
            "change": float((mark - open_) / open_ * 100) if open_ else 0.0,
            "suspended": False,
            "tag": "perpetual",
            "pair": product.pair,
            "openInterest": 0.0,
            "markPrice": float(mark),
            "maturityTime": 0,
            "post_only": False,
            "volumeQuote": float(stats.cost) if stats else 0.0,
            "open": float(open_),
            "high": float(stats.high) if stats else float(mark),
            "low": float(stats.low) if stats else float(mark),
        }

    def _futures_ticker_lite(self, product: Product) -> dict[str, Any]:
        full = self._futures_ticker(product)
        keys = ("product_id", "bid", "ask", "change", "premium", "volume", "tag", "pair", "dtm", "maturityTime",
                "volumeQuote")
        return {"feed": "ticker_lite", **{k: full[k] for k in keys}}

    # ------------------------------------------------------------------ connections

    async def handle(self, request: web.Request, kind: str) -> web.StreamResponse:
        ws = await accept(request)
        if ws is None:
            return gone()
        conn = Connection(kind, ws, request)
        self.connections.add(conn)
        status = self.sim.spot_api.status
        if kind == "v2":
            conn.send(self._v2_status(status))
        elif kind == "v1":
            conn.send(self._v1_status(status))
        else:
            conn.send({"event": "info", "version": 1})
        handler = {"v2": self._on_v2, "v1": self._on_v1, "futures": self._on_futures}[kind]

        def on_text(data: str) -> None:
            with self.sim.lock:
                handler(conn, data)

        return await serve(conn, self.connections, on_text, (self._sender(conn), self._heartbeats(conn)))

    async def _sender(self, conn: Connection) -> None:
        try:
            while True:
                frame = await conn.queue.get()
                if isinstance(frame, bytes):
                    await conn.ws.send_bytes(frame)
                else:
                    await conn.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; the receive loop ends the connection

    async def _heartbeats(self, conn: Connection) -> None:
        while True:
            await asyncio.sleep(self.sim.config.heartbeat_interval)
            faults = self.sim.faults
            if not conn.heartbeat or faults.heartbeats_stopped or faults.feeds_paused:
                continue
            if conn.kind == "v2":
                conn.send({"channel": "heartbeat"})
            elif conn.kind == "v1":
                conn.send({"event": "heartbeat"})
            else:
                conn.send({"feed": "heartbeat", "time": int(self.sim.clock() * 1000)})

    # ------------------------------------------------------------------ v2

    def _on_v2(self, conn: Connection, data: str) -> None:
        time_in = rfc3339(self.sim.clock())
        try:
            message = json.loads(data)
            method = message["method"]
        except (ValueError, KeyError, TypeError):
            conn.send({"error": "Malformed request", "success": False, "time_in": time_in, "time_out": time_in})
            return
        req_id = message.get("req_id")

        def reply(body: dict[str, Any]) -> None:
            body.update({"time_in": time_in, "time_out": rfc3339(self.sim.clock())})
            if req_id is not None:
                body["req_id"] = req_id
            conn.send(body)

        if method == "ping":
            reply({"method": "pong"})
            return
        if method not in ("subscribe", "unsubscribe"):
            reply({"error": f"Method not found: {method}", "method": method, "success": False})
            return
        params = message.get("params") or {}
        channel = params.get("channel")
        if channel in ("heartbeat", "status"):
            conn.heartbeat = conn.heartbeat or channel == "heartbeat"
            reply({"method": method, "result": {"channel": channel}, "success": True})
            return
        if channel != "ticker":
            error = "Channel not served by the simulator" if channel in UNSERVED_V2 else "Subscription name invalid"
            if channel in ("executions", "balances"):  # served on the private endpoint, /auth/v2
                error = f"Private channel {channel}: subscribe on the authenticated endpoint"
            reply({"error": error, "method": method, "success": False})
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            reply({"error": "Missing field: symbol", "method": method, "success": False})
            return
        for symbol in symbols:
            self._v2_symbol(conn, method, str(symbol), params, reply)

    def _v2_symbol(self, conn: Connection, method: str, symbol: str, params: dict[str, Any], reply: Callable) -> None:
        pair = self.sim.pairs.get(symbol)
        if pair is None or pair.v2_symbol.upper() != symbol.upper() or self.sim.market.stats(pair.altname) is None:
            reply({"error": f"Currency pair not supported {symbol}", "method": method, "success": False,
                   "symbol": symbol})
            return
        subscribed = pair.altname in conn.tickers
        if method == "unsubscribe":
            if not subscribed:
                reply({"error": "Subscription Not Found", "method": method, "success": False, "symbol": symbol})
                return
            conn.tickers.discard(pair.altname)
            reply({"method": method, "result": {"channel": "ticker", "symbol": pair.v2_symbol}, "success": True})
            return
        if subscribed:
            reply({"error": "Already subscribed", "method": method, "success": False, "symbol": symbol})
            return
        snapshot = params.get("snapshot", True) is not False
        result = {
            "channel": "ticker",
            "event_trigger": params.get("event_trigger", "trades"),
            "snapshot": snapshot,
            "symbol": pair.v2_symbol,
        }
        reply({"method": method, "result": result, "success": True})
        conn.tickers.add(pair.altname)
        conn.heartbeat = True
        if snapshot:
            conn.send(self._spot_ticker("v2", pair.altname, "snapshot"))

    # ------------------------------------------------------------------ v1

    def _on_v1(self, conn: Connection, data: str) -> None:
        try:
            message = json.loads(data)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            conn.send({"errorMessage": "Malformed request", "event": "error"})
            return
        reqid = message.get("reqid")
        extra = {} if reqid is None else {"reqid": reqid}
        if event == "ping":
            conn.send({"event": "pong", **extra})
            return
        if event not in ("subscribe", "unsubscribe"):
            conn.send({"errorMessage": f"Unsupported event {event}", "event": "error", **extra})
            return
        subscription = message.get("subscription") or {}
        name = subscription.get("name")
        pairs = message.get("pair")
        if name != "ticker" or not isinstance(pairs, list) or not pairs:
            if name == "ticker":
                error = "Pair field must be an array"
            elif name in UNSERVED_V1:
                error = "Subscription not served by the simulator"
            else:
                error = "Subscription name invalid"
            conn.send({"errorMessage": error, "event": "subscriptionStatus", "status": "error",
                       "subscription": subscription, **extra})
            return
        for raw in pairs:
            self._v1_pair(conn, event, str(raw), subscription, extra)

    def _v1_pair(self, conn: Connection, event: str, name: str, subscription: dict, extra: dict) -> None:
        base = {"event": "subscriptionStatus", "pair": name, "subscription": subscription, **extra}
        if "/" not in name:
            conn.send({**base, "errorMessage": f"Currency pair not in ISO 4217-A3 format {name}", "status": "error"})
            return
        pair = self.sim.pairs.get(name)
        if pair is None or pair.wsname.upper() != name.upper() or self.sim.market.stats(pair.altname) is None:
            conn.send({**base, "errorMessage": f"Currency pair not supported {name}", "status": "error"})
            return
        base["pair"] = pair.wsname
        subscribed = pair.altname in conn.tickers
        if event == "unsubscribe":
            if not subscribed:
                conn.send({**base, "errorMessage": "Subscription Not Found", "status": "error"})
                return
            conn.tickers.discard(pair.altname)
            conn.send({"channelID": self._channel_id(pair.altname), "channelName": "ticker", **base,
                       "status": "unsubscribed"})
            return
        if subscribed:
            conn.send({**base, "errorMessage": "Already subscribed", "status": "error"})
            return
        conn.tickers.add(pair.altname)
        conn.heartbeat = True
        conn.send({"channelID": self._channel_id(pair.altname), "channelName": "ticker", **base,
                   "status": "subscribed"})
        conn.send(self._spot_ticker("v1", pair.altname, "snapshot"))

    # ------------------------------------------------------------------ futures

    def _on_futures(self, conn: Connection, data: str) -> None:
        try:
            message = json.loads(data)
            event, feed = message["event"], message["feed"]
        except (ValueError, KeyError, TypeError):
            conn.send({"event": "error", "message": "Json Error"})
            return
        if event not in ("subscribe", "unsubscribe") or feed not in ("ticker", "ticker_lite", "heartbeat"):
            conn.send({"event": "error", "message": "Invalid event or feed"})
            return
        if feed == "heartbeat":
            conn.heartbeat = event == "subscribe"
            conn.send({"event": f"{event}d", "feed": "heartbeat"})
            return
        wanted = [str(p) for p in message.get("product_ids") or []]
        known = [p.upper() for p in wanted if self.sim.futures.product(p) is not None]
        unknown = [p for p in wanted if self.sim.futures.product(p) is None]
        if unknown or not wanted:
            conn.send({"event": f"{event}d_failed", "feed": feed, "product_ids": unknown or wanted})
        if not known:
            return
        target = conn.tickers if feed == "ticker" else conn.lite
        conn.send({"event": f"{event}d", "feed": feed, "product_ids": known})
        for symbol in known:
            if event == "unsubscribe":
                target.discard(symbol)
                continue
            target.add(symbol)
            product = self.sim.futures.products[symbol]
            if self.sim.futures.mark(symbol) is not None:
                conn.send(self._futures_ticker(product) if feed == "ticker" else self._futures_ticker_lite(product))
