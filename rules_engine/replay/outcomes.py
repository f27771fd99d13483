"""Outcomes: what each rule did, read from the core's trace.

An `Outcome` is one attempt of one rule at one moment:
- a **fire** (`fired=True`): the rule made a decision; it carries the intents of its run, the
  simulated fills of its orders and, if the run was stopped, the `Block` that stopped it
  (a failed balance check, a risk limit, an expression error, a refused order);
- a **non-fire** (`fired=False`): a trigger matched but a gate held the rule back (its guard,
  a cooldown, `max_fires`, a run in progress, the kill switch, a cancelled `for:` hold).

`Block.by` names the gate in one word, the vocabulary rule tests use:

| by           | trace it comes from |
|--------------|---------------------|
| guard        | `guard` result false (the rule's `when`) |
| balance      | `blocked`: check_balance failed |
| risk         | `risk` + `blocked`: a risk limit (`detail["limits"]` names them) |
| kill_switch  | `blocked` / `dropped` because the kill switch is engaged |
| cooldown     | `dropped`: cooling down |
| max_fires    | `dropped`: max_fires reached |
| busy         | `dropped`: a run is still in progress (mode single) or the queue is full |
| pending      | `dropped`: a `for:` hold is already in progress |
| hold         | `dropped`: a `for:` hold was cancelled (guard or price no longer holds) |
| waiting      | `blocked`: the guard reads a value not known yet; `dropped`: it never became known |
| error        | `error`: an expression, template or action failed |
| exchange     | the run stopped on a failed result (the paper exchange refused the order) |
| stopped      | the run stopped for another reason (a result that never came) |

A signal trigger whose `where` is false did not match: that is no outcome at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rules_engine.core.decimals import plain
from rules_engine.core.intents import AnyIntent, ReadBalance
from rules_engine.core.trace import TraceRecord

BLOCK_KINDS = (
    "guard", "balance", "risk", "kill_switch", "cooldown", "max_fires", "busy", "pending", "hold", "waiting", "error",
    "exchange", "stopped",
)

_DROPPED = (
    ("already pending", "pending"),
    ("cooling down", "cooldown"),
    ("max_fires reached", "max_fires"),
    ("previous run still in progress", "busy"),
    ("queue full", "busy"),
    ("pending cancelled", "hold"),
    ("wait cancelled", "waiting"),
    ("kill switch", "kill_switch"),
)

_FAILED_RESULT = re.compile(r"^\w+ failed: ")  # the runner's words for a result with ok=False


@dataclass(frozen=True)
class Block:
    """Why a rule did not fire, or why its run stopped."""

    by: str
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FillRecord:
    """One simulated fill on the paper exchange (orders fill in full)."""

    time: float
    txid: str
    cl_ord_id: str | None
    pair: str
    side: str
    ordertype: str
    volume: Decimal
    price: Decimal
    fee: Decimal
    rule_id: str | None = None
    decision_id: str | None = None
    balances_after: Mapping[str, Decimal] | None = field(default=None, compare=False)  # the wallet after this fill
    fee_asset: str | None = None


ORDER_ENDS = ("filled", "partially filled", "expired", "cancelled")


@dataclass(frozen=True)
class OrderEnd:
    """How one order placed on the paper exchange ended: `filled`, or `expired` / `cancelled`
    (`partially filled` when it had filled in part before). `price` is the limit price
    (None for market orders); `placed` is when it was placed."""

    time: float
    txid: str
    pair: str
    side: str
    ordertype: str
    volume: Decimal
    filled: Decimal
    price: Decimal | None
    placed: float
    status: str
    reason: str | None = None
    rule_id: str | None = None
    decision_id: str | None = None


@dataclass
class Outcome:
    """One attempt of one rule (see the module docstring)."""

    time: float
    rule_id: str
    fired: bool
    decision_id: str | None = None
    trigger: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    intents: list[AnyIntent] = field(default_factory=list)
    block: Block | None = None
    status: str = "running"  # fires: running -> completed | stopped; non-fires: blocked
    fills: list[FillRecord] = field(default_factory=list)
    ended: list[OrderEnd] = field(default_factory=list)  # its orders that expired or were cancelled
    balances_after: dict[str, Decimal] | None = None

    @property
    def price(self) -> Decimal | None:
        value = self.context.get("price")
        return value if isinstance(value, Decimal) else None


class OutcomeRecorder:
    """Turns trace records into outcomes, in order. Feed every decision's trace and intents.
    With `keep=False` the outcomes are not collected (a replay streams them) and `forget`
    drops a settled fire, so memory does not grow with the number of fires."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.outcomes: list[Outcome] = []
        self._by_decision: dict[str, Outcome] = {}
        self._risk: dict[str, list[dict[str, Any]]] = {}

    def decision(self, decision_id: str) -> Outcome | None:
        return self._by_decision.get(decision_id)

    def forget(self, outcome: Outcome) -> None:
        """Drop a settled fire from the lookup (it will get no more trace records)."""
        if outcome.decision_id is not None:
            self._by_decision.pop(outcome.decision_id, None)

    def record(self, trace: tuple[TraceRecord, ...], intents: tuple[AnyIntent, ...]) -> list[Outcome]:
        """Apply one decision's trace; returns the outcomes it created or changed."""
        touched: list[Outcome] = []
        held: dict[str, Outcome] = {}  # this step's non-fire per rule: the first reason wins
        for record in trace:
            kind, rule_id, detail = record.kind, record.rule_id, record.detail
            if rule_id is None or kind in ("trigger", "state", "action"):
                continue
            did = detail.get("decision_id")
            if kind == "decision":
                if "fire_seq" in detail:
                    outcome = Outcome(record.time, rule_id, True, did, detail.get("trigger"),
                                      dict(detail.get("context") or {}))
                    if did is not None:
                        self._by_decision[did] = outcome
                    if self.keep:
                        self.outcomes.append(outcome)
                    touched.append(outcome)
                elif did in self._by_decision:
                    outcome = self._by_decision[did]
                    outcome.status = detail.get("outcome", outcome.status)
                    if outcome.status == "stopped" and outcome.block is None:
                        reason = str(detail.get("reason", ""))
                        outcome.block = Block("exchange" if " failed: " in reason else "stopped", reason)
                    touched.append(outcome)
                continue
            if kind == "risk":
                self._risk.setdefault(did or "", []).append(dict(detail))
                continue
            block = self._block(kind, detail, did)
            if block is None:
                continue
            if did is not None and did in self._by_decision:
                outcome = self._by_decision[did]
                if outcome.block is None:
                    outcome.block = block
                touched.append(outcome)
            elif did is None and rule_id not in held:
                outcome = Outcome(record.time, rule_id, False, trigger=detail.get("trigger"), block=block,
                                  status="blocked")
                held[rule_id] = outcome
                if self.keep:
                    self.outcomes.append(outcome)
                touched.append(outcome)
        for intent in intents:
            owner = self._by_decision.get(intent.decision_id or "")
            if owner is not None and not isinstance(intent, ReadBalance):
                owner.intents.append(intent)
        return touched

    def _block(self, kind: str, detail: Mapping[str, Any], did: str | None) -> Block | None:
        reason = str(detail.get("reason", ""))
        extra = {k: v for k, v in detail.items() if k not in ("reason", "decision_id")}
        if kind == "guard":
            if detail.get("result") is not False or "where" in detail:
                return None
            seen = "; ".join(f"{v.get('expression')} = {_plain(v.get('value'))}" for v in detail.get("values") or ())
            return Block("guard", "guard is false" + (f": {seen}" if seen else ""), extra)
        if kind == "error":
            return Block("exchange" if _FAILED_RESULT.match(reason) else "error", reason, extra)
        if kind == "blocked":
            if reason.startswith("check_balance"):
                return Block("balance", reason, extra)
            if reason.startswith("risk limit"):
                extra["breaches"] = self._risk.pop(did or "", [])
                return Block("risk", reason, extra)
            if "kill switch" in reason:
                return Block("kill_switch", reason, extra)
            if "waiting" in detail:
                return Block("waiting", reason, extra)
            return Block("stopped", reason, extra)
        if kind == "dropped":
            for needle, by in _DROPPED:
                if needle in reason:
                    return Block(by, reason, extra)
        return None


def _plain(value: Any) -> str:
    return plain(value) if isinstance(value, Decimal) else str(value)
