"""A worker: one process hosting many key cells (one per API key), each the same `EngineService`
that `rules-engine run` starts, on the PostgreSQL store with `standby: true`.

    worker = Worker(load_worker_config(path), cli_live=True)
    port = await worker.start()      # HTTP bound; every cell started (holding its key or standing by)
    ...
    await worker.stop()              # every cell stops as `rules-engine run` does on SIGTERM

What the cells share: the event loop, ONE public market-data feed per market subscribed to the
union of their symbols (`service.shared_feed`: each tick goes to the cells that watch its
symbol), one HTTP server (`/healthz`, `/readyz` with each cell, `/metrics` with every cell's
series labelled `key`), and the process's signal handling (SIGTERM/SIGINT stop every cell,
SIGHUP reloads every cell's rules), and the gate their private feeds wait at while the worker
takes keys over (`service.quiet_gate`) and those feeds' budget of connection attempts, within
Kraken's per-IP limit (`service.connect_budget`). What they do not: each cell has its own lease, epoch,
store and audit chain, executor (credentials from its engine config's env names), nonce
sequence, rate-limit counters, kill switch file (its state dir) and delivery consumer.

Each cell takes its key's lease as a standby does (`service.ha`): a key another worker holds is
waited for, and taken over (fence, reconcile, act) when its lease lapses, so two workers with the
same cells split the keys between them and each stands in for the other. A cell whose key was
taken from it (exit code 3 of `rules-engine run`) or whose takeover was abandoned stands by
again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from rules_engine.execution import LiveModeRefused, check_live_allowed
from rules_engine.pgstore import ConnectionPool, StoreSettings
from rules_engine.secret_reader import SecretError
from rules_engine.service.app import EngineService
from rules_engine.service.backend import holder_name
from rules_engine.service.cell_shared import CellShared, RuleCache, register_secrets
from rules_engine.service.connect_budget import ConnectBudget
from rules_engine.service.delivery_hub import DeliveryHub
from rules_engine.service.http import HttpServer
from rules_engine.service.kraken_clock import SharedKrakenClock
from rules_engine.service.quiet_gate import QuietGate
from rules_engine.service.rule_watch import SharedSignatures
from rules_engine.service.shared_feed import SharedFeeds
from rules_engine.service.startup import StartupError
from rules_engine.service.worker_config import CellSpec, WorkerConfig
from rules_engine.service.worker_leases import WorkerLeases, WorkerStopping
from rules_engine.service.worker_status import WorkerStatus, add_worker_routes

log = logging.getLogger("rules_engine.worker")

RESTART_AFTER = 1.0
"""Seconds before a cell whose start failed (or whose key was taken) stands by again; doubled
after each failure in a row, up to MAX_RESTART_AFTER."""
MAX_RESTART_AFTER = 30.0
STARTS_AT_ONCE = 8
"""Cells starting at once (loading rules, opening the store, taking over); one waiting for its key
no longer counts."""
THREADS_PER_CELL = 3
"""Threads of the loop's default executor per cell: a standby cell waits for its lease in one."""


@dataclass
class Cell:
    """One key cell of the worker: its spec, its current engine, where it stands."""

    spec: CellSpec
    service: EngineService | None = None
    state: str = "starting"  # starting | standby (waiting for its key) | holding | failed | stopped
    problem: str | None = None
    takeovers: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def report(self) -> dict[str, Any]:
        service = self.service
        out: dict[str, Any] = {"key": self.spec.key, "state": self.state, "takeovers": self.takeovers}
        if self.problem is not None:
            out["problem"] = self.problem
        if self.state == "holding" and service is not None:
            out["readiness"] = service.visibility.readyz()
            out["store"] = service.backend
        return out


