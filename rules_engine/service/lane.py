"""The service's dispatch lanes: the driver's `CommitLane` on worker threads.

A job goes to the lane of the market and pair of its first intent that names one (an order,
a cancel of a pair's orders), or else to the engine lane (state saves, account reads,
cancel-all, the dead man's switch). Each lane is one worker thread: its jobs run one at a
time, in the order they were submitted, so a pair's intents leave in the order they were
decided. With `concurrent=True` (the live and validate executors, which are thread-safe)
the lanes run side by side, so one slow or ambiguous order (held up to its deadline) never
delays an order on another pair; with `concurrent=False` (the paper wallet) every job runs
on one lane. A cancel (cancel-all, a cancel by id, the dead man's switch) still leaves only
after every job submitted before it, on every lane, has finished: it never overtakes an
order it may be meant to cancel. The guarantees per order are the dispatcher's, whatever the lane. When a job is
done its `(intent, report)` pairs are handed back on the event loop (`on_reported`), where
the driver turns them into events for the core.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_all
from queue import SimpleQueue
from typing import Any

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
        *,
        concurrent: bool = False,
    ) -> None:
        self.lane = lane
        self._loop = loop
        self._on_reported = on_reported
        self._on_idle = on_idle
        self.concurrent = concurrent
        self._pools: dict[str, LaneThread] | None = {}
        self._tails: dict[str, Future[Reported]] = {}  # each lane's last job
        self.jobs = 0

    def submit(self, job: Job) -> None:
        """Queue a job on its lane (on the loop thread)."""
        if self._pools is None:
            raise RuntimeError("the dispatch lane is shut down")
        name = lane_of(job) if self.concurrent else ENGINE_LANE
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = LaneThread(f"rules-engine-dispatch-{name}")
        self.jobs += 1
        earlier = [f for lane, f in self._tails.items() if lane != name and not f.done()] if cancels(job) else []
        if earlier:
            future = pool.submit(_after, earlier, self.lane.run, job, done=self._finished)
        else:
            future = pool.submit(self.lane.run, job, done=self._finished)
        self._tails[name] = future

    def _finished(self, future: Future[Reported]) -> None:
        """On the lane's thread: hand the finished job to the loop."""
        self._loop.call_soon_threadsafe(self._done, future)

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
        """Let queued jobs finish, then stop the threads."""
        pools, self._pools = self._pools, None
        for pool in (pools or {}).values():
            await asyncio.to_thread(pool.shutdown)


class LaneThread:
    """One lane's worker thread: runs the calls submitted to it one at a time, in order.
    (A `ThreadPoolExecutor` of one worker, without its bookkeeping on the way of an order:
    the job is one queue put away, and the thread wakes from one queue get.)"""

    def __init__(self, name: str) -> None:
        self._queue: SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any,
               done: Callable[[Future[Any]], None] | None = None) -> Future[Any]:
        """Queue `fn(*args)`; `done(future)` runs on the lane's thread once it finished (attached
        before the call is queued: the submitting thread never contends for the future's lock
        with the lane's thread already running it)."""
        future: Future[Any] = Future()
        if done is not None:
            future.add_done_callback(done)
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        _local.lane = True
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Let the calls queued so far finish, then stop the thread."""
        self._queue.put(None)
        self._thread.join()


_local = threading.local()


def on_lane_thread() -> bool:
    """Whether the calling thread is a dispatch lane's."""
    return getattr(_local, "lane", False)


ENGINE_LANE = "engine"
CANCEL_KINDS = frozenset({"cancel_order", "cancel_all", "dead_man_switch", "futures_cancel_order"})


def cancels(job: Job) -> bool:
    """Whether the job cancels orders (it then waits for every job submitted before it)."""
    return any(intent.kind in CANCEL_KINDS for intent in job.intents)


def _after(earlier: list[Future[Reported]], run: Callable[[Job], Reported], job: Job) -> Reported:
    wait_all(earlier)
    return run(job)


def lane_of(job: Job) -> str:
    """The lane of a job: `market:pair` of its first intent naming a pair, else the engine lane."""
    for intent in job.intents:
        pair = getattr(intent, "pair", None) or getattr(intent, "symbol", None)
        if isinstance(pair, str) and pair:
            return f"{getattr(intent, 'market', 'spot')}:{pair}"
    return ENGINE_LANE
