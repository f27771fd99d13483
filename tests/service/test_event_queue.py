"""The service's event queue: FIFO, wakes its waiting consumer, survives a cancelled get."""

import asyncio

import pytest

from rules_engine.service.event_queue import EventQueue


def test_items_come_out_in_order_and_a_waiting_consumer_is_woken() -> None:
    async def scenario() -> list[object]:
        queue = EventQueue()
        got: list[object] = []

        async def consume() -> None:
            for _ in range(3):
                got.append(await queue.get())

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0)  # the consumer waits on an empty queue
        queue.put_nowait("a")
        queue.put_nowait("b")
        assert queue.qsize() == 2 and not queue.empty()
        await asyncio.sleep(0)
        queue.put_nowait("c")
        await asyncio.wait_for(task, 1)
        assert queue.empty() and queue.qsize() == 0
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
        return got

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_cancelled_get_leaves_the_queue_usable() -> None:
    async def scenario() -> object:
        queue = EventQueue()
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        queue.put_nowait("x")  # nobody waits: kept for the next get
        return await asyncio.wait_for(queue.get(), 1)

    assert asyncio.run(scenario()) == "x"
