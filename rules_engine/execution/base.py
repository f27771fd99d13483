"""The executor interface every mode implements, and the local actions they share."""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from rules_engine.core import intents as it
from rules_engine.core.events import Event, Tick
from rules_engine.execution.report import ExecutionReport, ok
from rules_engine.redact import redact

action_log = logging.getLogger("rules_engine.actions")
notify_log = logging.getLogger("rules_engine.notify")



def keep_rule_output_in_reports() -> None:
    """For an offline run (`rules-engine test`, `replay`), whose report lists every `log` and
    `notify` intent: keep their lines off stderr, where Python's last-resort handler would
    print those at warning level and above when no logging is set up."""
    for logger in (action_log, notify_log):
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


@runtime_checkable
class Executor(Protocol):
    """Turns intents into effects. `execute` and `reconcile` never raise: every failure
    is an `ActionResult(ok=False)` with `error_class` and `retry_safe` in its data."""

    mode: str

    def execute(self, intent: it.Intent, now: float) -> ExecutionReport:
        """Carry out one intent."""
        ...

    def observe(self, tick: Tick) -> list[Event]:
        """Learn a market price (the paper wallet fills on it); return resulting events."""
        ...

    def advance(self, now: float) -> list[Event]:
        """Let time pass (the paper wallet's expiries and dead man's switch); return resulting events."""
        ...

    def read_account(self, now: float) -> ExecutionReport:
        """The account's balances and open spot orders (see `execution.account`); never raises."""
        ...

    def reconcile(self, decision: Any, now: float | None = None) -> ExecutionReport:
        """Settle an order decision (a state-store `OrderRecord` left sent/unknown) by
        looking its order up by client order id; never sends the order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def run_local(intent: it.Log | it.Notify, now: float) -> ExecutionReport:
    """A rule's `log` / `notify`: one redacted log line (`rules_engine.actions` at the
    rule's level; `rules_engine.notify` at WARNING with the channel)."""
    message = redact(intent.message)
    if isinstance(intent, it.Log):
        action_log.log(_LEVELS.get(intent.level.lower(), logging.INFO), "[%s] %s", intent.rule_id, message)
    else:
        notify_log.warning("[%s] notify %s: %s", intent.rule_id, intent.channel, message)
    return ExecutionReport(ok(intent, now))
