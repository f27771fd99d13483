"""Live: real signed orders on Kraken Spot (and Futures, when its key is configured).

Every intent type is sent through the REST clients, which sign under the key's nonce
lock, respect the rate limits and retry only what is safe to repeat. An order's request is
encoded once (`kraken.order_codec.intent_request`, with its deadline): the report's
`request` (the audit record) is that request, and the client sends exactly its parameters.

- `PlaceOrder` -> AddOrder with the decision's deterministic `cl_ord_id` and a `deadline`
  (`order_deadline` seconds ahead, 15 by default; Kraken allows 2 to 60), through the
  client's at-most-once placement: after a timeout or an ambiguous error the client waits
  for the deadline, looks the order up by `cl_ord_id` (OpenOrders, then ClosedOrders) and
  never resends. Found: success with `recovered: true`. Not found after the deadline: proven
  absent, `ok=False` with `error_class: OrderNotPlaced` (the core decides anew if its rule
  fires again). Lookup failed: `error_class: OrderStateUnknown`, `ambiguous: true`; the
  dispatcher records the decision as `unknown` and the next start looks it up again.
- `FuturesSendOrder` -> sendorder with `cliOrdId` and `processBefore`, the same way; only a
  `sendStatus` of `placed`, `partiallyFilled` or `filled` is a success. A restart looks an
  unsettled one up among the open orders, then with `orders/status`, which also names orders
  filled or cancelled in the last 5 seconds (settled as filled / cancelled).
- `CancelOrder` / `FuturesCancelOrder` cancel each listed order; an order that is already
  gone is listed under `unknown`, not an error. `CancelAll`, `DeadManSwitch`
  (CancelAllOrdersAfter), `ReadBalance` (Balance, or Futures accounts) as named.

Errors become results with Kraken's string, `error_class` and `retry_safe` (see
`report.failure`); nothing raises out of `execute`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.events import Event, OrderUpdate, Tick
from rules_engine.execution.account import read_kraken_account
from rules_engine.execution.base import run_local
from rules_engine.execution.report import ExecutionReport, describe_error, failure, ok, refused
from rules_engine.kraken import errors as kraken_errors
from rules_engine.kraken.futures_rest import FuturesClient
from rules_engine.kraken.order_codec import KrakenRequest, cancel_targets, futures_cancel_targets, intent_request
from rules_engine.kraken.params import rfc3339_at
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.redact import redact

FUTURES_PLACED = frozenset({"placed", "partiallyFilled", "filled"})
FUTURES_STATUSES = {"ENTERED_BOOK": "placed", "TRIGGER_PLACED": "placed", "FULLY_EXECUTED": "filled",
                    "CANCELLED": "cancelled", "TRIGGER_ACTIVATION_FAILURE": "cancelled"}
"""`orders/status` statuses -> the order statuses the dispatcher reads (`order_status`)."""


def spot_order_update(txid: str, order: Mapping[str, Any], now: float) -> OrderUpdate:
    """An OrderUpdate from a Kraken order record (OpenOrders/ClosedOrders/QueryOrders)."""
    descr = order.get("descr") or {}
    executed = _decimal(order.get("vol_exec"))
    price = _decimal(order.get("price")) if executed else _decimal(descr.get("price"))
    return OrderUpdate(
        time=now, status=str(order.get("status", "open")), txid=txid, cl_ord_id=order.get("cl_ord_id"),
        pair=descr.get("pair"), market="spot", volume=_decimal(order.get("vol")), filled=executed,
        price=price or None,
    )


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value in (None, "") else Decimal(str(value))
    except ArithmeticError:
        return None


class LiveExecutor:
    """Real orders. `futures` may be None (no Futures key): Futures intents are refused."""

    mode = "live"
    concurrent = True  # thread-safe clients: dispatches may run side by side (one lane per pair)

    def __init__(
        self,
        spot: SpotClient,
        futures: FuturesClient | None = None,
        *,
        order_deadline: float = 15.0,
        clock: Callable[[], float] = time.time,
    ):
        if not 2 <= order_deadline <= 60:
            raise ValueError("order_deadline must be 2 to 60 seconds (Kraken's range)")
        self.spot = spot
        self.futures = futures
        self.order_deadline = order_deadline
        self.clock = clock  # Kraken's clock as this engine knows it: order deadlines and their lookups
        self._proven_after: dict[str, tuple[float, float]] = {}  # cl_ord_id -> (its send time, proof time)

    def _deadline(self) -> str:
        return rfc3339_at(self.clock() + self.order_deadline)

    # ------------------------------------------------------------------ execute

    def execute(self, intent: it.Intent, now: float) -> ExecutionReport:
        if isinstance(intent, (it.Log, it.Notify)):
            return run_local(intent, now)
        encoded = intent_request(intent, deadline=self._deadline())
        request = encoded.record() if encoded is not None else None
        try:
            report = self._run(intent, now, encoded, request)
        except Exception as exc:  # never raise: the error is the result
            text, _, _ = describe_error(exc)
            return ExecutionReport(failure(intent, now, exc), request, {"error": [redact(text)]})
        return report

    def _run(self, intent: it.Intent, now: float, encoded: KrakenRequest | None,
             request: dict[str, Any] | None) -> ExecutionReport:
        """Carry out `intent`; an order is sent as `encoded`, the request the audit records."""
        if isinstance(intent, it.PlaceOrder) and encoded is not None:
            placed = self.spot.place(encoded)
            data = {"txid": list(placed.txid), "recovered": placed.recovered}
            response = {"result": redact(dict(placed.raw)), "recovered": placed.recovered}
            return ExecutionReport(ok(intent, now, data), request, response)
        if isinstance(intent, it.CancelOrder):
            return self._cancel(intent, now, request, cancel_targets(intent), self._cancel_spot)
        if isinstance(intent, it.CancelAll):
            result = self._futures().cancel_all_orders() if intent.market == "futures" else self.spot.cancel_all()
            count = result.get("count", len(result.get("cancelledOrders") or ()))
            return ExecutionReport(ok(intent, now, {"count": count}), request, {"result": redact(result)})
        if isinstance(intent, it.DeadManSwitch):
            result = self.spot.cancel_all_orders_after(intent.timeout)
            return ExecutionReport(ok(intent, now, dict(result)), request, {"result": redact(result)})
        if isinstance(intent, it.FuturesSendOrder) and encoded is not None:
            return self._send_futures(intent, now, encoded, request)
        if isinstance(intent, it.FuturesCancelOrder):
            self._futures()
            return self._cancel(intent, now, request, futures_cancel_targets(intent), self._cancel_futures)
        if isinstance(intent, it.ReadBalance):
            if intent.market == "futures":
                balances = futures_balances(self._futures().accounts())
            else:
                balances = dict(self.spot.balance())
            return ExecutionReport(ok(intent, now, {"balances": balances}), request, {"result": balances})
        return ExecutionReport(refused(intent, now, f"unsupported intent {intent.kind!r}", "UnsupportedIntent"),
                               request)

    def _futures(self) -> FuturesClient:
        if self.futures is None:
            raise kraken_errors.PermissionDenied(
                "no Kraken Futures credentials configured (futures_api_key_env / futures_api_secret_env)"
            )
        return self.futures

    def _cancel_spot(self, target: Mapping[str, str]) -> Any:
        if "txid" in target:
            return self.spot.cancel_order(target["txid"])
        return self.spot.cancel_order(cl_ord_id=target["cl_ord_id"])

    def _cancel_futures(self, target: Mapping[str, str]) -> Any:
        if "order_id" in target:
            return self._futures().cancel_order(target["order_id"])
        return self._futures().cancel_order(cli_ord_id=target["cliOrdId"])

    def _cancel(self, intent: it.Intent, now: float, request: Any, targets: list[dict[str, str]],
                cancel_one: Callable[[Mapping[str, str]], Any]) -> ExecutionReport:
        """Cancel each target in turn; an order already gone is listed under `unknown`.
        The first other error stops there and is the result (with the count so far)."""
        count, unknown = 0, []
        answers: list[dict[str, Any]] = []
        for target in targets:
            try:
                answer = cancel_one(target)
            except kraken_errors.UnknownOrder:
                unknown.append(next(iter(target.values())))
                answers.append({"target": target, "error": "unknown order"})
                continue
            except kraken_errors.KrakenError as exc:
                result = failure(intent, now, exc)
                answers.append({"target": target, "error": result.error})
                result = replace(result, data={**result.data, "count": count})
                return ExecutionReport(result, request, {"results": redact(answers)})
            count += int(answer.get("count", 1)) if isinstance(answer, Mapping) else 1
            answers.append({"target": target, "result": answer})
        data: dict[str, Any] = {"count": count}
        if unknown:
            data["unknown"] = unknown
        return ExecutionReport(ok(intent, now, data), request, {"results": redact(answers)})

    def _send_futures(self, intent: it.FuturesSendOrder, now: float, encoded: KrakenRequest,
                      request: Any) -> ExecutionReport:
        sent = self._futures().place(encoded)
        response = {"sendStatus": redact(dict(sent.raw)), "recovered": sent.recovered}
        if sent.status not in FUTURES_PLACED:
            result = refused(intent, now, sent.status, "OrderRejected", order_id=sent.order_id)
            return ExecutionReport(result, request, response)
        data = {"order_id": sent.order_id, "status": sent.status, "recovered": sent.recovered}
        events: tuple[Event, ...] = ()
        if sent.status == "filled":
            events = (OrderUpdate(time=now, status="filled", txid=sent.order_id, cl_ord_id=intent.cli_ord_id,
                                  pair=intent.symbol, market="futures", volume=intent.size, filled=intent.size),)
        return ExecutionReport(ok(intent, now, data), request, response, events)

    # ------------------------------------------------------------------ the rest

    def observe(self, tick: Tick) -> list[Event]:
        """Nothing to simulate: fills come from Kraken (the executions feed)."""
        return []

    def advance(self, now: float) -> list[Event]:
        """Nothing to simulate: time passes on Kraken."""
        return []

    def websockets_token(self) -> str:
        """A token for Kraken's private WebSocket (REST GetWebSocketsToken)."""
        return str(self.spot.get_websockets_token()["token"])

    def read_account(self, now: float) -> ExecutionReport:
        """The account's spot balances and open orders."""
        futures = self.futures.open_orders if self.futures is not None else None
        return read_kraken_account(now, self.spot.balance, self.spot.open_orders, futures)

    def reconcile(self, decision: Any, now: float | None = None) -> ExecutionReport:
        now = self.clock() if now is None else now
        intent_id = str(decision.intent.get("intent_id") or decision.cl_ord_id)
        futures = decision.intent.get("kind") == "futures_send_order"
        request = {"api": "futures" if futures else "spot", "method": "lookup",
                   "params": {"cliOrdId" if futures else "cl_ord_id": decision.cl_ord_id}}
        try:
            if futures:
                return self._reconcile_futures(decision, intent_id, now, request)
            found = self.spot.find_order(decision.cl_ord_id)
        except Exception as exc:
            result = refused(intent_id, now, f"lookup failed: {describe_error(exc)[0]}", "OrderStateUnknown",
                             ambiguous=True)
            return ExecutionReport(result, request, {"error": [redact(str(exc))]})
        if found is None:
            return self._not_found(decision, intent_id, now, request)
        txid, order = found
        status = str(order.get("status", "open"))
        result = ok(intent_id, now, {"txid": [txid], "recovered": True, "status": status})
        response = {"found": True, "txid": [txid], "order": redact(order)}
        return ExecutionReport(result, request, response, (spot_order_update(txid, order, now),))

    def _reconcile_futures(self, decision: Any, intent_id: str, now: float, request: Any) -> ExecutionReport:
        """Look a Futures order up by `cliOrdId`: among the open orders, then with
        `orders/status` (open, or filled or cancelled in the last 5 seconds), then, if its
        answer was audited before the crash (`outcome["audited"]`, from the dispatcher), among
        the fills by its order id."""
        client, cl_ord_id = self._futures(), decision.cl_ord_id
        for order in client.open_orders():
            if order.get("cliOrdId") == cl_ord_id:
                data = {"order_id": order.get("order_id"), "recovered": True, "status": "placed"}
                return ExecutionReport(ok(intent_id, now, data), request, {"found": True, "order": redact(order)})
        for entry in client.orders_status(cli_ord_ids=[cl_ord_id]):
            order = entry.get("order") or {}
            if order.get("cliOrdId") == cl_ord_id:
                return self._futures_status(decision, intent_id, now, request, entry)
        audited = ((decision.outcome or {}).get("audited") or {}).get("data") or {}
        order_id = audited.get("order_id")
        if order_id:  # the answer was audited before the crash: its fills name its order id
            fills = [f for f in client.fills() if f.get("order_id") == order_id]
            if fills:
                size = sum((_decimal(f.get("size")) or Decimal(0) for f in fills), Decimal(0))
                data = {"order_id": order_id, "recovered": True, "status": "filled"}
                event = OrderUpdate(time=now, status="filled", txid=order_id, cl_ord_id=cl_ord_id,
                                    pair=fills[0].get("symbol"), market="futures", volume=size, filled=size)
                return ExecutionReport(ok(intent_id, now, data), request, {"found": True, "fills": redact(fills)},
                                       (event,))
        result = refused(intent_id, now, "not among the open Futures orders, nor filled or cancelled in the last "
                         "5 seconds (orders/status): never placed, or finished earlier; check the account's fills",
                         "OrderStateUnknown", ambiguous=True)
        return ExecutionReport(result, request, {"found": False})

    @staticmethod
    def _futures_status(decision: Any, intent_id: str, now: float, request: Any,
                        entry: Mapping[str, Any]) -> ExecutionReport:
        """The lookup's report for one `orders/status` entry."""
        order, kraken_status = entry.get("order") or {}, str(entry.get("status"))
        order_id = order.get("orderId") or order.get("order_id")
        response = {"found": True, "orders_status": redact(dict(entry))}
        if kraken_status == "REJECTED":
            result = refused(intent_id, now, f"rejected: {entry.get('error') or entry.get('updateReason')}",
                             "OrderRejected", order_id=order_id)
            return ExecutionReport(result, request, response)
        status = FUTURES_STATUSES.get(kraken_status, "placed")
        data = {"order_id": order_id, "recovered": True, "status": status}
        events: tuple[Event, ...] = ()
        if status in ("filled", "cancelled"):
            size, filled = _decimal(order.get("quantity")), _decimal(order.get("filled"))
            events = (OrderUpdate(time=now, status=status, txid=order_id, cl_ord_id=decision.cl_ord_id,
                                  pair=order.get("symbol"), market="futures", volume=size, filled=filled),)
        return ExecutionReport(ok(intent_id, now, data), request, response, events)

    def prove_absent_after(self, decisions: Iterable[Any], at: float) -> None:
        """`decisions`, in flight when a previous run or holder stopped, are proven never placed
        by a lookup that finds nothing once this engine's Kraken clock reaches `at`, even if
        their recorded send time (another clock's) looks later (`execution.deadlines`). A
        resend moves a decision's send time, so this proof does not cover the resend."""
        for decision in decisions:
            self._proven_after[decision.cl_ord_id] = (_sent_at(decision), at)

    def _not_found(self, decision: Any, intent_id: str, now: float, request: Any) -> ExecutionReport:
        sent_at = _sent_at(decision)
        sent, proof = self._proven_after.get(decision.cl_ord_id, (None, 0.0))
        if self.clock() <= sent_at + self.order_deadline + 1.0 and not (sent == sent_at and self.clock() >= proof):
            result = refused(intent_id, now, "not found yet: the order may still be in flight", "OrderStateUnknown",
                             ambiguous=True)
        else:
            result = refused(intent_id, now, "no order with this cl_ord_id on Kraken: it was not placed",
                             "OrderNotPlaced")
        return ExecutionReport(result, request, {"found": False})

    def close(self) -> None:
        self.spot.close()
        if self.futures is not None:
            self.futures.close()


def _sent_at(decision: Any) -> float:
    """When a decision's order left, as recorded (its creation if `pending`)."""
    return float(decision.sent_at if decision.sent_at is not None else decision.created_at)


def futures_balances(accounts: Mapping[str, Any]) -> dict[str, str]:
    """Collateral quantities of the multi-collateral (flex) account: `{"USD": "1000.0"}`."""
    currencies = (accounts.get("flex") or {}).get("currencies") or {}
    return {name: str(info.get("quantity")) for name, info in currencies.items() if isinstance(info, Mapping)}
