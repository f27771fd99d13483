"""Notice edits to rule files by polling: the files found under the rule paths and their
modification times and sizes. Cheap (a `stat` per file) and works on every filesystem,
including bind mounts and network shares where inotify does not."""

from __future__ import annotations

import asyncio
import logging
import os
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


class RuleWatcher:
    """Call `on_change()` when the signature of the rule files changes; poll every `interval` s."""

    def __init__(self, paths: Sequence[str | Path], on_change: Callable[[], Awaitable[object]],
                 interval: float = 1.0) -> None:
        self.paths = list(paths)
        self.interval = interval
        self._on_change = on_change
        self._signature = rule_files_signature(self.paths)

    def mark_current(self) -> None:
        """Take the files as they are now as seen (after a reload triggered elsewhere)."""
        self._signature = rule_files_signature(self.paths)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            current = await asyncio.to_thread(rule_files_signature, self.paths)
            if current == self._signature:
                continue
            self._signature = current
            log.info("rule files changed; reloading")
            try:
                await self._on_change()
            except Exception:
                log.exception("reload after a rule file change failed")
