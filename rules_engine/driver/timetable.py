"""Timer slots as pure state: which `TimerBeat`s are due at a given time.

The driver asks `due(now)` for the beats to deliver and `next_slot()` for when to wake up;
nothing here reads a clock, so the service (wall clock) and replay or rule tests (simulated
clock) schedule timers with the same code.

- A timer never fires at start: its first beat is the first slot strictly after `start`
  (a restart does not replay beats missed while the engine was down).
- Late (a stalled loop, a suspended machine, a clock that jumped): a timer fires at most one
  catch-up beat, for the earliest missed slot no more than `max_lateness` seconds old; older
  slots are dropped and reported as missed, later ones up to `now` are coalesced into that
  beat. A driver that is never late (replay steps its clock to each slot) sees every slot.
- Per timer, scheduled times strictly increase, so a clock stepped backwards never fires a
  slot twice.
- `replace(entries, now)` (hot reload) keeps the next slot of every timer whose rule id,
  trigger index and trigger are unchanged; new or changed timers start from the next slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rules_engine.core.events import TimerBeat
from rules_engine.needs import TimerEntry
from rules_engine.schedule import Schedule, next_fire, validate_timer

DEFAULT_MAX_LATENESS = 60.0


@dataclass(frozen=True)
class MissedSlot:
    """A slot dropped because it was more than `max_lateness` old when the driver got to it."""

    rule_id: str
    trigger_index: int
    slot: float
    now: float


@dataclass
class _Slot:
    rule_id: str
    trigger_index: int
    trigger: Schedule
    due: float


class Timetable:
    """The next slot of every timer trigger (see the module docstring)."""

    def __init__(self, entries: Iterable[TimerEntry], start: float, *,
                 max_lateness: float = DEFAULT_MAX_LATENESS) -> None:
        self.max_lateness = max_lateness
        self._slots: list[_Slot] = []
        self._next: float | None = None
        self.replace(entries, start)

    def replace(self, entries: Iterable[TimerEntry], now: float) -> None:
        """Swap in a new set of timers; unchanged ones keep their next slot. Raises ValueError,
        changing nothing, if any timer cannot be scheduled."""
        checked = list(entries)
        for rule_id, index, trigger in checked:
            try:
                validate_timer(trigger)
            except ValueError as exc:
                raise ValueError(f"rule {rule_id} trigger {index}: {exc}") from None
        kept = {(s.rule_id, s.trigger_index): s for s in self._slots}
        slots = []
        for rule_id, index, trigger in checked:
            old = kept.get((rule_id, index))
            if old is not None and old.trigger == trigger:
                slots.append(old)
            else:
                slots.append(_Slot(rule_id, index, trigger, next_fire(trigger, now)))
        self._slots = slots
        self._next = min((s.due for s in slots), default=None)

    def next_slot(self) -> float | None:
        """The earliest slot still to come, or None without timers."""
        return self._next

    def upcoming(self) -> list[tuple[str, int, float]]:
        """(rule id, trigger index, next slot) of every timer, soonest first."""
        return sorted(((s.rule_id, s.trigger_index, s.due) for s in self._slots), key=lambda x: x[2])

    def due(self, now: float) -> tuple[list[TimerBeat], list[MissedSlot]]:
        """The beats due at `now` (at most one per timer), soonest slot first, and the slots
        dropped as too late. Each timer moves on to its first slot after `now`."""
        beats: list[tuple[float, int, TimerBeat]] = []
        missed: list[MissedSlot] = []
        window_start = now - self.max_lateness
        for rank, slot in enumerate(self._slots):
            if slot.due > now:
                continue
            scheduled = slot.due
            if scheduled <= window_start:
                missed.append(MissedSlot(slot.rule_id, slot.trigger_index, scheduled, now))
                scheduled = next_fire(slot.trigger, window_start)
                if scheduled > now:
                    slot.due = scheduled
                    continue
            slot.due = next_fire(slot.trigger, now)
            beat = TimerBeat(rule_id=slot.rule_id, trigger_index=slot.trigger_index, time=now,
                             scheduled_time=scheduled)
            beats.append((scheduled, rank, beat))
        beats.sort(key=lambda b: (b[0], b[1]))
        self._next = min((s.due for s in self._slots), default=None)
        return [b for _, _, b in beats], missed
