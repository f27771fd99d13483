"""Everything the core remembers between events, and its JSON snapshot.

Per rule (`RuleState`): fire times inside the `max_fires` window, cooldown end, a pending
`for:` hold or wait, the running action run and queued runs, and the reported status. Per
trigger whose watcher keeps state (price and spread crossings): its arming state (`Crossing.state`,
saved under `watches`). Engine-wide: fire
sequence numbers (kept for removed rules too, so ids are never reused), the kill switch,
balances, known open orders, recent order times for the rate limits, and intents awaiting
their result.

A rule's state is carried across a reload or a restore by rule id; parts that depend on the
rule's definition are kept only while it is unchanged, checked by a fingerprint of the
definition (source positions and compiled forms excluded).

The snapshot is plain data: dicts, lists, str, numbers, None, and `Decimal` inside trigger
contexts. It shares nothing with the live state. Persist it with `rules_engine.jsoncodec`
(the state store does), which brings Decimals back exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from rules_engine.core.model import ActionSpec, TriggerSpec
from rules_engine.core.risk import OrderTimes
from rules_engine.core.views import Balances, Orders, OrderView, Quotes

SNAPSHOT_VERSION = 1
RuleStatus = Literal["idle", "pending", "waiting", "running", "cooling_down"]


def fingerprint(obj: Any) -> str:
    """A stable hash of a model object's meaning (ignores `where`, `source`, `compiled`).
    Trigger and action specs are named by their type (`PriceTrigger`, `PlaceOrder`), not by
    their class, so that renaming a spec class never changes a fingerprint."""
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:16]


_COMPARED: dict[type, tuple[str, ...]] = {}
_LABELS: dict[type, str] = {}


def _label(cls: type) -> str:
    label = _LABELS.get(cls)
    if label is None:
        if issubclass(cls, (TriggerSpec, ActionSpec)):
            label = "".join(part.capitalize() for part in str(cls.type).split("_"))
            label += "Trigger" if issubclass(cls, TriggerSpec) else ""
        else:
            label = cls.__name__
        _LABELS[cls] = label
    return label


def _compared_fields(cls: type) -> tuple[str, ...]:
    names = _COMPARED.get(cls)
    if names is None:
        names = _COMPARED[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.compare)
    return names


def _canonical(obj: Any) -> str:
    cls = type(obj)
    if hasattr(cls, "__dataclass_fields__"):
        parts = [f"{name}={_canonical(getattr(obj, name))}" for name in _compared_fields(cls)]
        return f"{_label(cls)}({','.join(parts)})"
    if isinstance(obj, (tuple, list)):
        return "[" + ",".join(_canonical(v) for v in obj) + "]"
    if isinstance(obj, Enum):
        return repr(obj.value)
    return repr(obj)


def _plain(value: Any) -> Any:
    """A deep copy of a trigger context as plain data: mappings as dicts with string keys,
    sequences as lists, anything else (str, numbers, Decimal, None) as is."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class PendingHold:
    """A fired trigger the rule holds on to, re-checked on every event:

    - `kind="hold"`: a `for:` hold; the rule fires at `until` if the trigger (a price still
      beyond its level) and the guard still hold.
    - `kind="wait"`: the guard (or the trigger's own condition, while `trigger_ready` is False)
      read a value not known yet; the rule goes on as soon as it can be evaluated, or the wait
      is dropped at `until` (the engine's `result_timeout` after it began).

    `waiting` names the value waited for (`balance of ZUSD`); a hold whose guard cannot be
    evaluated waits too, at most `result_timeout` past `until`."""

    trigger_index: int
    since: float
    until: float
    context: dict[str, Any]
    kind: Literal["hold", "wait"] = "hold"
    waiting: str | None = None
    trigger_ready: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"trigger_index": self.trigger_index, "since": self.since, "until": self.until,
                "context": _plain(self.context), "kind": self.kind, "waiting": self.waiting,
                "trigger_ready": self.trigger_ready}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingHold:
        return cls(int(data["trigger_index"]), float(data["since"]), float(data["until"]),
                   _plain(data["context"]), data.get("kind", "hold"), data.get("waiting"),
                   bool(data.get("trigger_ready", True)))


