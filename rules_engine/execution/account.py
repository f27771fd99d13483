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

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from rules_engine.core.events import BalanceUpdate, Event, OpenOrders, OrderUpdate
from rules_engine.execution.report import ExecutionReport, failure, ok
from rules_engine.redact import redact

SYNC_ID = "account"
"""The intent id of an account snapshot's result (it answers no intent of the core)."""


def account_report(now: float, balances: Mapping[str, Any], orders: list[OrderUpdate],
                   request: Mapping[str, Any], response: Mapping[str, Any]) -> ExecutionReport:
    """The snapshot report for Kraken-format balances and the open orders as updates."""
    update = BalanceUpdate({asset: Decimal(str(amount)) for asset, amount in balances.items()}, now, snapshot=True)
    txids = tuple(o.txid for o in orders if o.txid)
    data = {"balances": dict(balances), "open_orders": list(txids)}
    events: tuple[Event, ...] = (update, *orders, OpenOrders(now, "spot", txids))
    return ExecutionReport(ok(SYNC_ID, now, data), dict(request), dict(response), events)


def kraken_open_orders(result: Mapping[str, Any], now: float) -> list[OrderUpdate]:
    """OrderUpdates for Kraken's OpenOrders result (`{"open": {txid: {...}}}`)."""
    updates = []
    for txid, order in (result.get("open") or {}).items():
        descr = order.get("descr") or {}
        price = descr.get("price")
        updates.append(OrderUpdate(
            time=now, status=str(order.get("status") or "open"), txid=str(txid), cl_ord_id=order.get("cl_ord_id"),
            pair=descr.get("pair"), market="spot", volume=_decimal(order.get("vol")),
            filled=_decimal(order.get("vol_exec")), price=_decimal(price) if price not in (None, "0") else None,
        ))
    return updates


def read_kraken_account(now: float, balance: Callable[[], Mapping[str, Any]],
                        open_orders: Callable[[], Mapping[str, Any]]) -> ExecutionReport:
    """Balance and OpenOrders from a Spot client; a failure is the report's result."""
    request = {"api": "spot", "method": "Balance+OpenOrders", "params": {}}
    try:
        balances = dict(balance())
        opened = open_orders()
    except Exception as exc:  # never raise: the error is the result
        return ExecutionReport(failure(SYNC_ID, now, exc), request, {"error": [redact(str(exc))]})
    return account_report(now, balances, kraken_open_orders(opened, now), request,
                          {"result": {"balances": balances, "open": sorted((opened.get("open") or {}).keys())}})


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
