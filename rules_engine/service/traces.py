"""Decision traces, like Home Assistant's automation traces, built from the audit records as
they are written (an `AuditTap` watcher).

A trace is one evaluation of one rule: the trigger and its value, the guard with the values it
read, the decision, risk checks, each action with the request sent and the response, and the
outcome, each step with its audit record `seq` (so `rules-engine audit show` finds it) and
time. A fire's trace is keyed by its decision id (`rule#n`) and gathers every later record
naming it (the dispatcher's order decision, requests, responses, results); an evaluation that
did not fire (guard false, cooling down, blocked by the kill switch, an error) is a trace of
its own, keyed `rule@seq`.

The book keeps the last `per_rule` traces of each rule and, engine-wide, the last signals
(accepted and rejected) and the last reload. Thread-safe: records come from the event loop
and the dispatch thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STEP_KINDS = frozenset({"trigger", "guard", "decision", "risk", "blocked", "dropped", "error", "action", "intent",
                        "request", "response", "duplicate", "reconciled", "abandoned", "notification",
                        "resent_after_proven_absent", "not_resent"})
_FINAL = {"completed", "failed", "abandoned", "dropped", "timeout", "cancelled"}


def decision_of(data: Mapping[str, Any]) -> str | None:
    """The decision id a record names, directly or through its intent id (`rule#3/1/...`)."""
    found = data.get("decision_id")
    if isinstance(found, str):
        return found
    intent = data.get("intent_id")
    if isinstance(intent, str) and "#" in intent:
        return intent.split("/", 1)[0]
    nested = data.get("intent")
    if isinstance(nested, Mapping):
        return decision_of(nested)
    return None


@dataclass
class Trace:
    """One evaluation of one rule and everything that followed from it."""

    trace_id: str
    rule_id: str
    started: float
    fired: bool = False
    outcome: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ended(self) -> float:
        return self.steps[-1]["time"] if self.steps else self.started

    def add(self, record: Mapping[str, Any]) -> None:
        data = dict(record.get("data") or {})
        self.steps.append({"seq": record.get("seq"), "kind": record.get("kind"),
                           "time": record.get("time", data.get("event_time", self.started)), "data": data})
        self._update_outcome(str(record.get("kind")), data)

    def _update_outcome(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "decision" and "fire_seq" in data:
            self.fired = True
            self.outcome = "running"
        elif kind == "decision" and "outcome" in data:
            self.outcome = str(data["outcome"])
        elif self.fired:
            if kind == "risk":
                self.outcome = f"risk limit: {data.get('limit')}"
            elif kind == "response" and not (data.get("result") or {}).get("ok", True) and self.outcome == "running":
                self.outcome = "request refused"
        elif kind == "state" and "pending_until" in data:
            self.outcome = "holding (for:)"
        elif kind == "guard" and not data.get("result"):
            self.outcome = "guard false"
        elif kind in ("dropped", "blocked") and not self.outcome:
            self.outcome = f"{kind}: {data.get('reason', '')}".rstrip(": ")
        elif kind == "error":
            self.outcome = f"error: {data.get('reason') or data.get('error') or ''}".rstrip(": ")

    def summary(self) -> dict[str, Any]:
        trigger: dict[str, Any] = next((s["data"] for s in self.steps if s["kind"] == "trigger"), {})
        return {"id": self.trace_id, "rule_id": self.rule_id, "started": self.started, "ended": self.ended,
                "fired": self.fired, "outcome": self.outcome or ("fired" if self.fired else "evaluated"),
                "trigger": trigger.get("trigger"), "value": trigger.get("value"),
                "seqs": [s["seq"] for s in self.steps]}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "steps": [dict(s) for s in self.steps]}


@dataclass
class RuleRecord:
    """What the book remembers of one rule beyond its traces."""

    last_fire: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    in_error: bool = False  # its latest evaluation, or an action of its latest run, failed


class TraceBook:
    """Builds and keeps traces, signals and reloads from audit records (see the module docstring)."""

    def __init__(self, per_rule: int = 20, signals: int = 50) -> None:
        self.per_rule = per_rule
        self._lock = threading.Lock()
        self._traces: dict[str, Trace] = {}
        self._by_rule: dict[str, deque[str]] = {}
        self._rules: dict[str, RuleRecord] = {}
        self.signals: deque[dict[str, Any]] = deque(maxlen=signals)
        self.last_reload: dict[str, Any] | None = None
        self.kill_events: deque[dict[str, Any]] = deque(maxlen=20)

    def __call__(self, records: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            open_steps: dict[str, Trace] = {}  # per rule: the trace this write is building
            for record in records:
                self._take(record, open_steps)

    # ------------------------------------------------------------------ reading

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._traces.get(trace_id)
            return found.to_json() if found is not None else None

    def recent(self, rule_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The rule's latest traces, newest first."""
        with self._lock:
            ids = list(self._by_rule.get(rule_id, ()))[::-1][:limit]
            return [self._traces[i].summary() for i in ids if i in self._traces]

    def rule(self, rule_id: str) -> dict[str, Any]:
        with self._lock:
            found = self._rules.get(rule_id) or RuleRecord()
            return {"last_fire": dict(found.last_fire) if found.last_fire else None,
                    "last_error": dict(found.last_error) if found.last_error else None,
                    "in_error": found.in_error}

    def rules_in_error(self) -> list[str]:
        with self._lock:
            return sorted(rule_id for rule_id, r in self._rules.items() if r.in_error)

    def forget_rules(self, keep: Iterable[str]) -> None:
        """Drop what is kept of rules no longer loaded."""
        kept = set(keep)
        with self._lock:
            for rule_id in [r for r in self._rules if r not in kept]:
                del self._rules[rule_id]
            for rule_id in [r for r in self._by_rule if r not in kept]:
                for trace_id in self._by_rule.pop(rule_id):
                    self._traces.pop(trace_id, None)

    def recent_signals(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.signals)[::-1]

    # ------------------------------------------------------------------ building

    def _take(self, record: Mapping[str, Any], open_steps: dict[str, Trace]) -> None:
        kind = record.get("kind")
        data: Mapping[str, Any] = record.get("data") or {}
        rule_id = record.get("rule_id")
        when = float(record.get("time") or data.get("event_time") or 0.0)
        if kind == "signal":
            self.signals.append({"time": when, "accepted": True, "source": data.get("source"),
                                 "signal_id": data.get("signal_id"), "seq": record.get("seq")})
            return
        if kind == "signal_rejected":
            self.signals.append({"time": when, "accepted": False, "source": data.get("source"),
                                 "signal_id": data.get("signal_id"), "status": data.get("status"),
                                 "code": data.get("code"), "reason": data.get("reason"), "seq": record.get("seq")})
            return
        if kind == "reload":
            self.last_reload = {"time": when, "ok": bool(data.get("ok")), "reason": data.get("reason"),
                                "errors": list(data.get("errors", [])), "seq": record.get("seq")}
            return
        if kind == "kill_switch":
            self.kill_events.append({"time": when, **{k: data.get(k) for k in ("engaged", "reason", "source")}})
            return
        if kind == "state" and "pending_until" in data:
            kind = "state"  # a `for:` hold begins: part of the evaluation's trace
        elif not isinstance(rule_id, str) or kind not in STEP_KINDS:
            return
        if not isinstance(rule_id, str):
            return
        decision_id = decision_of(data)
        trace = self._traces.get(decision_id) if decision_id else None
        current = open_steps.get(rule_id)
        if trace is None and kind == "decision" and "fire_seq" in data and decision_id:
            if current is not None and not current.fired:  # its trigger and guard, written just before
                trace = current
                self._rekey(trace, decision_id)
            else:
                trace = self._new(decision_id, rule_id, when)
        if trace is None and current is None and kind == "action" and "order" in data:
            fired = self._rules.get(rule_id)  # an order's later status: the rule's last fire placed it
            if fired is not None and fired.last_fire is not None:
                trace = self._traces.get(fired.last_fire["decision_id"])
        if trace is None:
            if current is None or (current.fired and decision_id is None and kind in ("trigger", "guard")):
                current = self._new(f"{rule_id}@{record.get('seq')}", rule_id, when)
            trace = current
        open_steps[rule_id] = trace
        trace.add(record)
        self._note_rule(rule_id, str(kind), data, trace, when, record.get("seq"))

    def _new(self, trace_id: str, rule_id: str, when: float) -> Trace:
        trace = Trace(trace_id, rule_id, when)
        self._traces[trace_id] = trace
        ids = self._by_rule.setdefault(rule_id, deque())
        ids.append(trace_id)
        while len(ids) > self.per_rule:
            self._traces.pop(ids.popleft(), None)
        return trace

    def _rekey(self, trace: Trace, new_id: str) -> None:
        self._traces.pop(trace.trace_id, None)
        ids = self._by_rule[trace.rule_id]
        ids[ids.index(trace.trace_id)] = new_id
        trace.trace_id = new_id
        self._traces[new_id] = trace

    def _note_rule(self, rule_id: str, kind: str, data: Mapping[str, Any], trace: Trace, when: float,
                   seq: Any) -> None:
        info = self._rules.setdefault(rule_id, RuleRecord())
        if kind == "decision" and "fire_seq" in data:
            info.last_fire = {"time": when, "decision_id": trace.trace_id, "outcome": "running"}
        if info.last_fire is not None and info.last_fire["decision_id"] == trace.trace_id:
            info.last_fire["outcome"] = trace.outcome
        if kind == "error":
            info.in_error = True
            info.last_error = {"time": when, "reason": data.get("reason") or data.get("error"),
                               "phase": data.get("phase"), "trace": trace.trace_id, "seq": seq}
        elif kind == "guard" or (kind == "decision" and "fire_seq" in data):
            info.in_error = False

    def outcome_final(self, trace_id: str) -> bool:
        with self._lock:
            found = self._traces.get(trace_id)
            return found is not None and found.outcome in _FINAL
