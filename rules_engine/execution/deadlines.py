"""Before a start settles what a previous run left in flight: wait out the AddOrder deadlines.

A decision marked `sent`, or `pending` with its `decision` audit record written (fsynced right
before the send), may have reached Kraken, and a request still on its way is placed if
it arrives before its `deadline` (Kraken refuses it after). So "not found" proves "never
placed" only once that deadline has passed on Kraken's clock. `wait_out_deadlines` waits
until every in-flight decision is found, or every deadline they can have has passed (below);
then `Dispatcher.recover` looks each up and settles it (and a proven-absent one may be sent
again, `execution.resend`).

The wait ends `order_deadline` + MARGIN after it began, on this engine's Kraken clock: every
request of the previous run that can still be placed was signed before it began (that run is
dead, or fenced: Kraken refuses its nonces from the fence on), so its deadline has passed by
then. It is not counted from the recorded times: a decision is recorded before its request is
signed (and its deadline set), by as long as the engine stalled in between, and Kraken may hold
a request it took until that request's own deadline; counted from the record, a lookup could
miss a queued order and send it a second time. The recorded time is also another clock's (the
previous holder's wall clock; this engine knows Kraken's clock to within half a second, `Time`
being in whole seconds), so the executor is told (`prove_absent_after`) that "not found" at the
end of the wait is proof for these decisions whatever their recorded time says.

One function for both ways an engine takes over a key: the single engine restarted after a
crash (`rules-engine run`), and the high-availability standby after it fenced the key
(`service.ha`). Each lookup costs the key's REST counter, so a decision is looked up at once
and once more `lookup_every` seconds later, no more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rules_engine.audit.sink import AuditSink
from rules_engine.execution.dispatcher import may_have_left
from rules_engine.state.protocol import EngineStore

log = logging.getLogger(__name__)

MARGIN = 1.1
"""Seconds past a deadline before "not found" counts (the executor's own margin is 1 s)."""
LOOKUP_EVERY = 2.0
"""Seconds from the first lookup of an in-flight decision to its second."""


def wait_out_deadlines(executor: Any, store: EngineStore, audit: AuditSink | None, *, order_deadline: float,
                       clock: Callable[[], float], sleep: Callable[[float], None] = time.sleep,
                       lookup_every: float = LOOKUP_EVERY) -> float:
    """Wait until no in-flight decision of a previous run can still be placed (see the
    module); `clock` is Kraken's clock as the executor judges deadlines. Returns the seconds
    waited. A decision still `pending` without its `decision` record in `audit` never left:
    nothing to wait for (without `audit`, every one is waited for)."""
    in_flight = [d for d in store.unresolved_decisions()
                 if d.status != "pending" or audit is None or may_have_left(audit, d)]
    began = time.monotonic()
    if not in_flight:
        return 0.0
    until = clock() + order_deadline + MARGIN  # not from the recorded times: see the module
    prove = getattr(getattr(executor, "inner", executor), "prove_absent_after", None)
    if prove is not None:
        prove(in_flight, until)
    for lookup in range(2):
        in_flight = [d for d in in_flight if not executor.reconcile(d).result.ok]
        left = until - clock()
        if not in_flight or left <= 0:
            break
        sleep(min(lookup_every, left) if lookup == 0 else left)
    if in_flight:
        log.info("%d order(s) of the previous run not found before their deadline: looked up once more now",
                 len(in_flight))
    return time.monotonic() - began


def wait_for_in_flight(executor: Any, store: EngineStore, audit: AuditSink | None, *,
                       sleep: Callable[[float], None] = time.sleep) -> float:
    """`wait_out_deadlines` for an executor that places orders with a deadline (live; the
    executor may be wrapped, e.g. by the balance cache); 0 for any other (nothing in flight)."""
    inner = getattr(executor, "inner", executor)
    order_deadline, clock = getattr(inner, "order_deadline", None), getattr(inner, "clock", None)
    if order_deadline is None or clock is None:
        return 0.0
    return wait_out_deadlines(executor, store, audit, order_deadline=float(order_deadline), clock=clock, sleep=sleep)
