"""An `AuditSink` in front of the audit log that lets the service watch what is written.

Every record the log accepted (redacted, with its `seq`) goes to the watchers: the decision
log, the status board. Every write that failed, and the first one that succeeded after it,
goes to `on_health`, so readiness can say "the audit log cannot be written" and take it back
once a write succeeds again. The log's own behaviour (redaction, chaining, durability) is
unchanged: the tap only delegates and reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rules_engine.audit import AuditError
from rules_engine.audit.sink import AuditSink, Entry

log = logging.getLogger(__name__)

RecordsWatcher = Callable[[list[dict[str, Any]]], None]
"""Called with the records of one write, in order (on the writer's thread: must not block)."""


class AuditTap:
    """Delegates to `inner`; tells `watchers` of written records and `on_health(error | None)`
    of a failed write (its message) and of the first good write after failures (None)."""

    def __init__(self, inner: AuditSink, watchers: Iterable[RecordsWatcher] = (),
                 on_health: Callable[[str | None], None] | None = None) -> None:
        self.inner = inner
        self.watchers: list[RecordsWatcher] = list(watchers)
        self._on_health = on_health
        self._failing: str | None = None
        self._lock = threading.Lock()

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
        try:
            record = self.inner.append(kind, rule_id=rule_id, rule_file_hash=rule_file_hash, data=data, sync=sync)
        except AuditError as exc:
            self._failed(exc)
            raise
        self._written([record])
        return record

    def append_many(self, entries: Iterable[Entry]) -> list[dict[str, Any]]:
        try:
            records = self.inner.append_many(entries)
        except AuditError as exc:
            self._failed(exc)
            raise
        if records:
            self._written(records)
        return records

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
        for watcher in self.watchers:
            try:
                watcher(records)
            except Exception:
                log.exception("audit watcher failed")
