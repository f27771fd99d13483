"""`rules-engine intake`: the signal fan-out's front door. Stateless: run any number of replicas
behind a load balancer, all on one PostgreSQL store.

    POST /signals/{provider}   verified exactly as the engine's webhook verifies a signal (the same
                               code: `webhook.add_signal_routes` and `signals.verify_signal`: size,
                               HMAC or passphrase, timestamp window, JSON limits, payload schema)
    GET  /healthz              200 while the store answers, else 503; counts since start

A verified signal is stored, in ONE transaction, with one delivery row per subscribed account
(`pgstore.fanout.store_signal`), committed, and only then answered:

    200 {"ok": true, "signal_id": "sig-42", "duplicate": false, "deliveries": 20}
    200 {"ok": true, "signal_id": "sig-42", "duplicate": true, "deliveries": 0}   # a retry: nothing new

The signal's id is the provider's (X-Signal-Id, else the payload's `id`), else a digest of the
body and its timestamp (the HMAC's `mac:` id; for a passphrase sender, of the payload and the time
it arrived, so each POST is a new signal, as the engine's webhook acts on each). Every id of a
signal is unique in the store (no time window), so a retry to any replica answers duplicate. A
failure to commit answers 500 ("retry with the same id"): a commit whose answer was lost is then
found as a duplicate. A payload with its own `account` field is refused (422 `reserved_field`):
that field carries each account's sizing to its rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import queue
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from rules_engine.core.events import Signal
from rules_engine.pgstore.connection import StoreSettings, connect, psycopg
from rules_engine.pgstore.fanout import StoredSignal, store_signal
from rules_engine.redact import register_secret
from rules_engine.rules import load_signal_schema
from rules_engine.service.http import HttpServer
from rules_engine.service.signals import Rejected, SignalSourceConfig
from rules_engine.service.subscriptions import ACCOUNT_FIELD, Provider, Subscriptions
from rules_engine.service.webhook import SignalRefused, add_signal_routes
from rules_engine.service.webhook_limits import WebhookLimits

log = logging.getLogger("rules_engine.intake")

POOL_SIZE = 8
"""Transactions in flight at once (one connection each)."""
IDLE_CHECK = 1.0
"""Seconds a pooled connection may sit idle before it is pinged ahead of its next transaction."""
UNQUEUED = "the signal was authenticated but could not be stored; retry with the same id"


class _Pool:
    """Up to `size` connections to the store, each used by one transaction at a time. A
    connection idle for more than `IDLE_CHECK` seconds is pinged first (a store restarted
    meanwhile then costs a reconnect, not a refused signal); one that failed is dropped."""

    def __init__(self, settings: StoreSettings, size: int) -> None:
        self.settings = settings
        self.slots = asyncio.Semaphore(size)
        self._idle: queue.SimpleQueue[tuple[Any, float]] = queue.SimpleQueue()

    def _take(self) -> Any:
        while True:
            try:
                conn, since = self._idle.get_nowait()
            except queue.Empty:
                return connect(self.settings)
            if time.monotonic() - since <= IDLE_CHECK:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()

    def run(self, work: Callable[[Any], Any]) -> Any:
        """On a worker thread: `work(conn)` on an idle connection (or a new one)."""
        conn = self._take()
        try:
            result = work(conn)
        except BaseException:
            conn.close()
            raise
        self._idle.put((conn, time.monotonic()))
        return result

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait()[0].close()
            except queue.Empty:
                return


class Intake:
    """One intake replica (see the module docstring)."""

    def __init__(self, subscriptions: Subscriptions, settings: StoreSettings, *, host: str = "127.0.0.1",
                 port: int = 8090, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                 limits: WebhookLimits | None = None, pool_size: int = POOL_SIZE, name: str = "intake") -> None:
        self.subscriptions = subscriptions
        self.settings = settings
        self.host = host
        self.requested_port = port
        self.clock = clock
        self.limits = limits or WebhookLimits()
        self.name = name
        self.sources = {p.name: _source(p, environ) for p in subscriptions.providers.values()}
        self.counts = {"accepted": 0, "duplicates": 0, "rejected": 0, "failed": 0, "deliveries": 0}
        self.port: int | None = None
        self._pool_size = pool_size
        self._pool: _Pool | None = None
        self._http: HttpServer | None = None
        self._checked: list[str] = []  # ids the current request's verification looked at

    async def start(self) -> int:
        """Check the store (its tables are created if missing) and listen; the bound port."""
        self._pool = _Pool(self.settings, self._pool_size)
        await asyncio.to_thread(self._pool.run, lambda conn: None)
        app = web.Application(client_max_size=1024 * 1024)
        add_signal_routes(app, self.sources, self._on_signal, self._on_reject, self._seen, clock=self.clock,
                          limits=self.limits, accepted_status=200, unqueued=UNQUEUED)
        app.router.add_get("/healthz", self._healthz)
        self._http = HttpServer(app, self.host, self.requested_port, self.limits)
        self.port = await self._http.start()
        return self.port

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()
        if self._pool is not None:
            self._pool.close()

    # ------------------------------------------------------------------ the webhook's hooks

    def _seen(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        """Remember the ids the verification looks at; the store decides whether they are new."""
        self._checked.append(signal_id)
        return False

    def _on_reject(self, source: str, rejected: Rejected, meta: Mapping[str, Any]) -> None:
        self._checked = []
        self.counts["failed" if rejected.status >= 500 else "rejected"] += 1
        log.info("signal refused: provider=%s status=%d code=%s reason=%s", source[:64], rejected.status,
                 rejected.code, rejected.reason)

    async def _on_signal(self, signal: Signal) -> dict[str, Any]:
        checked, self._checked = self._checked, []  # before any await: the request's own ids
        provider = self.subscriptions.providers[signal.source]
        if ACCOUNT_FIELD in signal.payload:
            raise SignalRefused(Rejected(422, "reserved_field", f"the payload may not hold {ACCOUNT_FIELD!r}: the "
                                         "intake adds each account's sizing under that name", signal.signal_id,
                                         authenticated=True))
        signal_id = signal.signal_id if checked else _arrival_id(signal)
        assert self._pool is not None
        async with self._pool.slots:
            stored: StoredSignal = await asyncio.to_thread(
                self._pool.run, lambda conn: store_signal(conn, provider.name, signal_id, checked, signal.payload,
                                                          provider.accounts, provider.max_age, self.name))
        self.counts["duplicates" if stored.duplicate else "accepted"] += 1
        self.counts["deliveries"] += stored.deliveries
        log.info("signal %s: provider=%s id=%s deliveries=%d", "duplicate" if stored.duplicate else "stored",
                 provider.name, stored.signal_id, stored.deliveries)
        return {"signal_id": stored.signal_id, "duplicate": stored.duplicate, "deliveries": stored.deliveries}

    async def _healthz(self, request: web.Request) -> web.Response:
        assert self._pool is not None
        try:
            await asyncio.to_thread(self._pool.run, lambda conn: conn.execute("SELECT 1").fetchone())
            ok, problem = True, None
        except Exception as exc:
            ok, problem = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        body = {"ok": ok, "problem": problem, "store": self.settings.shown.rsplit(" (key", 1)[0],
                "providers": {p.name: len(p.accounts) for p in self.subscriptions.providers.values()},
                "counts": dict(self.counts)}
        return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


def _source(provider: Provider, environ: Mapping[str, str] | None) -> SignalSourceConfig:
    """The provider's signal source with its secrets (registered for redaction)."""
    schema = load_signal_schema(provider.source.schema) if provider.source.schema else None
    source = SignalSourceConfig.from_settings(provider.source, schema, environ)
    for secret in (source.secret, source.passphrase):
        if secret:
            register_secret(secret)
    return source


def _arrival_id(signal: Signal) -> str:
    """The id of a passphrase signal without one: a digest of its payload and arrival time."""
    text = json.dumps(signal.payload, sort_keys=True, separators=(",", ":"), default=str) + f"@{signal.time!r}"
    return "body:" + hashlib.sha256(text.encode()).hexdigest()[:32]
