"""Named points where a crash test makes the process kill itself with SIGKILL.

    crash_point("order.after_send")      # no-op unless RULES_ENGINE_CRASH_AT names it

`RULES_ENGINE_CRASH_AT=order.after_send` kills the process the first time that point is
reached; `order.after_send@3` the third time; `order.signed:stop` stops it with SIGSTOP
instead (a pause, resumed by SIGCONT: the high-availability tests' frozen leader). The
variable is read once, at import: with it unset (every real run) a crash point is one
comparison. The crash suite (`tests/e2e/test_e2e_crash.py`) runs `rules-engine run` with it
set, so `kill -9` lands exactly at each step around the send instead of wherever a timer
happens to hit.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "RULES_ENGINE_CRASH_AT"

POINTS = (
    "order.before_commit",    # an order decided, its decision record written ahead (SQLite), its row not committed
    "order.after_commit",     # the decision's row and the core's state committed, nothing sent
    "order.after_decision",   # the decision audited (fsynced: its "sent" mark), the request not yet sent
    "order.before_resend",    # a decision proven never placed marked for its one resend, not yet sent
    "order.signed",           # an AddOrder signed with its nonce, not yet sent (high availability only)
    "order.mid_request",      # an AddOrder on its way, its answer not yet read (high availability only)
    "order.after_send",       # Kraken answered, the answer not yet audited nor recorded
    "order.after_outcome",    # the outcome recorded, the result not yet back in the core
    "result.after_handled",   # the result handled by the core, its state not yet committed
    "signal.after_durable",   # a signal recorded durably, the 202 not yet sent
    "signal.after_decided",   # a signal decided by the core, its state not yet committed
    "intake.before_commit",   # the intake wrote a signal and its deliveries, not yet committed
    "intake.after_commit",    # the intake committed them, the 200 not yet sent
    "takeover.reconcile",     # a new lease holder fenced the key, its reconcile not yet done
    "lease.renewed",          # a lease renewal committed (the lease keeper's thread)
)
"""Every crash point, in the order an order or a signal passes them."""


def _parse(value: str | None) -> tuple[str, int, signal.Signals] | None:
    if not value:
        return None
    point, _, action = value.partition(":")
    name, _, nth = point.partition("@")
    if name not in POINTS or action not in ("", "stop"):
        raise ValueError(f"{ENV}={value!r}: unknown crash point (known: {', '.join(POINTS)}; "
                         f"optionally @N and :stop)")
    return name, int(nth) if nth else 1, signal.SIGSTOP if action == "stop" else signal.SIGKILL


_TARGET = _parse(os.environ.get(ENV))
_hits = 0
_lock = threading.Lock()


def armed(name: str) -> bool:
    """Whether `RULES_ENGINE_CRASH_AT` names this point."""
    return _TARGET is not None and _TARGET[0] == name


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL (or stop it: `:stop`) if `RULES_ENGINE_CRASH_AT` names
    this point (and hit)."""
    global _hits
    if _TARGET is None or _TARGET[0] != name:
        return
    with _lock:
        _hits += 1
        hit = _hits == _TARGET[1] if _TARGET[2] == signal.SIGSTOP else _hits >= _TARGET[1]
    if hit and _TARGET[2] == signal.SIGSTOP:  # to this thread: it stops before its next step, not
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)  # after, as with the process's signal
    elif hit:
        os.kill(os.getpid(), _TARGET[2])
