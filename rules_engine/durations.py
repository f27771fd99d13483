"""Durations as rule files write them: `500ms`, `30s`, `5m`, `1h`, `1d` (also `1h30m`)."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a readable message."""
    cleaned = text.strip()
    if not re.fullmatch(DURATION_PATTERN, cleaned):
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit, e.g. 500ms, 30s, 5m, 1h, 1d"
        )
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))


def format_duration(seconds: float) -> str:
    """Render seconds back in the shortest rule-file form (`90` -> `1m30s`)."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    remaining = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
