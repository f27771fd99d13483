"""Where the time goes from a tick to its signed AddOrder (`python -m bench.engine_service --stages`).

A diagnostic, not a figure: it wraps the steps along the path (on the loop thread: the
consumer, the core's decision, the audit of its trace, the decision's audit record with its
fsync begun on the log's sync thread, the hand-off to the pair's lane; on the lane thread:
the SQLite commit, the executor, its wait for that fsync at the send gate) with wall-clock
markers, so each sample says how long after the tick's receipt each step began and ended.
The wrappers add a few microseconds per step.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rules_engine.audit.log import AuditLog
from rules_engine.audit.sync_thread import SyncThread
from rules_engine.driver.driver import Driver
from rules_engine.driver.lane import CommitLane
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.live import LiveExecutor
from rules_engine.service.app import EngineService
from rules_engine.service.lane import ThreadLane

STEPS: tuple[tuple[type, str, str], ...] = (
    (EngineService, "_handle_item", "consumer takes the tick"),
    (Driver, "process", "core decided; trace audit and hand-off"),
    (Driver, "_record", "audit of the decision's trace (loop)"),
    (CommitLane, "prewrite", "prewrite: the order's decision record (loop)"),
    (ThreadLane, "submit", "hand-off to the pair's lane"),
    (CommitLane, "_commit", "SQLite commit: decision row + state (lane)"),
    (Dispatcher, "_dispatch_order", "dispatch"),
    (AuditLog, "append_durable", "decision audit record, its fsync begun"),
    (LiveExecutor, "execute", "encode, nonce, sign"),
    (SyncThread, "wait", "signed: waits for the fsync at the send gate"),
)


class Marks:
    """(label, time.time()) in the order they happened, over every thread."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def mark(self, label: str, at: float | None = None) -> None:
        self.marks.append((label, time.time() if at is None else at))

    def wrap(self, owner: type, name: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.mark(f"{name}>")
            try:
                return original(*args, **kwargs)
            finally:
                self.mark(f"{name}<")

        setattr(owner, name, wrapped)
        return lambda: setattr(owner, name, original)

    @contextmanager
    def installed(self) -> Iterator[None]:
        undo = [self.wrap(owner, name) for owner, name, _ in STEPS]
        try:
            yield
        finally:
            for step in reversed(undo):
                step()

    def samples(self) -> list[dict[str, float]]:
        """Per tick that led to an order: ms after the tick of each marker's first time."""
        out, current = [], None
        for label, at in self.marks:
            if label == "tick":
                current = {"tick": at}
                continue
            if current is None or label in current:
                continue
            current[label] = at
            if label == "sent":
                out.append({k: (v - current["tick"]) * 1000 for k, v in current.items() if k != "tick"})
                current = None
        return out


def report(samples: list[dict[str, float]]) -> str:
    """One line per step: when it began and ended after the tick (p50, p99 over the samples)
    and its own p50 duration."""
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    lines = [f"    {'step':50} {'begins p50':>10} {'ends p50':>9} {'ends p99':>9} {'takes p50':>10}"]
    for _, name, title in STEPS:
        begins = [s[f"{name}>"] for s in samples if f"{name}>" in s and f"{name}<" in s]
        ends = [s[f"{name}<"] for s in samples if f"{name}>" in s and f"{name}<" in s]
        if not begins:  # a step that ends after the send (the dispatch, the executor): when it began
            started = [s[f"{name}>"] for s in samples if f"{name}>" in s]
            if started:
                lines.append(f"    {title:50} {statistics.median(started):10.3f}")
            continue
        takes = [e - b for b, e in zip(begins, ends, strict=True)]
        lines.append(f"    {title:50} {statistics.median(begins):10.3f} {statistics.median(ends):9.3f} "
                     f"{pct(ends, 0.99):9.3f} {statistics.median(takes):10.3f}")
    sent = [s["sent"] for s in samples]
    lines.append(f"    {'signed request handed to the transport':50} {'':10} {statistics.median(sent):9.3f} "
                 f"{pct(sent, 0.99):9.3f}")
    return "\n".join(lines)
