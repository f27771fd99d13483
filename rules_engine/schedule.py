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
