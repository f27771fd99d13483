"""Accepted means durable: the webhook answers 202 only once the signal is in the state store.

The webhook's replay check (`seen`) only looks; `accept` then records, in one durable
transaction, the signal in the inbox and its ids as seen (the ids the check looked at for
this request). The signal goes on the queue with its inbox number; the commit that saves
its decision drops it from the inbox (`CommitLane.stage_signal`). At start-up, signals still
in the inbox were accepted but never decided: `pending()` hands them back, in order, to be
decided before any new event. So a signal answered 202 is decided exactly once, whenever
the engine is killed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules_engine.core.events import Signal
from rules_engine.crashpoints import crash_point
from rules_engine.state.protocol import EngineStore


@dataclass(frozen=True)
class InboxSignal:
    """A signal on the service's queue with its number in the inbox."""

    signal: Signal
    number: int


class SignalReplayed(Exception):
    """Another request recorded one of this signal's ids first."""


class SignalInbox:
    """The service's side of the state store's signal inbox (see the module docstring).
    Runs on the event loop: a request's `seen` checks and its `accept` (or `discard`) follow
    each other with nothing in between."""

    def __init__(self, store: EngineStore) -> None:
        self.store = store
        self._checked: dict[str, float] = {}  # ids the current request's check found new -> expiry

    def seen(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        """The webhook's replay check; a new id is recorded by `accept`."""
        if self.store.signal_seen(source, signal_id, now):
            return True
        self._checked[signal_id] = now + ttl
        return False

    def accept(self, signal: Signal) -> InboxSignal:
        """Record the signal durably (fsynced) with its ids; raises SignalReplayed."""
        checked, self._checked = self._checked, {}
        number = self.store.accept_signal(signal.source, signal.signal_id, signal.payload, signal.time, checked)
        if number is None:
            raise SignalReplayed(f"signal {signal.signal_id!r} was already received")
        crash_point("signal.after_durable")
        return InboxSignal(signal, number)

    def discard(self) -> None:
        """The request was refused: forget what its check looked at."""
        self._checked = {}

    def pending(self) -> list[InboxSignal]:
        """Signals accepted but not decided by a previous run, in arrival order."""
        return [InboxSignal(Signal(source, payload, time, signal_id), number)
                for number, source, signal_id, payload, time in self.store.pending_signals()]
