"""Small costs on a cell's way from a signal to its order, paid once per key in a fan-out: the
audit flusher's thread is woken only for an earlier deadline (not once per chain that queues a
record), a lane job's done callback is attached before the job is queued, and integer lists go
to PostgreSQL as array literals (psycopg builds an adapter context for each Python list)."""

from __future__ import annotations

import threading

from rules_engine.pgstore import audit as pg_audit
from rules_engine.pgstore.audit import _Flusher
from rules_engine.pgstore.fanout import int_array
from rules_engine.service.lane import LaneThread


class CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_the_flusher_thread_is_woken_only_for_an_earlier_deadline(monkeypatch) -> None:
    flusher = _Flusher()
    flusher._cond = cond = CountingCondition()
    flusher._thread = threading.current_thread()  # as if running: the test drives it by hand
    chains = [object() for _ in range(5)]
    for chain in chains:
        flusher.schedule(chain)
    assert cond.notified == 1 and set(flusher._due) == set(chains)  # later deadlines: it wakes for the first
    monkeypatch.setattr(pg_audit, "LINGER", pg_audit.LINGER / 10)
    flusher.schedule(object())  # due before the one it waits for: woken
    assert cond.notified == 2


def test_integer_arrays_are_sent_as_literals() -> None:
    assert int_array([3, 1, 20]) == "{3,1,20}"
    assert int_array([]) == "{}"


def test_a_lane_jobs_done_callback_runs_on_the_lanes_thread() -> None:
    """Attached before the job is queued: however fast the job, the submitting thread (a worker's
    event loop) never runs the callback itself nor waits for the future's lock."""
    lane = LaneThread("test-lane")
    seen: list[threading.Thread] = []
    try:
        futures = [lane.submit(int, "1", done=lambda f: seen.append(threading.current_thread()))
                   for _ in range(200)]
        assert [f.result(timeout=10) for f in futures] == [1] * 200
    finally:
        lane.shutdown()
    assert len(seen) == 200 and {t.name for t in seen} == {"test-lane"}
