"""Named points where a crash test makes the process kill itself with SIGKILL.

    crash_point("order.after_send")      # no-op unless RULES_ENGINE_CRASH_AT names it

`RULES_ENGINE_CRASH_AT=order.after_send` kills the process the first time that point is
reached; `order.after_send@3` the third time. The variable is read once, at import: with it
unset (every real run) a crash point is one comparison. The crash suite
(`tests/crash/`) runs `rules-engine run` with it set, so `kill -9` lands exactly at each
step around the send instead of wherever a timer happens to hit.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "RULES_ENGINE_CRASH_AT"

POINTS = (
    "order.after_commit",     # the decision's row and the core's state committed, nothing audited
    "order.after_decision",   # the decision audited (fsynced), not yet marked sent
    "order.after_mark_sent",  # marked sent, the request not yet sent
    "order.after_send",       # Kraken answered, the answer not yet audited nor recorded
    "order.after_outcome",    # the outcome recorded, the result not yet back in the core
    "result.after_handled",   # the result handled by the core, its state not yet committed
    "signal.after_durable",   # a signal recorded durably, the 202 not yet sent
    "signal.after_decided",   # a signal decided by the core, its state not yet committed
    "intake.before_commit",   # the intake wrote a signal and its deliveries, not yet committed
    "intake.after_commit",    # the intake committed them, the 200 not yet sent
)
"""Every crash point, in the order an order or a signal passes them."""


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition("@")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown crash point (known: {', '.join(POINTS)})")
    return name, int(nth) if nth else 1


_TARGET = _parse(os.environ.get(ENV))
_hits = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if `RULES_ENGINE_CRASH_AT` names this point (and hit)."""
    global _hits
    if _TARGET is None or _TARGET[0] != name:
        return
    with _lock:
        _hits += 1
        if _hits >= _TARGET[1]:
            os.kill(os.getpid(), signal.SIGKILL)
