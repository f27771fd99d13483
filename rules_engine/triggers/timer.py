"""The `timer` trigger: a schedule.

    - type: timer
      every: 30s                 # or cron: "*/5 * * * *" (five fields)
      timezone: Europe/Berlin    # cron only (default UTC, or defaults.timezone)

The service's timer scheduler (or the offline driver) computes the slots
(`rules_engine.schedule`) and sends a `TimerBeat` for the rule and trigger index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from croniter import croniter

from rules_engine.core.events import TimerBeat
from rules_engine.core.model import Rule, SourceRef, TriggerSpec, WatcherClass
from rules_engine.core.trace import Step
from rules_engine.core.watch import NO_FIRES, Fire, Watcher
from rules_engine.registry import Needs, TriggerType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath
from rules_engine.schedule import cron_problem

NAMES = {"scheduled_time": ""}

SCHEMA: dict[str, Any] = {
    "title": "timer trigger",
    "description": "Fires every interval, or on a cron schedule in a time zone.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"const": "timer"},
        "every": {"$ref": "#/$defs/duration"},
        "cron": {"description": "Five-field cron, e.g. \"*/5 * * * *\".", "type": "string", "minLength": 1},
        "timezone": {
            "description": "IANA time zone of the cron schedule (default UTC).",
            "type": "string",
            "minLength": 1,
        },
    },
    "allOf": [
        {
            "oneOf": [{"required": ["every"]}, {"required": ["cron"]}],
            "errorMessage": "a timer trigger needs exactly one of every: or cron:",
        },
        {"dependentRequired": {"timezone": ["cron"]}, "errorMessage": "timezone: applies to cron: timers only"},
    ],
}


class TimerWatcher(Watcher["TimerTrigger"]):
    """Timer triggers fire on the beat the scheduler sends for their rule and index."""

    events = (TimerBeat,)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._timers: set[tuple[str, int]] = set()

    def add(self, rule: Rule, index: int, trigger: TimerTrigger, saved: str | None) -> None:
        self._timers.add((rule.id, index))

    def on_event(self, beat: TimerBeat, step: Step) -> list[Fire]:
        rule = self.host.rules.get(beat.rule_id)
        if rule is None or not rule.enabled:
            step.record("dropped", beat.rule_id, reason="timer beat for an unknown or disabled rule")
            return NO_FIRES
        if (rule.id, beat.trigger_index) not in self._timers:
            step.record("error", rule.id, reason=f"trigger {beat.trigger_index} is not a timer trigger")
            return NO_FIRES
        scheduled = beat.scheduled_time if beat.scheduled_time is not None else beat.time
        step.record("trigger", rule.id, trigger=beat.trigger_index, state="fired", scheduled_time=scheduled)
        return [Fire(rule, beat.trigger_index, {"trigger": "timer", "scheduled_time": scheduled})]


@dataclass(frozen=True)
class TimerTrigger(TriggerSpec):
    """Fires every `every` seconds, or on a `cron` schedule in `timezone`."""

    every: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["timer"] = "timer"
    watcher: ClassVar[WatcherClass] = TimerWatcher
    provides: ClassVar[frozenset[str]] = frozenset(NAMES)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str,
          Any]) -> TimerTrigger | None:
    """A timer trigger; a cron schedule's time zone defaults to the file's `defaults.timezone`."""
    every = _every(ctx, path + ("every",), raw["every"]) if "every" in raw else None
    cron = _cron(ctx, path + ("cron",), raw["cron"]) if "cron" in raw else None
    timezone = raw.get("timezone", defaults.get("timezone", "UTC"))
    zone_known = True
    if "cron" in raw or "timezone" in raw:
        timezone_path = path + ("timezone",) if "timezone" in raw else ("defaults", "timezone")
        zone_known = ctx.timezone(timezone_path, timezone)
    if not ctx.accepts(path) or not zone_known:
        return None
    if "every" in raw:
        return None if every is None else TimerTrigger(every=every, where=ctx.source(path))
    return None if cron is None else TimerTrigger(cron=cron, timezone=timezone, where=ctx.source(path))


def _every(ctx: BuildContext, path: JsonPath, raw: str) -> float | None:
    every = ctx.duration(path, raw)
    if every is not None and every <= 0:
        ctx.report(path, "every: must be longer than 0s", code="invalid-value")
        return None
    return every


def _cron(ctx: BuildContext, path: JsonPath, raw: str) -> str | None:
    cron = raw.strip()
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        problem = cron_problem(cron)
        if problem is not None:
            ctx.report(path, f'"{cron}" is not a cron schedule: {problem}', code="invalid-cron")
        else:
            ctx.report(
                path,
                f'"{cron}" is not a cron schedule; write five fields: minute hour day-of-month month day-of-week, '
                'e.g. "*/5 * * * *"',
                code="invalid-cron",
            )
        return None
    return cron


def needs(trigger: TimerTrigger) -> Needs:
    return Needs(timers=(trigger,))


TYPE = TriggerType(
    name="timer",
    spec=TimerTrigger,
    summary="a schedule: every interval, or cron in a time zone",
    schema=SCHEMA,
    build=build,
    names=NAMES,
    needs=needs,
)
