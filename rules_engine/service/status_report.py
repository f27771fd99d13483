"""The status document: what `GET /api/status`, the status page and `rules-engine status`
show. Built from the same parts whether the service is running (live engine state, traces,
feeds, readiness) or not (the state dir: the saved snapshot, the kill file, the audit log).

Per rule: `state` (armed / holding / cooling_down / running / waiting / disabled / error),
last fire and its outcome, next timer beat, fires in the `max_fires` window against the limit
(else in all), last error, recent decisions. Then feeds (per symbol: tick age,
stale), the kill switch, open orders the engine placed, risk usage against the limits, the
last reload, the mode, readiness and the overall `health`: `ok`, `degraded` (trading, with
problems listed), `unhealthy` (not ready to trade) or `down` (not running).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rules_engine.core.model import Rule, RuleSet
from rules_engine.core.risk import DAY, RiskLimits
from rules_engine.core.views import OrderView

RULE_STATES = ("armed", "holding", "cooling_down", "running", "waiting", "disabled", "error")


def _until(when: Any, now: float) -> str:
    try:
        left = float(when) - now
    except (TypeError, ValueError):
        return "until an unknown time"
    return f"{left:.0f} s left" if left >= 0 else f"{-left:.0f} s overdue"


def rule_state(rule: Rule, saved: Mapping[str, Any] | None, in_error: bool, now: float) -> tuple[str, str]:
    """(state, detail) of one rule from its saved `RuleState` JSON."""
    if not rule.enabled:
        return "disabled", "enabled: false"
    if in_error:
        return "error", "its last evaluation or action failed"
    saved = saved or {}
    run, pending = saved.get("run"), saved.get("pending")
    if run:
        if run.get("waiting"):
            return "waiting", f"waiting for {run['waiting']}"
        return "running", f"action {int(run.get('next_action', 0)) + 1} of {len(rule.actions)}"
    if pending:
        if pending.get("kind") == "wait" or pending.get("waiting"):
            return "waiting", f"waiting for {pending.get('waiting') or 'a value'}"
        return "holding", f"for: hold, {_until(pending.get('until'), now)}"
    cooldown = saved.get("cooldown_until")
    if cooldown is not None and now < float(cooldown):
        return "cooling_down", _until(cooldown, now)
    return "armed", ""


def fires_window(rule: Rule, saved: Mapping[str, Any] | None, total: int, now: float) -> dict[str, Any]:
    """Fires inside the rule's `max_fires` window against its count; without `max_fires`, the
    rule's fires in all (`window` None)."""
    if rule.max_fires is not None:
        times = [float(t) for t in (saved or {}).get("fire_times", [])]
        window = rule.max_fires.window
        return {"count": sum(1 for t in times if t > now - window), "max": rule.max_fires.count, "window": window}
    return {"count": total, "max": None, "window": None}


def rules_section(ruleset: RuleSet, snapshot: Mapping[str, Any], *, now: float,
                  book: Any = None, timers: Sequence[tuple[str, int, float]] = (),
                  recent: int = 10) -> list[dict[str, Any]]:
    """One entry per rule, in firing order. `book` is a `TraceBook` (None: no traces known)."""
    saved_rules: Mapping[str, Any] = snapshot.get("rules") or {}
    next_beat: dict[str, float] = {}
    for rule_id, _, due in timers:
        next_beat.setdefault(rule_id, due)
    entries = []
    for rule in ruleset.rules:
        known = book.rule(rule.id) if book is not None else {"last_fire": None, "last_error": None,
                                                               "in_error": False}
        state, detail = rule_state(rule, saved_rules.get(rule.id), bool(known["in_error"]), now)
        entries.append({
            "id": rule.id,
            "description": rule.description,
            "source": str(rule.source) if rule.source else None,
            "enabled": rule.enabled,
            "state": state,
            "state_detail": detail,
            "triggers": [t.type for t in rule.triggers],
            "last_fire": known["last_fire"],
            "last_error": known["last_error"],
            "next_beat": next_beat.get(rule.id),
            "fires": fires_window(rule, saved_rules.get(rule.id), int((snapshot.get("fire_seq") or {}).get(rule.id, 0)),
                                  now),
            "recent": book.recent(rule.id, recent) if book is not None else [],
        })
    return entries


NOT_A_RULE = "(no rule)"
"""Shown for an open order no rule placed (one the account read found, or a close order Kraken made)."""


def orders_section(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The open and in-flight orders the engine knows, as saved in its state."""
    return [dict(o) for o in snapshot.get("orders") or []]


def risk_section(limits: RiskLimits, snapshot: Mapping[str, Any], order_times: Sequence[float],
                 now: float) -> dict[str, Any]:
    """Usage against each configured limit (None: no limit set)."""
    orders = [OrderView.from_json(o) for o in snapshot.get("orders") or []]
    open_notional = sum((o.notional for o in orders), Decimal(0))

    def usage(value: Any, limit: Any) -> dict[str, Any]:
        return {"value": str(value), "limit": None if limit is None else str(limit)}

    return {
        "open_orders": usage(len(orders), limits.max_open_orders),
        "total_notional": usage(open_notional, limits.max_total_notional),
        "orders_last_minute": usage(sum(1 for t in order_times if t > now - 60), limits.max_orders_per_minute),
        "orders_last_day": usage(sum(1 for t in order_times if t > now - DAY), limits.max_orders_per_day),
        "allowed_pairs": sorted(limits.allowed_pairs) if limits.allowed_pairs is not None else None,
        "max_order_notional": {k: str(v) for k, v in limits.max_order_notional.items()},
    }


def overall_health(running: bool, readiness: Mapping[str, Any] | None) -> str:
    if not running:
        return "down"
    if readiness is None:
        return "ok"
    return {"ready": "ok", "degraded": "degraded"}.get(str(readiness.get("status")), "unhealthy")
