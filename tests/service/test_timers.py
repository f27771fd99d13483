import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from rules_engine.triggers.timer import TimerTrigger
from rules_engine.schedule import next_fire, validate_timer
from rules_engine.service.timers import TimerScheduler

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def at(zone, *parts, fold=0) -> float:
    return datetime(*parts, tzinfo=zone, fold=fold).timestamp()


def local(zone, ts: float) -> str:
    return datetime.fromtimestamp(ts, zone).isoformat()


def fires(trigger, start, count):
    out, t = [], start
    for _ in range(count):
        t = next_fire(trigger, t)
        out.append(t)
    return out


# ------------------------------------------------------------------ next_fire


def test_interval_is_aligned_to_the_epoch_grid_and_strictly_after():
    five = TimerTrigger(every=300)
    assert next_fire(five, 1_000_000.0) == 1_000_200.0  # 1_000_200 is a multiple of 300
    assert next_fire(five, 1_000_200.0) == 1_000_500.0  # exactly on a slot -> the next one
    assert next_fire(TimerTrigger(every=0.5), 10.2) == 10.5
    day = next_fire(TimerTrigger(every=86400), at(ZoneInfo("UTC"), 2024, 5, 1, 13, 0))
    assert local(ZoneInfo("UTC"), day) == "2024-05-02T00:00:00+00:00"


def test_cron_uses_the_rule_timezone_in_winter_and_summer():
    nine = TimerTrigger(cron="0 9 * * 1-5", timezone="Europe/London")
    winter = next_fire(nine, at(LONDON, 2024, 1, 15, 10, 0))  # Monday after 09:00
    summer = next_fire(nine, at(LONDON, 2024, 7, 15, 8, 0))
    assert local(LONDON, winter) == "2024-01-16T09:00:00+00:00"
    assert local(LONDON, summer) == "2024-07-15T09:00:00+01:00"
    friday = next_fire(nine, at(LONDON, 2024, 7, 19, 9, 30))
    assert local(LONDON, friday) == "2024-07-22T09:00:00+01:00"  # skips the weekend


def test_dst_spring_forward_new_york():
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    daily = TimerTrigger(cron="30 2 * * *", timezone="America/New_York")
    got = [local(NY, t) for t in fires(daily, at(NY, 2024, 3, 9, 12, 0), 3)]
    assert got == ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00", "2024-03-12T02:30:00-04:00"]
    hourly = TimerTrigger(cron="0 * * * *", timezone="America/New_York")
    got = fires(hourly, at(NY, 2024, 3, 10, 0, 30), 3)
    assert [local(NY, t) for t in got] == [
        "2024-03-10T01:00:00-05:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T04:00:00-04:00",
    ]
    assert got[1] - got[0] == 3600  # one real hour apart


def test_dst_fall_back_fixed_time_fires_once_wildcard_hour_fires_twice():
    # 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:00-01:59 happens twice.
    daily = TimerTrigger(cron="30 1 * * *", timezone="America/New_York")
    got = [local(NY, t) for t in fires(daily, at(NY, 2024, 11, 2, 12, 0), 3)]
    assert got == ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00", "2024-11-05T01:30:00-05:00"]
    hourly = TimerTrigger(cron="0 * * * *", timezone="America/New_York")
    got = fires(hourly, at(NY, 2024, 11, 3, 0, 30), 3)
    assert [local(NY, t) for t in got] == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00",
        "2024-11-03T02:00:00-05:00",
    ]
    assert got[1] - got[0] == 3600 and got[2] - got[1] == 3600


def test_dst_fall_back_london():
    # 2024-10-27: 02:00 BST falls back to 01:00 GMT.
    daily = TimerTrigger(cron="15 1 * * *", timezone="Europe/London")
    got = [local(LONDON, t) for t in fires(daily, at(LONDON, 2024, 10, 26, 12, 0), 2)]
    assert got == ["2024-10-27T01:15:00+01:00", "2024-10-28T01:15:00+00:00"]


