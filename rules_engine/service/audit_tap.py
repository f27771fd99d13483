"""An `AuditSink` in front of the audit log that lets the service watch what is written.

Every record the log accepted (redacted, with its `seq`) goes to the watchers: the decision
log, the status board. Every write that failed, and the first one that succeeded after it,
goes to `on_health` at once (on the writer's thread), so readiness can say "the audit log
cannot be written" and take it back once a write succeeds again. The log's own behaviour
(redaction, chaining, durability) is unchanged: the tap only delegates and reports.

With `later` set (the service: `service.watch_later.WatchLater`), a write only queues its
records (a deque append) and calls `later()`; the watchers get them, in `seq` order, when
`flush()` is called, on one thread (the event loop): the decision log's lines and the status
board's traces are then written after an order has left, not on its way. Without `later`
the watchers are called on the writer's thread as each write returns.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from rules_engine.audit import AuditError
from rules_engine.audit.sink import AuditSink, Entry
from rules_engine.audit.sync_thread import durable_already

_T = TypeVar("_T")
log = logging.getLogger(__name__)

RecordsWatcher = Callable[[list[dict[str, Any]]], None]
"""Called with the records of one write, in order (on the writer's thread: must not block)."""


class AuditTap:
    """Delegates to `inner`; tells `watchers` of written records and `on_health(error | None)`
    of a failed write (its message) and of the first good write after failures (None)."""

    def __init__(self, inner: AuditSink, watchers: Iterable[RecordsWatcher] = (),
                 on_health: Callable[[str | None], None] | None = None,
                 later: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.watchers: list[RecordsWatcher] = list(watchers)
        self.later = later
        self._on_health = on_health
        self._failing: str | None = None
        self._lock = threading.Lock()
        self._queued: deque[list[dict[str, Any]]] = deque()  # written, not yet handed to the watchers
        self._held: list[dict[str, Any]] = []  # taken from the queue, waiting for a lower seq
        self._writing: list[None] = []  # one item per write under way (list append/pop: atomic)
        self._last_seq: int | None = None  # the last seq handed to the watchers

    @property
    def path(self) -> Any:
        """The log file of the sink behind the tap (None for an in-memory sink)."""
        return getattr(self.inner, "path", None)

    @property
    def find_answer(self) -> Any:
        """The sink's own lookup of an order's audited answer (None: read `path`)."""
        return getattr(self.inner, "find_answer", None)

    @property
    def find_decision(self) -> Any:
        """The sink's own lookup of an order's `decision` record (None: read `path`)."""
        return getattr(self.inner, "find_decision", None)

    @property
    def head(self) -> Any:
        """The (seq, hash) of the last record of the sink behind the tap (None if it has none)."""
        return getattr(self.inner, "head", None)

    @property
    def failing(self) -> str | None:
        """The last write error, while no write has succeeded since."""
        return self._failing

    def append(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
               data: Mapping[str, Any] | None = None, sync: bool = False) -> dict[str, Any]:
        return self._tapped(lambda: self.inner.append(kind, rule_id=rule_id, rule_file_hash=rule_file_hash,
                                                      data=data, sync=sync), lambda record: [record])

    def append_durable(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
                       data: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Callable[[], None]]:
        """`AuditLog.append_durable` through the tap (a sink without it appends with `sync=True`);
        a failed wait is reported as a failed write."""
        inner_durable = getattr(self.inner, "append_durable", None)
        if inner_durable is None:
            record = self.append(kind, rule_id=rule_id, rule_file_hash=rule_file_hash, data=data, sync=True)
            return record, durable_already
        record, durable = self._tapped(lambda: inner_durable(kind, rule_id=rule_id, rule_file_hash=rule_file_hash,
                                                             data=data), lambda written: [written[0]])

        def wait() -> None:
            try:
                durable()
            except AuditError as exc:
                self._failed(exc)
                raise

        return record, wait

    def append_many(self, entries: Iterable[Entry]) -> list[dict[str, Any]]:
        return self._tapped(lambda: self.inner.append_many(entries), lambda records: records)

    def _tapped(self, write: Callable[[], _T], records_of: Callable[[_T], list[dict[str, Any]]]) -> _T:
        """One write to the inner sink: marked as under way while it runs, its failure reported,
        its records (`records_of` its result) handed to the watchers."""
        writing = self._writing
        writing.append(None)
        try:
            try:
                result = write()
            except AuditError as exc:
                self._failed(exc)
                raise
            records = records_of(result)
            if records:
                self._written(records)
        finally:
            writing.pop()
        return result

    @property
    def pending(self) -> bool:
        """Whether written records wait for `flush()`."""
        return bool(self._queued or self._held)

    def flush(self) -> bool:
        """Hand the queued records to the watchers, in seq order (call it on one thread only).
        While a write is under way on another thread, only the records up to the first gap in
        seq are handed over (the missing one is that write's); returns whether none is left."""
        held = self._held
        while True:
            taken = self._take()
            if self._writing:  # a write under way may hold the next seq
                held.sort(key=_seq)
                ready = 0
                last = self._last_seq
                while ready < len(held) and last is not None and _seq(held[ready]) == last + 1:
                    last = _seq(held[ready])
                    ready += 1
                batch = held[:ready]
                del held[:ready]
                break
            if not taken:  # no write under way, and none finished since the last look: all here
                held.sort(key=_seq)
                batch = held[:]
                held.clear()
                break
        if batch:
            self._last_seq = _seq(batch[-1])
            self._deliver(batch)
        return not self.pending

    def _take(self) -> bool:
        queued, held = self._queued, self._held
        taken = False
        while queued:
            held.extend(queued.popleft())
            taken = True
        return taken

    def needs_sync(self) -> bool:
        """Whether `sync` has anything to do (the sink's `needs_sync`; a sink without one, the
        JSONL log, always has: its sync is the housekeeping's fsync)."""
        needs = getattr(self.inner, "needs_sync", None)
        return True if needs is None else bool(needs())

    def sync(self) -> None:
        try:
            self.inner.sync()
        except AuditError as exc:
            self._failed(exc)
            raise

    def close(self) -> None:
        self.inner.close()

    def _failed(self, exc: AuditError) -> None:
        with self._lock:
            self._failing = str(exc)
        if self._on_health is not None:
            self._on_health(str(exc))

    def _written(self, records: list[dict[str, Any]]) -> None:
        if self._failing is not None:
            with self._lock:
                recovered, self._failing = self._failing is not None, None
            if recovered and self._on_health is not None:
                self._on_health(None)
        later = self.later
        if later is None:
            self._deliver(records)
            return
        self._queued.append(records)
        later()

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        for watcher in self.watchers:
            try:
                watcher(records)
            except Exception:
                log.exception("audit watcher failed")


def _seq(record: Mapping[str, Any]) -> int:
    return int(record.get("seq") or 0)
