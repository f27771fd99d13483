"""The one interruptible sleep."""

import asyncio

from rules_engine.sleeping import interruptible_sleep


def test_sleeps_the_full_time_when_nobody_wakes_it():
    async def main():
        slept = []

        async def fake_sleep(seconds):
            slept.append(seconds)

        woken = await interruptible_sleep(5.0, asyncio.Event(), sleep=fake_sleep)
        return woken, slept

    assert asyncio.run(main()) == (False, [5.0])


def test_a_wake_ends_it_at_once_and_negative_times_are_zero():
    async def main():
        wake = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, wake.set)
        started = asyncio.get_running_loop().time()
        woken = await interruptible_sleep(30.0, wake)
        took = asyncio.get_running_loop().time() - started
        assert await interruptible_sleep(-1.0, asyncio.Event()) is False
        return woken, took, wake.is_set()

    woken, took, still_set = asyncio.run(main())
    assert woken and still_set and took < 5.0
