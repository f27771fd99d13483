"""The service's dispatch lane: the driver's `CommitLane` on one worker thread.

Jobs run one at a time, in the order they were submitted, so intents leave in the order they
were decided. When a job is done its `(intent, report)` pairs are handed back on the event
loop (`on_reported`), where the driver turns them into events for the core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from rules_engine.core.intents import Intent
from rules_engine.driver.lane import CommitLane, Job, Reported
from rules_engine.execution.report import ExecutionReport

log = logging.getLogger(__name__)


class ThreadLane:
    """Runs `CommitLane` jobs on one worker thread (see the module docstring)."""

    def __init__(
        self,
        lane: CommitLane,
        loop: asyncio.AbstractEventLoop,
        on_reported: Callable[[Intent | None, ExecutionReport], None],
        on_idle: Callable[[], None],
    ) -> None:
        self.lane = lane
        self._loop = loop
        self._on_reported = on_reported
        self._on_idle = on_idle
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1,
                                                                   thread_name_prefix="rules-engine-dispatch")
        self.jobs = 0

    def submit(self, job: Job) -> None:
        """Queue a job (on the loop thread)."""
        if self._pool is None:
            raise RuntimeError("the dispatch lane is shut down")
        self.jobs += 1
        future = self._pool.submit(self.lane.run, job)
        future.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._done, f))

    def _done(self, future: Future[Reported]) -> None:
        self.jobs -= 1
        exc = future.exception()
        if exc is not None:
            log.error("dispatch job failed", exc_info=exc)
        else:
            for intent, report in future.result():
                self._on_reported(intent, report)
        self._on_idle()

    async def shutdown(self) -> None:
        """Let queued jobs finish, then stop the thread."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=False)
