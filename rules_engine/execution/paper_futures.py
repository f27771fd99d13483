"""The paper Futures account of dry-run: Futures intents on the simulator's own matcher
(`paper.futures.FuturesExchange`), as spot dry-run runs the paper exchange.

- `FuturesSendOrder` is encoded into the sendorder it would send (`kraken.order_codec`),
  read back with the same decoder the simulator uses and sent to the exchange: a market
  order fills at the mark, a limit order rests until the mark reaches it, stops trigger; a
  refusal (`insufficientAvailableFunds`, `invalidPrice`, ...) is the result, as live.
- `FuturesCancelOrder`, `CancelAll` (market futures) act on the paper Futures orders;
  `ReadBalance` (market futures) answers from its collateral.
- `observe(tick)`: the mark of a perpetual is the last price seen for it or its underlying
  spot pair (`PF_XBTUSD` follows `XBTUSD`); fills come back as `OrderUpdate`s.
- `find(cli_ord_id)` settles a decision a crash left unresolved.
The collateral starts from the engine config's `paper_wallet.futures_balances` and the whole
account is saved with the spot wallet (`snapshot` / `restore`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.events import Event, OrderUpdate, Tick
from rules_engine.execution.report import ExecutionReport, ok, refused
from rules_engine.kraken.order_codec import KrakenRequest, decode_send_order, futures_cancel_targets
from rules_engine.pairs import PairRegistry, default_registry
from rules_engine.paper.futures import FuturesExchange, FuturesOrder, default_products

ACCOUNT = "paper"
_PLACED = frozenset({"placed", "filled"})


class PaperFutures:
    """One paper Futures account. Not thread-safe: the dry-run executor holds its lock."""

    def __init__(self, exchange: FuturesExchange, account: str = ACCOUNT):
        self.exchange = exchange
        self.account = account

    @classmethod
    def create(cls, balances: Mapping[str, Decimal | str], pairs: PairRegistry | None = None) -> PaperFutures:
        exchange = FuturesExchange(default_products(pairs or default_registry()))
        for currency, amount in balances.items():
            exchange.set_collateral(ACCOUNT, currency, amount)
        return cls(exchange)

    # ------------------------------------------------------------------ intents

    def handles(self, intent: it.Intent) -> bool:
        if isinstance(intent, (it.FuturesSendOrder, it.FuturesCancelOrder)):
            return True
        return isinstance(intent, (it.CancelAll, it.ReadBalance)) and intent.market == "futures"

    def run(self, intent: it.Intent, now: float, encoded: KrakenRequest | None) -> tuple[Any, dict[str, Any]]:
        """(result, response) of a Futures intent (see `handles`)."""
        if isinstance(intent, it.FuturesSendOrder) and encoded is not None:
            return self._send(intent, now, encoded)
        if isinstance(intent, it.FuturesCancelOrder):
            count, unknown = 0, []
            for target in futures_cancel_targets(intent):
                order = self.exchange.cancel(self.account, now, order_id=target.get("order_id"),
                                             cli_ord_id=target.get("cliOrdId"))
                if order is None:
                    unknown.append(next(iter(target.values())))
                else:
                    count += 1
            data: dict[str, Any] = {"count": count, **({"unknown": unknown} if unknown else {})}
            return ok(intent, now, data), {"result": data}
        if isinstance(intent, it.CancelAll):
            count = len(self.exchange.cancel_all(self.account, now))
            return ok(intent, now, {"count": count}), {"result": {"count": count}}
        balances = self.balances()
        return ok(intent, now, {"balances": balances}), {"result": balances}

    def _send(self, intent: it.FuturesSendOrder, now: float, encoded: KrakenRequest) -> tuple[Any, dict[str, Any]]:
        order = decode_send_order(encoded.params)
        if self.exchange.product(order.symbol) is None:
            return refused(intent, now, f"no paper Futures product {order.symbol}", "InvalidArguments"), {}
        sent = self.exchange.send_order(
            self.account, symbol=order.symbol, side=order.side, order_type=order.order_type, size=order.size,
            now=now, limit_price=order.limit_price, stop_price=order.stop_price, cli_ord_id=order.cli_ord_id,
            reduce_only=bool(order.reduce_only))
        status = {"order_id": sent.order.order_id, "status": sent.status, "cliOrdId": order.cli_ord_id}
        response = {"sendStatus": status, "paper": {"fills": [_fill_json(f) for f in sent.fills]}}
        if sent.status not in _PLACED:
            return refused(intent, now, sent.status, "OrderRejected", order_id=sent.order.order_id), response
        return ok(intent, now, {"order_id": sent.order.order_id, "status": sent.status}), response

    def balances(self) -> dict[str, str]:
        """The collateral in the shape live mode reads from `accounts` (`{"USD": "1000.0"}`)."""
        return {currency: str(amount) for currency, amount in sorted(self.exchange.collateral(self.account).items())}

    # ------------------------------------------------------------------ time and prices

    def mark(self) -> dict[str, str]:
        """Statuses of the open orders, to diff against afterwards."""
        return {o.order_id: o.status for o in self.exchange.open_orders(self.account)}

    def events(self, before: Mapping[str, str], now: float, placed: str | None = None) -> list[Event]:
        """An OrderUpdate per order that changed since `before`, and for the order just
        `placed` if it filled at once (one that rests is reported by the result)."""
        orders = self.exchange.orders
        changed = [orders[i] for i, status in before.items() if orders[i].status != status]
        if placed is not None and placed in orders and placed not in before and not orders[placed].is_open:
            changed.append(orders[placed])
        return [_order_update(o, now) for o in changed]

    def observe(self, tick: Tick) -> list[Event]:
        price = tick.last if tick.last is not None else tick.mid
        if price is None or price <= 0:
            return []
        if tick.market == "futures":
            product = self.exchange.product(tick.symbol)
            underlying = product.underlying if product is not None else None
        else:
            underlying = tick.symbol if self.exchange.products_of(tick.symbol) else None
        if underlying is None:
            return []
        if self.exchange.idle:  # nothing can change but the mark
            self.exchange.on_spot_price(underlying, price, tick.time)
            return []
        before = self.mark()
        self.exchange.on_spot_price(underlying, price, tick.time)
        return self.events(before, tick.time)

    def advance(self, now: float) -> list[Event]:
        before = self.mark()
        self.exchange.advance(now)
        return self.events(before, now)

    def open_orders(self, now: float) -> list[OrderUpdate]:
        return [_order_update(o, now) for o in self.exchange.open_orders(self.account)]

    def find(self, cli_ord_id: str) -> FuturesOrder | None:
        for order in reversed(self.exchange.orders.values()):
            if order.account == self.account and order.cli_ord_id == cli_ord_id:
                return order
        return None

    def reconcile(self, decision: Any, now: float) -> ExecutionReport:
        """Look a Futures decision's order up by its `cliOrdId` (not found: never placed)."""
        intent_id = str(decision.intent.get("intent_id") or decision.cl_ord_id)
        request = {"api": "paper", "method": "lookup", "params": {"cliOrdId": decision.cl_ord_id}}
        order = self.find(decision.cl_ord_id)
        if order is None:
            result = refused(intent_id, now, "order not found on the paper Futures account: it was not placed",
                             "OrderNotPlaced")
            return ExecutionReport(result, request, {"would_send": True, "found": False})
        status = "placed" if order.is_open else order.status
        result = ok(intent_id, now, {"order_id": order.order_id, "recovered": True, "status": status})
        response = {"would_send": True, "found": True, "order_id": order.order_id, "status": order.status}
        return ExecutionReport(result, request, response, (_order_update(order, now),))

    # ------------------------------------------------------------------ persistence

    def snapshot(self, keep_closed: int = 1000) -> dict[str, Any]:
        return {"account": self.account, "exchange": self.exchange.snapshot(keep_closed)}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], pairs: PairRegistry | None = None) -> PaperFutures:
        paper = cls.create({}, pairs)
        paper.account = data["account"]
        paper.exchange.restore(data["exchange"])
        return paper


def _order_update(order: FuturesOrder, now: float) -> OrderUpdate:
    status = "open" if order.is_open else order.status
    return OrderUpdate(time=now, status=status, txid=order.order_id, cl_ord_id=order.cli_ord_id, pair=order.symbol,
                       market="futures", volume=order.size, filled=order.filled,
                       price=order.limit_price or order.stop_price)


def _fill_json(fill: Any) -> dict[str, Any]:
    return {"fill_id": fill.fill_id, "order_id": fill.order_id, "price": str(fill.price), "size": str(fill.size),
            "fee": str(fill.fee), "fillType": "maker" if fill.maker else "taker"}
