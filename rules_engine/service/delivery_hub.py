"""A worker's wake-ups for its cells' signal deliveries: ONE listening connection and ONE
backstop query a second for every cell, instead of a LISTEN connection and a claim a second
per cell.

    hub = DeliveryHub(settings)            # one per worker and store
    task = asyncio.ensure_future(hub.run())
    wake = hub.register("acct-1")          # an asyncio.Event, set when the key may have deliveries
    ...                                    # the cell claims (its own fenced transaction), clears, waits
    hub.unregister("acct-1", wake)

The intake notifies `pgstore.fanout.WORKER_CHANNEL` with each key as payload, in the signal's
serving order (rotated from signal to signal); the hub sets the keys' events in the order the
notifications arrive, so the cells claim in that order. Every `poll` seconds it also asks which
of its keys have pending deliveries (a lost notification, a connection made again) and wakes
those; when its connection is made again it wakes every cell once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from rules_engine.pgstore import StoreSettings
from rules_engine.pgstore.connection import CONNECT_TIMEOUT, psycopg
from rules_engine.pgstore.fanout import WORKER_CHANNEL

log = logging.getLogger("rules_engine.worker.deliveries")

POLL = 1.0
"""Seconds between two backstop queries (which of the worker's keys have pending deliveries)."""


class DeliveryHub:
    """Wakes a worker's cells when their keys have deliveries (see the module)."""

    def __init__(self, settings: StoreSettings, *, poll: float = POLL) -> None:
        self.settings = settings
        self.poll = poll
        self._events: dict[str, asyncio.Event] = {}
        self._stopping = False
        self.listening = False  # connected and listening now
        self.notifications = 0  # received for a registered key (tests, metrics)
        self.backstop_wakes = 0
        self.woken: list[str] = []  # the keys woken by notifications, in order (the last 1,000; tests)
        self._claiming: set[str] = set()  # keys whose cell is claiming now (`claiming`)

    def register(self, key: str) -> asyncio.Event:
        """The key's wake-up event, set now (the cell claims what is already there first)."""
        event = asyncio.Event()
        event.set()
        self._events[key] = event
        return event

    def unregister(self, key: str, event: asyncio.Event) -> None:
        if self._events.get(key) is event:
            del self._events[key]

    @contextlib.contextmanager
    def claiming(self, key: str) -> Iterator[None]:
        """While the cell of `key` claims (its claim may wait for a thread): the backstop leaves
        it alone, as waking it would only make it claim again and find nothing (in a large
        fan-out, most keys of a worker are still waiting for their claim at the first backstop).
        A notification still wakes it."""
        self._claiming.add(key)
        try:
            yield
        finally:
            self._claiming.discard(key)

    def wake_pending(self, keys: Iterable[str]) -> None:
        """The backstop's wake-ups: `keys` have pending deliveries; those not claiming are woken."""
        for key in keys:
            if key not in self._claiming and self._wake(key):
                self.backstop_wakes += 1

    def stop(self) -> None:
        self._stopping = True

    def _wake(self, key: str) -> bool:
        event = self._events.get(key)
        if event is None:
            return False
        event.set()
        return True

    async def run(self) -> None:
        """Listen, wake, poll; made again when lost, until `stop`."""
        while not self._stopping:
            conn = await self._connect()
            if conn is None:
                await asyncio.sleep(self.poll)
                continue
            for key in list(self._events):  # whatever came while not listening
                self._wake(key)
            self.listening = True
            try:
                await self._serve(conn)
            except psycopg.Error as exc:
                log.warning("delivery notifications lost (%s); listening again", exc)
            except Exception:  # a bug must not leave every cell unwoken: logged, then listening again
                log.exception("delivery wake-ups: unexpected error; listening again")
                await asyncio.sleep(self.poll)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _connect(self) -> Any:
        settings = self.settings
        try:
            conn = await psycopg.AsyncConnection.connect(
                settings.url, password=settings.password, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                application_name="rules-engine-worker-deliveries", keepalives=1, keepalives_idle=5,
                keepalives_interval=2, keepalives_count=3)
            await conn.execute(f"LISTEN {WORKER_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot listen for deliveries (%s); trying again in %.0f s", exc, self.poll)
            return None
        return conn

    async def _serve(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self.poll
        while not self._stopping:
            async for notify in conn.notifies(timeout=max(0.0, next_poll - loop.time())):
                if self._wake(notify.payload):
                    self.notifications += 1
                    self.woken.append(notify.payload)
                    del self.woken[:-1000]
                if self._stopping:
                    return
            if loop.time() >= next_poll:
                next_poll = loop.time() + self.poll
                keys = list(self._events)
                if keys:
                    cursor = await conn.execute(
                        "SELECT DISTINCT key_id FROM fanout_deliveries WHERE status = 'pending' AND key_id = ANY(%s)",
                        (keys,))
                    self.wake_pending([str(key) for (key,) in await cursor.fetchall()])
