"""The decision log: one structured log line for each thing the engine decided or did.

Fed with the audit records as they are written (`AuditTap`), so a line says exactly what the
audit log holds (already redacted) and names its record (`seq`, for `rules-engine audit
show`). Logger `rules_engine.decisions`; the message is a short fixed phrase (`rule fired`,
`order refused`, ...) and the details are fields (`extra={"fields": ...}`), which the text
formatter writes as `key=value` and the JSON formatter as keys of the line's object.

Levels, as an operator reads them: fires, orders, accepted signals, reloads at INFO; what
stopped something (risk limit, kill switch, refused request, rejected signal, reconnect) at
WARNING; errors and ambiguous orders at ERROR; routine book-keeping (state changes, account
reads) at DEBUG. The feed lines come from `feed_status` (the feeds are not audited per change).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("rules_engine.decisions")

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
MAX_TEXT = 300
_ORDER_TYPES = frozenset({"place_order", "futures_send_order", "cancel_order", "cancel_all", "futures_cancel_order",
                          "dead_man_switch"})


def _short(value: Any) -> Any:
    """Long strings cut to MAX_TEXT characters, containers summarised by their JSON size."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "..."
    return value


def _pick(data: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: _short(data[name]) for name in names if data.get(name) is not None}


def describe(record: Mapping[str, Any]) -> tuple[int, str, dict[str, Any]] | None:
    """(level, message, fields) for one audit record, or None for a record with no line."""
    kind = record.get("kind")
    data: Mapping[str, Any] = record.get("data") or {}
    rule = record.get("rule_id")
    base: dict[str, Any] = {"event": kind, "seq": record.get("seq")}
    if rule is not None:
        base["rule"] = rule
    if kind == "trigger":
        if rule is None:
            if "feed_reset" in data:
                return INFO, "feed reset: crossings watch again", {**base, **_pick(data, "feed_reset", "symbols")}
            return DEBUG, "first price observed", {**base, **_pick(data, "first_observation", "value")}
        fields = {**base, **_pick(data, "trigger", "type", "value", "level", "field", "direction", "state",
                                  "symbol", "source", "signal_id", "scheduled_time")}
        message = "timer beat fired" if "scheduled_time" in data else "trigger fired"
        return INFO, message, fields
    if kind == "guard":
        values = [{"expression": v.get("expression"), "value": v.get("value")} for v in data.get("values", [])
                  if isinstance(v, Mapping)]
        return INFO, "guard " + ("held" if data.get("result") else "did not hold"), {
            **base, **_pick(data, "trigger", "phase", "result"), "values": values}
    if kind == "decision":
        if "fire_seq" in data:
            return INFO, "rule fired", {**base, **_pick(data, "decision_id", "fire_seq", "trigger")}
        if "outcome" in data:
            outcome = str(data["outcome"])
            level = INFO if outcome == "completed" else WARNING
            return level, f"run {outcome}", {**base, **_pick(data, "decision_id", "outcome", "reason", "error")}
        if "action" in data:  # the dispatcher's order decision, fsynced before the order leaves
            intent = data.get("intent") or {}
            return INFO, "order intent", {**base, **_pick(data, "decision_id", "action", "cl_ord_id"),
                                          **_pick(intent, "kind", "pair", "symbol", "side", "type", "ordertype",
                                                  "order_type", "volume", "size", "price", "limit_price")}
        return DEBUG, "decision", {**base, **_pick(data, "decision_id")}
    if kind == "risk":
        return WARNING, "risk limit blocked an order", {**base, **_pick(data, "decision_id", "limit", "value",
                                                                        "allowed", "pair")}
    if kind == "blocked":
        reason = str(data.get("reason", ""))
        if data.get("kill_switch") == "engaged":
            return WARNING, "kill switch engaged: actions blocked", {**base, **_pick(data, "reason", "cancel_all")}
        level = INFO if reason.startswith("waiting for") else WARNING
        return level, "blocked", {**base, **_pick(data, "trigger", "decision_id", "reason")}
    if kind == "dropped":
        return INFO, "trigger dropped", {**base, **_pick(data, "trigger", "decision_id", "reason", "until")}
    if kind == "error":
        return ERROR, "rule error" if rule else "engine error", {
            **base, **_pick(data, "trigger", "phase", "where", "reason", "error", "expression")}
    if kind == "action":
        if "result" in data:
            ok = data.get("result") == "ok"
            return (INFO if ok else WARNING), "action " + ("succeeded" if ok else "failed"), {
                **base, **_pick(data, "intent_id", "type", "result", "error")}
        if "passed" in data:
            return INFO, "balance check " + ("passed" if data.get("passed") else "failed"), {
                **base, **_pick(data, "asset", "balance", "minimum", "decision_id")}
        if "status" in data and "order" in data:
            return INFO, "order status", {**base, **_pick(data, "order", "txid", "status", "filled")}
        level = INFO if data.get("type") in _ORDER_TYPES else DEBUG
        return level, "action", {**base, **_pick(data, "intent_id", "type", "pair", "side", "volume", "price",
                                                 "channel")}
    if kind == "state":
        if "rules_loaded" in data:
            return DEBUG, "rules loaded", {**base, **_pick(data, "rules_loaded", "added", "changed", "removed")}
        if data.get("kill_switch") == "cleared":
            return WARNING, "kill switch cleared: actions run again", {**base, **_pick(data, "reason")}
        return DEBUG, "rule state", {**base, **_pick(data, "previous", "status", "pending_until", "queued")}
    if kind in ("request", "response"):
        return _exchange(kind, base, data)
    if kind == "intent":
        return DEBUG, "intent", {**base, **_pick(data.get("intent") or {}, "intent_id", "kind")}
    if kind in ("duplicate", "reconciled", "abandoned", "recovered"):
        return WARNING, f"order {kind}", {**base, **_pick(data, "cl_ord_id", "status", "reason")}
    if kind in ("resent_after_proven_absent", "not_resent"):
        what = "order proven never placed: " + ("not sent" if kind == "not_resent" else "sent again")
        return WARNING, what, {**base, **_pick(data, "cl_ord_id", "proof", "age_s", "bound_s", "reason")}
    if kind == "signal":
        return INFO, "signal accepted", {**base, **_pick(data, "source", "signal_id")}
    if kind == "signal_rejected":
        return WARNING, "signal rejected", {**base, **_pick(data, "source", "status", "code", "reason", "signal_id",
                                                            "remote")}
    if kind == "reload":
        if data.get("ok"):
            return INFO, "reload applied", {**base, **_pick(data, "reason", "added", "changed", "removed",
                                                            "rules_loaded")}
        return ERROR, "reload refused; the previous rules keep running", {**base, **_pick(data, "reason"),
                                                                           "errors": data.get("errors", [])}
    if kind == "kill_switch":
        engaged = bool(data.get("engaged"))
        return WARNING, "kill switch " + ("engaged" if engaged else "cleared"), {
            **base, "engaged": engaged, **_pick(data, "reason", "source", "cancel_all")}
    if kind == "notification":
        ok = bool(data.get("ok"))
        return (INFO if ok else WARNING), "notification " + ("delivered" if ok else "not delivered"), {
            **base, **_pick(data, "channel", "event", "attempts", "error", "intent_id")}
    if kind in ("startup", "shutdown"):
        return INFO, f"engine {kind}", {**base, **_pick(data, "mode", "rules", "reloads", "uptime")}
    return DEBUG, str(kind), base


