"""A worker's private feeds share one budget of WebSocket connection attempts
(`service.connect_budget`): Kraken's edge bans an IP after about 150 attempts in 10 minutes."""

from __future__ import annotations

import asyncio

import pytest

from rules_engine.service.connect_budget import ConnectBudget


class Clock:
    """Time that passes only when a waiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_attempts_within_the_budget_go_at_once_and_the_next_waits_for_the_oldest_to_leave_the_window() -> None:
    clock = Clock()
    budget = ConnectBudget(3, 600.0, clock=clock, sleep=clock.sleep)

    async def run() -> list[float]:
        waits = [await budget.take() for _ in range(3)]
        clock.now += 100.0
        waits.append(await budget.take())  # the 4th in 100 s: waits until the 1st is 600 s old
        return waits

    assert asyncio.run(run()) == [0.0, 0.0, 0.0, 500.0]
    assert clock.now == 1600.0 and budget.used() == 1  # the first three (all at 1000) have left the window
    clock.now += 600.0
    assert budget.used() == 0


def test_many_feeds_at_once_never_exceed_the_budget_in_any_window() -> None:
    clock = Clock()
    budget = ConnectBudget(100, 600.0, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def feed() -> None:
        await budget.take()
        times.append(clock.now)

    async def run() -> None:
        await asyncio.gather(*(feed() for _ in range(300)))  # a worker of 300 keys connecting at once

    asyncio.run(run())
    assert len(times) == 300 and budget.waiting == 0
    times.sort()
    assert all(times[i + 100] - times[i] >= 600.0 for i in range(200))  # 100 in any 10 minutes at most
    assert times[99] == 1000.0 and times[100] >= 1600.0  # the first 100 at once, the next after 10 minutes


def test_a_budget_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError):
        ConnectBudget(0)