def test_cron_with_seconds_field():
    every10s = TimerTrigger(cron="* * * * * */10")
    assert next_fire(every10s, 1_700_000_005.0) == 1_700_000_010.0


@pytest.mark.parametrize(
    "trigger, message",
    [
        (TimerTrigger(), "exactly one"),
        (TimerTrigger(every=5, cron="* * * * *"), "exactly one"),
        (TimerTrigger(every=0), "positive"),
        (TimerTrigger(cron="61 * * * *"), "not a valid cron"),
        (TimerTrigger(cron="0 9 * * *", timezone="Mars/Olympus"), "unknown time zone"),
    ],
)
def test_invalid_timers_are_refused(trigger, message):
    with pytest.raises(ValueError, match=message):
        validate_timer(trigger)


# ------------------------------------------------------------------ scheduler


class FakeTime:
    """A clock and a sleep that advances it; `oversleep` simulates a stalled loop."""

    def __init__(self, start: float):
        self.now = start
        self.sleeps: list[float] = []
        self.oversleep: dict[int, float] = {}

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep.pop(len(self.sleeps), 0.0)
        await asyncio.sleep(0)


def run_until(scheduler, beats, count, limit=5.0):
    """Run the scheduler until `count` beats were emitted (or fail after `limit` real seconds)."""

    async def main():
        task = asyncio.ensure_future(scheduler.run())
        while len(beats) < count:
            await asyncio.sleep(0)
            if task.done():
                break
        scheduler.stop()
        await asyncio.wait_for(task, limit)

    asyncio.run(asyncio.wait_for(main(), limit))


def test_scheduler_emits_beats_on_schedule_without_firing_at_start():
    ft = FakeTime(1000.0)
    beats = []
    entries = [("r1", 0, TimerTrigger(every=60)), ("r2", 1, TimerTrigger(every=90))]
    sched = TimerScheduler(entries, beats.append, clock=ft.clock, sleep=ft.sleep)
    run_until(sched, beats, 5)
    assert [(b.rule_id, b.trigger_index, b.scheduled_time) for b in beats[:5]] == [
        ("r1", 0, 1020.0),
        ("r1", 0, 1080.0),  # a tie fires in entry order
        ("r2", 1, 1080.0),
        ("r1", 0, 1140.0),
        ("r2", 1, 1170.0),
    ]
    assert all(b.time == b.scheduled_time for b in beats)
    assert max(ft.sleeps) <= 30.0  # sleeps are chunked so a jumping clock is noticed


def test_async_emit_and_emit_errors_do_not_stop_the_scheduler():
    ft = FakeTime(0.0)
    beats = []

    async def emit(beat):
        beats.append(beat)
        if len(beats) == 1:
            raise RuntimeError("engine queue closed")

    sched = TimerScheduler([("r", 0, TimerTrigger(every=10))], emit, clock=ft.clock, sleep=ft.sleep)
    run_until(sched, beats, 3)
    assert [b.scheduled_time for b in beats[:3]] == [10.0, 20.0, 30.0]


def test_short_stall_gives_one_catch_up_beat_and_no_burst():
    ft = FakeTime(0.0)
    ft.oversleep[2] = 35.0  # the second sleep wakes 35 s late
    beats, missed = [], []
    sched = TimerScheduler(
        [("r", 0, TimerTrigger(every=10))], beats.append, clock=ft.clock, sleep=ft.sleep,
        on_missed=lambda *a: missed.append(a),
    )
    run_until(sched, beats, 3)
    assert [(b.scheduled_time, b.time) for b in beats[:3]] == [(10.0, 10.0), (20.0, 55.0), (60.0, 60.0)]
    assert missed == []