def _exchange(kind: str, base: dict[str, Any], data: Mapping[str, Any]) -> tuple[int, str, dict[str, Any]]:
    what = str(data.get("kind", ""))
    quiet = what in ("account", "read_balance", "log", "notify")
    fields = {**base, **_pick(data, "intent_id", "kind", "cl_ord_id")}
    if kind == "request":
        request = data.get("request") or {}
        if isinstance(request, Mapping):
            fields.update(_pick(request, "method", "path"))
        if data.get("would_send"):
            fields["would_send"] = True
        return (DEBUG if quiet or not request else INFO), "request sent", fields
    result = data.get("result") or {}
    ok = bool(result.get("ok")) if isinstance(result, Mapping) else False
    if ok:
        return (DEBUG if quiet else INFO), "request settled", fields
    error = result.get("error") if isinstance(result, Mapping) else None
    detail = result.get("data") if isinstance(result, Mapping) else None
    detail = detail if isinstance(detail, Mapping) else {}
    fields.update({"error": _short(error), **_pick(detail, "error_class")})
    if detail.get("ambiguous") or detail.get("error_class") == "OrderStateUnknown":
        return ERROR, "request ambiguous: order state unknown", fields
    return WARNING, "request refused", fields


class DecisionLog:
    """Writes the line of each audit record (an `AuditTap` watcher) and of feed changes."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def __call__(self, records: Iterable[Mapping[str, Any]]) -> None:
        logger = self.logger
        if not logger.isEnabledFor(ERROR):  # nothing at all would be written
            return
        for record in records:
            line = describe(record)
            if line is not None and logger.isEnabledFor(line[0]):
                logger.log(line[0], line[1], extra={"fields": line[2]})

    def feed_status(self, market: str, kind: str, detail: str = "", symbol: str | None = None,
                    reconnect: bool = False) -> None:
        """A feed change: connected (a reconnect is a warning), disconnected, silent (stale)."""
        fields: dict[str, Any] = {"event": "feed", "market": market, "status": kind}
        if detail:
            fields["detail"] = _short(detail)
        if symbol:
            fields["symbol"] = symbol
        if kind == "connected":
            level, message = (WARNING, "feed reconnected") if reconnect else (INFO, "feed connected")
        elif kind in ("disconnected", "silent", "reconnecting"):
            level, message = WARNING, {"silent": "feed stale: no message", "disconnected": "feed disconnected",
                                       "reconnecting": "feed reconnecting"}[kind]
        elif kind in ("rejected", "error", "callback_error", "malformed"):
            level, message = ERROR, f"feed {kind}"
        else:
            level, message = DEBUG, f"feed {kind}"
        self.logger.log(level, message, extra={"fields": fields})
