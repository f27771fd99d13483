"""A decision committed but proven never placed gets its order: sent again, once, while fresh.

An engine that stops (killed, or its key taken over) between committing a decision and
sending its order leaves the decision unresolved. The next engine on the key (the same one
restarted, or the new lease holder) settles it before acting (`Dispatcher.recover`, one code
path for both). It is **proven never placed** when:

- it is still `pending` without its `decision` audit record: that record (the "sent" mark)
  is written before a request is signed, so none was; or
- its lookup by `cl_ord_id` (open, then closed orders) finds nothing after the AddOrder
  `deadline` it was sent with has passed on Kraken's clock (`execution.deadlines` waits for
  that first): Kraken refuses a request that arrives after its deadline, so that one can
  never be placed any more.

Such a decision is then sent again (`resent_after_proven_absent` in the audit), with a fresh
nonce and a new deadline, under the **same** `cl_ord_id`: the old request can no longer
match, so an order found later with that id is the resend's, and Kraken's uniqueness of
`cl_ord_id` among open orders refuses a second copy of a resting one. It is resent at most
once (`EngineStore.mark_resent` records it durably before the request is signed): if the
resend is proven absent too, the decision is settled as not placed, as before.

**Only while fresh.** An old crossing must not trade later. The decision's age counts from
when its rule fired (the run's `fired_at`; the decision's commit if that run is gone):

- every trigger: at most `recovery.resend_within` (engine config, default 30 s; 0 never
  resends);
- a signal trigger: also at most the signal's `max_age` where one is known (a fan-out
  provider's, as the intake recorded it with the deliveries).

Nothing is sent while the kill switch is engaged. A decision too old (or blocked) is settled
as before (`abandoned` if never sent, `rejected` with `OrderNotPlaced` if sent and not found)
and audited `not_resent` with the reason, its age and bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.core import intents as it
from rules_engine.state.store import OrderRecord

DEFAULT_RESEND_WITHIN = 30.0
"""Seconds after its rule fired that a decision proven never placed may still be sent."""

Fired = Callable[[str, int], "tuple[Any, float] | None"]
"""(rule id, fire number) -> the trigger spec and fire time of that run (`Engine.fired`), None if unknown."""


@dataclass(frozen=True)
class Freshness:
    """Whether a decision proven never placed may be sent now, and why."""

    fresh: bool
    age: float  # seconds since its rule fired
    bound: float  # the most it may be
    trigger: str | None  # the trigger type that fired it, if known
    source: str | None = None  # a signal trigger's source

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = {"age_s": round(self.age, 3), "bound_s": self.bound, "trigger": self.trigger}
        if self.source is not None:
            data["source"] = self.source
        return data


class ResendPolicy:
    """Judges a decision's freshness (see the module)."""

    def __init__(self, within: float = DEFAULT_RESEND_WITHIN, *, fired: Fired | None = None,
                 signal_max_age: Callable[[str], float | None] | None = None,
                 blocked: Callable[[], str | None] | None = None) -> None:
        if within < 0:
            raise ValueError("resend_within must be 0 or more seconds")
        self.within = within
        self.fired = fired
        self.signal_max_age = signal_max_age
        self.blocked = blocked  # why nothing may be sent now (the kill switch), None if it may

    def judge(self, decision: OrderRecord, now: float) -> Freshness:
        rule_id, _, seq = decision.decision_id.rpartition("#")
        origin = self.fired(rule_id, int(seq)) if self.fired is not None and seq.isdigit() else None
        trigger, since = (origin[0], origin[1]) if origin is not None else (None, decision.created_at)
        kind = getattr(trigger, "type", None)
        source = getattr(trigger, "source", None) if kind == "signal" else None
        bound = self.within
        if source is not None and self.signal_max_age is not None:
            try:
                max_age = self.signal_max_age(source)
            except Exception:  # the store cannot tell how fresh the signal is: not traded on a guess
                max_age = 0.0
            if max_age is not None:
                bound = min(bound, max_age)
        age = max(0.0, now - since)
        return Freshness(self.within > 0 and age <= bound, age, bound, kind, source)


def resend_policy(within: float, engine: Any, store: Any, blocked: Callable[[], str | None]) -> ResendPolicy:
    """The service's policy: fire times from `engine` (`Engine.fired`), a fan-out provider's
    max_age from `store` (`PgStateStore.signal_max_age`) where it has one, and `blocked` (the
    kill switch)."""
    return ResendPolicy(within, fired=engine.fired, signal_max_age=getattr(store, "signal_max_age", None),
                        blocked=blocked)


_ORDERS: dict[str, type[it.PlaceOrder] | type[it.FuturesSendOrder]] = {
    it.PlaceOrder.kind: it.PlaceOrder, it.FuturesSendOrder.kind: it.FuturesSendOrder}


def order_intent(stored: dict[str, Any]) -> it.PlaceOrder | it.FuturesSendOrder:
    """The order intent a decision recorded (`Intent.to_dict()`, as the store keeps it).
    Raises ValueError if it is not an order or cannot be read back."""
    cls = _ORDERS.get(str(stored.get("kind")))
    if cls is None:
        raise ValueError(f"not an order intent: {stored.get('kind')!r}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in stored:
            continue
        value, kind = stored[f.name], str(f.type)
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, str) and "Decimal" in kind:
            try:
                value = Decimal(value)
            except InvalidOperation:
                if "str" not in kind:
                    raise ValueError(f"{f.name}: not a number: {value!r}") from None
        values[f.name] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"the recorded intent cannot be read back: {exc}") from None
