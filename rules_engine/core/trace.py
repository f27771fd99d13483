"""Trace records: why the core did (or did not do) something, with the values it saw."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from rules_engine.core.decimals import plain
from rules_engine.core.intents import AnyIntent

TraceKind = Literal["trigger", "guard", "state", "decision", "risk", "blocked", "action", "error", "dropped"]


def jsonable(value: Any) -> Any:
    """Decimals as plain strings, tuples as lists, mappings with string keys, recursively."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [jsonable(v) for v in value]
    return value


def intent_detail(intent: AnyIntent) -> dict[str, Any]:
    """An intent as trace detail: `type` names it; `rule_id` is the record's own."""
    detail = intent.to_dict()
    detail["type"] = detail.pop("kind")
    detail.pop("rule_id", None)
    return detail


@dataclass(frozen=True)
class TraceRecord:
    """One step of reasoning. `rule_id` is None for engine-wide records (kill switch, feed)."""

    kind: TraceKind
    rule_id: str | None
    time: float
    detail: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule_id": self.rule_id, "time": self.time, "detail": jsonable(self.detail)}


@dataclass(frozen=True)
class Decision:
    """What one event led to: intents to execute, in order, and the trace of why."""

    intents: tuple[AnyIntent, ...] = ()
    trace: tuple[TraceRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"intents": [i.to_dict() for i in self.intents], "trace": [t.to_dict() for t in self.trace]}


class Step:
    """Collects the intents and trace of one `Engine.handle` call."""

    __slots__ = ("now", "intents", "records")

    def __init__(self, now: float, records: list[TraceRecord] | None = None):
        self.now = now
        self.intents: list[AnyIntent] = []
        self.records: list[TraceRecord] = records if records is not None else []

    def record(self, kind: TraceKind, rule_id: str | None, **detail: Any) -> None:
        self.records.append(TraceRecord(kind, rule_id, self.now, detail))

    def emit(self, intent: AnyIntent) -> None:
        self.intents.append(intent)

    def decision(self) -> Decision:
        if not self.intents and not self.records:
            return _NOTHING
        return Decision(tuple(self.intents), tuple(self.records))


_NOTHING = Decision()
