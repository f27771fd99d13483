"""A running engine's side of signal fan-out: on the PostgreSQL store, its key's cell takes the
delivery rows the intake wrote for it and decides each as the Signal event the webhook makes, so
rules with `signal:` triggers fire unchanged.

    consumer = fanout_consumer(service)   # None unless the store is PostgreSQL; expires stale ones
    service._spawn(consumer.run())        # LISTEN for the key's NOTIFY, a poll every second as backstop

Each claim (`pgstore.fanout.DeliveryClaimer.claim`, `FOR UPDATE SKIP LOCKED`, fenced by the
cell's epoch) moves deliveries into the key's signal inbox in one transaction; the commit that
saves a signal's decision deletes it from the inbox and marks the delivery done, so each is
decided exactly once (see `pgstore.fanout`). A delivery past its provider's `max_age` is not
traded: it is marked expired and audited (`signal_expired`). The payload carries the account's
store key and sizing as `signal.account` (e.g. `volume: "=signal.qty * signal.account.scale"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rules_engine.core.events import Signal
from rules_engine.pgstore import FencedError, PgStateStore
from rules_engine.pgstore.connection import CONNECT_TIMEOUT, psycopg
from rules_engine.pgstore.fanout import CLAIM_BATCH, DeliveryClaimer, ExpiredDelivery, TakenDelivery, channel
from rules_engine.service.signal_inbox import InboxSignal
from rules_engine.service.subscriptions import ACCOUNT_FIELD, account_fields
from rules_engine.state.store import StateStoreError

if TYPE_CHECKING:
    from rules_engine.service.app import EngineService
    from rules_engine.service.delivery_hub import DeliveryHub

log = logging.getLogger("rules_engine.service.fanout")

POLL = 1.0
"""Seconds between claims when no NOTIFY arrives (the backstop for a lost notification)."""

Audit = Callable[[str, Mapping[str, Any]], None]


class DeliveryConsumer:
    """Takes the key's deliveries and hands each to the engine as an inbox signal."""

    def __init__(self, claimer: DeliveryClaimer, put: Callable[[InboxSignal], None], audit: Audit,
                 clock: Callable[[], float], is_open: Callable[[], bool], poll: float = POLL,
                 on_signal: Callable[[str], None] | None = None,
                 on_expired: Callable[[str], None] | None = None, hub: DeliveryHub | None = None) -> None:
        self.claimer = claimer
        self.hub = hub  # a worker's cell: woken by the worker's one listener (service.delivery_hub)
        self.put = put
        self.audit = audit
        self.clock = clock
        self.is_open = is_open
        self.poll = poll
        self.on_signal = on_signal
        self.on_expired = on_expired
        self.taken = 0
        self.expired = 0
        self.stopped: str | None = None  # why the consumer stopped (fenced)
        self._warned = False

    def recover(self) -> None:
        """Before the inbox is replayed at start: deliveries a previous run took but did not
        decide, now past their max_age, are expired (audited) instead of traded late."""
        try:
            expired = self.claimer.expire_stale()
        except StateStoreError as exc:
            log.warning("cannot check for stale deliveries: %s", exc)
            return
        for delivery in expired:
            self._expired(delivery)

    async def run(self) -> None:
        """Claim now, then whenever the key's channel is notified, or every `poll` seconds."""
        if self.hub is not None:
            await self._run_woken(self.hub)
            return
        listener: Any = None
        try:
            listener = await self._listen()  # before the first claim: no notification falls in between
            while self.stopped is None:
                while await self._take() >= CLAIM_BATCH:
                    pass
                if self.stopped is not None:
                    return
                listener = await self._wait(listener)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()
            self.claimer.close()

    async def _run_woken(self, hub: DeliveryHub) -> None:
        """Claim whenever the worker's hub wakes this key (a notification, or its backstop poll)."""
        wake = hub.register(self.claimer.key_id)
        try:
            while self.stopped is None:
                await wake.wait()
                wake.clear()
                with hub.claiming(self.claimer.key_id):
                    while await self._take() >= CLAIM_BATCH:
                        pass
        finally:
            hub.unregister(self.claimer.key_id, wake)
            self.claimer.close()

    async def _wait(self, listener: Any) -> Any:
        """Until a NOTIFY for the key or `poll` seconds; the listening connection (None if lost)."""
        if listener is None:  # lost: wait a poll, listen again (the next claim catches what came meanwhile)
            await asyncio.sleep(self.poll)
            return await self._listen()
        try:
            async for _ in listener.notifies(timeout=self.poll, stop_after=1):
                pass
        except psycopg.Error as exc:
            log.warning("delivery notifications lost (%s); polling every %.0f s until they are back", exc, self.poll)
            with contextlib.suppress(Exception):
                await listener.close()
            return None
        return listener

    async def _listen(self) -> Any:
        settings = self.claimer.settings
        try:
            conn = await psycopg.AsyncConnection.connect(settings.url, password=settings.password, autocommit=True,
                                                         connect_timeout=CONNECT_TIMEOUT,
                                                         application_name="rules-engine-fanout", keepalives=1,
                                                         keepalives_idle=5, keepalives_interval=2, keepalives_count=3)
            await conn.execute(f"LISTEN {channel(settings.key_id)}")
        except psycopg.Error as exc:
            log.warning("cannot listen for deliveries (%s); polling every %.0f s", exc, self.poll)
            return None
        return conn

    async def _take(self) -> int:
        """One claim; how many deliveries it took or expired."""
        if not self.is_open():
            return 0
        now = self.clock()

        def audit(taken: list[TakenDelivery], expired: list[ExpiredDelivery]) -> None:
            try:
                for late in expired:
                    self._expired(late)
                for delivery in taken:
                    self._audit_taken(delivery)
            except Exception:  # the deliveries are taken: they go to the engine whatever the audit did
                log.exception("cannot audit the signal deliveries taken")

        def claim() -> tuple[list[TakenDelivery], list[ExpiredDelivery]]:
            """Take, and audit what was taken or expired (with the claim's commit, on PostgreSQL),
            off the event loop (a worker's loop serves every cell: it would wait for each cell's
            commits in turn)."""
            return self.claimer.claim(time=now, audit=audit)

        try:
            taken, expired = await asyncio.to_thread(claim)
        except FencedError as exc:
            self.stopped = str(exc)
            log.error("signal deliveries: %s; this engine takes no more", exc)
            return 0
        except Exception as exc:  # the store is unreachable (StateStoreError), or a row cannot be read: go on
            if not self._warned:
                log.warning("cannot take signal deliveries: %s (trying again every %.0f s)", exc, self.poll,
                            exc_info=not isinstance(exc, StateStoreError))
            self._warned = True
            return 0
        self._warned = False
        for delivery in taken:
            self._taken(delivery, now)
        return len(taken) + len(expired)

    def _audit_taken(self, delivery: TakenDelivery) -> None:
        self.audit("signal", {"source": delivery.provider, "signal_id": delivery.signal_id,
                              "payload": dict(delivery.payload), "fanout": {"age": round(delivery.age, 3)}})

    def _taken(self, delivery: TakenDelivery, now: float) -> None:
        """On the loop, after its `signal` record: the signal goes to the engine's queue."""
        self.taken += 1
        if self.on_signal is not None:
            self.on_signal(delivery.provider)
        self.put(InboxSignal(Signal(delivery.provider, delivery.payload, now, delivery.signal_id), delivery.inbox_seq))

    def _expired(self, delivery: ExpiredDelivery) -> None:
        self.expired += 1
        if self.on_expired is not None:
            self.on_expired(delivery.provider)
        log.warning("signal %s from %s expired: %.1f s after the intake accepted it (max_age %.1f s); not traded",
                    delivery.signal_id, delivery.provider, delivery.age, delivery.max_age)
        self.audit("signal_expired", {"source": delivery.provider, "signal_id": delivery.signal_id,
                                      "age": round(delivery.age, 3), "max_age": delivery.max_age,
                                      "taken": delivery.taken})


def fanout_consumer(service: EngineService) -> DeliveryConsumer | None:
    """The service's delivery consumer (deliveries left too late already expired), or None
    when the store is not PostgreSQL."""
    store = service.store
    if not isinstance(store, PgStateStore):
        return None
    claimer = DeliveryClaimer(store.settings, store.epoch, account_field=ACCOUNT_FIELD, account=account_fields,
                              db=store.connection)  # one connection for the cell's state and claims

    def audit(kind: str, data: Mapping[str, Any]) -> None:
        service._audit(kind, data=data)

    shared = service.shared
    consumer = DeliveryConsumer(claimer, service._put, audit, service.clock, lambda: service._intake_open,
                                on_signal=lambda source: service.metrics.signals.labels(source).inc(),
                                on_expired=lambda source: service.metrics.signals_expired.labels(source).inc(),
                                hub=None if shared is None else shared.deliveries)
    consumer.recover()
    return consumer
