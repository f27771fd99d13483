"""Bound the connections of the HTTP server: how many, and how long one may take to send
its request headers, and how many one client address may hold.

aiohttp's server has no timeout for a request's headers: a client that trickles one header
byte at a time (slowloris) holds its connection for as long as it likes. The guard gives
every connection `header_timeout` seconds, from connecting or from the end of its previous
request, to have a request under way, and closes it otherwise. The body of a signal has its
own timeout in the webhook. A connection beyond `max_connections`, or beyond
`max_client_connections` from one address, is answered 503 and closed, so one address cannot
hold every slot (the kill switch's HTTP endpoint among them).

    guard = ConnectionGuard(limits, on_refused=lambda reason: ...)
    app.middlewares.append(guard.middleware)   # before the app is frozen
    await runner.setup(); guard.install(runner.server)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rules_engine.service.webhook_limits import WebhookLimits

_BUSY_BODY = b'{"ok": false, "error": "busy", "reason": "too many connections"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _Connection:
    __slots__ = ("transport", "client", "timer", "requests")

    def __init__(self, transport: asyncio.Transport, client: str) -> None:
        self.transport = transport
        self.client = client
        self.timer: asyncio.TimerHandle | None = None
        self.requests = 0  # in progress


class ConnectionGuard:
    def __init__(self, limits: WebhookLimits, on_refused: Callable[[str], None] | None = None) -> None:
        self.limits = limits
        self._on_refused = on_refused
        self._by_handler: dict[Any, _Connection] = {}
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._per_client: dict[str, int] = {}

    @property
    def open_connections(self) -> int:
        return len(self._by_handler)

    def install(self, server: web.Server) -> None:
        """Watch the connections `server` (an AppRunner's, after setup) makes and loses."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else "(unknown)"
            if len(self._by_handler) >= self.limits.max_connections:
                self._busy(transport, "max_connections")
                return
            if self._per_client.get(client, 0) >= self.limits.max_client_connections:
                self._busy(transport, "max_client_connections")
                return
            connection = _Connection(transport, client)
            self._by_handler[handler] = connection
            self._by_transport[transport] = connection
            self._per_client[client] = self._per_client.get(client, 0) + 1
            self._arm(connection)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            connection = self._by_handler.pop(handler, None)
            if connection is not None:
                self._by_transport.pop(connection.transport, None)
                left = self._per_client.pop(connection.client, 1) - 1
                if left > 0:
                    self._per_client[connection.client] = left
                if connection.timer is not None:
                    connection.timer.cancel()
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Mark the request's connection busy while the request is handled (headers are in)."""
        connection = self._by_transport.get(request.transport) if request.transport is not None else None
        if connection is None:
            return await handler(request)
        connection.requests += 1
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        try:
            return await handler(request)
        finally:
            connection.requests -= 1
            if connection.requests == 0:
                self._arm(connection)

    def _busy(self, transport: asyncio.Transport, reason: str) -> None:
        self._refused(reason)
        transport.pause_reading()  # nothing it sends is read, let alone handled
        transport.write(_BUSY)
        # closed once aiohttp has started the connection's task (closing it here, before, makes
        # that task fail with an error logged for every refused connection)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, transport.close)

    def _arm(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        connection.timer = loop.call_later(self.limits.header_timeout, self._expire, connection)

    def _expire(self, connection: _Connection) -> None:
        connection.timer = None
        if connection.requests == 0 and not connection.transport.is_closing():
            self._refused("header_timeout")
            connection.transport.abort()

    def _refused(self, reason: str) -> None:
        if self._on_refused is not None:
            self._on_refused(reason)
