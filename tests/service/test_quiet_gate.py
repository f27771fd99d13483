"""A worker's cells connect their private feeds once the worker is quiet (`service.quiet_gate`):
held while it is busy, let through at the first quiet check or after `max_wait`, all waiting
cells served by one checking task."""

from __future__ import annotations

import asyncio

from rules_engine.service.quiet_gate import QuietGate


class Worker:
    """A worker's `busy()` as the gate sees it, counting the checks; each check advances a clock."""

    def __init__(self, busy_checks: int) -> None:
        self.busy_checks = busy_checks  # the first N checks find it busy
        self.checks = 0
        self.now = 0.0

    def busy(self) -> bool:
        self.checks += 1
        self.now += 1.0
        return self.checks <= self.busy_checks

    def clock(self) -> float:
        return self.now


async def _through(gate: QuietGate, worker: Worker, waiters: int) -> list[int]:
    """Start `waiters` waits; the check number at which each was let through."""
    passed: list[int] = []

    async def one() -> None:
        await gate.wait()
        passed.append(worker.checks)

    await asyncio.gather(*(one() for _ in range(waiters)))
    return passed


def test_waiters_are_held_while_the_worker_is_busy_and_all_let_through_at_the_first_quiet_check() -> None:
    worker = Worker(busy_checks=3)
    gate = QuietGate(worker.busy, check_every=0, max_wait=100.0, clock=worker.clock)
    passed = asyncio.run(_through(gate, worker, waiters=5))
    assert passed == [4] * 5  # three busy checks, then the fourth is quiet: one check per round for all five
    assert worker.checks == 4 and gate.waiting == 0


def test_a_worker_that_is_never_quiet_still_lets_each_waiter_through_after_max_wait() -> None:
    worker = Worker(busy_checks=10**6)
    gate = QuietGate(worker.busy, check_every=0, max_wait=5.0, clock=worker.clock)
    assert asyncio.run(_through(gate, worker, waiters=2)) == [5, 5]  # the clock passes 5 s at the fifth check


def test_a_quiet_worker_lets_a_waiter_through_at_once_and_the_gate_serves_later_waiters_again() -> None:
    worker = Worker(busy_checks=0)
    gate = QuietGate(worker.busy, check_every=0, max_wait=5.0, clock=worker.clock)
    assert asyncio.run(_through(gate, worker, waiters=1)) == [1]
    worker.busy_checks = worker.checks + 2  # busy again for two checks: a later takeover

    async def later() -> list[int]:
        return await _through(gate, worker, waiters=3)

    assert asyncio.run(later()) == [4, 4, 4]


def test_a_cancelled_waiter_does_not_hold_or_break_the_others() -> None:
    worker = Worker(busy_checks=2)
    gate = QuietGate(worker.busy, check_every=0, max_wait=100.0, clock=worker.clock)

    async def run() -> int:
        cancelled = asyncio.ensure_future(gate.wait())
        kept = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        await kept
        return gate.waiting

    assert asyncio.run(run()) == 0
    assert worker.checks == 3
