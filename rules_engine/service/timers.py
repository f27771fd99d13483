"""Timer triggers: when each fires (`next_fire`, pure) and an asyncio scheduler that emits
`TimerBeat` events.

Schedules
- `every: 5m` fires on a grid aligned to the Unix epoch: at every multiple of the interval
  since 1970-01-01T00:00Z (so `5m` fires at :00, :05, ...; `1h` on the hour; `1d` at
  midnight UTC). The grid is the same across restarts. `timezone` does not apply.
- `cron:` is evaluated by croniter in the rule's `timezone` (IANA name, default UTC), so
  `0 9 * * 1-5` in `Europe/London` is 09:00 London time in winter and summer. On DST days:
  a wall time that does not exist (spring forward) fires at the first instant after the
  gap; a wall time that happens twice (fall back) fires once for a fixed-hour schedule
  (`30 1 * * *`), while a schedule with `*` hours (`0 * * * *`) fires in both repeated
  hours, because both really happen. This is what Vixie cron does.

Scheduler
- A timer never fires at start-up: its first beat is the first slot after the moment the
  scheduler starts (a restart does not replay beats missed while the engine was down).
- After a stall (a blocked loop, a suspended machine) a timer fires at most one catch-up
  beat: for the earliest missed slot no more than `max_lateness` seconds old (default 60 s).
  Older missed slots are dropped and reported to `on_missed`; later slots up to now are
  coalesced into that one beat. Per timer, scheduled times strictly increase, so a clock
  stepped backwards never fires a slot twice.
- `replace(entries)` (hot reload) keeps the schedule of every timer whose rule id, trigger
  index and trigger are unchanged; new or changed timers start from the next slot.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from rules_engine.core.events import TimerBeat
from rules_engine.needs import TimerEntry
from rules_engine.schedule import Schedule, next_fire, validate_timer

log = logging.getLogger(__name__)

Emit = Callable[[TimerBeat], "Awaitable[None] | None"]
OnMissed = Callable[[str, int, float, float], None]
"""`on_missed(rule_id, trigger_index, first_missed_slot, now)`."""


@dataclass(eq=False)
class _Slot:
    rule_id: str
    trigger_index: int
    trigger: Schedule
    due: float


class TimerScheduler:
    """Emit a `TimerBeat` for each timer entry `(rule_id, trigger_index, trigger)` when due.

    `clock` is wall-clock epoch seconds; `sleep` is awaited between beats, at most
    `max_sleep` seconds at a time so that a wall clock that jumps is noticed. Both are
    injectable so tests run on a fake clock.
    """

    def __init__(
        self,
        entries: Iterable[TimerEntry],
        emit: Emit,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_lateness: float = 60.0,
        max_sleep: float = 30.0,
        on_missed: OnMissed | None = None,
    ) -> None:
        self._entries = _checked(entries)
        self._emit = emit
        self._clock = clock
        self._sleep = sleep
        self._max_lateness = max_lateness
        self._max_sleep = max_sleep
        self._on_missed = on_missed
        self._slots: list[_Slot] = []
        self._wake: asyncio.Event | None = None
        self._running = False
        self._stopping = False

    def replace(self, entries: Iterable[TimerEntry]) -> None:
        """Swap in a new set of timers (hot reload); unchanged timers keep their schedule.
        Raises ValueError, changing nothing, if any timer is invalid."""
        self._entries = _checked(entries)
        if self._running:
            self._slots = self._build(self._clock())
            self._poke()

    def stop(self) -> None:
        """Ask `run()` to return; it does so before emitting anything further."""
        self._stopping = True
        self._poke()

    def upcoming(self) -> list[tuple[str, int, float]]:
        """(rule_id, trigger_index, next scheduled time) of every timer, soonest first."""
        return sorted(((s.rule_id, s.trigger_index, s.due) for s in self._slots), key=lambda x: x[2])

    async def run(self) -> None:
        """Emit beats until `stop()` is called (a stop that comes first makes it return at once)."""
        if self._running:
            raise RuntimeError("this TimerScheduler is already running")
        self._running = True
        self._wake = asyncio.Event()
        self._slots = self._build(self._clock())
        try:
            while not self._stopping:
                now = self._clock()
                due = sorted((s for s in self._slots if s.due <= now), key=lambda s: s.due)
                for slot in due:
                    if self._stopping:
                        return
                    if slot in self._slots:  # (by identity) replace() during an emit may have removed it
                        await self._fire(slot, now)
                if due:
                    continue
                soonest = min((s.due for s in self._slots), default=now + self._max_sleep)
                await self._wait(min(soonest - now, self._max_sleep))
        finally:
            self._running = False
            self._wake = None

    async def _fire(self, slot: _Slot, now: float) -> None:
        window_start = now - self._max_lateness
        scheduled = slot.due
        if scheduled <= window_start:
            self._report_missed(slot, now)
            scheduled = next_fire(slot.trigger, window_start)
        if scheduled > now:
            slot.due = scheduled
            return
        slot.due = next_fire(slot.trigger, now)
        beat = TimerBeat(rule_id=slot.rule_id, trigger_index=slot.trigger_index, time=now, scheduled_time=scheduled)
        try:
            outcome = self._emit(beat)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("emitting timer beat for rule %s trigger %d failed", slot.rule_id, slot.trigger_index)

    def _report_missed(self, slot: _Slot, now: float) -> None:
        log.warning(
            "timer of rule %s trigger %d missed its slot %.3f (now %.3f): more than %.0fs late",
            slot.rule_id, slot.trigger_index, slot.due, now, self._max_lateness,
        )
        if self._on_missed is not None:
            try:
                self._on_missed(slot.rule_id, slot.trigger_index, slot.due, now)
            except Exception:
                log.exception("on_missed callback failed")

    def _build(self, now: float) -> list[_Slot]:
        kept = {(s.rule_id, s.trigger_index): s for s in self._slots}
        slots = []
        for rule_id, index, trigger in self._entries:
            old = kept.get((rule_id, index))
            if old is not None and old.trigger == trigger:
                slots.append(old)
            else:
                slots.append(_Slot(rule_id, index, trigger, next_fire(trigger, now)))
        return slots

    async def _wait(self, seconds: float) -> None:
        assert self._wake is not None
        sleeper = asyncio.ensure_future(self._sleep(max(seconds, 0.0)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            self._wake.clear()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()


def _checked(entries: Iterable[TimerEntry]) -> list[TimerEntry]:
    result = list(entries)
    for rule_id, index, trigger in result:
        try:
            validate_timer(trigger)
        except ValueError as exc:
            raise ValueError(f"rule {rule_id} trigger {index}: {exc}") from None
    return result
