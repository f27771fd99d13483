"""The engine service: the one engine loop (`rules_engine.driver.Driver`) wired to live sources.

    service = EngineService(config, ["rules/"], cli_live=False)
    port = await service.start()        # HTTP bound (port 0 picks one); feeds, timers running
    ...
    await service.stop()                # stop intake, finish in-flight actions, flush, close

Flow (one event queue, one consumer, dispatch lanes: one thread per pair in live and validate):

    TickerFeed (spot v2/v1, futures)  -> Tick -------------+
    POST /signals/{source}            -> Signal -----------+
    kill switch (file, HTTP, SIGUSR1) -> KillSwitch -------+--> queue --> consumer: driver.feed(event)
    wake-up at driver.next_wakeup()   -> advance ----------+             (timer beats, deadlines,
    dispatch lane (ThreadLane)        -> ActionResult, ... +              account syncs, fills)

The driver is the same code replay and rule tests run; here it runs in real time: it is woken
at `next_wakeup()` (timer slots, `for:` holds, cooldowns, overdue results, balance re-reads)
and its commit-then-send lane runs on worker threads (`service.lane.ThreadLane`: one per pair
in live and validate, one in dry-run), so a pair's intents leave in the order they were
decided. Before any feed starts the driver settles orders a previous run left unresolved,
hands every rule left waiting its result, and reads the account, so rules that read balances
can be evaluated from the first tick; signals the previous run accepted (202) but did not
decide are first in the queue (`service.signal_inbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from rules_engine import __version__
from rules_engine.audit import AuditError
from rules_engine.audit.sink import DurableAuditSink
from rules_engine.config import NO_CONFIG, ConfigError, EngineConfig
from rules_engine.core import Engine, EngineState
from rules_engine.core.events import Event, FeedReset, KillSwitch, Signal, Tick
from rules_engine.core.intents import Intent
from rules_engine.core.model import RuleSet
from rules_engine.core.risk import DAY
from rules_engine.driver import CommitLane, Driver, Job, Timetable
from rules_engine.execution import (
    Executor,
    LiveModeRefused,
    build_executor,
    check_key_free_here,
    check_live_allowed,
)
from rules_engine.execution.deadlines import wait_for_in_flight
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.report import ExecutionReport
from rules_engine.execution.resend import resend_policy
from rules_engine.kraken.key_use import key_problems
from rules_engine.kraken.private_feed import PrivateFeed
from rules_engine.kraken.ws_feed import FeedStatus
from rules_engine.needs import RuleNeeds, reads_balances
from rules_engine.pairs import default_registry
from rules_engine.risk_pairs import with_risk_pairs
from rules_engine.rules import LoadResult, load_rules
from rules_engine.service.affinity import AffinityError, pin_process
from rules_engine.service.audit_tap import AuditTap
from rules_engine.service.backend import open_backend
from rules_engine.service.cell_shared import CellShared
from rules_engine.service.decision_restore import Restored, raise_fire_seq, restore_sent_decisions
from rules_engine.service.event_queue import EventQueue
from rules_engine.service.fanout_consumer import fanout_consumer
from rules_engine.service.gc_tuning import freeze_loaded, release_loaded
from rules_engine.service.ha import HaCell
from rules_engine.service.http import HttpHandlers, HttpServer, build_app
from rules_engine.service.killswitch import (
    DeadMansSwitchKeeper,
    KillFileState,
    KillSwitchFile,
    install_signal_handler,
    kill_file,
    kill_reason,
)
from rules_engine.service.lane import ThreadLane
from rules_engine.service.market_feeds import MarketFeeds
from rules_engine.service.metrics import ServiceMetrics
from rules_engine.service.notifications import NotificationConfigError
from rules_engine.service.off_path import (
    checkpoint_state,
    checkpoints_state,
    defer_state_checkpoints,
    keep_nonces_ahead,
    keeps_audit_checkpoint,
    nonces_running_low,
    sync_audit_off_path,
)
from rules_engine.service.private_account import private_feed_for
from rules_engine.service.reject_audit import RejectionSampler
from rules_engine.service.rule_watch import RuleWatcher, rule_files_signature
from rules_engine.service.shared_feed import CellFeeds, SharedFeeds
from rules_engine.service.signal_inbox import InboxSignal, SignalInbox
from rules_engine.service.signals import Rejected, SignalSourceConfig
from rules_engine.service.standby_http import bind_now_or_later
from rules_engine.service.startup import (
    MAX_REPORTED_ERRORS,
    StartupError,
    checked_needs,
    file_hashes,
    kill_token,
    load_problems,
    signal_sources,
)
from rules_engine.service.status_routes import add_status_routes
from rules_engine.service.storage import StorageHealth
from rules_engine.service.store_status import STANDBY, StoreStatus
from rules_engine.service.telemetry import Listener, Listeners, ServiceObserver, health_report
from rules_engine.service.visibility import Visibility
from rules_engine.service.watch_later import WatchLater
from rules_engine.service.webhook import SignalRefused
from rules_engine.service.webhook_limits import WebhookLimits
from rules_engine.state import StateStoreError, ensure_state_dir
from rules_engine.state.protocol import EngineStore

log = logging.getLogger("rules_engine.service")

RECHECK_EVERY = 5.0
"""Seconds between lookups of orders left `unknown` (`Dispatcher.recheck_unknown`)."""
MAX_SLEEP = 30.0
"""The longest the service sleeps without looking at the clock (a wall clock that jumps is noticed)."""


@dataclass
class _Reload:
    result: LoadResult
    needs: RuleNeeds
    reason: str
    done: asyncio.Future[bool] = field(repr=False)


class _Control(Enum):
    STOP = "stop"
    ADVANCE = "advance"  # the wake-up: deliver what is due now


_STOP, _ADVANCE = _Control.STOP, _Control.ADVANCE
QueueItem = Event | InboxSignal | _Reload | _Control
"""What the consumer takes from the queue: an event for the driver, a reload, or a control."""


class EngineService:
    """One running engine: config, rules, state dir, sources, the driver and the HTTP server."""

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
        accept_damaged_audit: bool = False,
        webhook_limits: WebhookLimits | None = None,
        shared_feeds: SharedFeeds | None = None,
        serve_http: bool = True,
        standby_sleep: Callable[[float], None] | None = None,
        shared: CellShared | None = None,
        freeze_gc: bool = False,
    ) -> None:
        self.config = config
        self.freeze_gc = freeze_gc  # the process is this engine's (`run`): `service.gc_tuning` after start and reloads
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
        self.accept_damaged_audit = accept_damaged_audit  # start a new audit chain segment if it is damaged
        self.webhook_limits = webhook_limits or WebhookLimits(**config.server_limits)
        self._stranger_rejections = RejectionSampler(self.webhook_limits.reject_audit_interval, time.monotonic)
        self.mode = config.mode
        self.metrics = ServiceMetrics()
        self._latency = self.metrics.decision_latency
        self._handled: dict[tuple[type, str | None], int] = {}  # (event type, tick market): not yet counted
        self.signal_sources: dict[str, SignalSourceConfig] = {}
        self.kill_token: str | None = None
        self.kill_switch: KillSwitchFile | None = None
        self.engine: Engine | None = None
        self.driver: Driver | None = None
        self.audit: DurableAuditSink | None = None
        self.store: EngineStore | None = None
        self.backend: dict[str, Any] = {}  # where the state and audit chain are (service.backend)
        self.storage: StorageHealth | None = None  # whether the audit log and the state store can be written
        self.inbox: SignalInbox | None = None
        self.installation_id: str | None = None  # the state dir's, in every client order id
        self._key_problems: set[str] = set()
        self._recheck_at = 0.0
        self.executor: Executor | None = None
        self.dispatcher: Dispatcher | None = None
        self.needs: RuleNeeds | None = None
        self.rule_hashes: dict[str, str] = {}
        self.port: int | None = None
        self.started_at: float | None = None
        self.reload_count = 0
        self._listeners = Listeners()
        self._queue = EventQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lane: ThreadLane | None = None
        self._busy = False
        self._idle = asyncio.Event()
        self._intake_open = False
        self._wakeup_at: float | None = None
        self._wakeup_handle: asyncio.TimerHandle | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._consumer: asyncio.Task[None] | None = None
        self._feeds: MarketFeeds | CellFeeds | None = None
        self.private_feed: PrivateFeed | None = None
        self._watcher: RuleWatcher | None = None
        self._keeper: DeadMansSwitchKeeper | None = None
        self._http: HttpServer | None = None
        self._signal_removers: list[Callable[[], None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self.visibility = Visibility(self)  # decision log, traces, readiness, status, notifications
        self.audit_tap: AuditTap | None = None  # the audit log as everything writes to it (watched)
        self.lines: WatchLater | None = None  # when the tap's watchers run: off the order's way
        self.cell: HaCell | None = None  # high availability: the key's lease, renewed (service.ha)
        self.exit_code = 0  # `rules-engine run`'s: 3 after the engine stopped because another took its key
        self.shared_feeds = shared_feeds  # a worker's cell: the worker's public feed (service.shared_feed)
        self.serve_http = serve_http  # False in a worker's cell: the worker serves HTTP (port 0 then)
        self.standby_sleep = standby_sleep  # a worker's cell: its standby wait, which raises once the worker stops
        self.store_status: StoreStatus | None = None  # PostgreSQL: the cluster; standby: who holds the key
        self.shared = shared  # a worker's cell: compiled rules, leases, delivery wake-ups (service.cell_shared)
        self._rules_checked = 0  # rules loaded and checked at start, before the engine is built
        self._load_rules = load_rules if shared is None or shared.rules is None else shared.rules.load

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: Listener) -> None:
        """Be told of every trace record, execution report, reload, rejected signal and
        kill switch change (on the loop; must not block). Used by the demo and tests."""
        self._listeners.listeners.append(listener)

    def _tell(self, kind: str, payload: Any) -> None:
        self._listeners.tell(kind, payload)

    def timers_upcoming(self) -> list[tuple[str, int, float]]:
        """(rule id, trigger index, next slot) of every timer, soonest first."""
        return self.driver.timetable.upcoming() if self.driver is not None else []

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
        assert self.port is not None
        if self.freeze_gc:
            freeze_loaded()  # what the start loaded stays out of the collections on an order's way
        return self.port

    async def _start(self) -> None:
        config = self.config
        try:
            check_live_allowed(config.mode, self.cli_live, config_given=config.source != NO_CONFIG)
        except LiveModeRefused as exc:
            raise StartupError(str(exc)) from None
        if config.cpu is not None:
            try:
                pin_process(config.cpu)
            except AffinityError as exc:
                raise StartupError(str(exc)) from None
        loaded = rule_files_signature(self.rule_paths)
        result = await asyncio.to_thread(self._load_rules, self.rule_paths)
        if result.errors or result.ruleset is None:
            raise StartupError(load_problems(result))
        ruleset = result.ruleset
        self._rules_checked = len(ruleset.rules)  # /healthz while standing by (the engine is built at takeover)
        self.metrics.rules_loaded.set(len(ruleset.rules))
        for warning in result.warnings:
            log.warning("rules: %s", warning)
        if not ruleset.rules:  # a rules folder left empty by a deployment: `validate` refuses it
            log.warning("no rules under %s: the engine runs with none until rule files are added there "
                        "(it reloads on its own)", ", ".join(str(p) for p in self.rule_paths))
        try:
            self.config = config = with_risk_pairs(config, default_registry())
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        needs = checked_needs(ruleset)
        self.signal_sources.clear()
        self.signal_sources.update(signal_sources(config, needs, self.environ))
        self.kill_token = kill_token(config, self.environ)
        try:
            ensure_state_dir(self.state_dir)
        except OSError as exc:
            raise StartupError(f"cannot create the state dir {self.state_dir}: {exc.strerror or exc}") from None
        if config.store is not None and not config.store.standby and config.mode != "dry-run":
            try:  # before its lease (which fences the key's holder): not if the key's engine runs here
                check_key_free_here(config, self.environ)
            except OSError as exc:
                raise StartupError(f"cannot set up the {config.mode} executor: {exc}") from None
        if config.store is not None and config.store.standby:  # a standby keeps the public feed subscribed
            await self._start_feeds(needs)  # (ticks are dropped until intake opens)
        self.store_status = StoreStatus.for_service(self)
        if self.store_status is not None and self.store_status.standby and self.serve_http:
            await self._serve_while_standing_by(self.store_status)  # /healthz, /readyz (standby), status page
        backend = await asyncio.to_thread(open_backend, config, self.state_dir, clock=self.clock,
                                          accept_damaged=self.accept_damaged_audit, environ=self.environ,
                                          standby_sleep=self.standby_sleep,
                                          leases=None if self.shared is None else self.shared.leases,
                                          kraken_clock=None if self.shared is None else self.shared.kraken_clock,
                                          pool=None if self.shared is None else self.shared.pool)
        self.audit, self.store, self.backend, self.cell = backend.audit, backend.store, backend.describe, backend.cell
        if self.cell is not None:  # high availability: the lease gates every Kraken call (service.ha)
            self.cell.on_halt = self._on_cell_halted
            self.cell.on_event = self._on_lease_event
            self.visibility.readiness.add_check("lease", self.cell.problem)
        self.inbox = SignalInbox(self.store)
        self.storage = StorageHealth(self.audit, self.store, self.metrics.registry, self.clock)
        self.visibility.readiness.add_check("storage_unwritable", self.storage.unwritable_reason)
        self.visibility.readiness.add_check("api_key_in_use", lambda: "; ".join(key_problems()) or None)
        sync_audit_off_path(self.audit, self.snapshot_interval)  # the housekeeping syncs it
        defer_state_checkpoints(self.store)  # ... and checkpoints the state store
        try:
            restored = (restore_sent_decisions(self.store, backend.local_log) if backend.local_log is not None
                        else Restored())  # after a power cut (see the module); PostgreSQL commits are synchronous
        except (AuditError, StateStoreError) as exc:
            raise StartupError(f"cannot restore decisions from the audit log: {exc}") from None
        self.lines = WatchLater(asyncio.get_running_loop(), lambda: self._lane is not None and self._lane.jobs > 0)
        self.audit_tap = audit = self.visibility.tap(self.audit, self.lines)
        try:
            self.visibility.start_notifier()
        except NotificationConfigError as exc:
            raise StartupError(str(exc)) from None
        # The store's reads and the commits below run off the loop: a worker's cells start together
        # (150 at a takeover) on one loop, which would wait for each cell's round trips in turn.
        saved = await asyncio.to_thread(self.store.load_engine_snapshot)
        if saved is not None:  # the orders decided in the last day count toward the risk limits again
            saved["order_times"] = await asyncio.to_thread(self.store.decision_times, self.clock() - DAY)
        try:
            state = raise_fire_seq(EngineState.from_snapshot(saved) if saved is not None else None,
                                   restored.fire_seq)
        except (ValueError, KeyError, TypeError) as exc:
            where = getattr(self.store, "path", self.store)
            raise StartupError(f"the saved engine state in {where} cannot be used: {exc}") from None
        self.installation_id = self.store.installation_id
        self.engine = Engine(ruleset, config.risk, state, balance_max_age=config.balance_cache,
                             installation=self.installation_id)
        self._set_needs(needs)
        await asyncio.to_thread(audit.append, "startup", data={
            "version": __version__, "pid": os.getpid(), "mode": config.mode, "cli_live": self.cli_live,
            "config": config.source, "state_dir": str(self.state_dir), "store": self.backend,
            "rule_files": file_hashes(ruleset),
            "rules": len(ruleset.rules), "restored_snapshot": saved is not None,
            "warnings": [str(w) for w in result.warnings[:MAX_REPORTED_ERRORS]],
        }, sync=True)
        try:
            options = self.executor_options if self.cell is None else self.cell.executor_options(self.executor_options)
            self.executor = build_executor(config, cli_live=self.cli_live, store=self.store, environ=self.environ,
                                           **options)
        except LiveModeRefused as exc:
            raise StartupError(str(exc)) from None
        except (ValueError, OSError) as exc:
            raise StartupError(f"cannot set up the {config.mode} executor: {exc}") from None
        takeover = None if self.cell is None else await asyncio.to_thread(  # fence, wait out deadlines
            self.cell.take_over, self.executor, self.store, live=config.mode == "live", audit=audit)
        if self.cell is None and config.mode == "live":  # orders in flight at a crash: settled after their deadline
            await asyncio.to_thread(wait_for_in_flight, self.executor, self.store, audit)  # (the takeover did it in HA)
        self.dispatcher = Dispatcher(self.executor, self.store, audit, mode=config.mode,
                                     rule_hashes=self.rule_hashes, clock=self.clock, sent_in_audit=True,
                                     resend=resend_policy(config.resend_within, self.engine, self.store,
                                                          blocked=lambda: kill_reason(self.state_dir)))
        lane = CommitLane(self.store, self.dispatcher, clock=self.clock, on_dispatch=self._on_dispatch,
                          on_commit=self.visibility.state_commit)
        assert self._loop is not None
        self._lane = ThreadLane(lane, self._loop, self._on_reported, self._check_idle,
                                concurrent=bool(getattr(self.executor, "concurrent", False)))
        now = self.clock()
        self.driver = Driver(self.engine, lane, audit, Timetable(needs.timers, now), rule_hashes=self.rule_hashes,
                             realtime=True, submit=self._lane.submit, post=self._put,
                             observers=[ServiceObserver(self.metrics, self._listeners), self.visibility.observer()],
                             account_every=self._account_every(ruleset))
        # The load trace, orders left unresolved by a previous run, and the account, before any event.
        await asyncio.to_thread(self.driver.start, now)
        if self.cell is not None and takeover is not None:  # reconciled by driver.start: the epoch acts now
            await asyncio.to_thread(self.cell.started, takeover, self.store, audit)
        if self.kill_switch is None:
            self.kill_switch = KillSwitchFile(kill_file(self.state_dir), on_change=self._on_kill_change,
                                              clock=self.clock)
        else:  # a standby's, made when its HTTP server started: the file as it is now (e.g. `rules-engine kill`)
            self.kill_switch.poll()
        initial = self.kill_switch.state
        if initial.engaged:
            log.warning("kill switch is engaged: %s", initial.describe())
        self.driver.feed(KillSwitch(initial.engaged, self.clock(), False, initial.reason or "state at start-up"))
        self.metrics.kill_switch.set(1 if initial.engaged else 0)
        fanout = await asyncio.to_thread(fanout_consumer, self)  # fanned-out signals (PostgreSQL): any left too
        undecided = await asyncio.to_thread(self.inbox.pending)  # late are expired first; then the inbox is read
        if self.serve_http and self._http is None:
            self._http = HttpServer(build_app(self._http_handlers()), self.host, self.requested_port,
                                    self.webhook_limits, self.metrics.connections_refused_by)
            try:
                self.port = await self._http.start()
            except OSError as exc:
                if fanout is not None:
                    fanout.claimer.close()
                raise StartupError(f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}") \
                    from None
        elif self.port is None:  # a worker's cell (no server), or a standby whose port is still in use
            self.port = 0 if self._http is None else self.requested_port
        self._intake_open = True
        for pending in undecided:  # accepted (202) by the previous run, not decided: first in line
            self._audit("signal", data={"source": pending.signal.source, "signal_id": pending.signal.signal_id,
                                        "payload": dict(pending.signal.payload), "restored": True})
            self._put(pending)
        if fanout is not None:
            self._spawn(fanout.run())
        self._consumer = asyncio.ensure_future(self._consume())
        if self._feeds is None:
            await self._start_feeds(needs)
        self.private_feed = private_feed_for(self.executor, config.endpoints, self._on_account_events, self.clock,
                                             None if self.shared is None else self.shared.connect_budget)
        if self.private_feed is not None:  # fills, cancels and balances as they happen (live mode)
            self._spawn(self._run_private_feed(self.private_feed))
        self._spawn(self.kill_switch.watch(self.kill_poll_interval))
        self._spawn(self._housekeeping())
        self._spawn(self.visibility.watch(self.snapshot_interval))
        if self.reload_interval:
            signatures = None if self.shared is None else self.shared.rule_signatures  # a worker's: read once
            self._watcher = RuleWatcher(self.rule_paths, lambda: self.reload("rule files changed"),
                                        self.reload_interval, signatures)
            self._spawn(self._watcher.run())
        self._start_dead_mans_switch()
        if self.cell is not None and rule_files_signature(self.rule_paths) != loaded:  # edited while standing by
            self._spawn(self.reload("rule files changed while standing by"))
        if self.handle_signals:
            self._install_signal_handlers()
        self._arm_wakeup()
        self.started_at = self.clock()
        log.info("engine started: mode=%s rules=%d http=%s:%d state_dir=%s", config.mode,
                 len(ruleset.rules), self.host, self.port, self.state_dir.absolute())  # whatever the cwd was

    async def _start_feeds(self, needs: RuleNeeds) -> None:
        if self.shared_feeds is not None:  # a worker's cell: a view of the worker's one feed per market
            self._feeds = self.shared_feeds.attach(self._on_tick, self._on_feed_status)
            await self._feeds.apply(needs)
            return
        self._feeds = MarketFeeds(self.config.endpoints, self.config.feed, self._on_tick, self._on_feed_status,
                                  clock=self.clock, options=self.feed_options)
        await self._feeds.apply(needs)

    async def _serve_while_standing_by(self, status: StoreStatus) -> None:
        """A standby serves HTTP from its start (`service.standby_http`, `service.store_status`)."""
        self.kill_switch = KillSwitchFile(kill_file(self.state_dir), on_change=self._on_kill_change, clock=self.clock)
        self.visibility.readiness.add_check(STANDBY, status.standby_problem)
        self._http = HttpServer(build_app(self._http_handlers()), self.host, self.requested_port,
                                self.webhook_limits, self.metrics.connections_refused_by)

        def bound(port: int) -> None:
            self.port = port
            log.info("standing by for key %s; serving HTTP on http://%s:%d (healthz; readyz: not ready, standby; "
                     "status page)", status.settings.key_id, self.host, port)
        retry = await bind_now_or_later(self._http, bound)
        if retry is not None:
            self._tasks.append(retry)  # cancelled at the teardown
        self._spawn(status.watch_holder())

    def _account_every(self, ruleset: RuleSet) -> float | None:
        """How often to read the account again: only an executor that does not report fills
        itself (validate, live), and only while rules read balances."""
        if self.config.mode == "dry-run" or not reads_balances(ruleset):
            return None
        return max(self.config.balance_cache, 1.0)

    def _http_handlers(self) -> HttpHandlers:
        assert self.kill_switch is not None
        return HttpHandlers(
            health=self.health, metrics=self._render_metrics, metrics_content_type=self.metrics.content_type,
            signal_sources=self.signal_sources, on_signal=self.on_signal,
            on_signal_rejected=self.on_signal_rejected, seen_signal=self.seen_signal, clock=self.clock,
            kill_switch=self.kill_switch, kill_token=self.kill_token, webhook_limits=self.webhook_limits,
            extra_routes=lambda app: add_status_routes(app, self._status, self.visibility.readyz,
                                                       self.visibility.book.trace,
                                                       kill_enabled=self.kill_token is not None,
                                                       refresh=self._refresh_status),
            standing_by=None if self.store_status is None else self.store_status.standby_problem,
        )

    def _status(self) -> dict[str, Any]:
        doc = self.visibility.status()
        return doc if self.store_status is None else self.store_status.decorate(doc)

    async def _refresh_status(self) -> None:
        if self.store_status is not None:
            await self.store_status.refresh()

    def _render_metrics(self) -> bytes:
        self.metrics.queue_depth.set(self._queue.qsize())
        if self.storage is not None:
            self.storage.refresh()
        return self.metrics.render()

    def _set_needs(self, needs: RuleNeeds) -> None:
        self.needs = needs
        self.rule_hashes.clear()  # in place: the Dispatcher and the driver hold this mapping
        self.rule_hashes.update(needs.rule_hashes)

    async def _run_private_feed(self, feed: PrivateFeed) -> None:
        """The private feed; a worker's cell first waits until the worker is quiet (its
        takeovers and their orders first: `service.quiet_gate`)."""
        gate = None if self.shared is None else self.shared.quiet
        if gate is not None:
            await gate.wait()
        await feed.run()

    def working(self) -> bool:
        """Events queued or being handled, or orders on their way."""
        jobs = self._lane.jobs if self._lane is not None else 0
        return jobs > 0 or self._busy or not self._queue.empty()

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

    def _on_cell_halted(self, reason: str) -> None:
        """Another engine took the key (any thread): stop, exit code 3 (`service.ha`)."""
        def halt() -> None:
            self.exit_code = 3
            self._audit("error", data={"where": "lease", "error": reason})  # refused if fenced: logged then
            if self.started_at is not None:  # during the start, the takeover fails by itself (LeaseLost)
                self._spawn(self.stop())
        self._on_loop(halt)

    def _on_lease_event(self, event: dict[str, Any]) -> None:
        """A lease event from a cell's thread, audited on the loop; a release at once, committed,
        on the releasing thread before the release: the next holder may take the key moments after
        it, and this chain's writes are fenced from then on."""
        if event.get("event") == "released":  # committed before the release itself (`ReleaseWatch.check`)
            self._audit("lease", data=event, sync=True)
        else:
            self._on_loop(lambda: self._audit("lease", data=event))

    def _on_loop(self, fn: Callable[[], None]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    def _install_signal_handlers(self) -> None:
        loop = self._loop
        assert loop is not None and self.kill_switch is not None
        def remover(signum: int) -> Callable[[], None]:
            def remove() -> None:
                loop.remove_signal_handler(signum)
            return remove

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
            self._signal_removers.append(remover(signum))
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        self._signal_removers.append(remover(signal.SIGHUP))
        self._signal_removers.append(
            install_signal_handler(loop, self.kill_switch, cancel_all=self.config.kill_cancel_open_orders))

    def _on_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping:  # a repeat (an impatient operator) no longer kills the process mid-drain
            log.warning("%s received: already stopping (in-flight actions finish, up to %.0f s); SIGKILL stops "
                        "at once (safe: a restart settles what was in flight)", name, self.drain_timeout)
            return
        log.info("%s received: stopping", name)
        self._spawn(self.stop())

    def _on_hup(self) -> None:
        if self._stopping:
            log.info("SIGHUP received while stopping: no reload")
            return
        log.info("SIGHUP received: reloading rules")
        self._spawn(self.reload("SIGHUP"))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("service task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ intake

    def _put(self, item: QueueItem) -> None:
        if self._idle.is_set():
            self._idle.clear()
        self._queue.put_nowait((item, time.perf_counter()))

    def inject(self, event: Event) -> None:
        """Queue an event as if an adapter had produced it (tests, tools)."""
        self._put(event)

    def poke(self) -> None:
        """Deliver what is due now (timer beats, deadlines) without waiting for the wake-up:
        after the clock was changed (an injected clock in tests and tools)."""
        self._put(_ADVANCE)

    def _on_tick(self, tick: Tick) -> None:
        if self._intake_open:
            self.visibility.on_tick(tick)
            self._put(tick)

    def _on_account_events(self, events: Iterable[Event]) -> None:
        if self._intake_open:
            for event in events:
                self._put(event)

    def _on_feed_status(self, market: str, status: FeedStatus) -> None:
        kind = status.kind
        feed = self._feeds.feeds.get(market) if self._feeds is not None else None
        self.visibility.feed_status(market, kind, status.detail, status.symbol,
                                    reconnect=feed is not None and feed.stats.connects > 1)
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
        """The webhook's hand-off: record the signal durably (the 202 follows only then),
        audit its arrival and queue it."""
        if self.inbox is None:  # a standby serving HTTP before it holds its key
            raise SignalRefused(Rejected(503, STANDBY, "this engine stands by for its key and takes no signals "
                                         "until it holds it", signal_.signal_id, authenticated=True))
        inboxed = self.inbox.accept(signal_)
        self.metrics.signals.labels(signal_.source).inc()
        self._audit("signal", data={"source": signal_.source, "signal_id": signal_.signal_id,
                                    "payload": dict(signal_.payload)})
        self._put(inboxed)

    def on_signal_rejected(self, source: str, rejected: Rejected, meta: Mapping[str, Any]) -> None:
        """Count every refusal; audit each of an authenticated sender, and those of strangers
        in aggregate (`RejectionSampler`: one record per client per interval)."""
        if self.inbox is not None:
            self.inbox.discard()
        known = source if source in self.signal_sources else "(unknown)"
        self.metrics.signals_rejected.labels(known, rejected.code).inc()
        extra: dict[str, Any] = {}
        if not rejected.authenticated:
            unrecorded = self._stranger_rejections.admit(str(meta.get("remote")))
            if unrecorded is None:
                return
            extra = {"unauthenticated": True, "unrecorded_before": unrecorded,
                     "recorded_every": self.webhook_limits.reject_audit_interval}
        self._audit("signal_rejected", data={"source": source[:64], "status": rejected.status,
                                             "code": rejected.code, "reason": rejected.reason,
                                             "signal_id": rejected.signal_id, **dict(meta), **extra})
        self._tell("signal_rejected", (source, rejected))

    def seen_signal(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        if self.inbox is None:  # a standby: every signal is refused (on_signal)
            return False
        return self.inbox.seen(source, signal_id, now, ttl)

    def _on_kill_change(self, state: KillFileState) -> None:
        self.metrics.kill_switch.set(1 if state.engaged else 0)
        self._audit("kill_switch", data=state.to_json())  # the decision log writes the line
        self._tell("kill_switch", state)
        # `kill_switch.cancel_open_orders` in the config applies however the switch was engaged
        # (file, HTTP, SIGUSR1, `rules-engine kill`); a request may also ask for it on its own.
        cancel_all = state.engaged and (state.cancel_all or self.config.kill_cancel_open_orders)
        if self.driver is None:  # a standby's /kill: the switch's state at its takeover is fed then, as at any start
            return
        self._put(KillSwitch(state.engaged, self.clock(), cancel_all, state.reason or state.source))

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
                self._arm_wakeup()
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

    def _handle_item(self, item: QueueItem, received: float) -> None:
        driver = self.driver
        assert driver is not None
        if isinstance(item, _Control):
            if item is _ADVANCE:
                driver.advance_to(self.clock(), inclusive=True)
            return
        if isinstance(item, _Reload):
            self._apply_reload(item)
            return
        if isinstance(item, InboxSignal):
            driver.feed(item.signal, received, inbox=item.number)
            item = item.signal
        else:
            driver.feed(item, received)
        self._latency.observe(time.perf_counter() - received)
        kind = type(item)
        key = (kind, item.market if isinstance(item, Tick) else None)
        handled = self._handled
        handled[key] = handled.get(key, 0) + 1

    # ------------------------------------------------------------------ dispatch lane

    def _on_dispatch(self, job: Job) -> None:
        """On the lane thread, as each intent of a job leaves."""
        if job.received is not None:
            self.metrics.dispatch_latency.observe(time.perf_counter() - job.received)

    def _on_reported(self, intent: Intent | None, report: ExecutionReport) -> None:
        assert self.driver is not None
        self.driver.reported(intent, report)

    def _check_idle(self) -> None:
        if self.lines is not None:
            self.lines.point()  # the decision log's lines, now that no order is on its way (or soon)
        if not self.working():
            self._idle.set()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is handled and every dispatched intent finished, and
        the audit records queued for the PostgreSQL chain (its group commit) are committed."""
        async def quiet() -> None:
            while True:
                await self._idle.wait()
                await asyncio.sleep(0)
                if not self.working():
                    return
                self._idle.clear()
        self._check_idle()
        await asyncio.wait_for(quiet(), timeout)
        flush = getattr(self.audit, "flush", None)  # PgAuditLog.flush; the JSONL log has none
        if flush is not None:
            with contextlib.suppress(AuditError):  # refused: `failure` and `storage_recovered` say so
                await asyncio.to_thread(flush)
        if self.lines is not None:  # the decision log's lines of everything so far
            await self.lines.drain(timeout)

    # ------------------------------------------------------------------ time

    def _arm_wakeup(self) -> None:
        """Wake the consumer at the driver's next wake-up (at most MAX_SLEEP from now)."""
        driver, loop = self.driver, self._loop
        if driver is None or loop is None or self._stopping:
            return
        due = driver.next_wakeup()
        if due == self._wakeup_at and self._wakeup_handle is not None:
            return
        if self._wakeup_handle is not None:
            self._wakeup_handle.cancel()
            self._wakeup_handle = None
        self._wakeup_at = due
        now = self.clock()
        delay = MAX_SLEEP if due is None else min(MAX_SLEEP, max(0.0, due - now) + 0.001)
        self._wakeup_handle = loop.call_later(delay, self._wake)

    def _wake(self) -> None:
        self._wakeup_handle = None
        self._wakeup_at = None
        if self._stopping:
            return
        if self._intake_open:
            self._put(_ADVANCE)
        else:
            self._arm_wakeup()

    async def _housekeeping(self) -> None:
        """Save the state when it changed (arming state moves with every crossing) and flush
        the audit log while idle, once per `snapshot_interval`."""
        while True:
            await asyncio.sleep(self.snapshot_interval)
            self.metrics.queue_depth.set(self._queue.qsize())
            self._report_key_problems()
            await self._recheck_unknown()
            if self.driver is not None and self.driver.dirty:
                self.driver.flush()
            # Each step goes to a thread only when it has something to do (looked at here, without
            # I/O): a worker's 300 idle cells made some 1,200 thread hops a second doing nothing.
            if self.audit_tap is not None and self.audit_tap.needs_sync():
                with contextlib.suppress(AuditError):
                    await asyncio.to_thread(self.audit_tap.sync)
            if self.storage is not None:
                if self.storage.needs_check():
                    await asyncio.to_thread(self.storage.check)
                else:
                    self.storage.refresh()
            if self.dispatcher is not None and keeps_audit_checkpoint(self.store):
                with contextlib.suppress(StateStoreError):
                    await asyncio.to_thread(self.dispatcher.audit_checkpoint)
            if checkpoints_state(self.store):
                with contextlib.suppress(StateStoreError):
                    await asyncio.to_thread(checkpoint_state, self.store)
            if self.executor is not None and nonces_running_low(self.executor):  # an order then never
                with contextlib.suppress(StateStoreError, ValueError):  # waits for its key's nonce reservation
                    await asyncio.to_thread(keep_nonces_ahead, self.executor)

    async def _recheck_unknown(self) -> None:
        """Every RECHECK_EVERY seconds, look up orders left `unknown` again (see
        `Dispatcher.recheck_unknown`); what is found goes to the core."""
        now = self.clock()
        if self.dispatcher is None or now < self._recheck_at:
            return
        self._recheck_at = now + RECHECK_EVERY
        try:
            reports = await asyncio.to_thread(self.dispatcher.recheck_unknown)
        except Exception:  # the housekeeping loop must go on (state saves, audit flushes)
            log.exception("looking up orders left unknown failed; trying again in %.0f s", RECHECK_EVERY)
            return
        for report in reports:
            for event in report.events:
                self._put(event)

    def _report_key_problems(self) -> None:
        """Log and audit each new API key problem (another client using the key) once."""
        problems = set(key_problems())
        for problem in sorted(problems - self._key_problems):
            log.error("%s", problem)
            self._audit("error", data={"where": "api key", "error": problem})
        self._key_problems = problems

    # ------------------------------------------------------------------ reload

    async def reload(self, reason: str = "requested") -> bool:
        """Load the rule files again; swap them in only if all are valid. Returns whether
        the new rules are running. An invalid edit is logged and audited; the previous
        rules keep running."""
        try:
            return await self._reload(reason)
        finally:
            if self.lines is not None:  # its lines and readiness (`Visibility._route`) when this returns
                self.lines.flush()

    async def _reload(self, reason: str) -> bool:
        async with self._reload_lock:
            if self._stopping or self.engine is None:
                return False
            if self._watcher is not None:
                self._watcher.mark_current()
            result = await asyncio.to_thread(self._load_rules, self.rule_paths)
            problem = None
            needs = None
            if result.errors or result.ruleset is None:
                problem = load_problems(result)
            else:
                try:
                    needs = checked_needs(result.ruleset)
                except StartupError as exc:
                    problem = str(exc)
            if problem is not None or needs is None:
                self.metrics.reloads.labels("invalid").inc()  # the decision log writes the line
                errors = [str(e) for e in result.errors[:MAX_REPORTED_ERRORS]] or [problem or "no rules"]
                self._audit("reload", data={"ok": False, "reason": reason, "errors": errors,
                                            "files": result.files}, sync=True)
                self._tell("reload", {"ok": False, "reason": reason, "errors": errors})
                return False
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._put(_Reload(result, needs, reason, done))
            await done
            if self._feeds is not None:
                await self._feeds.apply(needs)
            if self.freeze_gc:
                freeze_loaded()  # the previous rules are collected, the new ones kept out of collections
            return True

    def _apply_reload(self, item: _Reload) -> None:
        driver = self.driver
        ruleset = item.result.ruleset
        assert driver is not None and ruleset is not None
        previous = dict(self.rule_hashes)
        self._set_needs(item.needs)
        self.rule_hashes.update({k: v for k, v in previous.items() if k not in self.rule_hashes})
        driver.account_every = self._account_every(ruleset)
        decision = driver.reload(ruleset, item.needs.timers, self.clock())
        summary = next((dict(r.detail) for r in decision.trace if r.kind == "state" and "rules_loaded" in r.detail), {})
        self._audit("reload", data={"ok": True, "reason": item.reason, "files": file_hashes(ruleset),
                                    **summary}, sync=True)
        self._set_needs(item.needs)
        self.reload_count += 1
        self.metrics.reloads.labels("ok").inc()
        self.metrics.rules_loaded.set(len(ruleset.rules))  # the decision log writes the line
        self._tell("reload", {"ok": True, "reason": item.reason, **summary})
        if not item.done.done():
            item.done.set_result(True)

    # ------------------------------------------------------------------ health

    @property
    def http_bound(self) -> bool:
        """Whether the HTTP server listens (a standby's may still be waiting for its port)."""
        return self._http is not None and self._http.port is not None

    def health(self) -> dict[str, Any]:
        now = self.clock()
        switch = self.kill_switch.state if self.kill_switch is not None else KillFileState(False)
        report = health_report(
            now=now, mode=self.mode, stopping=self._stopping, started_at=self.started_at,
            rules_loaded=len(self.engine.ruleset.rules) if self.engine is not None else self._rules_checked,
            reloads=self.reload_count,
            kill_switch={"engaged": switch.engaged, "describe": switch.describe(), **switch.to_json()},
            feeds=self._feeds.health(now) if self._feeds is not None else {},
            queue_depth=self._queue.qsize(),
            actions_in_flight=self._lane.jobs if self._lane is not None else 0,
            readiness=self.visibility.readyz(),
        )
        report["installation_id"] = self.installation_id
        report["store"] = self.backend  # the state dir, or the PostgreSQL store, key, epoch and holder
        report["problems"] = key_problems()  # e.g. another client is using the API key (EAPI:Invalid nonce)
        if self.private_feed is not None:  # informational: the REST reads cover for it when down
            report["private_feed"] = {"connected": self.private_feed.up, "connections": self.private_feed.connections}
        return self.storage.annotate(report) if self.storage is not None else report

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Stop taking events, handle what was already taken, let in-flight actions finish
        (up to `drain_timeout`), save the state, flush and close the audit log."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            self._intake_open = False
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
            for remove in self._signal_removers:  # kept until now: a second SIGTERM is told, not fatal
                with contextlib.suppress(Exception):
                    remove()
            if self.freeze_gc:
                release_loaded()
            self._stopped.set()

    async def _teardown(self) -> None:
        self._intake_open = False
        if self.lines is not None:  # what was written so far, while the notifier still delivers
            self.lines.flush()
        if self._wakeup_handle is not None:
            self._wakeup_handle.cancel()
        if self._keeper is not None:
            await self._keeper.stop(disarm=True)
        await self.visibility.stop()
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
            await self._lane.shutdown()
            self._lane = None
        if self.driver is not None:
            self.driver.lane.take_changes(self.driver.engine.snapshot_changes())
            with contextlib.suppress(StateStoreError):
                self.driver.lane.commit()
        if self.dispatcher is not None and keeps_audit_checkpoint(self.store):
            with contextlib.suppress(StateStoreError):
                self.dispatcher.audit_checkpoint()
        if self.lines is not None:  # the rest, and any later write, at once
            self.lines.close()
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
        if self.cell is not None:  # after the last write: a standby may take the key at once
            await asyncio.to_thread(self.cell.close)
        if self.started_at is not None:
            log.info("engine stopped")

    async def wait_stopped(self) -> None:
        """Return once `stop()` has finished (e.g. after SIGTERM)."""
        await self._stopped.wait()

    # ------------------------------------------------------------------ helpers

    def _audit(self, kind: str, *, rule_id: str | None = None, data: Mapping[str, Any], sync: bool = False) -> None:
        if self.audit_tap is None:
            return
        try:
            self.audit_tap.append(kind, rule_id=rule_id,
                              rule_file_hash=self.rule_hashes.get(rule_id) if rule_id else None, data=data, sync=sync)
        except AuditError as exc:  # the disk's trouble (StorageHealth says so): no traceback
            self.metrics.errors.labels("audit", rule_id or "").inc()
            log.error("audit log write failed: %s", exc)