@dataclass
class Run:
    """One firing's actions. `next_action` is the action to run (or whose result is awaited)."""

    fire_seq: int
    trigger_index: int
    context: dict[str, Any]
    fired_at: float
    next_action: int = 0
    waiting: str | None = None
    waiting_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fire_seq": self.fire_seq, "trigger_index": self.trigger_index, "context": _plain(self.context),
                "fired_at": self.fired_at, "next_action": self.next_action, "waiting": self.waiting,
                "waiting_since": self.waiting_since}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(int(data["fire_seq"]), int(data["trigger_index"]), _plain(data["context"]),
                   float(data["fired_at"]), int(data["next_action"]), data.get("waiting"),
                   data.get("waiting_since"))


@dataclass
class RuleState:
    """One rule's explicit state. `actions_fp` / `gate_fp` fingerprint the definition the
    run/queue and the pending hold belong to."""

    status: RuleStatus = "idle"
    fire_times: list[float] = field(default_factory=list)
    cooldown_until: float | None = None
    pending: PendingHold | None = None
    run: Run | None = None
    queue: list[Run] = field(default_factory=list)
    actions_fp: str = ""
    gate_fp: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "fire_times": list(self.fire_times),
            "cooldown_until": self.cooldown_until,
            "pending": self.pending.to_json() if self.pending else None,
            "run": self.run.to_json() if self.run else None,
            "queue": [r.to_json() for r in self.queue],
            "actions_fp": self.actions_fp,
            "gate_fp": self.gate_fp,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        return cls(
            status=data.get("status", "idle"),
            fire_times=[float(t) for t in data.get("fire_times", [])],
            cooldown_until=data.get("cooldown_until"),
            pending=PendingHold.from_json(data["pending"]) if data.get("pending") else None,
            run=Run.from_json(data["run"]) if data.get("run") else None,
            queue=[Run.from_json(r) for r in data.get("queue", [])],
            actions_fp=data.get("actions_fp", ""),
            gate_fp=data.get("gate_fp", ""),
        )


@dataclass
class InFlight:
    """An intent whose result is awaited; kept even if its run ends, so the order view
    still learns the outcome."""

    kind: str
    rule_id: str | None
    market: str
    since: float
    order_key: str | None = None
    txids: tuple[str, ...] = ()
    cl_ord_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule_id": self.rule_id, "market": self.market, "since": self.since,
                "order_key": self.order_key, "txids": list(self.txids), "cl_ord_ids": list(self.cl_ord_ids)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InFlight:
        return cls(data["kind"], data.get("rule_id"), data["market"], float(data["since"]), data.get("order_key"),
                   tuple(data.get("txids", [])), tuple(data.get("cl_ord_ids", [])))


RULE_SECTIONS = ("rules", "watches", "fire_seq")
"""The snapshot sections keyed by rule: `rules[id]`, `watches["id#index"]`, `fire_seq[id]`."""

RulePart = dict[str, dict[str, Any]]
"""One rule's entries in the per-rule sections: `{section: {key: value}}`."""


def merge_parts(base: Mapping[str, Any], parts: Mapping[str, RulePart | None]) -> dict[str, Any]:
    """The whole snapshot: a copy of `base` with every part's entries added to its sections."""
    snapshot = dict(base)
    for section in RULE_SECTIONS:
        snapshot[section] = dict(base.get(section) or {})
    for part in parts.values():
        for section, entries in (part or {}).items():
            snapshot[section].update(entries)
    return snapshot


