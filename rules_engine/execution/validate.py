"""Validate: real signed AddOrder calls with `validate=true`, so Kraken checks every order
(pair, minimums, tick size, funds rules it applies at validation, the signature and the
nonce) and places none.

- `PlaceOrder` -> AddOrder `validate=true`, the request encoded once
  (`kraken.order_codec`) and sent exactly as audited. Success is `ok` with `validated: true` and
  Kraken's `descr`, without a txid (nothing rests, and the core drops the order).
  Kraken's refusal is the result, as in live mode.
- `ReadBalance` (spot) -> a real Balance read (the key needs "Query Funds").
- Everything else that would change the account (`CancelOrder`, `CancelAll`,
  `DeadManSwitch`, Futures orders and cancels) is NOT sent: it is answered `ok` with
  `would_send: true` and audited as what would have been sent. Futures has no validate-only
  call, and a Futures balance read is refused.
- `Log` / `Notify` as in every mode.
"""

from __future__ import annotations

from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.events import Event, Tick
from rules_engine.execution.account import read_kraken_account
from rules_engine.execution.base import run_local
from rules_engine.execution.report import ExecutionReport, describe_error, failure, ok, refused
from rules_engine.kraken.order_codec import intent_request
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.redact import redact

_NOT_SENT = (it.CancelOrder, it.CancelAll, it.DeadManSwitch, it.FuturesSendOrder, it.FuturesCancelOrder)


class ValidateExecutor:
    mode = "validate"
    concurrent = True  # thread-safe clients: dispatches may run side by side (one lane per pair)

    def __init__(self, spot: SpotClient):
        self.spot = spot

    def execute(self, intent: it.Intent, now: float) -> ExecutionReport:
        if isinstance(intent, (it.Log, it.Notify)):
            return run_local(intent, now)
        encoded = intent_request(intent, validate=True)
        request = encoded.record() if encoded is not None else None
        if isinstance(intent, _NOT_SENT):
            data = {"would_send": True, "sent": False}
            return ExecutionReport(ok(intent, now, data), request, {"would_send": True, "reason": "validate mode"})
        try:
            if isinstance(intent, it.PlaceOrder) and encoded is not None:
                checked = self.spot.place(encoded)
                validated = {"validated": True, "descr": dict(checked.descr)}
                return ExecutionReport(ok(intent, now, validated), request, {"result": redact(dict(checked.raw))})
            if isinstance(intent, it.ReadBalance) and intent.market == "spot":
                balances = dict(self.spot.balance())
                return ExecutionReport(ok(intent, now, {"balances": balances}), request, {"result": balances})
        except Exception as exc:  # never raise: the error is the result
            return ExecutionReport(failure(intent, now, exc), request, {"error": [redact(describe_error(exc)[0])]})
        return ExecutionReport(refused(intent, now, f"{intent.kind} is not available in validate mode",
                                       "NotAvailable"), request)

    def observe(self, tick: Tick) -> list[Event]:
        return []

    def advance(self, now: float) -> list[Event]:
        return []

    def read_account(self, now: float) -> ExecutionReport:
        """The real account's balances and open orders (read-only calls)."""
        return read_kraken_account(now, self.spot.balance, self.spot.open_orders)

    def reconcile(self, decision: Any, now: float | None = None) -> ExecutionReport:
        """Validate mode places no order, so a decision's order never exists."""
        intent_id = str(decision.intent.get("intent_id") or decision.cl_ord_id)
        when = decision.updated_at if now is None else now
        result = refused(intent_id, when, "validate mode places no orders", "OrderNotPlaced")
        return ExecutionReport(result, {"api": "none", "method": "lookup"}, {"found": False})

    def close(self) -> None:
        self.spot.close()
