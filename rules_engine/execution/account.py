"""An account snapshot: the balances and open orders the core needs before it decides.

Every executor answers `read_account(now)` with an `ExecutionReport` whose events are a complete
`BalanceUpdate`, one `OrderUpdate` per open spot order and an `OpenOrders` listing them all (so
the core drops orders that closed since it last heard of them), and whose `result.data` lists
them (`{"balances": {...}, "open_orders": [txid, ...]}`). The driver asks for it at start,
before any event, and again while rules read balances on an executor that does not report
fills itself. The request goes to Kraken (Balance, OpenOrders) in validate and live mode
and to the paper wallet in a dry run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rules_engine.core.events import BalanceUpdate, Event, OpenOrders, OrderUpdate
from rules_engine.execution.report import ExecutionReport, failure, ok
from rules_engine.kraken.params import to_decimal
from rules_engine.redact import redact

SYNC_ID = "account"
"""The intent id of an account snapshot's result (it answers no intent of the core)."""


def account_report(now: float, balances: Mapping[str, Any], orders: list[OrderUpdate],
                   request: Mapping[str, Any], response: Mapping[str, Any],
                   futures_orders: list[OrderUpdate] | None = None) -> ExecutionReport:
    """The snapshot report for Kraken-format balances and the open orders as updates; with
    `futures_orders` (a Futures account was read too) those are listed the same way."""
    update = BalanceUpdate({asset: to_decimal(amount) for asset, amount in balances.items()}, now, snapshot=True)
    txids = tuple(o.txid for o in orders if o.txid)
    data: dict[str, Any] = {"balances": dict(balances), "open_orders": list(txids)}
    events: list[Event] = [update, *orders, OpenOrders(now, "spot", txids)]
    if futures_orders is not None:
        ids = tuple(o.txid for o in futures_orders if o.txid)
        data["futures_open_orders"] = list(ids)
        events += [*futures_orders, OpenOrders(now, "futures", ids)]
    return ExecutionReport(ok(SYNC_ID, now, data), dict(request), dict(response), tuple(events))


def kraken_open_orders(result: Mapping[str, Any], now: float) -> list[OrderUpdate]:
    """OrderUpdates for Kraken's OpenOrders result (`{"open": {txid: {...}}}`)."""
    updates = []
    for txid, order in (result.get("open") or {}).items():
        descr = order.get("descr") or {}
        price = descr.get("price")
        updates.append(OrderUpdate(
            time=now, status=str(order.get("status") or "open"), txid=str(txid), cl_ord_id=order.get("cl_ord_id"),
            pair=descr.get("pair"), market="spot", volume=to_decimal(order.get("vol")),
            filled=to_decimal(order.get("vol_exec")), price=to_decimal(price) if price not in (None, "0") else None,
        ))
    return updates


def futures_open_orders(orders: Sequence[Mapping[str, Any]], now: float) -> list[OrderUpdate]:
    """OrderUpdates for Kraken Futures' openorders list (`order_id`, `cliOrdId`, sizes)."""
    updates = []
    for order in orders:
        filled, unfilled = to_decimal(order.get("filledSize")), to_decimal(order.get("unfilledSize"))
        volume = None if filled is None or unfilled is None else filled + unfilled
        updates.append(OrderUpdate(
            time=now, status="open", txid=str(order.get("order_id")), cl_ord_id=order.get("cliOrdId"),
            pair=order.get("symbol"), market="futures", volume=volume, filled=filled,
            price=to_decimal(order.get("limitPrice")),
        ))
    return updates


def read_kraken_account(now: float, balance: Callable[[], Mapping[str, Any]],
                        open_orders: Callable[[], Mapping[str, Any]],
                        futures_orders: Callable[[], list[dict[str, Any]]] | None = None) -> ExecutionReport:
    """Balance and OpenOrders from a Spot client (and openorders from a Futures client, when
    one is given); a failure is the report's result."""
    method = "Balance+OpenOrders" + ("+futures openorders" if futures_orders is not None else "")
    request = {"api": "spot", "method": method, "params": {}}
    try:
        balances = dict(balance())
        opened = open_orders()
        futures = futures_open_orders(futures_orders(), now) if futures_orders is not None else None
    except Exception as exc:  # never raise: the error is the result
        return ExecutionReport(failure(SYNC_ID, now, exc), request, {"error": [redact(str(exc))]})
    response: dict[str, Any] = {"balances": balances, "open": sorted((opened.get("open") or {}).keys())}
    if futures is not None:
        response["futures_open"] = [o.txid for o in futures]
    return account_report(now, balances, kraken_open_orders(opened, now), request, {"result": response},
                          futures)
