"""When a timer trigger fires: interval slots and cron schedules in a time zone.

Pure arithmetic on epoch seconds (no clock): the service's timer scheduler and the offline
driver (replay, rule tests) compute the same slots here.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


class Schedule(Protocol):
    """A timer's schedule (a timer trigger's spec): every `every` seconds, or on `cron` in `timezone`."""

    @property
    def every(self) -> float | None: ...

    @property
    def cron(self) -> str | None: ...

    @property
    def timezone(self) -> str: ...


def validate_timer(trigger: Schedule) -> None:
    """Raise ValueError (with a readable message) unless the trigger can be scheduled."""
    if (trigger.every is None) == (trigger.cron is None):
        raise ValueError("a timer needs exactly one of `every` and `cron`")
    if trigger.every is not None:
        if not trigger.every > 0 or math.isinf(trigger.every):
            raise ValueError(f"timer interval must be a positive duration, not {trigger.every!r}")
        return
    if not croniter.is_valid(trigger.cron):
        raise ValueError(f"{trigger.cron!r} is not a valid cron expression")
    _zone(trigger.timezone)


def next_fire(trigger: Schedule, after: float) -> float:
    """The first slot of `trigger` strictly after `after` (epoch seconds)."""
    if trigger.every is not None:
        every = trigger.every
        slot = (math.floor(after / every) + 1) * every
        return slot if slot > after else slot + every
    if trigger.cron is None:
        raise ValueError("a timer needs exactly one of `every` and `cron`")
    zone = _zone(trigger.timezone)
    fixed_hours = croniter(trigger.cron).expanded[1] != ["*"]
    schedule = croniter(trigger.cron, datetime.fromtimestamp(after, zone))
    while True:
        slot = schedule.get_next(float)
        # The second pass through a repeated (fall-back) hour: a fixed-hour schedule has
        # already fired at this wall time.
        if not (fixed_hours and datetime.fromtimestamp(slot, zone).fold == 1):
            return slot


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/London)") from None


_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_SPECIAL = ("L", "?", "#", "W")  # croniter's extensions: left to croniter to judge


def cron_problem(text: str) -> str | None:
    """What is wrong with a five-field cron schedule, naming the field and the value
    (`hour 25 is out of range 0-23`); None when no field can be blamed (the caller then
    explains the format as a whole)."""
    fields = text.split()
    if len(fields) != 5:
        return f"write five fields (minute hour day-of-month month day-of-week), not {len(fields)}"
    for written, (name, low, high, words) in zip(fields, _CRON_FIELDS, strict=True):
        if any(mark in written for mark in _CRON_SPECIAL):
            continue
        for item in written.split(","):
            problem = _cron_item(item, name, low, high, words)
            if problem:
                return problem
    return None


def _cron_item(item: str, name: str, low: int, high: int, words: tuple[str, ...]) -> str | None:
    span, _, step = item.partition("/")
    if "/" in item and not (step.isdigit() and int(step) >= 1):
        return f'{name} step "/{step}" must be a whole number of at least 1'
    if span == "*":
        return None
    ends = span.split("-")
    if len(ends) > 2 or not all(ends):
        return f'{name} "{item}" is not a value, a range (a-b) or a step (*/n)'
    for end in ends:
        if end.lower() in words:
            continue
        if not end.isdigit():
            names = f" or {words[0]}-{words[-1]}" if words else ""
            return f'{name} "{end}" is not a number ({low}-{high}{names})'
        if not low <= int(end) <= high:
            return f"{name} {int(end)} is out of range {low}-{high}"
    return None
