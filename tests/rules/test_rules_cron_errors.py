"""A cron schedule the engine cannot use is reported naming the field and the value at fault."""

from __future__ import annotations

import pytest

from rules_engine.schedule import cron_problem


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 25 * * *", '"0 25 * * *" is not a cron schedule: hour 25 is out of range 0-23'),
        ("61 * * * *", '"61 * * * *" is not a cron schedule: minute 61 is out of range 0-59'),
        ("* * 0 * *", '"* * 0 * *" is not a cron schedule: day-of-month 0 is out of range 1-31'),
        ("* * * 13 *", '"* * * 13 *" is not a cron schedule: month 13 is out of range 1-12'),
        ("* * * * 8", '"* * * * 8" is not a cron schedule: day-of-week 8 is out of range 0-7'),
        ("1-70/5 * * * *", '"1-70/5 * * * *" is not a cron schedule: minute 70 is out of range 0-59'),
        ("*/0 * * * *", '"*/0 * * * *" is not a cron schedule: minute step "/0" must be a whole number of at least 1'),
        ("0 0 * foo *", '"0 0 * foo *" is not a cron schedule: month "foo" is not a number (1-12 or jan-dec)'),
        ("0 0,x * * *", '"0 0,x * * *" is not a cron schedule: hour "x" is not a number (0-23)'),
        ("0 0 * * * *", '"0 0 * * * *" is not a cron schedule: write five fields '
                        "(minute hour day-of-month month day-of-week), not 6"),
    ],
)
def test_a_bad_cron_names_the_field_and_value(load, cron, message):
    result = load(f"""
        version: 1
        rules:
          - id: nightly
            triggers: [{{type: timer, cron: "{cron}"}}]
            actions: [{{type: log, message: hi}}]
        """)
    [error] = result.errors
    assert (error.line, error.column, error.code, error.rule_id) == (4, 36, "invalid-cron", "nightly")
    assert error.message == message


@pytest.mark.parametrize("cron", ["*/5 * * * *", "0 9 * * mon-fri", "0 0 1,15 jan-jun *", "30 23 L * *", "0 0 * * 7"])
def test_valid_schedules_are_not_blamed(cron, load):
    assert cron_problem(cron) is None
    result = load(f"""
        version: 1
        rules:
          - id: ok
            triggers: [{{type: timer, cron: "{cron}"}}]
            actions: [{{type: log, message: hi}}]
        """)
    assert result.errors == []
