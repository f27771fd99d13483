"""The engine service's event queue: many producers on the loop, one consumer.

`asyncio.Queue` does more than the service needs on every tick (a size bound check, a
count of unfinished tasks and an event for `join`); this is a deque plus the one waiting
consumer, woken only when it waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class EventQueue:
    """Unbounded FIFO for one event loop. Any number of `put_nowait` callers; one `get`
    caller at a time (the service's consumer)."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        """The oldest item, waiting for one if there is none."""
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()

    def get_nowait(self) -> Any:
        """The oldest item; `asyncio.QueueEmpty` if there is none."""
        try:
            return self._items.popleft()
        except IndexError:
            raise asyncio.QueueEmpty from None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
