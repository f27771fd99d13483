"""The HTTP routes of the service's visibility: `/readyz`, `/api/status`, `/api/traces/{id}`,
the status page `/` and `/trace/{id}` (see `status_page`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rules_engine.service.status_page import render_live, render_page, render_trace

_NO_STORE = {"Cache-Control": "no-store"}


def add_status_routes(app: web.Application, status: Callable[[], dict[str, Any]],
                      readyz: Callable[[], dict[str, Any]], trace: Callable[[str], dict[str, Any] | None],
                      *, kill_enabled: bool, refresh: Callable[[], Awaitable[None]] | None = None) -> None:
    """`refresh()` is awaited before each status document is built (e.g. the cluster, read off the loop)."""
    async def ready(request: web.Request) -> web.Response:
        report = readyz()
        return web.json_response(report, status=200 if report["ready"] else 503, headers=_NO_STORE)

    async def api_status(request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        return web.json_response(status(), headers=_NO_STORE, dumps=_dumps)

    async def api_trace(request: web.Request) -> web.Response:
        found = trace(request.match_info["trace_id"])
        if found is None:
            return web.json_response({"ok": False, "error": "not_found",
                                      "reason": "no such trace (only the latest traces of each rule are kept)"},
                                     status=404)
        return web.json_response(found, headers=_NO_STORE, dumps=_dumps)

    async def page(request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        doc = status()
        body = render_live(doc) if request.query.get("part") == "live" else render_page(doc, kill_enabled=kill_enabled)
        return web.Response(text=body, content_type="text/html", headers=_NO_STORE)

    async def trace_page(request: web.Request) -> web.Response:
        found = trace(request.match_info["trace_id"])
        if found is None:
            return web.Response(text="no such trace (only the latest traces of each rule are kept)", status=404)
        return web.Response(text=render_trace(found), content_type="text/html", headers=_NO_STORE)

    app.router.add_get("/readyz", ready)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/traces/{trace_id}", api_trace)
    app.router.add_get("/", page)
    app.router.add_get("/trace/{trace_id}", trace_page)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
