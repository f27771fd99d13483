"""The offline loop: the engine's pure core fed from a file, with simulated fills.

`rules-engine test` and `rules-engine replay` both run their inputs through `OfflineRunner`,
so a rule behaves the same in a unit test, in a replay and (with the same executor) in a
dry run. For each input event, in time order:

1. everything due strictly before the event's time is delivered first, in time order: timer
   beats (each timer's next slot from `rules_engine.schedule.next_fire`, the first one strictly
   after the start) and `Clock` events at `engine.next_deadline()` (holds maturing,
   cooldowns ending); the paper exchange is advanced to that time too (expiries, the dead
   man's switch). Something due at the event's own time comes after the event (the engine
   resolves a due hold or cooldown on any event, so the hold sees that moment's prices);
2. a tick first moves the paper market (`PaperExecutor.observe`): resting orders it reaches
   fill, and those fills reach the engine as `OrderUpdate` / `BalanceUpdate` events;
3. the event goes to the engine; every intent of the decision is executed on the paper
   exchange at that time; each `ActionResult` (for intents that await one) and the
   executor's follow-up events go back into the engine, until nothing is left.

Nothing reads a clock: a run is a pure function of its inputs, so it is deterministic.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from rules_engine.core import Engine, PlaceOrder, RiskLimits
from rules_engine.core.events import BalanceUpdate, Clock, Event, OrderUpdate, Tick, TimerBeat
from rules_engine.core.model import RuleSet
from rules_engine.execution.paper import PaperExecutor
from rules_engine.paper.exchange import PaperExchange
from rules_engine.paper.orders import Order, OrderRequest
from rules_engine.replay.outcomes import FillRecord, Outcome, OutcomeRecorder
from rules_engine.schedule import next_fire
from rules_engine.triggers.timer import TimerTrigger

ACCOUNT = "paper"


class OfflineRunner:
    """Run a rule set over timed input events against a paper wallet.

    `wallet` seeds the paper exchange (any asset spelling: `USD`, `ZUSD`); the engine sees it
    as a full balance snapshot at `start`. `timers=False` leaves timer beats to the inputs.
    `on_outcome` is called once for every outcome when it is settled (after the input event
    that produced it has been fully processed).
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
    ):
        self.exchange = exchange if exchange is not None else PaperExchange()
        self.exchange.set_balances(ACCOUNT, dict(wallet or {}))
        self.executor = PaperExecutor(self.exchange, ACCOUNT)
        self.engine = Engine(ruleset, limits, balance_max_age=balance_max_age)
        self.recorder = OutcomeRecorder()
        self.fills: list[FillRecord] = []
        self.now = start
        self._on_outcome = on_outcome
        self._by_order: dict[str, Outcome] = {}  # cl_ord_id and txid -> the fire that placed it
        self._filled: set[str] = set()
        self._timers: list[tuple[float, int, int, str, TimerTrigger]] = []
        if timers:
            for rank, rule in enumerate(ruleset.rules):
                if not rule.enabled:
                    continue
                for index, trigger in enumerate(rule.triggers):
                    if isinstance(trigger, TimerTrigger):
                        self._timers.append((next_fire(trigger, start), rank, index, rule.id, trigger))
            heapq.heapify(self._timers)
        self._deliver([BalanceUpdate(self.exchange.balances(ACCOUNT), start, snapshot=True)])

    @property
    def outcomes(self) -> list[Outcome]:
        return self.recorder.outcomes

    def balances(self) -> dict[str, Decimal]:
        """The paper wallet's total balances (held amounts included), by Kraken asset code."""
        return self.exchange.balances(ACCOUNT)

    def open_orders(self) -> list[Order]:
        return self.exchange.open_orders(ACCOUNT)

    def place_order(self, request: OrderRequest) -> Order:
        """Put an order on the paper exchange now, as if placed outside the rules (the engine
        learns of it as an open order). Raises the exchange's `KrakenError` if refused."""
        order, _ = self.exchange.place(ACCOUNT, request, self.now)
        update = OrderUpdate(self.now, order.status, txid=order.txid, cl_ord_id=order.cl_ord_id, pair=order.pair,
                             volume=order.volume, price=order.price)
        self._deliver([update] + self.executor.advance(self.now))
        return order

    def set_balances(self, balances: Mapping[str, Decimal | str], time: float) -> None:
        """Set paper balances at `time` (other assets keep theirs); the engine sees the wallet."""
        self.advance_to(time)
        self.exchange.set_balances(ACCOUNT, dict(balances))
        wallet = BalanceUpdate(self.exchange.balances(ACCOUNT), max(time, self.now), snapshot=True)
        self._deliver(self.executor.advance(time) + [wallet])

    def feed(self, event: Event) -> None:
        """Deliver one input event (after everything due before its time)."""
        self.advance_to(event.time)
        if isinstance(event, Tick):
            self._deliver(self.executor.observe(event) + [event])
        else:
            self._deliver([event])

    def feed_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.feed(event)

    def advance_to(self, until: float, inclusive: bool = False) -> None:
        """Deliver the timer beats and `Clock` events due before `until` (or at it, if inclusive)."""
        timers = self._timers
        while True:
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= self.now:
                deadline = None  # already due: the next event resolves it
            slot = timers[0][0] if timers else None
            if slot is not None and (deadline is None or slot <= deadline):
                if slot > until or (slot == until and not inclusive):
                    return
                beats: list[Event] = []
                while timers and timers[0][0] == slot:
                    _, rank, index, rule_id, trigger = heapq.heappop(timers)
                    beats.append(TimerBeat(rule_id, index, slot, scheduled_time=slot))
                    heapq.heappush(timers, (next_fire(trigger, slot), rank, index, rule_id, trigger))
                self._deliver(self.executor.advance(slot) + beats)
            elif deadline is not None and (deadline < until or (deadline == until and inclusive)):
                self._deliver(self.executor.advance(deadline) + [Clock(deadline)])
            else:
                return

    def finish(self, until: float | None = None) -> None:
        """Let time run to `until` (default: the last event's time)."""
        end = self.now if until is None else max(until, self.now)
        self.advance_to(end, inclusive=True)
        self._deliver(self.executor.advance(end) + [Clock(end)])

    # ------------------------------------------------------------------ internals

    def _deliver(self, events: list[Event]) -> None:
        """Feed events to the engine; execute intents and feed their results back."""
        queue = deque(events)
        touched: list[Outcome] = []
        engine, executor, recorder = self.engine, self.executor, self.recorder
        while queue:
            event = queue.popleft()
            if event.time > self.now:
                self.now = event.time
            if type(event) is OrderUpdate:
                self._note_fill(event)
            decision = engine.handle(event)
            if not decision.trace and not decision.intents:
                continue
            touched.extend(recorder.record(decision.trace, decision.intents))
            for intent in decision.intents:
                report = executor.execute(intent, self.now)
                if isinstance(intent, PlaceOrder):
                    self._remember_order(intent, report.result.data)
                if intent.awaits_result:
                    queue.append(report.result)
                queue.extend(report.events)
        if touched:
            self._settle(touched)

    def _remember_order(self, intent: PlaceOrder, data: Mapping[str, object]) -> None:
        outcome = self.recorder.decision(intent.decision_id or "")
        if outcome is None:
            return
        self._by_order[intent.cl_ord_id] = outcome
        txids = data.get("txid")
        if isinstance(txids, list):
            for txid in txids:
                self._by_order[str(txid)] = outcome

    def _note_fill(self, update: OrderUpdate) -> None:
        if update.status != "closed" or not update.filled or update.txid is None or update.txid in self._filled:
            return
        self._filled.add(update.txid)
        order = self.exchange.orders.get(update.txid)
        if order is None:
            return
        outcome = self._by_order.get(order.cl_ord_id or "") or self._by_order.get(order.txid)
        if outcome is None and order.parent is not None:  # a conditional close placed by the fill of a rule's order
            outcome = self._by_order.get(order.parent)
            if outcome is not None:
                self._by_order[order.txid] = outcome
        fill = FillRecord(update.time, order.txid, order.cl_ord_id, order.pair, order.side, order.ordertype,
                          order.vol_exec, order.avg_price, order.fee,
                          outcome.rule_id if outcome else None, outcome.decision_id if outcome else None)
        self.fills.append(fill)
        if outcome is not None:
            outcome.fills.append(fill)

    def _settle(self, touched: list[Outcome]) -> None:
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
