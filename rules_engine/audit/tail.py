"""Reading the audit log back from its end (the most recent records first), for what a
restart needs from the last moments before it: decisions after the state store's checkpoint
(`service.decision_restore`), whether an order's decision was audited and its audited answer
(`Dispatcher`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 65536


def records_backwards(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The log's records, last first. Lines that are not records (a torn tail) are skipped."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        end = os.fstat(fd).st_size
        rest = b""
        while end > 0:
            start = max(0, end - _BLOCK)
            lines = (os.pread(fd, end - start, start) + rest).split(b"\n")
            end = start
            rest = lines.pop(0) if start > 0 else b""
            for line in reversed(lines):
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("seq"), int):
                    yield record
    finally:
        os.close(fd)


def records_after(path: str | os.PathLike[str], seq: int) -> Iterator[dict[str, Any]]:
    """The log's records with a seq above `seq`, last first."""
    for record in records_backwards(path):
        if record["seq"] <= seq:
            return
        yield record


def audited_answer(path: str | os.PathLike[str], cl_ord_id: str, since: float) -> dict[str, Any] | None:
    """The result the exchange gave for the order `cl_ord_id` as its `response` record holds
    it (`{"ok": ..., "error": ..., "data": {...}}`), looking back to records written at `since`
    (the decision's time); None if none was audited."""
    for record in records_backwards(Path(path)):
        if isinstance(record.get("time"), (int, float)) and record["time"] < since - 5:  # 5 s: clock steps
            return None
        data = record.get("data") or {}
        if record.get("kind") == "response" and data.get("cl_ord_id") == cl_ord_id:
            result = data.get("result")
            return result if isinstance(result, dict) else None
    return None


def audited_decision(path: str | os.PathLike[str], cl_ord_id: str, since: float) -> bool:
    """Whether the log holds the `decision` record of the order `cl_ord_id` (the one written
    right before it is sent), looking back to records written at `since` (the decision's
    time in the state store, less 5 s for clock steps)."""
    for record in records_backwards(Path(path)):
        if isinstance(record.get("time"), (int, float)) and record["time"] < since - 5:
            return False
        data = record.get("data") or {}
        if record.get("kind") == "decision" and data.get("cl_ord_id") == cl_ord_id and "intent" in data:
            return True
    return False
