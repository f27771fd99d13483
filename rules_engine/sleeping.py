"""The one interruptible sleep: wait some seconds, or less if someone says stop.

    woken = await interruptible_sleep(5.0, stop_event)

Used wherever a loop waits between rounds and must react at once to a stop or a poke:
the WebSocket feed's reconnect backoff, the dead man's switch refresher, the timer
scheduler, the simulator's withheld answers. `sleep` is injectable, so tests drive time
themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def interruptible_sleep(
    seconds: float,
    wake: asyncio.Event,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> bool:
    """Sleep `seconds` (at least one pass of the event loop) or until `wake` is set,
    whichever comes first. Returns True if `wake` is set. The event is left as it is."""
    sleeper = asyncio.ensure_future(sleep(max(seconds, 0.0)))
    waker = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waker.cancel()
    return wake.is_set()