def test_long_stall_drops_old_slots_reports_them_and_resumes():
    ft = FakeTime(0.0)
    ft.oversleep[1] = 3600.0  # e.g. a suspended laptop
    beats, missed = [], []
    sched = TimerScheduler(
        [("r", 0, TimerTrigger(every=600))], beats.append, clock=ft.clock, sleep=ft.sleep,
        max_lateness=60.0, on_missed=lambda *a: missed.append(a),
    )
    run_until(sched, beats, 1)
    # first sleep is 30 s, woke at 3630: slots 600..3000 are over 60 s late; 3600 is 30 s late -> fires
    assert [(b.scheduled_time, b.time) for b in beats[:1]] == [(3600.0, 3630.0)]
    assert missed == [("r", 0, 600.0, 3630.0)]


def test_stall_with_no_slot_within_lateness_fires_nothing_late():
    ft = FakeTime(0.0)
    ft.oversleep[1] = 3470.0
    beats, missed = [], []
    sched = TimerScheduler(
        [("r", 0, TimerTrigger(every=1000))], beats.append, clock=ft.clock, sleep=ft.sleep,
        max_lateness=60.0, on_missed=lambda *a: missed.append(a),
    )
    run_until(sched, beats, 1)
    # first sleep is 30 s, woke at 3500: slots 1000, 2000, 3000 all > 60 s late -> none fires
    assert beats[0].scheduled_time == 4000.0 and beats[0].time == 4000.0
    assert missed == [("r", 0, 1000.0, 3500.0)]


def test_clock_stepped_back_never_fires_a_slot_twice():
    ft = FakeTime(0.0)
    beats = []

    def emit(beat):
        beats.append(beat)
        if len(beats) == 1:
            ft.now -= 25.0  # NTP steps the clock back after the first beat

    sched = TimerScheduler([("r", 0, TimerTrigger(every=10))], emit, clock=ft.clock, sleep=ft.sleep)
    run_until(sched, beats, 3)
    slots = [b.scheduled_time for b in beats[:3]]
    assert slots == [10.0, 20.0, 30.0] and len(set(slots)) == 3


def test_replace_keeps_unchanged_timers_and_schedules_new_ones():
    ft = FakeTime(0.0)
    beats = []
    keep = ("keep", 0, TimerTrigger(every=100))

    def emit(beat):
        beats.append(beat)
        if len(beats) == 1:  # hot reload from inside the engine at t=7
            sched.replace([keep, ("new", 2, TimerTrigger(every=30))])

    sched = TimerScheduler([keep, ("old", 0, TimerTrigger(every=7))], emit, clock=ft.clock, sleep=ft.sleep)
    run_until(sched, beats, 5)
    assert [(b.rule_id, b.scheduled_time) for b in beats[:5]] == [
        ("old", 7.0),
        ("new", 30.0),
        ("new", 60.0),
        ("new", 90.0),
        ("keep", 100.0),
    ]


def test_replace_with_an_invalid_timer_changes_nothing():
    sched = TimerScheduler([("a", 0, TimerTrigger(every=5))], lambda b: None)
    with pytest.raises(ValueError, match="rule b trigger 1: .*not a valid cron"):
        sched.replace([("b", 1, TimerTrigger(cron="nope"))])
    with pytest.raises(ValueError, match="rule c trigger 0"):
        TimerScheduler([("c", 0, TimerTrigger())], lambda b: None)


def test_stop_interrupts_a_long_real_sleep():
    async def main():
        sched = TimerScheduler([("r", 0, TimerTrigger(every=86400))], lambda b: None, max_sleep=3600)
        task = asyncio.ensure_future(sched.run())
        await asyncio.sleep(0.01)
        assert sched.upcoming()[0][0] == "r"
        sched.stop()
        await asyncio.wait_for(task, 2.0)

    asyncio.run(main())


def test_stop_before_run_makes_run_return_at_once():
    beats = []
    sched = TimerScheduler([("r", 0, TimerTrigger(every=1))], beats.append)
    sched.stop()
    asyncio.run(asyncio.wait_for(sched.run(), 2.0))
    assert beats == []
