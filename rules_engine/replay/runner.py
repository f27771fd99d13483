"""The engine's one loop (`rules_engine.driver.Driver`) fed from a file, on a paper wallet.

`rules-engine test` and `rules-engine replay` run their inputs through `OfflineRunner`. It is
the service's code path with other sources and a simulated clock: the same `Driver` (timer
beats, deadlines, fills before ticks), the same commit-then-send lane (state changes and
order rows committed to a state store, then the `Dispatcher` audits the decision, marks it
sent and executes it) and the same dry-run executor (a `DryRunExecutor` on a `PaperExecutor`,
behind the same balance cache). Only the sinks differ: the state store lives in a temporary
folder (or `state_dir`) and is not fsynced (in a temporary folder it keeps its recent decisions
in memory: `state.scratch`), and the audit records are kept in memory
(`MemoryAudit`), or written to `state_dir/audit.jsonl` as a dry run writes them.

For each input event, in time order (see `Driver.feed`): everything due strictly before the
event's time is delivered first, at its own time (timer beats from `rules_engine.schedule`,
`Clock` events at `engine.next_deadline()`), the paper exchange is told the time; a tick
first moves the paper market (fills reach the engine as `OrderUpdate` / `BalanceUpdate`);
then the event, and every result it causes, until nothing is left.

Nothing reads a clock: a run is a pure function of its inputs, so it is deterministic.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from rules_engine.audit import AuditLog
from rules_engine.audit.sink import AuditSink, Entry, MemoryAudit, check_entry
from rules_engine.core import Engine, PlaceOrder, RiskLimits
from rules_engine.core.events import BalanceUpdate, Clock, Event, OrderUpdate, Tick, make_tick
from rules_engine.core.intents import FuturesSendOrder, Intent
from rules_engine.core.model import RuleSet
from rules_engine.core.trace import Decision
from rules_engine.core.watch import Band, narrow
from rules_engine.driver import CommitLane, Driver, DriverObserver, Timetable
from rules_engine.execution.balance_cache import BalanceCache
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.dry_run import DryRunExecutor
from rules_engine.execution.paper import PaperExecutor
from rules_engine.execution.paper_futures import PaperFutures
from rules_engine.execution.report import ExecutionReport
from rules_engine.needs import rule_needs
from rules_engine.paper.exchange import PaperExchange
from rules_engine.paper.orders import Order, OrderRequest
from rules_engine.replay.outcomes import FillRecord, OrderEnd, Outcome, OutcomeRecorder
from rules_engine.replay.reads import tick_reads
from rules_engine.state import StateStore, audit_log_path, database_path
from rules_engine.state.scratch import ScratchStateStore

_UNKNOWN: Any = object()
_EVERY = "*"  # in `OfflineRunner._moved`: every symbol's band may have moved
ACCOUNT = "paper"
MODE = "dry-run"
_ENDED = {"closed": "filled", "canceled": "cancelled", "expired": "expired"}  # Kraken's word -> the report's
_FUTURES_ENDED = {"filled": "filled", "cancelled": "cancelled"}  # the paper Futures account's
_RECENT_ENDS = 4096  # txids remembered to ignore a repeated final status


class QuietBands(NamedTuple):
    """A symbol's bands while nothing is due (see `OfflineRunner.feed_tick`)."""

    quiet: Band  # nothing changes but the last price
    calm: Band  # nothing fires or fills
    edges: tuple[float, float]  # `quiet` as floats (open ends infinite)


class OrderListener:
    """Told about the paper orders of a run as they happen (override what you need)."""

    def placed(self, order: Order, rule_id: str | None) -> None:
        """A rule's order was accepted by the paper exchange."""

    def filled(self, fill: FillRecord) -> None:
        """An order filled (`fill.balances_after` is the wallet after it)."""

    def ended(self, end: OrderEnd) -> None:
        """An order is final: filled, or expired / cancelled (partially filled or not)."""


