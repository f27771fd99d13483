"""Fsyncs on a thread of their own, so that a writer can go on while the disk works.

An order's `decision` record must be on disk before the order leaves, but nothing stops the
order being encoded, given its nonce and signed meanwhile. `SyncThread.begin(size)` asks
for the file to be durable up to `size` bytes, waits until an fsync covering them has
*started* (so the disk is at work before the caller runs on: a thread that only wanted the
interpreter lock would otherwise wait for the caller to let it go), and returns `wait`,
which returns once that fsync has finished (or raises the `AuditError` it failed with).
One fsync covers every byte written before it starts, so writers on several threads share
them (group commit).

What an fsync covers and what it does afterwards belong to the log (`AuditLog`): `prepare()`
returns the size the next fsync will cover and the function that performs it (and updates
the log's own bookkeeping); the log reports its other syncs with `note_synced(size)`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rules_engine.audit.errors import AuditError

Prepare = Callable[[], tuple[int, Callable[[], None]]]


def _audit_error(exc: Exception) -> AuditError:
    return exc if isinstance(exc, AuditError) else AuditError(f"audit log sync failed: {exc!r}")


def durable_already() -> None:
    """The wait for something that was durable when it was asked for: nothing to wait for."""


class SyncThread:
    """Runs the log's fsyncs on one daemon thread, started at the first `begin`."""

    def __init__(self, prepare: Prepare, name: str = "audit-fsync") -> None:
        self._prepare = prepare
        self._name = name
        self._cv = threading.Condition()
        self._wanted = 0  # the largest size asked for
        self._begun = 0  # the size covered by the fsync under way (or the last one)
        self._done = 0  # the size known durable
        self._failed_up_to = 0  # a failed fsync covered sizes up to here ...
        self._error: AuditError | None = None  # ... with this error
        self._thread: threading.Thread | None = None
        self._closing = False

    def begin(self, size: int) -> Callable[[], None]:
        """Ask for the file to be durable up to `size` bytes; returns once an fsync covering
        them is under way (or done), with the `wait` for its end."""
        with self._cv:
            if self._done >= size:
                return durable_already
            if self._closing:
                raise AuditError("the audit log is closing")
            self._wanted = max(self._wanted, size)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify_all()
            while self._begun < size and self._done < size and not self._failed(size):
                self._cv.wait()
        return lambda: self.wait(size)

    def wait(self, size: int) -> None:
        """Return once the file is durable up to `size` bytes; AuditError if the fsync failed."""
        with self._cv:
            while self._done < size:
                if self._failed(size):
                    assert self._error is not None
                    raise self._error
                self._cv.wait()

    def note_synced(self, size: int) -> None:
        """The log made itself durable up to `size` bytes by other means (its own fsync)."""
        with self._cv:
            if size > self._done:
                self._done = size
                self._cv.notify_all()

    def close(self) -> None:
        """Finish the fsync asked for, then end the thread."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _failed(self, size: int) -> bool:
        return self._error is not None and size <= self._failed_up_to and self._done < size

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._wanted <= max(self._begun, self._done) and not self._closing:
                    self._cv.wait()
                if self._wanted <= max(self._begun, self._done):
                    return  # closing, nothing left to do
                wanted = self._wanted
            try:
                covered, fsync = self._prepare()
            except Exception as exc:  # the log is closed or failed (AuditError), or a bug: never a hang
                self._fail(wanted, _audit_error(exc))
                continue
            with self._cv:
                self._begun = max(self._begun, covered)
                self._cv.notify_all()  # the callers go on: the disk is at work
            try:
                fsync()
            except Exception as exc:
                self._fail(covered, _audit_error(exc))
                continue
            self.note_synced(covered)

    def _fail(self, size: int, error: AuditError) -> None:
        with self._cv:
            self._failed_up_to, self._error = max(self._failed_up_to, size), error
            self._begun = max(self._begun, size)
            self._cv.notify_all()
