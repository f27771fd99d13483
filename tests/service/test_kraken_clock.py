"""A worker measures Kraken's clock once for all its cells' takeovers (`service.kraken_clock`)."""

from __future__ import annotations

import threading

from rules_engine.service.kraken_clock import SharedKrakenClock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_measurement_per_endpoint_until_it_is_a_minute_old() -> None:
    clock = Clock()
    shared = SharedKrakenClock(max_age=60.0, monotonic=clock)
    calls: list[str] = []

    def measure(value: float, name: str = "a"):  # type: ignore[no-untyped-def]
        def read() -> float:
            calls.append(name)
            return value
        return read

    assert shared.offset("https://api.kraken.com", measure(0.25)) == 0.25
    clock.now += 59.0
    assert shared.offset("https://api.kraken.com", measure(9.0)) == 0.25  # not measured again
    assert shared.offset("http://127.0.0.1:1", measure(-1.5, "b")) == -1.5  # another endpoint: its own
    clock.now += 1.0
    assert shared.offset("https://api.kraken.com", measure(0.75)) == 0.75  # a minute old: measured again
    assert calls == ["a", "b", "a"] and shared.measurements == 3


def test_a_failed_measurement_is_not_repeated_by_every_cell_in_turn() -> None:
    clock = Clock()
    shared = SharedKrakenClock(failed_age=5.0, monotonic=clock)
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        return None

    assert shared.offset("e", failing) is None
    assert shared.offset("e", failing) is None  # remembered: the cells use their wall clock, as on a failure
    assert calls == [1]
    clock.now += 5.0
    assert shared.offset("e", lambda: 0.5) == 0.5  # tried again after failed_age
    assert shared.offset("e", failing) == 0.5


def test_cells_asking_at_once_wait_for_one_measurement() -> None:
    shared = SharedKrakenClock()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> float:
        calls.append(1)
        started.set()
        release.wait(5)
        return 1.5

    results: list[float | None] = []
    threads = [threading.Thread(target=lambda: results.append(shared.offset("e", slow))) for _ in range(5)]
    threads[0].start()
    assert started.wait(5)
    for thread in threads[1:]:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert results == [1.5] * 5 and calls == [1]
