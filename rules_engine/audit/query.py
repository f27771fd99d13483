"""Read an audit log back: filter records by rule, kind and time, and render them."""

from __future__ import annotations

import datetime
import fnmatch
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rules_engine.audit.records import RecordError, canonical_json, parse_record
from rules_engine.durations import DURATION_PATTERN, parse_duration

BadLineHandler = Callable[[int, str], None]


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from `1714557600` (epoch), `2024-05-01T10:00:00Z` (ISO 8601; no zone
    means UTC), or a duration ago: `1h`, `-1h`, `30m`, `2d` (relative to `now`).
    Raises ValueError."""
    cleaned = text.strip()
    relative = cleaned.removeprefix("-")
    if re.fullmatch(DURATION_PATTERN, relative):
        return (time.time() if now is None else now) - parse_duration(relative)
    try:
        return float(cleaned)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; write epoch seconds, ISO 8601 (2024-05-01T10:00:00Z) or a duration ago (1h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def show(
    path: str | os.PathLike[str],
    rule: str | None = None,
    kind: str | Iterable[str] | None = None,
    since: float | None = None,
    until: float | None = None,
    on_bad_line: BadLineHandler | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the records of the log at `path` that match every filter given.

    `rule` matches `rule_id` exactly or as a shell pattern (`btc-*`); `kind` is one kind or
    several; `since <= time < until`. Lines that are not intact records (damaged, torn) are
    skipped and reported to `on_bad_line(line_no, reason)`; `verify` checks the chain.
    """
    kinds = {kind} if isinstance(kind, str) else (set(kind) if kind is not None else None)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                if on_bad_line:
                    on_bad_line(line_no, "torn final line (an interrupted write)")
                break
            try:
                record = parse_record(raw[:-1])
            except RecordError as exc:
                if on_bad_line:
                    on_bad_line(line_no, str(exc))
                continue
            if kinds is not None and record["kind"] not in kinds:
                continue
            if rule is not None and not (
                record["rule_id"] is not None and fnmatch.fnmatchcase(record["rule_id"], rule)
            ):
                continue
            if since is not None and record["time"] < since:
                continue
            if until is not None and record["time"] >= until:
                continue
            yield record


def format_time(epoch: float) -> str:
    """`2024-05-01T10:00:00.123Z`."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_record(record: dict[str, Any]) -> str:
    """One readable line: time, seq, kind, rule, mode and the data as compact JSON."""
    return (
        f"{format_time(record['time'])} #{record['seq']} {record['kind']} "
        f"rule={record['rule_id'] or '-'} mode={record['mode']} {canonical_json(record['data'])}"
    )
