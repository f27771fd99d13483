from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from rules_engine.triggers.timer import TimerTrigger
from rules_engine.schedule import next_fire, validate_timer
from rules_engine.driver import Timetable

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


# ------------------------------------------------------------------ timetable (the driver's timer slots)


def beats_until(table, end, step):
    """Ask the timetable what is due every `step` seconds up to `end`, as a loop waking that often would."""
    beats, missed = [], []
    now = 0.0
    while now < end:
        now += step
        got, lost = table.due(now)
        beats += got
        missed += lost
    return beats, missed


def test_timetable_gives_beats_on_schedule_without_firing_at_start():
    table = Timetable([("r1", 0, TimerTrigger(every=60)), ("r2", 1, TimerTrigger(every=90))], 1000.0)
    assert table.due(1000.0) == ([], [])
    assert table.next_slot() == 1020.0
    seen = []
    for now in (1020.0, 1080.0, 1140.0, 1170.0):
        beats, _ = table.due(now)
        seen += [(b.rule_id, b.trigger_index, b.scheduled_time) for b in beats]
    assert seen == [("r1", 0, 1020.0), ("r1", 0, 1080.0), ("r2", 1, 1080.0), ("r1", 0, 1140.0), ("r2", 1, 1170.0)]
    assert table.upcoming() == [("r1", 0, 1200.0), ("r2", 1, 1260.0)]


def test_short_stall_gives_one_catch_up_beat_and_no_burst():
    table = Timetable([("r", 0, TimerTrigger(every=10))], 0.0)
    beats, missed = table.due(10.0)
    assert [(b.scheduled_time, b.time) for b in beats] == [(10.0, 10.0)]
    beats, missed = table.due(55.0)  # woke 35 s late: slots 20, 30, 40, 50 coalesce into one beat
    assert [(b.scheduled_time, b.time) for b in beats] == [(20.0, 55.0)] and missed == []
    assert table.next_slot() == 60.0


def test_long_stall_drops_old_slots_reports_them_and_resumes():
    table = Timetable([("r", 0, TimerTrigger(every=600))], 0.0, max_lateness=60.0)
    beats, missed = table.due(3630.0)  # e.g. a suspended laptop: 600..3000 are over 60 s late; 3600 fires
    assert [(b.scheduled_time, b.time) for b in beats] == [(3600.0, 3630.0)]
    assert [(m.rule_id, m.trigger_index, m.slot, m.now) for m in missed] == [("r", 0, 600.0, 3630.0)]


def test_stall_with_no_slot_within_lateness_fires_nothing_late():
    table = Timetable([("r", 0, TimerTrigger(every=1000))], 0.0, max_lateness=60.0)
    beats, missed = table.due(3500.0)
    assert beats == [] and [m.slot for m in missed] == [1000.0]
    assert table.next_slot() == 4000.0


def test_simulated_time_without_a_lateness_bound_sees_every_slot():
    table = Timetable([("r", 0, TimerTrigger(every=10))], 0.0, max_lateness=float("inf"))
    beats, missed = beats_until(table, 50.0, 10.0)
    assert [b.scheduled_time for b in beats] == [10.0, 20.0, 30.0, 40.0, 50.0] and missed == []


def test_clock_stepped_back_never_fires_a_slot_twice():
    table = Timetable([("r", 0, TimerTrigger(every=10))], 0.0)
    first, _ = table.due(10.0)
    again, _ = table.due(-15.0)  # NTP steps the clock back after the first beat
    later, _ = table.due(20.0)
    slots = [b.scheduled_time for b in first + again + later]
    assert slots == [10.0, 20.0]


def test_replace_keeps_unchanged_timers_and_schedules_new_ones():
    keep = ("keep", 0, TimerTrigger(every=100))
    table = Timetable([keep, ("old", 0, TimerTrigger(every=7))], 0.0)
    beats, _ = table.due(7.0)
    assert [(b.rule_id, b.scheduled_time) for b in beats] == [("old", 7.0)]
    table.replace([keep, ("new", 2, TimerTrigger(every=30))], 7.0)  # hot reload at t=7
    assert table.upcoming() == [("new", 2, 30.0), ("keep", 0, 100.0)]


def test_replace_with_an_invalid_timer_changes_nothing():
    table = Timetable([("a", 0, TimerTrigger(every=5))], 0.0)
    with pytest.raises(ValueError, match="rule b trigger 1: .*not a valid cron"):
        table.replace([("b", 1, TimerTrigger(cron="nope"))], 0.0)
    assert table.upcoming() == [("a", 0, 5.0)]
    with pytest.raises(ValueError, match="rule c trigger 0"):
        Timetable([("c", 0, TimerTrigger())], 0.0)