@dataclass(frozen=True)
class SnapshotChanges:
    """What changed since the previous `Engine.snapshot_changes()`, to persist incrementally.

    - `base`: the engine-wide part of the snapshot (`EngineState.base_snapshot()`), always whole;
    - `parts`: by rule id, that rule's part (`RulePart`), or None when nothing of it is left;
    - `complete`: `parts` holds every rule, so stored parts not in it are stale.

    `merge_parts(base, stored parts updated with parts)` is `Engine.snapshot()` at the time
    of the call. Plain data sharing nothing with the engine, like the snapshot."""

    base: dict[str, Any]
    parts: dict[str, RulePart | None]
    complete: bool = False

    def then(self, newer: SnapshotChanges) -> SnapshotChanges:
        """These changes followed by `newer` ones, as one set of changes."""
        if newer.complete:
            return newer
        return SnapshotChanges(newer.base, {**self.parts, **newer.parts}, self.complete)


@dataclass
class KillState:
    engaged: bool = False
    since: float | None = None
    reason: str = ""
    count: int = 0  # times engaged, for kill-switch intent ids


@dataclass
class EngineState:
    """The core's memory. Build a fresh one, or `from_snapshot(engine.snapshot())`.
    Quotes are memory only: after a restore the first tick of each symbol is a first observation."""

    rules: dict[str, RuleState] = field(default_factory=dict)
    watches: dict[str, tuple[str, str]] = field(default_factory=dict)
    fire_seq: dict[str, int] = field(default_factory=dict)
    kill: KillState = field(default_factory=KillState)
    balances: Balances = field(default_factory=Balances)
    orders: Orders = field(default_factory=Orders)
    order_times: OrderTimes = field(default_factory=OrderTimes)
    inflight: dict[str, InFlight] = field(default_factory=dict)
    now: float = 0.0
    quotes: Quotes = field(default_factory=Quotes)

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data (Decimals only inside trigger contexts), sharing nothing with this state;
        write it with `rules_engine.jsoncodec` (as the state store does)."""
        snapshot = self.base_snapshot()
        snapshot["rules"] = {rule_id: st.to_json() for rule_id, st in self.rules.items()}
        snapshot["watches"] = {key: list(value) for key, value in self.watches.items()}
        snapshot["fire_seq"] = dict(self.fire_seq)
        return snapshot

    def base_snapshot(self) -> dict[str, Any]:
        """The engine-wide part of the snapshot, with the per-rule sections (`RULE_SECTIONS`) empty.

        The times of the orders decided (for the per-minute and per-day risk limits) are not in
        it: every order decision is already a row of the state store, which gives them back on
        a restore (`StateStore.decision_times`, put in as the snapshot's `order_times`)."""
        return {
            "version": SNAPSHOT_VERSION,
            "now": self.now,
            "rules": {},
            "watches": {},
            "fire_seq": {},
            "kill_switch": {"engaged": self.kill.engaged, "since": self.kill.since, "reason": self.kill.reason,
                            "count": self.kill.count},  # dataclasses.asdict(self.kill), without its recursion
            "balances": self.balances.to_json(),
            "orders": [o.to_json() for o in self.orders],
            "inflight": {key: f.to_json() for key, f in self.inflight.items()},
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> EngineState:
        """Rebuild from `Engine.snapshot()`; raise ValueError for another snapshot version."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"engine snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}")
        return cls(
            rules={rule_id: RuleState.from_json(st) for rule_id, st in data.get("rules", {}).items()},
            watches={key: (str(v[0]), str(v[1])) for key, v in data.get("watches", {}).items()},
            fire_seq={k: int(v) for k, v in data.get("fire_seq", {}).items()},
            kill=KillState(**data.get("kill_switch", {})),
            balances=Balances.from_json(data.get("balances", {})),
            orders=Orders(OrderView.from_json(o) for o in data.get("orders", [])),
            order_times=OrderTimes([float(t) for t in data.get("order_times", [])]),
            inflight={key: InFlight.from_json(f) for key, f in data.get("inflight", {}).items()},
            now=float(data.get("now", 0.0)),
        )
