"""The engine service: the pure core wired to its adapters on one asyncio loop.

    service = EngineService(config, ["rules/"], cli_live=False)
    port = await service.start()        # HTTP bound (port 0 picks one); feeds, timers running
    ...
    await service.stop()                # stop intake, finish in-flight actions, flush, close

Flow (one event queue, one consumer):

    TickerFeed (spot v2/v1, futures) -> Tick (+ the executor's paper fills) --+
    POST /signals/{source}           -> Signal -----------------------------+
    TimerScheduler                   -> TimerBeat --------------------------+--> queue --> consumer:
    kill switch (file, HTTP, SIGUSR1) -> KillSwitch ------------------------+     engine.handle(event)   (pure)
    deadline timer                   -> Clock at engine.next_deadline() ---+     trace -> audit log
    dispatch lane                    -> ActionResult, OrderUpdate, ... ----+     intents -> dispatch lane

The dispatch lane is one worker thread, so intents leave in the order they were decided.
For a decision that fires a rule it first commits, in one SQLite transaction, the core's
state changes (`Engine.snapshot_changes()`: the engine-wide part and the rows of the rules
that changed) and a `pending` row for each order (by client order id); then the Dispatcher
audits the decision (fsynced), marks it sent, sends it and records the outcome. A restart,
even after `kill -9`, loads that snapshot (no rule fires twice) and lets the Dispatcher
settle every unfinished order by its client order id before any feed starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules_engine import __version__
from rules_engine.audit import AuditError, AuditLog
from rules_engine.config import EngineConfig
from rules_engine.core import Engine, EngineState, RiskLimits, TraceRecord
from rules_engine.core.events import ActionResult, Clock, Event, FeedReset, KillSwitch, Signal, Tick
from rules_engine.core.model import RuleSet
from rules_engine.core.state import SnapshotChanges
from rules_engine.execution import ExecutionReport, LiveModeRefused, build_executor, check_live_allowed
from rules_engine.execution.dispatcher import ORDER_INTENTS, Dispatcher, client_id
from rules_engine.kraken.ws_feed import FeedStatus
from rules_engine.redact import register_secret
from rules_engine.rules import LoadResult, load_rules, load_signal_schema
from rules_engine.schedule import validate_timer
from rules_engine.secret_reader import SecretError, load_secret
from rules_engine.service.event_queue import EventQueue
from rules_engine.service.http import HttpServer, build_app
from rules_engine.service.killswitch import (
    DeadMansSwitchKeeper,
    KillState,
    install_signal_handler,
    kill_file,
)
from rules_engine.service.killswitch import (
    KillSwitch as KillSwitchFile,
)
from rules_engine.service.market_feeds import MarketFeeds
from rules_engine.service.metrics import ServiceMetrics
from rules_engine.needs import RuleNeeds, rule_needs
from rules_engine.service.rule_watch import RuleWatcher
from rules_engine.service.signals import Rejected, SignalSourceConfig
from rules_engine.service.timers import TimerScheduler
from rules_engine.service.trace_audit import audit_trace
from rules_engine.state import Decision, StateStore, StateStoreError, audit_log_path, database_path, ensure_state_dir

log = logging.getLogger("rules_engine.service")

MAX_REPORTED_ERRORS = 50


class StartupError(Exception):
    """The service refused to start; the message says why (exit code 1)."""


@dataclass
class _Reload:
    result: LoadResult
    needs: RuleNeeds
    reason: str
    done: asyncio.Future = field(repr=False)


_STOP = object()
Listener = Callable[[str, Any], None]
"""`listener(kind, payload)`: `trace` (TraceRecord), `report` ((intent, ExecutionReport)),
`reload` (dict), `signal_rejected` ((source, Rejected)), `kill_switch` (KillState)."""


class EngineService:
    """One running engine: config, rules, state dir, adapters and HTTP server."""

    def __init__(
        self,
        config: EngineConfig,
        rule_paths: Sequence[str | os.PathLike[str]],
        *,
        cli_live: bool = False,
        state_dir: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        reload_interval: float | None = 1.0,
        kill_poll_interval: float = 1.0,
        snapshot_interval: float = 1.0,
        drain_timeout: float = 20.0,
        handle_signals: bool = False,
        feed_options: Mapping[str, Any] | None = None,
        executor_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.rule_paths = [Path(p) for p in rule_paths]
        self.cli_live = cli_live
        self.state_dir = Path(state_dir) if state_dir is not None else Path(config.state_dir)
        self.host = host or config.host
        self.requested_port = config.port if port is None else port
        self.environ = os.environ if environ is None else environ
        self.clock = clock
        self.reload_interval = reload_interval
        self.kill_poll_interval = kill_poll_interval
        self.snapshot_interval = snapshot_interval
        self.drain_timeout = drain_timeout
        self.handle_signals = handle_signals
        self.feed_options = dict(feed_options or {})
        self.executor_options = dict(executor_options or {})
        self.mode = config.mode
        self.metrics = ServiceMetrics()
        self._latency = self.metrics.decision_latency
        self._handled: dict[tuple[type, str | None], int] = {}  # (event type, tick market): not yet counted
        self.signal_sources: dict[str, SignalSourceConfig] = {}
        self.kill_token: str | None = None
        self.kill_switch: KillSwitchFile | None = None
        self.engine: Engine | None = None
        self.audit: AuditLog | None = None
        self.store: StateStore | None = None
        self.executor: Any = None
        self.dispatcher: Dispatcher | None = None
        self.needs: RuleNeeds | None = None
        self.rule_hashes: dict[str, str] = {}
        self.port: int | None = None
        self.started_at: float | None = None
        self.reload_count = 0
        self._listeners: list[Listener] = []
        self._queue = EventQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lane: ThreadPoolExecutor | None = None
        self._jobs = 0
        self._busy = False
        self._idle = asyncio.Event()
        self._intake_open = False
        self._dirty = False
        self._unsaved: SnapshotChanges | None = None  # state changes taken, not yet committed
        self._unsaved_lock = threading.Lock()
        self._deadline_at: float | None = None
        self._deadline_handle: asyncio.TimerHandle | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._consumer: asyncio.Task | None = None
        self._feeds: MarketFeeds | None = None
        self._timers: TimerScheduler | None = None
        self._watcher: RuleWatcher | None = None
        self._keeper: DeadMansSwitchKeeper | None = None
        self._http: HttpServer | None = None
        self._signal_removers: list[Callable[[], None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: Listener) -> None:
        """Be told of every trace record, execution report, reload, rejected signal and
        kill switch change (on the loop; must not block). Used by the demo and tests."""
        self._listeners.append(listener)

    def _tell(self, kind: str, payload: Any) -> None:
        for listener in self._listeners:
            try:
                listener(kind, payload)
            except Exception:
                log.exception("service listener failed on %s", kind)

    # ------------------------------------------------------------------ start

    async def start(self) -> int:
        """Start everything; returns the bound HTTP port. Raises StartupError (nothing left
        running) when the rules, the config, the mode or the state dir do not allow a start."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._start()
        except BaseException:
            await self._teardown()
            raise
        return self.port  # type: ignore[return-value]

    async def _start(self) -> None:
        config = self.config
        try:
            check_live_allowed(config.mode, self.cli_live)
        except LiveModeRefused as exc:
            raise StartupError(str(exc)) from None
        result = await asyncio.to_thread(load_rules, self.rule_paths)
        if result.errors or result.ruleset is None:
            raise StartupError(_load_problems(result))
        for warning in result.warnings:
            log.warning("rules: %s", warning)
        needs = self._checked_needs(result.ruleset)
        self._load_secrets(needs)
        ensure_state_dir(self.state_dir)
        try:
            self.audit = AuditLog(audit_log_path(self.state_dir), mode=config.mode, clock=self.clock)
            self.store = StateStore(database_path(self.state_dir), clock=self.clock)
        except (AuditError, StateStoreError) as exc:
            raise StartupError(str(exc)) from None
        saved = self.store.load_engine_snapshot()
        try:
            state = EngineState.from_snapshot(saved) if saved is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            raise StartupError(f"the saved engine state in {self.store.path} cannot be used: {exc}") from None
        limits = RiskLimits(**_risk_fields(config))
        self.engine = Engine(result.ruleset, limits, state, balance_max_age=config.balance_cache)
        self._set_needs(needs)
        self.metrics.rules_loaded.set(len(result.ruleset.rules))
        self.audit.append("startup", data={
            "version": __version__, "pid": os.getpid(), "mode": config.mode, "cli_live": self.cli_live,
            "config": config.source, "state_dir": str(self.state_dir), "rule_files": _file_hashes(result.ruleset),
            "rules": len(result.ruleset.rules), "restored_snapshot": saved is not None,
            "warnings": [str(w) for w in result.warnings[:MAX_REPORTED_ERRORS]],
        }, sync=True)
        try:
            self.executor = build_executor(config, cli_live=self.cli_live, store=self.store, environ=self.environ,
                                           **self.executor_options)
        except LiveModeRefused as exc:
            raise StartupError(str(exc)) from None
        except (ValueError, OSError) as exc:
            raise StartupError(f"cannot set up the {config.mode} executor: {exc}") from None
        self.dispatcher = Dispatcher(self.executor, self.store, self.audit, mode=config.mode,
                                     rule_hashes=self.rule_hashes, clock=self.clock)
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rules-engine-dispatch")
        self._process(self.engine.handle(Clock(self.clock())), None)  # the load trace
        for report in await asyncio.to_thread(self.dispatcher.recover):
            self._tell("report", (None, report))
            for event in (report.result, *report.events):
                self._process(self.engine.handle(event), None)
        self.kill_switch = KillSwitchFile(kill_file(self.state_dir), on_change=self._on_kill_change, clock=self.clock)
        initial = self.kill_switch.state
        if initial.engaged:
            log.warning("kill switch is engaged: %s", initial.describe())
        self._process(self.engine.handle(KillSwitch(initial.engaged, self.clock(), False,
                                                    initial.reason or "state at start-up")), None)
        self.metrics.kill_switch.set(1 if initial.engaged else 0)
        self._http = HttpServer(build_app(self), self.host, self.requested_port)
        try:
            self.port = await self._http.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}") from None
        self._intake_open = True
        self._consumer = asyncio.ensure_future(self._consume())
        self._feeds = MarketFeeds(config.endpoints, config.feed, self._on_tick, self._on_feed_status,
                                  clock=self.clock, options=self.feed_options)
        await self._feeds.apply(needs)
        self._timers = TimerScheduler(needs.timers, self._put, clock=self.clock, on_missed=self._on_timer_missed)
        self._spawn(self._timers.run())
        self._spawn(self.kill_switch.watch(self.kill_poll_interval))
        self._spawn(self._housekeeping())
        if self.reload_interval:
            self._watcher = RuleWatcher(self.rule_paths, lambda: self.reload("rule files changed"),
                                        self.reload_interval)
            self._spawn(self._watcher.run())
        self._start_dead_mans_switch()
        if self.handle_signals:
            self._install_signal_handlers()
        self.started_at = self.clock()
        log.info("engine started: mode=%s rules=%d http=%s:%d state_dir=%s", config.mode,
                 len(result.ruleset.rules), self.host, self.port, self.state_dir)

    def _checked_needs(self, ruleset: RuleSet) -> RuleNeeds:
        needs = rule_needs(ruleset)
        problems = []
        for rule_id, index, trigger in needs.timers:
            try:
                validate_timer(trigger)
            except ValueError as exc:
                problems.append(f"rule {rule_id} trigger {index}: {exc}")
        if problems:
            raise StartupError("invalid timers:\n  " + "\n  ".join(problems))
        return needs

    def _load_secrets(self, needs: RuleNeeds) -> None:
        sources = {}
        for name, settings in self.config.signals.items():
            try:
                schema = load_signal_schema(settings.schema) if settings.schema else None
                source = SignalSourceConfig.from_settings(settings, schema, self.environ)
            except (SecretError, LookupError, ValueError) as exc:
                raise StartupError(f"signal source {name!r}: {exc}") from None
            for secret in (source.secret, source.passphrase):
                if secret:
                    register_secret(secret)
            sources[name] = source
        self.signal_sources.clear()
        self.signal_sources.update(sources)
        for missing in sorted(needs.signal_sources - sources.keys()):
            log.warning("rules listen to signal source %r, which the engine config does not declare: "
                        "POST /signals/%s will be refused", missing, missing)
        config = self.config
        if config.kill_token_file or config.kill_token_env:
            try:
                token = load_secret(None if config.kill_token_file else config.kill_token_env,
                                    config.kill_token_file, self.environ)
            except SecretError as exc:
                if config.kill_token_file:
                    raise StartupError(f"kill switch token: {exc}") from None
                log.info("no admin token (%s); the /kill endpoint is disabled", exc)
                return
            register_secret(token)
            if len(token) < 16:
                raise StartupError("the kill switch admin token must be at least 16 characters")
            self.kill_token = token

    def _set_needs(self, needs: RuleNeeds) -> None:
        self.needs = needs
        self.rule_hashes.clear()  # in place: the Dispatcher holds this mapping
        self.rule_hashes.update(needs.rule_hashes)

    def _start_dead_mans_switch(self) -> None:
        """Live only: keep CancelAllOrdersAfter armed on every account the executor trades."""
        config = self.config
        inner = getattr(self.executor, "inner", self.executor)
        clients = [c for c in (getattr(inner, "spot", None), getattr(inner, "futures", None)) if c is not None]
        if config.mode != "live" or not config.dead_man_enabled or not clients:
            return

        def refresh(timeout: int) -> None:
            for client in clients:
                client.cancel_all_orders_after(timeout)

        def on_failure(exc: BaseException, failures: int) -> None:
            self._audit("error", data={"where": "dead_man_switch", "failures": failures,
                                       "error": f"{type(exc).__name__}: {exc}"})

        try:
            self._keeper = DeadMansSwitchKeeper(lambda timeout: asyncio.to_thread(refresh, int(timeout)),
                                                config.dead_man_interval, config.dead_man_timeout,
                                                retry_interval=min(5.0, config.dead_man_interval),
                                                on_failure=on_failure)
        except ValueError as exc:
            raise StartupError(f"dead_man_switch: {exc}") from None
        self._spawn(self._keeper.run())

    def _install_signal_handlers(self) -> None:
        loop = self._loop
        assert loop is not None and self.kill_switch is not None
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
            self._signal_removers.append(lambda s=signum: loop.remove_signal_handler(s))
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        self._signal_removers.append(lambda: loop.remove_signal_handler(signal.SIGHUP))
        self._signal_removers.append(
            install_signal_handler(loop, self.kill_switch, cancel_all=self.config.kill_cancel_open_orders))

    def _on_stop_signal(self, signum: int) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self._spawn(self.stop())

    def _on_hup(self) -> None:
        log.info("SIGHUP received: reloading rules")
        self._spawn(self.reload("SIGHUP"))

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("service task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ intake

    def _put(self, item: Any) -> None:
        if self._idle.is_set():
            self._idle.clear()
        self._queue.put_nowait((item, time.perf_counter()))

    def inject(self, event: Event) -> None:
        """Queue an event as if an adapter had produced it (tests, tools)."""
        self._put(event)

    def _on_tick(self, tick: Tick) -> None:
        if not self._intake_open:
            return
        self._put(tick)
        for event in self.dispatcher.observe(tick):  # type: ignore[union-attr]
            self._put(event)

    def _on_feed_status(self, market: str, status: FeedStatus) -> None:
        kind = status.kind
        feed = self._feeds.feeds.get(market) if self._feeds is not None else None
        if kind == "connected":
            self.metrics.feed_connected.labels(market).set(1)
            if feed is not None and feed.stats.connects > 1:
                self.metrics.reconnects.labels(market).inc()
                if self._intake_open:
                    self._put(FeedReset(market, status.time))
        elif kind in ("disconnected", "silent"):
            self.metrics.feed_connected.labels(market).set(0)
        elif kind == "rejected":
            self._audit("error", data={"where": f"{market} feed", "symbol": status.symbol,
                                       "error": f"Kraken refused the subscription: {status.detail}"})

    def on_signal(self, signal_: Signal) -> None:
        """The webhook's hand-off: queue the signal (cannot fail) and audit its arrival."""
        self.metrics.signals.labels(signal_.source).inc()
        self._audit("signal", data={"source": signal_.source, "signal_id": signal_.signal_id,
                                    "payload": dict(signal_.payload)})
        self._put(signal_)

    def on_signal_rejected(self, source: str, rejected: Rejected, meta: Mapping[str, Any]) -> None:
        known = source if source in self.signal_sources else "(unknown)"
        self.metrics.signals_rejected.labels(known, rejected.code).inc()
        self._audit("signal_rejected", data={"source": source[:64], "status": rejected.status,
                                             "code": rejected.code, "reason": rejected.reason,
                                             "signal_id": rejected.signal_id, **dict(meta)})
        self._tell("signal_rejected", (source, rejected))

    def seen_signal(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        assert self.store is not None
        return self.store.seen_signal(source, signal_id, now, ttl)

    def _on_kill_change(self, state: KillState) -> None:
        self.metrics.kill_switch.set(1 if state.engaged else 0)
        self._audit("kill_switch", data=state.to_json())
        log.warning("kill switch %s", state.describe())
        self._tell("kill_switch", state)
        # `kill_switch.cancel_open_orders` in the config applies however the switch was engaged
        # (file, HTTP, SIGUSR1, `rules-engine kill`); a request may also ask for it on its own.
        cancel_all = state.engaged and (state.cancel_all or self.config.kill_cancel_open_orders)
        self._put(KillSwitch(state.engaged, self.clock(), cancel_all, state.reason or state.source))

    def _on_timer_missed(self, rule_id: str, index: int, slot: float, now: float) -> None:
        self._audit("dropped", rule_id=rule_id, data={"reason": "timer slot missed (engine stalled or clock jumped)",
                                                      "trigger": index, "slot": slot, "now": now})

    # ------------------------------------------------------------------ the consumer

    async def _consume(self) -> None:
        queue = self._queue
        while True:
            item, received = await queue.get()
            self._busy = True
            try:
                while True:
                    if item is _STOP:
                        return
                    self._handle_item(item, received)
                    if queue.empty():
                        break
                    item, received = queue.get_nowait()
            finally:
                self._count_handled()
                self._busy = False
                self._check_idle()

    def _count_handled(self) -> None:
        """Add the events handled since the last call to the `events` and `ticks` counters
        (once per burst the consumer drains, not once per event)."""
        metrics = self.metrics
        for (kind, market), count in self._handled.items():
            metrics.events.labels(kind.__name__).inc(count)
            if market is not None:
                metrics.ticks.labels(market).inc(count)
        self._handled.clear()

    def _handle_item(self, item: Any, received: float) -> None:
        engine = self.engine
        assert engine is not None
        if isinstance(item, _Reload):
            self._apply_reload(item)
            return
        try:
            decision = engine.handle(item)
        except Exception as exc:
            self.metrics.errors.labels("engine").inc()
            log.exception("engine failed on %s", type(item).__name__)
            self._audit("error", data={"where": "engine", "event": type(item).__name__, "error": repr(exc)})
            return
        self._latency.observe(time.perf_counter() - received)
        kind = type(item)
        key = (kind, item.market if kind is Tick else None)
        handled = self._handled
        handled[key] = handled.get(key, 0) + 1
        if decision.trace or decision.intents:
            self._process(decision, received)
        else:
            self._dirty = True
            if self._deadline_at is not None or self.engine.next_deadline() is not None:  # type: ignore[union-attr]
                self._arm_deadline()

    def _process(self, decision: Any, received: float | None) -> None:
        """Audit the trace; persist and dispatch the intents; re-arm the deadline timer."""
        fired = False
        if decision.trace:
            fired = self._record_trace(decision.trace)
        if decision.intents or fired:
            self._submit(decision.intents, True, received)
        else:
            self._dirty = True
        self._arm_deadline()

    def _record_trace(self, trace: Sequence[TraceRecord]) -> bool:
        fired = False
        metrics = self.metrics
        for record in trace:
            kind = record.kind
            if kind == "decision" and "fire_seq" in record.detail:
                fired = True
                metrics.fires.labels(record.rule_id).inc()
            elif kind == "guard":
                metrics.evaluations.inc()
            elif kind == "risk":
                metrics.risk_blocks.labels(str(record.detail.get("limit"))).inc()
            elif kind == "blocked":
                metrics.blocked.inc()
            elif kind == "error":
                metrics.errors.labels("rule").inc()
        if self.audit is not None:
            try:
                audit_trace(self.audit, trace, self.rule_hashes)
            except AuditError:
                log.exception("audit log write failed")
                self.metrics.errors.labels("audit").inc()
        if self._listeners:
            for record in trace:
                self._tell("trace", record)
        return fired

    # ------------------------------------------------------------------ dispatch lane

    def _submit(self, intents: Sequence[Any], persist: bool, received: float | None) -> None:
        assert self._lane is not None and self._loop is not None
        self._jobs += 1
        self._idle.clear()
        if persist:
            self._dirty = False
            self._take_changes()
        future = self._lane.submit(self._run_job, tuple(intents), persist, received)
        future.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._job_done, f))  # type: ignore

    def _take_changes(self) -> None:
        """On the loop: add the core's state changes since the last call to those not yet saved."""
        changes = self.engine.snapshot_changes()  # type: ignore[union-attr]
        with self._unsaved_lock:
            self._unsaved = changes if self._unsaved is None else self._unsaved.then(changes)

    def _commit(self, store: StateStore, intents: Sequence[Any] = ()) -> dict[str, Decision]:
        """One transaction: a `pending` row for each order intent (returned by client order
        id) and every state change taken so far. If it fails, the changes stay unsaved
        (under any taken since) for the next commit.

        The commit is durable unless every intent is an order: each of those is then marked
        sent, in a durable commit that carries this one to disk, before it leaves (see
        `StateStore.transaction`), so a decision is never on disk later than its order
        leaves, and the fsync on the way from tick to order is paid once, not twice."""
        with self._unsaved_lock:
            changes, self._unsaved = self._unsaved, None
        rows: dict[str, Decision] = {}
        durable = not intents or not all(isinstance(intent, ORDER_INTENTS) for intent in intents)
        try:
            with store.transaction(durable=durable):
                for intent in intents:
                    if isinstance(intent, ORDER_INTENTS):  # the same row the Dispatcher records
                        cl_ord_id = client_id(intent)
                        rows[cl_ord_id] = store.record_decision(
                            cl_ord_id, intent.rule_id or "engine", intent.decision_id or intent.intent_id,
                            intent.to_dict())
                if changes is not None:
                    store.save_engine_changes(changes.base, changes.parts, complete=changes.complete)
        except BaseException:
            if changes is not None:
                with self._unsaved_lock:
                    self._unsaved = changes if self._unsaved is None else changes.then(self._unsaved)
            raise
        return rows

    def _run_job(self, intents: tuple[Any, ...], persist: bool, received: float | None) -> None:
        """On the lane thread: commit the state changes with the decision rows, then dispatch.

        The changes committed are all those taken so far (this decision's fire and any later
        ones), so a burst of fires costs one write, and each write holds only the rows of the
        rules that changed."""
        store, dispatcher, loop = self.store, self.dispatcher, self._loop
        assert store is not None and dispatcher is not None and loop is not None
        rows: dict[str, Decision] = {}
        if persist:
            try:
                rows = self._commit(store, intents)
            except Exception as exc:
                log.exception("could not persist a decision; its intents are not sent")
                for intent in intents:
                    self._job_result(intent, _failed(intent, self.clock(), f"state could not be saved: {exc}"))
                return
        for intent in intents:
            if received is not None:
                self.metrics.dispatch_latency.observe(time.perf_counter() - received)
            try:
                recorded = rows.get(client_id(intent)) if isinstance(intent, ORDER_INTENTS) else None
                report = dispatcher.dispatch(intent, recorded)
            except Exception as exc:
                log.exception("dispatch of %s failed", intent.intent_id)
                report = _failed(intent, self.clock(), f"{type(exc).__name__}: {exc}")
            self._job_result(intent, report)

    def _job_result(self, intent: Any, report: ExecutionReport) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._on_report, intent, report)

    def _on_report(self, intent: Any, report: ExecutionReport) -> None:
        result = report.result
        self.metrics.actions.labels(intent.kind, "ok" if result.ok else "error").inc()
        self._tell("report", (intent, report))
        if intent.awaits_result:
            self._put(result)
        for event in report.events:
            self._put(event)

    def _job_done(self, future: Any) -> None:
        self._jobs -= 1
        if future.exception() is not None:
            log.error("dispatch job failed", exc_info=future.exception())
        self._check_idle()

    def _check_idle(self) -> None:
        if self._jobs == 0 and not self._busy and self._queue.empty():
            self._idle.set()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is handled and every dispatched intent finished."""
        async def quiet() -> None:
            while True:
                await self._idle.wait()
                await asyncio.sleep(0)
                if self._jobs == 0 and not self._busy and self._queue.empty():
                    return
                self._idle.clear()
        self._check_idle()
        await asyncio.wait_for(quiet(), timeout)

    # ------------------------------------------------------------------ time

    def _arm_deadline(self) -> None:
        deadline = self.engine.next_deadline()  # type: ignore[union-attr]
        if deadline == self._deadline_at:
            return
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
            self._deadline_handle = None
        self._deadline_at = deadline
        if deadline is not None and self._loop is not None:
            delay = max(0.0, deadline - self.clock()) + 0.001
            self._deadline_handle = self._loop.call_later(delay, self._deadline_due, deadline)

    def _deadline_due(self, deadline: float) -> None:
        self._deadline_handle = None
        self._deadline_at = None
        if not self._stopping:
            self._put(Clock(max(self.clock(), deadline)))

    async def _housekeeping(self) -> None:
        """Save the snapshot when it changed (arming state moves with every crossing) and
        flush the audit log while idle, once per `snapshot_interval`."""
        while True:
            await asyncio.sleep(self.snapshot_interval)
            self.metrics.queue_depth.set(self._queue.qsize())
            if self._dirty and self.engine is not None:
                self._submit((), True, None)
            if self.audit is not None:
                with contextlib.suppress(AuditError):
                    await asyncio.to_thread(self.audit.sync)

    # ------------------------------------------------------------------ reload

    async def reload(self, reason: str = "requested") -> bool:
        """Load the rule files again; swap them in only if all are valid. Returns whether
        the new rules are running. An invalid edit is logged and audited; the previous
        rules keep running."""
        async with self._reload_lock:
            if self._stopping or self.engine is None:
                return False
            if self._watcher is not None:
                self._watcher.mark_current()
            result = await asyncio.to_thread(load_rules, self.rule_paths)
            problem = None
            if result.errors or result.ruleset is None:
                problem = _load_problems(result)
            else:
                try:
                    needs = self._checked_needs(result.ruleset)
                except StartupError as exc:
                    problem = str(exc)
            if problem is not None:
                self.metrics.reloads.labels("invalid").inc()
                log.error("reload (%s) refused; the previous rules keep running:\n%s", reason, problem)
                errors = [str(e) for e in result.errors[:MAX_REPORTED_ERRORS]] or [problem]
                self._audit("reload", data={"ok": False, "reason": reason, "errors": errors,
                                            "files": result.files}, sync=True)
                self._tell("reload", {"ok": False, "reason": reason, "errors": errors})
                return False
            done = asyncio.get_running_loop().create_future()
            self._put(_Reload(result, needs, reason, done))
            await done
            if self._feeds is not None:
                await self._feeds.apply(needs)
            if self._timers is not None:
                self._timers.replace(needs.timers)
            return True

    def _apply_reload(self, item: _Reload) -> None:
        engine = self.engine
        assert engine is not None and item.result.ruleset is not None
        previous = dict(self.rule_hashes)
        self._set_needs(item.needs)
        self.rule_hashes.update({k: v for k, v in previous.items() if k not in self.rule_hashes})
        decision = engine.replace_rules(item.result.ruleset)
        summary = next((dict(r.detail) for r in decision.trace if r.kind == "state" and "rules_loaded" in r.detail), {})
        self._audit("reload", data={"ok": True, "reason": item.reason, "files": _file_hashes(item.result.ruleset),
                                    **summary}, sync=True)
        self._process(decision, None)
        self._set_needs(item.needs)
        self.reload_count += 1
        self.metrics.reloads.labels("ok").inc()
        self.metrics.rules_loaded.set(len(item.result.ruleset.rules))
        log.info("rules reloaded (%s): %d rules; added %s, changed %s, removed %s", item.reason,
                 len(item.result.ruleset.rules), summary.get("added", []), summary.get("changed", []),
                 summary.get("removed", []))
        self._tell("reload", {"ok": True, "reason": item.reason, **summary})
        if not item.done.done():
            item.done.set_result(True)

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        now = self.clock()
        feeds = self._feeds.health(now) if self._feeds is not None else {}
        switch = self.kill_switch.state if self.kill_switch is not None else KillState(False)
        ok = not self._stopping and all(f["connected"] for f in feeds.values())
        return {
            "ok": ok,
            "status": "stopping" if self._stopping else ("ok" if ok else "degraded"),
            "mode": self.mode,
            "version": __version__,
            "uptime": None if self.started_at is None else round(now - self.started_at, 3),
            "rules_loaded": len(self.engine.ruleset.rules) if self.engine is not None else 0,
            "reloads": self.reload_count,
            "kill_switch": {"engaged": switch.engaged, "describe": switch.describe(), **switch.to_json()},
            "feeds": feeds,
            "queue_depth": self._queue.qsize(),
            "actions_in_flight": self._jobs,
        }

    def refresh_gauges(self) -> None:
        self.metrics.queue_depth.set(self._queue.qsize())

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Stop taking events, handle what was already taken, let in-flight actions finish
        (up to `drain_timeout`), save the snapshot, flush and close the audit log."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            self._intake_open = False
            for remove in self._signal_removers:
                with contextlib.suppress(Exception):
                    remove()
            if self._timers is not None:
                self._timers.stop()
            if self._watcher is not None:
                self._watcher = None
            if self._feeds is not None:
                await self._feeds.stop()
            if self._http is not None:
                await self._http.stop()
            if self._consumer is not None and not self._consumer.done():
                try:
                    await self.settle(self.drain_timeout)
                except TimeoutError:
                    log.error("in-flight actions did not finish within %.0f s; stopping anyway", self.drain_timeout)
                self._queue.put_nowait((_STOP, time.perf_counter()))
                await self._consumer
            await self._teardown()
        finally:
            self._stopped.set()

    async def _teardown(self) -> None:
        self._intake_open = False
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
        if self._keeper is not None:
            await self._keeper.stop(disarm=True)
        current = asyncio.current_task()
        for task in [t for t in self._tasks if t is not current]:
            task.cancel()
        await asyncio.gather(*[t for t in self._tasks if t is not current], return_exceptions=True)
        if self._feeds is not None:
            await self._feeds.stop()
        if self._http is not None:
            await self._http.stop()
        if self._consumer is not None and not self._consumer.done():
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
        if self._lane is not None:
            await asyncio.to_thread(self._lane.shutdown, wait=True, cancel_futures=False)
            self._lane = None
        if self.engine is not None and self.store is not None and self.dispatcher is not None:
            self._take_changes()
            with contextlib.suppress(StateStoreError):
                self._commit(self.store)
        if self.executor is not None:
            with contextlib.suppress(Exception):
                self.executor.close()
        if self.audit is not None:
            if self.started_at is not None:
                with contextlib.suppress(AuditError):
                    self.audit.append("shutdown", data={"pid": os.getpid(), "reloads": self.reload_count,
                                                        "uptime": round(self.clock() - self.started_at, 3)})
            with contextlib.suppress(AuditError):
                self.audit.close()
        if self.store is not None:
            self.store.close()
        if self.started_at is not None:
            log.info("engine stopped")

    async def wait_stopped(self) -> None:
        """Return once `stop()` has finished (e.g. after SIGTERM)."""
        await self._stopped.wait()

    # ------------------------------------------------------------------ helpers

    def _audit(self, kind: str, *, rule_id: str | None = None, data: Mapping[str, Any], sync: bool = False) -> None:
        if self.audit is None:
            return
        try:
            self.audit.append(kind, rule_id=rule_id,
                              rule_file_hash=self.rule_hashes.get(rule_id) if rule_id else None, data=data, sync=sync)
        except AuditError:
            self.metrics.errors.labels("audit").inc()
            log.exception("audit log write failed")


def _failed(intent: Any, now: float, error: str) -> ExecutionReport:
    return ExecutionReport(ActionResult(intent.intent_id, False, now, {"error_class": "ServiceError"}, error))


def _risk_fields(config: EngineConfig) -> dict[str, Any]:
    risk = config.risk
    return {name: getattr(risk, name) for name in ("allowed_pairs", "max_order_notional", "max_total_notional",
                                                    "max_orders_per_minute", "max_orders_per_day",
                                                    "max_open_orders")}


def _file_hashes(ruleset: RuleSet) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for rule in ruleset.rules:
        if rule.source is not None:
            hashes.setdefault(rule.source.file, rule.source.file_hash)
    return dict(sorted(hashes.items()))


def _load_problems(result: LoadResult) -> str:
    lines = [str(d) for d in result.errors[:MAX_REPORTED_ERRORS]]
    if len(result.errors) > MAX_REPORTED_ERRORS:
        lines.append(f"... and {len(result.errors) - MAX_REPORTED_ERRORS} more")
    if not lines:
        lines = ["no rules could be loaded"]
    return f"{len(result.errors)} problem(s) in the rules:\n  " + "\n  ".join(lines)