class Worker:
    """The cells of a worker config, one HTTP server, one shared feed (see the module)."""

    def __init__(self, config: WorkerConfig, *, cli_live: bool = False, host: str | None = None,
                 port: int | None = None, environ: Mapping[str, str] | None = None,
                 handle_signals: bool = False, cell_options: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.cli_live = cli_live
        self.host = host or config.host
        self.requested_port = config.port if port is None else port
        self.environ = environ
        self.handle_signals = handle_signals
        self.cell_options = dict(cell_options or {})  # EngineService options (tests: faster polls)
        first = config.cells[0].config
        self.feeds = SharedFeeds(first.endpoints, first.feed, options=self.cell_options.get("feed_options"))
        self.cells = {spec.key: Cell(spec) for spec in config.cells}
        self.port: int | None = None
        self._http: HttpServer | None = None
        self._stop_event = threading.Event()
        self._starting = asyncio.Semaphore(STARTS_AT_ONCE)
        self._stopping = False
        self._stopped = asyncio.Event()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_CellMetrics(self))
        self.status: WorkerStatus | None = None  # the status page, /api/status and /kill (service.worker_status)
        self.rules = RuleCache()  # each distinct rule set compiled once, shared by its cells
        self.kraken_clock = SharedKrakenClock()  # a takeover's Time call made once for every cell
        self.rule_signatures = SharedSignatures()  # the cells' rule watchers read each rule set once
        self.quiet = QuietGate(self.busy)  # the cells' private feeds connect once the takeovers are done
        self.connect_budget = ConnectBudget(config.private_connects)  # ... and within Kraken's per-IP limit
        self.http_environment: dict[Any, Any] = {}  # the environment's proxy settings per origin (every cell's)
        self._stores: dict[tuple[str, str | None], tuple[WorkerLeases, DeliveryHub, ConnectionPool]] = {}
        self._hub_tasks: list[asyncio.Task[None]] = []
        self._shared: dict[str, CellShared] = {}
        self._cells_gauge = Gauge("rules_engine_worker_cells", "The worker's key cells by state", ["state"],
                                  registry=self._registry)
        self._connects_gauge = Gauge("rules_engine_worker_private_connects", "The private feeds' connection attempts "
                                     "in the last 10 minutes (used), the budget, and the feeds waiting for it",
                                     ["what"], registry=self._registry)

    # ------------------------------------------------------------------ start / stop

    async def start(self) -> int:
        """Bind the HTTP server, start every cell (each holds its key or stands by); the port."""
        for spec in self.config.cells:  # refused up front, not retried cell by cell
            try:
                check_live_allowed(spec.config.mode, self.cli_live)
            except LiveModeRefused as exc:
                raise StartupError(f"cell {spec.key}: {exc}") from None
        self.status = WorkerStatus(self)  # reads the kill switch tokens (StartupError if a token file cannot be)
        loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=THREADS_PER_CELL * len(self.cells) + 8, thread_name_prefix="worker")
        loop.set_default_executor(self._executor)  # a standby cell's lease wait holds a thread
        self._http = HttpServer(self._app(), self.host, self.requested_port)
        try:
            self.port = await self._http.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}") from None
        if self.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_stop_signal, signum)
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        register_secrets((spec.config for spec in self.config.cells), self.environ)  # one redactor rebuild
        for cell in self.cells.values():
            self._shared[cell.spec.key] = self._shared_for(cell.spec)
        for cell in self.cells.values():
            cell.task = asyncio.ensure_future(self._run_cell(cell))
        log.info("worker started: %d cells, http=%s:%d", len(self.cells), self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop every cell (a holding one as on SIGTERM: in-flight actions finish, state saved,
        lease released), the feed and the HTTP server."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._stop_event.set()  # standing-by cells stop waiting (WorkerStopping)
        for leases, _, _ in self._stores.values():
            leases.stop_waiting()
        try:
            await asyncio.gather(*(self._stop_cell(cell) for cell in self.cells.values()), return_exceptions=True)
            for leases, hub, pool in self._stores.values():
                hub.stop()
                await asyncio.to_thread(leases.close)  # after the cells released their leases
                await asyncio.to_thread(pool.close)
            for task in self._hub_tasks:
                task.cancel()
            await asyncio.gather(*self._hub_tasks, return_exceptions=True)
            await self.feeds.stop()
            if self._http is not None:
                await self._http.stop()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self._stopped.set()
            log.info("worker stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _stop_cell(self, cell: Cell) -> None:
        if cell.service is not None:
            await cell.service.stop()
        if cell.task is not None:
            await asyncio.gather(cell.task, return_exceptions=True)
        cell.state = "stopped"

    # ------------------------------------------------------------------ cells

    def _shared_for(self, spec: CellSpec) -> CellShared:
        """The worker's parts a cell uses: the rule cache, the rule files' signatures, Kraken's
        clock, and its store's leases, delivery wake-ups and connection pool (one set per store; a
        cell whose store cannot be parsed reports it at its start)."""
        shared = CellShared(self.rules, kraken_clock=self.kraken_clock, rule_signatures=self.rule_signatures,
                            quiet=self.quiet, connect_budget=self.connect_budget)
        store = spec.config.store
        if store is None:
            return shared
        try:
            settings = StoreSettings.parse(store.url, key_id=store.key, password_env=store.password_env,
                                           environ=self.environ)
        except (ValueError, SecretError):
            return shared
        group = (settings.url, settings.password)
        if group not in self._stores:
            leases = WorkerLeases(settings, holder_name())
            leases.start()
            hub = DeliveryHub(settings)
            self._hub_tasks.append(asyncio.ensure_future(hub.run()))
            self._stores[group] = (leases, hub, ConnectionPool())
        leases, hub, pool = self._stores[group]
        return replace(shared, leases=leases, deliveries=hub, pool=pool)

    def _service(self, spec: CellSpec, waiting: asyncio.Event) -> EngineService:
        options = {k: v for k, v in self.cell_options.items() if k != "feed_options"}
        executor = dict(options.get("executor_options") or {})  # the cells' transports read the environment's
        executor["client_options"] = {"http_environment": self.http_environment,  # proxies once for all
                                      **(executor.get("client_options") or {})}
        options["executor_options"] = executor
        loop = asyncio.get_running_loop()

        def standby_sleep(seconds: float) -> None:
            """The cell's pause between lease checks (on its thread); raises once the worker stops."""
            if not waiting.is_set():
                loop.call_soon_threadsafe(waiting.set)
            if self._stop_event.wait(seconds):
                raise WorkerStopping("the worker is stopping")

        return EngineService(spec.config, list(spec.rules), cli_live=self.cli_live, state_dir=spec.state_dir,
                             environ=self.environ, shared_feeds=self.feeds, serve_http=False,
                             standby_sleep=standby_sleep, shared=self._shared.get(spec.key), **options)

    async def _start_cell(self, cell: Cell, service: EngineService, waiting: asyncio.Event) -> None:
        """`service.start()`, at most STARTS_AT_ONCE cells at a time until each holds its key or
        waits for it (standby), so that a worker with many cells stays responsive while it starts."""
        await self._starting.acquire()
        released = False

        def release(_: object = None) -> None:
            nonlocal released
            if not released:
                released = True
                self._starting.release()
                if cell.state == "starting" and waiting.is_set():
                    cell.state = "standby"

        watcher = asyncio.ensure_future(waiting.wait())
        watcher.add_done_callback(release)
        try:
            await service.start()
        finally:
            watcher.cancel()
            release()

    async def _run_cell(self, cell: Cell) -> None:
        """Start the cell's engine (standing by until its key is free); when its key is taken
        from it, or its start fails, stand by again."""
        delay = RESTART_AFTER
        while not self._stopping:
            waiting = asyncio.Event()
            service = self._service(cell.spec, waiting)
            cell.service, cell.state = service, "starting"
            try:
                await self._start_cell(cell, service, waiting)
            except WorkerStopping:
                return
            except Exception as exc:  # a refusal (StartupError) or a bug: never "starting" (and ready) in silence
                if self._stopping:
                    return
                if isinstance(exc, StartupError):
                    cell.state, cell.problem = "failed", str(exc)
                    log.error("cell %s: %s; standing by again in %.0f s", cell.spec.key, exc, delay)
                else:
                    cell.state, cell.problem = "failed", f"its start failed: {type(exc).__name__}: {exc}"
                    log.exception("cell %s: its start failed; standing by again in %.0f s", cell.spec.key, delay)
                await self._pause(delay)
                delay = min(MAX_RESTART_AFTER, delay * 2)
                continue
            cell.state, cell.problem = "holding", None
            cell.takeovers += 1
            delay = RESTART_AFTER
            await service.wait_stopped()
            if self._stopping:
                return
            if service.exit_code == 3:  # another worker took the key: stand by for it again
                log.warning("cell %s: the key was taken over by another engine; standing by again", cell.spec.key)
                cell.problem = "the key was taken over by another engine"
                continue
            cell.state, cell.problem = "failed", "the cell's engine stopped"
            log.error("cell %s stopped; starting it again in %.0f s", cell.spec.key, delay)
            await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped_or_stopping(), seconds)

    async def _stopped_or_stopping(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.1)

    def busy(self) -> bool:
        """A cell is starting or taking its key over, or has events or orders in hand
        (`service.quiet_gate`); one standing by for its key or failed is not."""
        for key, cell in self.cells.items():
            service = cell.service
            if cell.state in ("failed", "stopped"):
                continue
            if service is None:  # its task has not run yet
                return True
            if service.started_at is not None:
                if service.working():
                    return True
                continue
            leases = self._shared[key].leases if key in self._shared else None
            if leases is None or not leases.is_waiting(key):
                return True
        return False

    def holding(self) -> list[str]:
        """The keys this worker trades now."""
        return sorted(key for key, cell in self.cells.items() if cell.state == "holding")

    # ------------------------------------------------------------------ signals

    def _on_stop_signal(self, signum: int) -> None:
        log.info("%s received: stopping every cell", signal.Signals(signum).name)
        asyncio.ensure_future(self.stop())

    def _on_hup(self) -> None:
        log.info("SIGHUP received: reloading every cell's rules")
        for cell in self.cells.values():
            if cell.state == "holding" and cell.service is not None:
                asyncio.ensure_future(cell.service.reload("SIGHUP"))

    # ------------------------------------------------------------------ HTTP

    def readyz(self) -> dict[str, Any]:
        """Each cell's readiness. not_ready: the worker stops, or a cell failed or holds its key
        but is not ready; degraded: a holding cell is degraded; a standby cell is ready (it stands by)."""
        cells = [cell.report() for cell in self.cells.values()]
        statuses = [c["readiness"]["status"] for c in cells if "readiness" in c]
        if self._stopping or any(c["state"] == "failed" for c in cells) or "not_ready" in statuses:
            status = "not_ready"
        elif "degraded" in statuses:
            status = "degraded"
        else:
            status = "ready"
        return {"ready": status != "not_ready", "status": status, "holding": self.holding(), "cells": cells}

    def health(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for cell in self.cells.values():
            counts[cell.state] = counts.get(cell.state, 0) + 1
        return {"ok": not self._stopping, "cells": counts, "holding": self.holding(),
                "feeds": self.feeds.feeds.health(time.time())}

    def _app(self) -> web.Application:
        app = web.Application()

        async def healthz(request: web.Request) -> web.Response:
            report = self.health()
            return web.json_response(report, status=200 if report["ok"] else 503, headers={"Cache-Control": "no-store"})

        async def readyz(request: web.Request) -> web.Response:
            report = self.readyz()
            return web.json_response(report, status=200 if report["ready"] else 503,
                                     headers={"Cache-Control": "no-store"})

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=self.render_metrics(), headers={"Content-Type": "text/plain; version=0.0.4"})

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        if self.status is not None:
            add_worker_routes(app, self.status)
        return app

    def render_metrics(self) -> bytes:
        for state in ("starting", "standby", "holding", "failed", "stopped"):
            self._cells_gauge.labels(state).set(sum(1 for c in self.cells.values() if c.state == state))
        budget = self.connect_budget
        for what, value in (("used", budget.used()), ("budget", budget.attempts), ("waiting", budget.waiting)):
            self._connects_gauge.labels(what).set(value)
        return generate_latest(self._registry)

    def holding_services(self) -> Iterator[tuple[str, EngineService]]:
        for key, cell in self.cells.items():
            if cell.state == "holding" and cell.service is not None:
                yield key, cell.service


class _CellMetrics(Collector):
    """Every holding cell's metrics, each series with a `key` label."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for key, service in self._worker.holding_services():
            service.metrics.queue_depth.set(service._queue.qsize())
            for family in service.metrics.registry.collect():
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                into.samples.extend(Sample(s.name, {"key": key, **s.labels}, s.value, s.timestamp, s.exemplar)
                                    for s in family.samples)
        yield from merged.values()