class _DiscardAudit:
    """An audit sink that keeps nothing: a replay without a state folder streams its report
    instead of holding every audit record (the records are still built and checked)."""

    def append(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
               data: Mapping[str, Any] | None = None, sync: bool = False) -> dict[str, Any]:
        return self.append_many([(kind, rule_id, rule_file_hash, data)])[0]

    def append_many(self, entries: Iterable[Entry]) -> list[dict[str, Any]]:
        added = []
        for kind, rule_id, rule_hash, data in entries:
            check_entry(kind, rule_id, rule_hash, data)
            added.append({"seq": 0, "kind": kind, "rule_id": rule_id, "rule_hash": rule_hash, "data": data or {}})
        return added

    def sync(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to release."""


class OfflineRunner:
    """Run a rule set over timed input events against a paper wallet.

    `wallet` seeds the paper exchange (any asset spelling: `USD`, `ZUSD`); the driver reads it
    as the account at `start`, before any event. `timers=False` leaves timer beats to the
    inputs. `on_outcome` is called once for every outcome when it is settled (after the input
    event that produced it has been fully processed). `state_dir` keeps the state store and
    the audit log (`audit.jsonl`) there; by default the store is in a temporary folder removed
    by `close()` and the audit records are in `audit.records`.

    `keep=False` is for long replays: outcomes and fills are not collected (use `on_outcome`
    and `listener`), settled fires are forgotten and, without `state_dir`, audit records are
    checked and dropped, so memory does not grow with the number of fires.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        start: float,
        wallet: Mapping[str, Decimal | str] | None = None,
        limits: RiskLimits | None = None,
        exchange: PaperExchange | None = None,
        timers: bool = True,
        balance_max_age: float = 10.0,
        on_outcome: Callable[[Outcome], None] | None = None,
        state_dir: str | Path | None = None,
        futures_wallet: Mapping[str, Decimal | str] | None = None,
        keep: bool = True,
        listener: OrderListener | None = None,
    ):
        self.exchange = exchange if exchange is not None else PaperExchange()
        self.exchange.set_balances(ACCOUNT, dict(wallet or {}))
        self.now = start
        if state_dir is None:
            folder = Path(tempfile.mkdtemp(prefix="rules-engine-offline-", dir=_scratch()))
            self._cleanup: Callable[[], object] | None = weakref.finalize(self, shutil.rmtree, folder, True)
        else:
            folder = Path(state_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self._cleanup = None
        self.state_dir = folder
        self._timed_by: Driver | None = None  # the driver, once made: `_clock` follows its time
        clock = self._clock
        # A throwaway run's store keeps its recent decisions in memory (`state.scratch`).
        self.store = (StateStore(database_path(folder), clock=clock, durable=False) if state_dir is not None
                      else ScratchStateStore(database_path(folder), clock=clock))
        # With a state folder the audit log is the real one (`audit.jsonl`, what a dry run writes);
        # a throwaway run keeps the same records in memory.
        self.audit: AuditSink
        if state_dir is not None:
            self.audit = AuditLog(audit_log_path(folder), mode=MODE, clock=clock, durable=False)
        else:
            self.audit = MemoryAudit() if keep else _DiscardAudit()
        self._futures = PaperFutures.create(futures_wallet or {}, self.exchange.pairs)
        paper = PaperExecutor(self.exchange, ACCOUNT, self._futures)
        self._dry_run = DryRunExecutor(paper, self.store)
        self.executor = BalanceCache(self._dry_run, balance_max_age)
        needs = rule_needs(ruleset)
        dispatcher = Dispatcher(self.executor, self.store, self.audit, mode=MODE, rule_hashes=needs.rule_hashes,
                                clock=clock)
        self.engine = Engine(ruleset, limits, balance_max_age=balance_max_age)
        self.recorder = OutcomeRecorder(keep)
        self.keep = keep
        self.fills: list[FillRecord] = []
        self._watcher = _Watcher(self)
        self._on_outcome = on_outcome
        self._listener = listener if listener is not None else OrderListener()
        self._by_order: dict[str, Outcome] = {}  # cl_ord_id and txid -> the fire that placed it, while open
        self._ended: dict[str, None] = {}  # the latest final txids (a repeated final status is ignored)
        # the latest deferred tick per symbol (`feed_price`): time, symbol, its price as a float
        # (if known), its price (a Decimal, or its text), its Tick if made
        self._held: dict[str, tuple[float, str, float | None, Decimal | str, Tick | None]] = {}
        self._bands: dict[str, QuietBands | None] = {}
        self._moved: set[str] = set()  # symbols ticked or traded in the current `_feed_now`
        self._reads = tick_reads(ruleset)
        self._due = -math.inf
        timetable = Timetable(needs.timers if timers else (), start, max_lateness=float("inf"))
        self.driver = Driver(self.engine, CommitLane(self.store, dispatcher, clock=clock), self.audit, timetable,
                             rule_hashes=dict(needs.rule_hashes), observers=[self._watcher])
        self._timed_by = self.driver
        self.driver.start(start)
        self._settle()

    def _clock(self) -> float:
        """The time of what the driver is handling: a timer beat or deadline due before an
        input runs at its own time (its results, records and rows carry it), not the input's."""
        driver = self._timed_by
        return self.now if driver is None or driver.now == -math.inf else driver.now

    @property
    def outcomes(self) -> list[Outcome]:
        return self.recorder.outcomes

    def balances(self) -> dict[str, Decimal]:
        """The paper wallet's total balances (held amounts included), by Kraken asset code."""
        return self.exchange.balances(ACCOUNT)

    def open_orders(self) -> list[Order]:
        return self.exchange.open_orders(ACCOUNT)

    def futures_account(self) -> dict[str, Any]:
        """The paper Futures account now: collateral by currency, orders and fills so far,
        positions (signed size, entry price) and its margin figures in USD (`FuturesExchange.margin`)."""
        futures, account = self._futures.exchange, self._futures.account
        return {
            "collateral": futures.collateral(account),
            "orders": sum(1 for o in futures.orders.values() if o.account == account),
            "fills": sum(1 for f in futures.fills if f.account == account),
            "fees": sum((f.fee for f in futures.fills if f.account == account), Decimal(0)),
            "positions": [{"symbol": p.symbol, "size": p.size, "price": p.price} for p in futures.positions(account)],
            "margin": futures.margin(account),
        }

    def place_order(self, request: OrderRequest) -> Order:
        """Put an order on the paper exchange now, as if placed outside the rules (the engine
        learns of it as an open order). Raises the exchange's `ExchangeError` if refused."""
        if self._held:
            self._release()
        order, _ = self.exchange.place(ACCOUNT, request, self.now)
        update = OrderUpdate(self.now, order.status, txid=order.txid, cl_ord_id=order.cl_ord_id, pair=order.pair,
                             volume=order.volume, price=order.price)
        self._feed_all([update, *self.driver.lane.dispatcher.advance(self.now)])
        return order

    def set_balances(self, balances: Mapping[str, Decimal | str], time: float) -> None:
        """Set paper balances at `time` (other assets keep theirs); the engine sees the wallet."""
        self.advance_to(time)
        self._invalidate()
        self.exchange.set_balances(ACCOUNT, dict(balances))
        moment = max(time, self.now)
        wallet = BalanceUpdate(self.exchange.balances(ACCOUNT), moment, snapshot=True)
        self._feed_all([*self.driver.lane.dispatcher.advance(moment), wallet])

    def feed(self, event: Event) -> None:
        """Deliver one input event (after everything due before its time)."""
        if self._held:
            self._release()
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        if event.time > self.now:
            self.now = event.time
        self.driver.feed(event)
        self._invalidate()
        if self._watcher.touched:
            self._settle()

    def feed_tick(self, tick: Tick) -> None:
        """Deliver a recorded tick, or defer it when it provably changes nothing but the
        last price: a spot tick with bid = ask = last (a candle's) inside the quiet band of
        its symbol (between the nearest crossing thresholds that can act, found in the
        engine's sorted level indexes, and the prices of the paper exchange's open orders)
        before anything is due (timer, deadline, expiry). The latest deferred tick of each
        symbol is delivered, through the same driver, before the next event that may read
        its price (any event but a spot tick that arrives with nothing due, whose rules'
        reads `replay.reads` knows), so the engine and the exchange see the same prices when
        it matters; a replay's cost then does not grow with the rules that did not cross.
        `feed` delivers every tick."""
        price = tick.last
        if price is not None and tick.bid is price and tick.ask is price and tick.market == "spot":
            self.feed_price(tick.symbol, tick.time, price, tick)
        else:
            self._feed_now(tick)

    def feed_price(self, symbol: str, time: float, price: Decimal, tick: Tick | None = None) -> None:
        """`feed_tick` of a candle's tick given by its parts (spot, bid = ask = last = `price`):
        its `Tick` (`tick`, else made here) is made only when it is delivered. When what is
        due by then only ends cooldowns (reads no price) and the tick is quiet, that is
        delivered at its time and the tick deferred: the audit records are the same."""
        due = self._due  # -inf while the engine holds, or must be read again
        if self.now <= time and (time < due or (due != -math.inf and self._cooldowns_end_by(time))):
            bands = self._bands.get(symbol, _UNKNOWN)
            if bands is _UNKNOWN:
                bands = self._bands[symbol] = self._band(symbol)
            if bands is not None:
                quiet, calm, _ = bands
                if (quiet[0] is None or quiet[0] < price) and (quiet[1] is None or price < quiet[1]):
                    if time >= due:
                        self._end_cooldowns(time)
                    self._held[symbol] = (time, symbol, None, price, tick)
                    return
                if time < due and (calm[0] is None or calm[0] < price) and (calm[1] is None or price < calm[1]):
                    # fires nothing and fills nothing: it only re-arms crossings of this symbol,
                    # so the other symbols' deferred ticks can wait
                    self._held.pop(symbol, None)
                    self.now = max(self.now, time)
                    activity = self._watcher.activity
                    self.driver.feed(tick if tick is not None else _candle_tick(time, symbol, price))
                    del self._bands[symbol]
                    if self._watcher.activity != activity:  # not expected; read everything again
                        self._invalidate()
                    if self._watcher.touched:
                        self._settle()
                    return
        self._feed_now(tick if tick is not None else _candle_tick(time, symbol, price))

    def deferral(self) -> tuple[float, float, dict[str, QuietBands | None], dict[str, Any]]:
        """`feed_price`'s quiet-tick state, for a caller that inlines its fast path: `(now, due,
        bands, held)`. A candle tick at `time` of `symbol` with `now <= time < due` whose price
        `value` (a float) is strictly inside `bands[symbol].edges` (present, not None), and so
        its price strictly inside the quiet band, is deferred by setting `held[symbol] = (time,
        symbol, value, price, None)`, what `feed_price` does (`price` may be the price's text: it
        is made a Decimal when delivered); anything else goes to `feed_price`. Valid until the
        next call into the runner."""
        return self.now, self._due, self._bands, self._held

    def _cooldowns_end_by(self, time: float) -> bool:
        """Whether everything due by `time` is the end of a cooldown, with no paper order open
        (nothing the ticks held back could fill or move)."""
        slot = self.driver.timetable.next_slot()
        expiry = self.exchange.next_time()
        return ((slot is None or slot > time) and (expiry is None or expiry > time) and self.exchange.idle
                and self.driver.account_every is None and self.engine.deadlines_end_cooldowns_only())

    def _end_cooldowns(self, time: float) -> None:
        """Deliver the cooldown ends due by `time`, at their times (the quiet bands stay)."""
        self.now = max(self.now, time)
        self.driver.advance_to(time, inclusive=True)
        if self._watcher.touched:
            self._settle()
        self._due = self._next_due()

    def _feed_now(self, tick: Tick) -> None:
        activity = self._watcher.activity
        bands = dict(self._bands)
        moved = self._moved
        moved.clear()
        moved.add(tick.symbol)
        if self._held:
            # With nothing due, a spot tick can only fire the rules that watch its symbol:
            # the ticks held back of symbols they cannot read wait (`replay.reads`).
            reads = None
            if tick.market == "spot" and self.now <= tick.time < self._due:
                reads = self._reads.get(tick.symbol)
                if reads is not None:
                    moved.update(reads)  # what its rules may read, they may trade
                    if tick.last is not None and tick.bid is not None and tick.ask is not None:
                        # its own deferred tick (inside its quiet band) is superseded by this one,
                        # which sets every quote it set (a crossing's change depends on its state
                        # and the new price only), as in the calm path of `feed_price`
                        self._held.pop(tick.symbol, None)
            self._release(reads)
        self._deliver(tick)
        if self._watcher.activity == activity:  # nothing fired, nothing traded: only this symbol's band moved
            bands.pop(tick.symbol, None)
            self._bands = bands
        elif _EVERY not in moved and not self._futures_busy():
            # A symbol's band moves with its own crossings (its ticks) and its own paper orders:
            # those of the symbols not ticked (the ticks held back were inside their bands) nor
            # traded still hold. The paper Futures account reads every spot price when busy.
            self._bands = {symbol: band for symbol, band in bands.items() if symbol not in moved}
        self._due = self._next_due()

    def _band(self, symbol: str) -> QuietBands | None:
        """The quiet band (nothing changes) and the calm band (nothing fires or fills). None
        while the paper Futures account has an open order or position: spot prices move its
        marks, so every tick counts there."""
        if self._futures_busy():
            return None
        paper = self.exchange.quiet_band(symbol)
        quiet = self.engine.quiet_band("spot", symbol) if paper is not None else None
        calm = self.engine.quiet_band("spot", symbol, firing=True) if quiet is not None else None
        if paper is None or quiet is None or calm is None:
            return None
        low, high = quiet = narrow(quiet, paper)
        # Rounding to float keeps the order: strictly inside the edges as floats is inside the band.
        edges = (-math.inf if low is None else float(low), math.inf if high is None else float(high))
        return QuietBands(quiet, narrow(calm, paper), edges)

    def _futures_busy(self) -> bool:
        """The paper Futures account has an open order or a position (spot prices move its marks)."""
        futures = self._futures.exchange
        return bool(futures.open_orders(self._futures.account) or futures.positions(self._futures.account))

    def _next_due(self) -> float:
        """Until when ticks may be deferred: the next timer, deadline or expiry (-inf while a
        `for:` hold or a wait is pending: every event re-checks it)."""
        if self.engine.holding:
            return -math.inf
        times = [t for t in (self.driver.next_wakeup(), self.exchange.next_time(), self.engine.next_deadline())
                 if t is not None]
        return min(times) if times else math.inf

    def _release(self, symbols: Iterable[str] | None = None) -> None:
        """Deliver the ticks held back (of `symbols` only, if given), in time order."""
        if symbols is None:
            held = sorted(self._held.values(), key=itemgetter(0))
            self._held.clear()
        else:
            held = sorted((self._held.pop(s) for s in set(symbols) if s in self._held), key=itemgetter(0))
        self._moved.update(item[1] for item in held)
        for time, symbol, _, price, tick in held:
            self.now = max(self.now, time)
            if tick is None:
                tick = _candle_tick(time, symbol, price if type(price) is Decimal else Decimal(price))
            self.driver.feed(tick)

    def _invalidate(self) -> None:
        """Something was delivered: the quiet bands and the next due time must be read again."""
        self._bands.clear()
        self._due = -math.inf

    def feed_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.feed(event)

    def advance_to(self, until: float, inclusive: bool = False) -> None:
        """Deliver the timer beats and `Clock` events due before `until` (or at it, if inclusive)."""
        if self._held:
            self._release()
        self.driver.advance_to(until, inclusive)
        self.now = max(self.now, self.driver.now)
        self._invalidate()
        self._settle()

    def finish(self, until: float | None = None) -> None:
        """Let time run to `until` (default: the last event's time), then save the state."""
        if self._held:
            self._release()
        end = self.now if until is None else max(until, self.now)
        self.advance_to(end, inclusive=True)
        self.now = end
        self._feed_all([*self.driver.lane.dispatcher.advance(end)])
        self.driver.feed(Clock(end))
        self.driver.flush()
        self._settle()

    def close(self) -> None:
        """Close the state store and the audit log; remove the temporary folder."""
        if self._cleanup is None:  # a kept state folder gets the final paper wallet (a temporary one goes)
            self.executor.close()
        self.audit.close()
        self.store.close()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> OfflineRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _feed_all(self, events: list[Event]) -> None:
        if self._held:
            self._release()
        for event in events:
            self.driver.feed(event)
        self._invalidate()
        self._settle()

    def _traded(self, pair: str | None) -> None:
        """An order of `pair` was placed or changed: its quiet band may have moved (a pair
        the exchange does not know: any band may have)."""
        info = self.exchange.pairs.get(pair) if pair else None
        self._moved.add(info.altname if info is not None else _EVERY)

    def _remember_order(self, intent: PlaceOrder, report: ExecutionReport) -> None:
        outcome = self.recorder.decision(intent.decision_id or "")
        if outcome is None:
            return
        self._by_order[intent.cl_ord_id] = outcome
        txids = report.result.data.get("txid")
        if isinstance(txids, list):
            for txid in txids:
                self._by_order[str(txid)] = outcome
                order = self.exchange.orders.get(str(txid))
                if order is not None:
                    self._listener.placed(order, outcome.rule_id)

    def _remember_futures_order(self, intent: FuturesSendOrder, report: ExecutionReport) -> None:
        outcome = self.recorder.decision(intent.decision_id or "")
        if outcome is not None:
            self._by_order[intent.cli_ord_id] = outcome
            order_id = report.result.data.get("order_id")
            if order_id:
                self._by_order[str(order_id)] = outcome

    def _final(self, update: OrderUpdate, ends: Mapping[str, str]) -> str | None:
        """The order's end (`filled`, ...) the first time `update` reports it, else None."""
        status = ends.get(update.status)
        if status is None or update.txid is None or update.txid in self._ended:
            return None
        self._ended[update.txid] = None
        if len(self._ended) > _RECENT_ENDS:
            del self._ended[next(iter(self._ended))]
        return status

    def _note_futures_order(self, update: OrderUpdate) -> None:
        """A rule's paper Futures order filled (in full, at one price) or was cancelled: the
        fire's fill or end, for rule tests (a replay's Futures account holds no collateral)."""
        status = self._final(update, _FUTURES_ENDED)
        order = self._futures.exchange.orders.get(update.txid or "") if status else None
        if order is None:
            return
        outcome = self._by_order.pop(order.order_id, None)
        if order.cli_ord_id:
            outcome = self._by_order.pop(order.cli_ord_id, None) or outcome
        if outcome is None:
            return
        fill = next((f for f in reversed(self._futures.exchange.fills) if f.order_id == order.order_id), None)
        if fill is not None:
            record = FillRecord(update.time, order.order_id, order.cli_ord_id, order.symbol, order.side,
                                order.order_type, fill.size, fill.price, fill.fee, outcome.rule_id,
                                outcome.decision_id, self.exchange.balances(ACCOUNT), "USD")
            if self.keep:
                self.fills.append(record)
            outcome.fills.append(record)
        else:
            outcome.ended.append(OrderEnd(update.time, order.order_id, order.symbol, order.side, order.order_type,
                                          order.size, order.filled, order.limit_price or order.stop_price,
                                          order.received, status or "cancelled", None, outcome.rule_id,
                                          outcome.decision_id))

    def _note_order(self, update: OrderUpdate) -> None:
        """A fill and the order's end, once, when its status becomes final."""
        if update.market == "futures":
            self._note_futures_order(update)
            return
        if self._final(update, _ENDED) is None:
            return
        status = _ENDED[update.status]
        order = self.exchange.orders.get(update.txid or "")
        if order is None:
            return
        outcome = self._by_order.pop(order.txid, None)
        if order.cl_ord_id:
            outcome = self._by_order.pop(order.cl_ord_id, None) or outcome
        if outcome is None and order.parent is not None:  # a conditional close placed by the fill of a rule's order
            outcome = self._by_order.pop(order.parent, None)
            if outcome is not None:
                self._listener.placed(order, outcome.rule_id)
        if outcome is not None and order.close is not None and order.vol_exec > 0:
            self._by_order[order.txid] = outcome  # its conditional close is the same fire's
        rule_id = outcome.rule_id if outcome else None
        decision_id = outcome.decision_id if outcome else None
        if order.vol_exec > 0:
            fill = FillRecord(update.time, order.txid, order.cl_ord_id, order.pair, order.side, order.ordertype,
                              order.vol_exec, order.avg_price, order.fee, rule_id, decision_id,
                              self.exchange.balances(ACCOUNT), self._fee_asset(order))
            if self.keep:
                self.fills.append(fill)
            if outcome is not None:
                outcome.fills.append(fill)
            self._listener.filled(fill)
        if status != "filled" and order.vol_exec > 0:
            status = "partially filled"
        end = OrderEnd(update.time, order.txid, order.pair, order.side, order.ordertype, order.volume,
                       order.vol_exec, order.price if order.ordertype != "market" else None, order.opentm, status,
                       order.reason, rule_id, decision_id)
        if outcome is not None and status != "filled":
            outcome.ended.append(end)
        self._listener.ended(end)

    def _fee_asset(self, order: Order) -> str | None:
        pair = self.exchange.pairs.get(order.pair)
        if pair is None:
            return None
        return pair.base if "fcib" in order.oflags else pair.quote

    def open_orders_of(self, outcome: Outcome) -> int:
        """How many of the fire's orders are still open."""
        return sum(1 for i in outcome.intents
                   if isinstance(i, PlaceOrder) and self._by_order.get(i.cl_ord_id) is outcome)

    def _settle(self) -> None:
        touched = self._watcher.touched
        if not touched:
            return
        self._watcher.touched = []
        balances = None
        seen: set[int] = set()
        for outcome in touched:
            if id(outcome) in seen or outcome.balances_after is not None:
                continue
            seen.add(id(outcome))
            if outcome.fired and outcome.status == "running":
                continue  # waits for a result that has not come (futures, timeouts): settled later
            if balances is None:
                balances = self.exchange.balances(ACCOUNT)
            outcome.balances_after = balances
            if self._on_outcome is not None:
                self._on_outcome(outcome)
            if not self.keep:
                self.recorder.forget(outcome)
        if not self.keep and len(self.exchange.orders) > 2 * self._dry_run.keep_closed:
            # a dry run prunes when it saves the wallet; an offline store saves only at the end
            self._dry_run.paper.prune(self._dry_run.keep_closed)


class _Watcher(DriverObserver):
    """Builds the runner's outcomes and fills from what the driver does."""

    def __init__(self, runner: OfflineRunner) -> None:
        self.runner = runner
        self.touched: list[Outcome] = []
        self.activity = 0  # counts decisions with outcomes or intents, reports and order updates

    def decision(self, decision: Decision, received: float | None) -> None:
        outcomes = self.runner.recorder.record(decision.trace, decision.intents)
        if outcomes or decision.intents:
            self.activity += 1
        self.touched.extend(outcomes)

    def report(self, intent: Intent | None, report: ExecutionReport) -> None:
        self.activity += 1
        if isinstance(intent, PlaceOrder):
            self.runner._traded(intent.pair)
            self.runner._remember_order(intent, report)
        elif isinstance(intent, FuturesSendOrder):
            self.runner._remember_futures_order(intent, report)

    def order_update(self, update: OrderUpdate) -> None:
        self.activity += 1
        self.runner._traded(update.pair)
        self.runner._note_order(update)



def _candle_tick(time: float, symbol: str, price: Decimal) -> Tick:
    return make_tick(symbol, "spot", time, price, price, price, None)


def _scratch() -> str | None:
    """A memory-backed folder for the run's throwaway state where the system has one."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
