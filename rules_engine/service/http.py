"""The service's HTTP front: `/healthz`, `/metrics`, `/signals/{source}` and `/kill`, plus
the routes `extra_routes` adds (the status page, `/readyz`, `/api/status`: `status_routes`).

    GET /healthz   liveness: 200 while the engine runs (503 while it stops) with JSON: mode,
                   rules loaded, readiness, kill switch, each feed's connection and age of
                   its last tick, the event queue's depth
    GET /metrics   Prometheus text (the service's own registry)
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from rules_engine.service.connection_guard import ConnectionGuard
from rules_engine.service.killswitch import KillSwitchFile, add_kill_routes
from rules_engine.service.signals import SeenFn, SignalSourceConfig
from rules_engine.service.webhook import OnReject, OnSignal, add_signal_routes
from rules_engine.service.webhook_limits import WebhookLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpHandlers:
    """Everything the HTTP front needs from the service, and nothing more."""

    health: Callable[[], dict[str, Any]]
    metrics: Callable[[], bytes]
    metrics_content_type: str
    signal_sources: Mapping[str, SignalSourceConfig]
    on_signal: OnSignal
    on_signal_rejected: OnReject
    seen_signal: SeenFn
    clock: Callable[[], float]
    kill_switch: KillSwitchFile
    kill_token: str | None
    extra_routes: Callable[[web.Application], None] | None = None
    standing_by: Callable[[], str | None] | None = None  # a standby: why (its /kill answers warn)
    webhook_limits: WebhookLimits = field(default_factory=WebhookLimits)


def build_app(handlers: HttpHandlers) -> web.Application:
    """The aiohttp application of one engine service."""
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(request: web.Request) -> web.Response:
        report = handlers.health()
        return web.json_response(report, status=200 if report["ok"] else 503, headers={"Cache-Control": "no-store"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=handlers.metrics(), headers={"Content-Type": handlers.metrics_content_type})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    add_signal_routes(app, handlers.signal_sources, handlers.on_signal, handlers.on_signal_rejected,
                      handlers.seen_signal, clock=handlers.clock, limits=handlers.webhook_limits)
    if handlers.kill_token is not None:
        add_kill_routes(app, handlers.kill_switch, handlers.kill_token, standing_by=handlers.standing_by)
    else:
        async def kill_disabled(request: web.Request) -> web.Response:
            return web.json_response(
                {"ok": False, "error": "disabled",
                 "reason": "no admin token is configured (kill_switch.token_env / token_file); "
                           "use `rules-engine kill` or SIGUSR1 instead"},
                status=503)

        app.router.add_route("*", "/kill", kill_disabled)
        app.router.add_route("*", "/kill/clear", kill_disabled)
    if handlers.extra_routes is not None:
        handlers.extra_routes(app)
    return app


class HttpServer:
    """Serves `app` on host:port (port 0 picks a free one); `port` is the bound port.
    Connections are bounded by `limits` (count, time to send headers: `ConnectionGuard`);
    `on_refused(reason)` is told of each connection refused or cut."""

    def __init__(self, app: web.Application, host: str, port: int, limits: WebhookLimits | None = None,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self.guard = ConnectionGuard(limits or WebhookLimits(), on_refused)

    async def start(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
        except OSError:
            sock.close()
            raise
        self.app.middlewares.append(self.guard.middleware)
        # lingering_time: after refusing a body, read what the client still sends for at most 1 s
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0, lingering_time=1.0)
        await runner.setup()
        assert runner.server is not None  # made by setup()
        self.guard.install(runner.server)
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
