"""Notice edits to rule files by polling: the files found under the rule paths and their
modification times and sizes. Cheap (a `stat` per file) and works on every filesystem,
including bind mounts and network shares where inotify does not."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from rules_engine.rules import find_rule_files

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...] | str


def rule_files_signature(paths: Sequence[str | Path]) -> Signature:
    """(path, mtime_ns, size) of every rule file under `paths`; a text naming the problem
    when a path is missing or unreadable (so that its appearance counts as a change too)."""
    try:
        files = find_rule_files(paths)
        entries = []
        for path in files:
            stat = os.stat(path)
            entries.append((path.as_posix(), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)
    except OSError as exc:
        return f"unreadable: {exc}"


class SharedSignatures:
    """The signatures of rule path lists read at most once per `max_age` seconds, for the
    watchers of a worker's cells: 300 cells on one rule set each listing and stat-ing the same
    files every second (on a thread) was several percent of the worker's CPU. An edit is seen
    at most `max_age` later."""

    def __init__(self, max_age: float = 0.5, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._monotonic = monotonic
        self._lock = threading.Lock()  # the signatures read (briefly: `recent` runs on the event loop)
        self._reading = threading.Lock()  # one read at a time
        self._read: dict[tuple[str, ...], tuple[float, Signature]] = {}
        self.reads = 0  # signatures actually read (tests)

    def recent(self, paths: Sequence[str | Path]) -> Signature | None:
        """The signature of `paths` if read less than `max_age` ago (no I/O), else None."""
        with self._lock:
            found = self._read.get(_key(paths))
        return found[1] if found is not None and self._monotonic() - found[0] < self.max_age else None

    def read(self, paths: Sequence[str | Path]) -> Signature:
        """The signature of `paths` (read now unless `recent`)."""
        with self._reading:  # the watchers that missed it together: one reads, the others take its read
            recent = self.recent(paths)
            if recent is not None:
                return recent
            at = self._monotonic()
            signature = rule_files_signature(paths)
            with self._lock:
                self.reads += 1
                self._read[_key(paths)] = (at, signature)
            return signature


def _key(paths: Sequence[str | Path]) -> tuple[str, ...]:
    return tuple(os.path.abspath(p) for p in paths)


class RuleWatcher:
    """Call `on_change()` when the signature of the rule files changes; poll every `interval` s
    (`shared`: a worker's, one read of each rule set for all its cells)."""

    def __init__(self, paths: Sequence[str | Path], on_change: Callable[[], Awaitable[object]],
                 interval: float = 1.0, shared: SharedSignatures | None = None) -> None:
        self.paths = list(paths)
        self.interval = interval
        self._on_change = on_change
        self._shared = shared
        self._signature = rule_files_signature(self.paths)

    def mark_current(self) -> None:
        """Take the files as they are now as seen (after a reload triggered elsewhere)."""
        self._signature = rule_files_signature(self.paths)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            recent = None if self._shared is None else self._shared.recent(self.paths)  # read lately by another
            if recent is not None:  # cell's watcher: no thread, no I/O
                current = recent
            else:
                current = await asyncio.to_thread(rule_files_signature if self._shared is None else self._shared.read,
                                                  self.paths)
            if current == self._signature:
                continue
            self._signature = current
            log.info("rule files changed; reloading")
            try:
                await self._on_change()
            except Exception:
                log.exception("reload after a rule file change failed")
