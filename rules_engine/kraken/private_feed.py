"""Kraken's private WebSocket v2 for the engine: the `executions` and `balances` channels.

`PrivateFeed` gets a token from REST `GetWebSocketsToken` (through the live executor's
signed client, so nonces stay in one sequence), connects to `KrakenEndpoints.ws_auth_v2`,
subscribes to `executions` (the open orders as a snapshot, then every new order, trade,
fill, cancel, expiry and amend) and `balances` (a snapshot, then every change), and turns
what arrives into the core's events: an `OrderUpdate` per execution entry and a
`BalanceUpdate` per balances message. The engine so learns of fills, cancels and expiries
as they happen and keeps balances current.

The feed only adds information: orders are placed and cancelled over REST exactly as before
(at-most-once placement is unchanged), and the REST reads (open orders and balances every
`account_every`, the order lookup of an unresolved decision at start-up) stay as the fallback
when the feed is down and the crash-recovery path. A dropped connection is retried with
exponential backoff and a fresh token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from rules_engine.core.events import BalanceUpdate, Event, OrderUpdate
from rules_engine.pairs import PairRegistry, default_registry

log = logging.getLogger(__name__)

CHANNELS = ("executions", "balances")
_PROXIES: dict[str, str | None] = {}


def ws_proxy(url: str) -> str | None:
    """The proxy websockets would use for `url` (its own rules: `no_proxy`, then `wss`/`socks`/
    `https` proxies from the environment), read once per URL in the process. websockets walks the
    whole environment at every connect; a worker's environment holds every cell's credentials, so
    at a takeover of 150 keys that walk was 15% of the worker's CPU."""
    if url not in _PROXIES:
        _PROXIES[url] = get_proxy(parse_uri(url))
    return _PROXIES[url]


def _time(value: Any, fallback: float) -> float:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return fallback


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def parse_private(message: Any, now: float, registry: PairRegistry | None = None) -> list[Event]:
    """The core's events in one private v2 message (anything else gives none)."""
    if not isinstance(message, dict):
        return []
    channel, data = message.get("channel"), message.get("data")
    if channel not in CHANNELS or not isinstance(data, list):
        return []
    if channel == "balances":
        amounts: dict[str, Decimal] = {}
        moment = now
        for entry in data:
            if not isinstance(entry, dict) or not isinstance(entry.get("asset"), str):
                continue
            balance = _decimal(entry.get("balance"))
            if balance is not None:
                amounts[entry["asset"]] = balance
                moment = _time(entry.get("timestamp"), moment)
        if not amounts:
            return []
        return [BalanceUpdate(amounts, moment, snapshot=message.get("type") == "snapshot")]
    registry = registry or default_registry()
    events: list[Event] = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("order_status"), str):
            continue
        symbol = entry.get("symbol")
        pair = registry.get(symbol) if isinstance(symbol, str) else None
        filled = _decimal(entry.get("cum_qty"))
        price = _decimal(entry.get("avg_price")) if filled else _decimal(entry.get("limit_price"))
        events.append(OrderUpdate(
            time=_time(entry.get("timestamp"), now),
            status=entry["order_status"],
            txid=entry.get("order_id") if isinstance(entry.get("order_id"), str) else None,
            cl_ord_id=entry.get("cl_ord_id") if isinstance(entry.get("cl_ord_id"), str) else None,
            pair=pair.altname if pair is not None else None,
            volume=_decimal(entry.get("order_qty")),
            filled=filled,
            price=price or None,
        ))
    return events


class PrivateFeed:
    """One connection to the private endpoint, kept up until `stop()`."""

    def __init__(
        self,
        url: str,
        get_token: Callable[[], str],
        on_events: Callable[[Iterable[Event]], None],
        *,
        clock: Callable[[], float],
        registry: PairRegistry | None = None,
        on_status: Callable[[bool], None] | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        open_timeout: float = 10.0,
        before_connect: Callable[[], Awaitable[object]] | None = None,
    ):
        self.url = url
        self.before_connect = before_connect  # e.g. a worker's budget of connection attempts
        self.get_token = get_token
        self.on_events = on_events
        self.on_status = on_status
        self.clock = clock
        self.registry = registry or default_registry()
        self.backoff_base, self.backoff_max, self.open_timeout = backoff_base, backoff_max, open_timeout
        self.up = False
        self.connections = 0
        self._stopping = asyncio.Event()

    def _status(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            log.info("private feed %s: %s", "up" if up else "down", self.url)
            if self.on_status is not None:
                self.on_status(up)

    async def run(self) -> None:
        try:
            await self._keep_connected()
        finally:
            self._status(False)

    async def _keep_connected(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._session()
                failures = 0
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake, InvalidURI, ValueError,
                    RuntimeError) as exc:
                log.warning("private feed: %s: %s", type(exc).__name__, exc)
                failures += 1
            except Exception:  # an unexpected failure must not end the feed: log it and retry
                log.exception("private feed failed")
                failures += 1
            self._status(False)
            if self._stopping.is_set():
                return
            delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** failures))
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    async def _session(self) -> None:
        if self.before_connect is not None:
            await self.before_connect()
        token = await asyncio.to_thread(self.get_token)
        async with connect(self.url, open_timeout=self.open_timeout, close_timeout=2.0, proxy=ws_proxy(self.url)) as ws:
            self.connections += 1
            for channel in CHANNELS:
                params: dict[str, Any] = {"channel": channel, "token": token}
                if channel == "executions":
                    params.update({"snap_orders": True, "snap_trades": False})
                await ws.send(json.dumps({"method": "subscribe", "params": params}))
            stop = asyncio.ensure_future(self._stopping.wait())
            receive: asyncio.Future[Any] | None = None
            try:
                while True:
                    receive = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if stop in done:
                        return
                    self._handle(receive.result())
            finally:
                stop.cancel()
                if receive is not None:
                    receive.cancel()
                    if receive.done() and not receive.cancelled():
                        receive.exception()  # retrieved: a close during shutdown is not an error

    def _handle(self, text: str | bytes) -> None:
        try:
            message = json.loads(text, parse_float=Decimal)
        except ValueError:
            log.warning("private feed: a frame that is not JSON")
            return
        if isinstance(message, dict) and message.get("method") == "subscribe":
            if message.get("success") is True and message.get("result", {}).get("channel") == "executions":
                self._status(True)
            elif message.get("success") is False:
                raise RuntimeError(f"subscription refused: {message.get('error')}")
            return
        events = parse_private(message, self.clock(), self.registry)
        if events:
            self.on_events(events)

    async def stop(self) -> None:
        self._stopping.set()
