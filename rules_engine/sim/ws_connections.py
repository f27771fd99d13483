"""What the simulator's public feeds and its private `/auth/v2` endpoint do alike with their
WebSocket connections: read a client's text frames until it leaves, and drop them all (a fault)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, MutableSet
from typing import Any, Protocol

from aiohttp import WSMsgType, web


class Socketed(Protocol):
    ws: web.WebSocketResponse
    request: web.Request


async def accept(request: web.Request) -> web.WebSocketResponse | None:
    """The WebSocket handshake answered; None when the client left during it (a client killed
    as it connects): nothing to serve then, and nothing to report."""
    ws = web.WebSocketResponse(autoping=True)
    try:
        await ws.prepare(request)
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError: the transport is closing
        return None
    return ws


def gone() -> web.Response:
    """What a handler returns when `accept` gave None: aiohttp cannot send it either and lets
    the connection go without logging an error."""
    return web.Response(status=400, text="the client left during the WebSocket handshake")


async def serve(conn: Socketed, connections: MutableSet[Any], on_text: Callable[[str], None],
                tasks: Iterable[Coroutine[Any, Any, None]]) -> web.WebSocketResponse:
    """Hand each text frame of `conn` to `on_text` until the client leaves, with `tasks` (its
    sender, its heartbeats) running beside; then forget the connection and end them."""
    running = [asyncio.ensure_future(task) for task in tasks]
    try:
        async for msg in conn.ws:
            if msg.type == WSMsgType.TEXT:
                on_text(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        connections.discard(conn)
        for task in running:
            task.cancel()
    return conn.ws


def drop(connections: Iterable[Socketed], code: int | None) -> int:
    """Abort every connection (the client sees 1006), or close each with `code`; how many."""
    count = 0
    for conn in list(connections):
        count += 1
        if code is None:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        else:
            asyncio.ensure_future(conn.ws.close(code=code))
    return count
