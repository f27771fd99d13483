"""The paper executor: intents against a `PaperExchange`, exactly as the simulator runs them.

Pure and synchronous: no I/O, no clock (time comes in as `now` / `tick.time`). Dry-run,
replay and rule unit tests share it.

- `PlaceOrder` is encoded into the AddOrder it would send (`kraken.order_codec`, the
  report's `request`), read back with the simulator's own parser and placed: a market
  order fills at once at the current paper price, a limit order that is not marketable
  rests until `observe` moves the price through it (maker fill at its limit price), stops
  trigger when the price crosses them. No price seen yet for
  the pair: a market order is refused with `EService:Unavailable`, as the simulator does.
- `CancelOrder` / `CancelAll` / `DeadManSwitch` act on the paper orders.
- `ReadBalance` answers from the paper wallet in Kraken's Balance format.
- Futures intents run on the paper Futures account when there is one (`futures`, a
  `PaperFutures`: dry-run has one); without it (replay, rule tests) they are reported as
  would-send with `simulated: false` and no order id, and a Futures balance read is refused.
- `Log` / `Notify` are answered ok (the caller logs or notifies).

Every report's `request` is what would be sent to Kraken and its `response` is marked
`"would_send": true`. `observe(tick)` feeds the tick's price to the exchange and returns
an `OrderUpdate` per order whose status changed (fills, expiries, dead man's switch) and a
full `BalanceUpdate` after any fill, for the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.events import BalanceUpdate, Event, OrderUpdate, Tick
from rules_engine.execution.account import account_report
from rules_engine.execution.paper_futures import PaperFutures
from rules_engine.execution.report import ExecutionReport, describe_error, failure, ok, refused
from rules_engine.kraken.order_codec import KrakenRequest, cancel_targets, intent_request
from rules_engine.pairs import PairRegistry
from rules_engine.paper.add_order import iso_seconds, parse_add_order
from rules_engine.paper.assets import Assets
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.exchange import PaperExchange
from rules_engine.paper.fees import FeeSchedule
from rules_engine.paper.orders import Order, describe


class PaperExecutor:
    """Runs intents on one account of a `PaperExchange`. Not thread-safe: one caller."""

    mode = "paper"

    def __init__(self, exchange: PaperExchange, account: str = "paper", futures: PaperFutures | None = None):
        self.exchange = exchange
        self.account = account
        self.futures = futures

    # ------------------------------------------------------------------ Executor API

    def execute(self, intent: it.Intent, now: float) -> ExecutionReport:
        """Run one intent on the paper exchange; never raises."""
        encoded = intent_request(intent)
        request = encoded.record() if encoded is not None else None
        try:
            before = self._mark()
            futures_before = self.futures.mark() if self.futures is not None else {}
            result, response = self._run(intent, now, encoded)
            placed = result.data.get("txid", [None])[0] if isinstance(intent, it.PlaceOrder) else None
            events = self._events(before, now, skip=placed)
            if self.futures is not None:
                events += self.futures.events(futures_before, now, placed=result.data.get("order_id"))
        except Exception as exc:  # an executor never raises: the error becomes the result
            text, _, _ = describe_error(exc)
            return ExecutionReport(failure(intent, now, exc), request, {"would_send": True, "error": [text]})
        return ExecutionReport(result, request, {"would_send": True, **response}, tuple(events))

    def observe(self, tick: Tick) -> list[Event]:
        """Apply a tick: time passes (expiries, dead man's switch), then a spot tick's price
        (last, else mid) moves the market. Returns the resulting order and balance events."""
        futures = self.futures.observe(tick) if self.futures is not None else []
        exchange = self.exchange
        price = tick.last if tick.last is not None else tick.mid
        spot_price = price if tick.market == "spot" and price is not None and price > 0 else None
        if exchange.idle:  # nothing open, no dead man's switch: the tick only sets the price
            if spot_price is not None:
                exchange.note_price(tick.symbol, spot_price)
            return futures
        before = self._mark()
        exchange.advance(tick.time)
        if spot_price is not None and exchange.pairs.get(tick.symbol):
            exchange.on_price(tick.symbol, spot_price, tick.time)
        return self._events(before, tick.time) + futures

    def advance(self, now: float) -> list[Event]:
        """Let time pass with no price change (expiries, scheduled starts, dead man's switch)."""
        if self.exchange.idle and (self.futures is None or self.futures.exchange.idle):
            return []  # nothing open, no dead man's switch: time changes nothing
        before = self._mark()
        self.exchange.advance(now)
        futures = self.futures.advance(now) if self.futures is not None else []
        return self._events(before, now) + futures

    def read_account(self, now: float) -> ExecutionReport:
        """The paper wallet's balances and open orders."""
        orders = [_order_update(o, now) for o in self.exchange.open_orders(self.account)]
        if self.futures is not None:
            orders += self.futures.open_orders(now)
        balances = self.balances()
        request = {"api": "paper", "method": "Balance+OpenOrders", "params": {}}
        response = {"would_send": True, "result": {"balances": balances, "open": [o.txid for o in orders]}}
        return account_report(now, balances, orders, request, response)

    def reconcile(self, decision: Any, now: float | None = None) -> ExecutionReport:
        """Settle a decision left `sent`/`unknown` by a crash: find its order by client id.
        `decision` is a state-store `OrderRecord`; `now` defaults to its last update."""
        return reconcile_paper(self, decision, decision.updated_at if now is None else now)

    def close(self) -> None:
        """Nothing to release."""

    def find(self, cl_ord_id: str) -> Order | None:
        """The account's latest order with this client order id, open or closed."""
        for order in reversed(self.exchange.orders.values()):
            if order.account == self.account and order.cl_ord_id == cl_ord_id:
                return order
        return None

    def balances(self) -> dict[str, str]:
        """The wallet in Kraken's Balance format (`{"ZUSD": "1000.0000", ...}`)."""
        return {k: Assets.fmt(k, v) for k, v in sorted(self.exchange.balances(self.account).items())}

    # ------------------------------------------------------------------ persistence

    def prune(self, keep_closed: int) -> int:
        """Forget all but the last `keep_closed` closed orders (and their trades), so the
        wallet stays small; returns how many were dropped. Open orders are always kept."""
        orders = self.exchange.orders
        closed = [txid for txid, order in orders.items() if not order.is_open]
        extra = len(closed) - max(0, keep_closed)
        for txid in closed[: max(0, extra)]:
            for trade_id in orders.pop(txid).trades:
                self.exchange.trades.pop(trade_id, None)
        return max(0, extra)

    def snapshot(self, keep_closed: int = 1000) -> dict[str, Any]:
        data = {"account": self.account, "exchange": self.exchange.snapshot()}
        if self.futures is not None:
            data["futures"] = self.futures.snapshot(keep_closed)
        return data

    @classmethod
    def from_snapshot(
        cls, data: Mapping[str, Any], pairs: PairRegistry | None = None, fees: FeeSchedule | None = None
    ) -> PaperExecutor:
        futures = PaperFutures.from_snapshot(data["futures"], pairs) if data.get("futures") else None
        return cls(PaperExchange.from_snapshot(data["exchange"], pairs, fees), data["account"], futures)

    # ------------------------------------------------------------------ intents

    def _run(self, intent: it.Intent, now: float, encoded: KrakenRequest | None) -> tuple[Any, dict[str, Any]]:
        if self.futures is not None and self.futures.handles(intent):
            return self.futures.run(intent, now, encoded)
        if isinstance(intent, it.PlaceOrder) and encoded is not None:
            return self._place(intent, now, encoded)
        if isinstance(intent, it.CancelOrder):
            return self._cancel(intent, now)
        if isinstance(intent, it.CancelAll) and intent.market != "futures":
            count = len(self.exchange.cancel_all(self.account, now))
            return ok(intent, now, {"count": count}), {"result": {"count": count}}
        if isinstance(intent, it.DeadManSwitch):
            trigger = self.exchange.cancel_all_after(self.account, intent.timeout, now)
            data = {"currentTime": iso_seconds(now), "triggerTime": "0" if trigger is None else iso_seconds(trigger)}
            return ok(intent, now, data), {"result": data}
        if isinstance(intent, it.ReadBalance):
            if intent.market == "futures":
                return refused(intent, now, "paper wallet has no Futures account", "NotSimulated"), {}
            balances = self.balances()
            return ok(intent, now, {"balances": balances}), {"result": balances}
        if isinstance(intent, (it.FuturesSendOrder, it.FuturesCancelOrder, it.CancelAll)):
            return ok(intent, now, {"would_send": True, "simulated": False}), {"simulated": False}
        if isinstance(intent, (it.Log, it.Notify)):
            return ok(intent, now), {}
        return refused(intent, now, f"unsupported intent {intent.kind!r}", "UnsupportedIntent"), {}

    def _place(self, intent: it.PlaceOrder, now: float, encoded: KrakenRequest) -> tuple[Any, dict[str, Any]]:
        """Place the order the encoded AddOrder describes, read as the simulator reads it."""
        request = parse_add_order(encoded.params, self.exchange, now)
        order, fills = self.exchange.place(self.account, request, now)
        result = {"descr": {"order": describe(request, self.exchange.pair(request.pair))}, "txid": [order.txid]}
        paper = {"status": order.status, "fills": [f.to_json() for f in fills]}
        return ok(intent, now, {"txid": [order.txid]}), {"result": result, "paper": paper}

    def _cancel(self, intent: it.CancelOrder, now: float) -> tuple[Any, dict[str, Any]]:
        """Cancel every target; an order already gone (unknown) is listed, not an error."""
        count, unknown = 0, []
        for target in cancel_targets(intent):
            try:
                if "txid" in target:
                    count += len(self.exchange.cancel(self.account, now, txid=target["txid"]))
                else:
                    count += len(self.exchange.cancel(self.account, now, cl_ord_id=target["cl_ord_id"]))
            except ExchangeError as exc:
                if exc.error != "EOrder:Unknown order":
                    raise
                unknown.append(next(iter(target.values())))
        data: dict[str, Any] = {"count": count}
        if unknown:
            data["unknown"] = unknown
        return ok(intent, now, data), {"result": data}

    # ------------------------------------------------------------------ events

    def _mark(self) -> tuple[dict[str, str], int]:
        """Statuses of the open orders and the order count, to diff against afterwards."""
        return {o.txid: o.status for o in self.exchange.open_orders(self.account)}, len(self.exchange.orders)

    def _events(self, before: tuple[dict[str, str], int], now: float, skip: str | None = None) -> list[Event]:
        """An OrderUpdate per order that changed or appeared (except `skip`, the order the
        result already reports, while it rests), and a BalanceUpdate if anything filled."""
        statuses, count = before
        orders = self.exchange.orders
        changed = [orders[t] for t, status in statuses.items() if orders[t].status != status]
        new_count = len(orders) - count
        if new_count:
            fresh = []
            for order in reversed(orders.values()):
                fresh.append(order)
                if len(fresh) == new_count:
                    break
            changed += [o for o in reversed(fresh) if o.account == self.account]
        events: list[Event] = [
            _order_update(o, now) for o in changed if not (o.txid == skip and o.is_open)
        ]
        if any(o.vol_exec > 0 for o in changed):
            balances = self.exchange.balances(self.account)
            events.append(BalanceUpdate(balances=balances, time=now, snapshot=True))
        return events


def _order_update(order: Order, now: float) -> OrderUpdate:
    return OrderUpdate(
        time=now,
        status=order.status,
        txid=order.txid,
        cl_ord_id=order.cl_ord_id,
        pair=order.pair,
        market="spot",
        volume=order.volume,
        filled=order.vol_exec,
        price=order.avg_price if order.vol_exec > 0 else order.price,
    )


def reconcile_paper(executor: PaperExecutor, decision: Any, now: float) -> ExecutionReport:
    """Look a decision's order up on the paper exchange by its `cl_ord_id`.

    Found: the result reports its txid and Kraken status (as a lookup on Kraken would),
    with an OrderUpdate. Not found: the order never reached the paper exchange, so it was
    not placed (`error_class: OrderNotPlaced`); nothing is sent again.
    """
    intent_id = str(decision.intent.get("intent_id") or decision.cl_ord_id)
    request = {"api": "paper", "method": "lookup", "params": {"cl_ord_id": decision.cl_ord_id}}
    if decision.intent.get("kind") == "futures_send_order" and executor.futures is not None:
        return executor.futures.reconcile(decision, now)
    if decision.intent.get("kind") != "place_order":
        result = refused(intent_id, now, "futures orders are not simulated on the paper wallet", "OrderNotPlaced")
        return ExecutionReport(result, request, {"would_send": True, "found": False})
    order = executor.find(decision.cl_ord_id)
    if order is None:
        result = refused(intent_id, now, "order not found on the paper wallet: it was not placed", "OrderNotPlaced")
        return ExecutionReport(result, request, {"would_send": True, "found": False})
    result = ok(intent_id, now, {"txid": [order.txid], "recovered": True, "status": order.status})
    response = {"would_send": True, "found": True, "txid": [order.txid], "status": order.status}
    return ExecutionReport(result, request, response, (_order_update(order, now),))
