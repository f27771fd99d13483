import datetime

import pytest

from rules_engine.audit import AuditLog, format_record, parse_time, show


class StepClock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = StepClock()
    with AuditLog(path, mode="live", clock=clock) as log:
        for rule, kind in [("btc-dip", "trigger"), ("btc-dip", "decision"), ("eth-top", "trigger"),
                           (None, "startup"), ("btc-top", "risk"), ("eth-top", "decision")]:
            log.append(kind, rule_id=rule, data={"k": kind})
            clock.now += 10
    return path


def seqs(records):
    return [r["seq"] for r in records]


def test_filters(log_path):
    assert seqs(show(log_path)) == [1, 2, 3, 4, 5, 6]
    assert seqs(show(log_path, rule="eth-top")) == [3, 6]
    assert seqs(show(log_path, rule="btc-*")) == [1, 2, 5]
    assert seqs(show(log_path, kind="decision")) == [2, 6]
    assert seqs(show(log_path, kind=["trigger", "risk"])) == [1, 3, 5]
    assert seqs(show(log_path, since=1_020.0)) == [3, 4, 5, 6]
    assert seqs(show(log_path, until=1_020.0)) == [1, 2]
    assert seqs(show(log_path, rule="btc-*", kind="trigger", since=1_000.0, until=1_100.0)) == [1]


def test_bad_lines_are_skipped_and_reported(log_path):
    lines = log_path.read_text().splitlines(keepends=True)
    log_path.write_text("".join(lines[:2] + ["garbage\n"] + lines[2:]) + '{"torn')
    bad = []
    records = list(show(log_path, on_bad_line=lambda n, why: bad.append((n, why))))
    assert seqs(records) == [1, 2, 3, 4, 5, 6]
    assert [n for n, _ in bad] == [3, 8] and "torn" in bad[1][1]


def test_parse_time_forms():
    assert parse_time("1714557600") == 1714557600.0
    assert parse_time("1714557600.5") == 1714557600.5
    expected = datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.timezone.utc).timestamp()
    assert parse_time("2024-05-01T10:00:00Z") == expected
    assert parse_time("2024-05-01T10:00:00") == expected
    assert parse_time("2024-05-01T12:00:00+02:00") == expected
    assert parse_time("-1h", now=10_000.0) == 6_400.0
    assert parse_time("1h30m", now=10_000.0) == 4_600.0
    for bad in ("yesterday", "-1x", "2024-13-01", "1h ago"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_format_record(log_path):
    text = format_record(next(show(log_path, kind="decision")))
    assert text == '1970-01-01T00:16:50.000Z #2 decision rule=btc-dip mode=live {"k":"decision"}'
