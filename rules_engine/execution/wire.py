"""The Kraken calls an intent maps to, as plain data for the audit log.

Every executor describes what it sends (or, in dry-run, would send) the same way:
`{"api": "spot"|"futures", "method": "AddOrder", "path": "/0/private/AddOrder", "params": {...}}`.
An intent that needs several calls of one method (a CancelOrder listing several orders)
has `"calls": [params, ...]` instead of `params`. Nonces, keys and signatures are never
part of it: they are added by the client at send time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules_engine.core import intents as it

SPOT_PRIVATE = "/0/private/"
FUTURES_API = "/derivatives/api/v3/"


def spot_call(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"api": "spot", "method": method, "path": SPOT_PRIVATE + method, "params": dict(params or {})}


def futures_call(endpoint: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"api": "futures", "method": endpoint, "path": FUTURES_API + endpoint, "params": dict(params or {})}


def batch(call: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """`call` with its `params` replaced by one parameter set per call."""
    out = {k: v for k, v in call.items() if k != "params"}
    out["calls"] = calls
    return out


def add_order_params(intent: it.PlaceOrder, *, validate: bool = False) -> dict[str, str]:
    params = intent.kraken_params()
    if validate:
        params["validate"] = "true"
    return params


def cancel_targets(intent: it.CancelOrder) -> list[dict[str, str]]:
    """CancelOrder's parameter sets: one per txid, cl_ord_id and the userref."""
    targets = [{"txid": t} for t in intent.txids] + [{"cl_ord_id": c} for c in intent.cl_ord_ids]
    if intent.userref is not None:
        targets.append({"txid": str(intent.userref)})  # Kraken reads an integer txid as a userref
    return targets


def futures_cancel_targets(intent: it.FuturesCancelOrder) -> list[dict[str, str]]:
    return [{"order_id": o} for o in intent.order_ids] + [{"cliOrdId": c} for c in intent.cli_ord_ids]


def intent_request(intent: it.Intent, *, validate: bool = False) -> dict[str, Any] | None:
    """The request(s) `intent` maps to; None for local actions (log, notify)."""
    if isinstance(intent, it.PlaceOrder):
        return spot_call("AddOrder", add_order_params(intent, validate=validate))
    if isinstance(intent, it.CancelOrder):
        return batch(spot_call("CancelOrder"), cancel_targets(intent))
    if isinstance(intent, it.CancelAll):
        return futures_call("cancelallorders") if intent.market == "futures" else spot_call("CancelAll")
    if isinstance(intent, it.DeadManSwitch):
        return spot_call("CancelAllOrdersAfter", {"timeout": str(intent.timeout)})
    if isinstance(intent, it.FuturesSendOrder):
        return futures_call("sendorder", intent.kraken_params())
    if isinstance(intent, it.FuturesCancelOrder):
        return batch(futures_call("cancelorder"), futures_cancel_targets(intent))
    if isinstance(intent, it.ReadBalance):
        return futures_call("accounts") if intent.market == "futures" else spot_call("Balance")
    return None
