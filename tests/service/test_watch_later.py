"""The audit tap's deferred watchers (`AuditTap(later=...)`, `service.watch_later`): records
are queued as written and handed over by `flush()` in seq order, never past a write still
under way on another thread; `WatchLater` flushes at once when no job is in flight, by its
timer when one is, and at `close()` (after which writes reach the watchers at once)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from rules_engine.audit.sink import MemoryAudit
from rules_engine.service.audit_tap import AuditTap
from rules_engine.service.watch_later import WatchLater


class _HeldSink(MemoryAudit):
    """A `MemoryAudit` whose `slow` records return only when released (their seq taken)."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = threading.Event()
        self.release = threading.Event()

    def append(self, kind: str, **kwargs: Any) -> dict[str, Any]:
        record = super().append(kind, **kwargs)
        if kind == "slow":
            self.taken.set()
            assert self.release.wait(10)
        return record


def _seqs(seen: list[list[dict[str, Any]]]) -> list[int]:
    return [r["seq"] for batch in seen for r in batch]


def test_records_wait_for_flush_and_arrive_once_in_seq_order() -> None:
    seen: list[list[dict[str, Any]]] = []
    asked: list[None] = []
    tap = AuditTap(MemoryAudit(), [seen.append], later=lambda: asked.append(None))
    tap.append("trigger", rule_id="r", data={"n": 1})
    tap.append_many([("guard", "r", None, {"result": True}), ("decision", "r", None, {"fire_seq": 1})])
    assert seen == [] and len(asked) == 2 and tap.pending
    assert tap.flush() and not tap.pending
    assert _seqs(seen) == [1, 2, 3] and [r["kind"] for r in seen[0]] == ["trigger", "guard", "decision"]
    assert tap.flush() and _seqs(seen) == [1, 2, 3]  # nothing twice
    tap.later = None
    tap.append("error", data={"x": 1})
    assert _seqs(seen) == [1, 2, 3, 4]  # without `later`: at once


def test_a_flush_never_hands_over_a_record_past_a_write_still_under_way() -> None:
    sink = _HeldSink()
    seen: list[list[dict[str, Any]]] = []
    tap = AuditTap(sink, [seen.append], later=lambda: None)
    for round_ in range(2):
        sink.taken.clear()
        sink.release.clear()
        slow = threading.Thread(target=tap.append, args=("slow",))
        slow.start()
        assert sink.taken.wait(10)  # its seq is taken, its records not yet queued
        tap.append("fast")
        assert not tap.flush()  # the fast one waits for the slow one's seq
        assert len(_seqs(seen)) == 2 * round_
        sink.release.set()
        slow.join(10)
        assert tap.flush()
        assert _seqs(seen) == list(range(1, 2 * round_ + 3))


def test_watch_later_flushes_when_idle_by_timer_while_busy_and_at_close() -> None:
    asyncio.run(asyncio.wait_for(_idle_busy_close(), 30))


async def _idle_busy_close() -> None:
    loop = asyncio.get_running_loop()
    busy = [False]
    delivered = asyncio.Event()
    seen: list[list[dict[str, Any]]] = []

    def watcher(records: list[dict[str, Any]]) -> None:
        seen.append(records)
        delivered.set()

    later = WatchLater(loop, lambda: busy[0], delay=0.05)
    tap = later.watch(AuditTap(MemoryAudit(), [watcher]))
    tap.append("trigger")  # on the loop, nothing in flight: handed over once the loop is free
    assert seen == []
    await asyncio.wait_for(delivered.wait(), 5)
    assert _seqs(seen) == [1]

    busy[0] = True  # a job in flight: only the timer hands over
    delivered.clear()
    tap.append("decision")
    await asyncio.sleep(0)
    later.point()
    assert _seqs(seen) == [1]
    await asyncio.wait_for(delivered.wait(), 5)
    assert _seqs(seen) == [1, 2]

    delivered.clear()
    await asyncio.to_thread(tap.append, "response")  # another thread: the loop is asked to look
    await asyncio.wait_for(delivered.wait(), 5)
    assert _seqs(seen) == [1, 2, 3]

    tap.append("state")
    later.close()  # at stop: at once, and every later write too
    assert _seqs(seen) == [1, 2, 3, 4]
    tap.append("shutdown")
    assert _seqs(seen) == [1, 2, 3, 4, 5]
