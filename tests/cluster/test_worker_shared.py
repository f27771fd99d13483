"""What a worker's cells share on a real PostgreSQL: the leases of all its keys (one poll for
every waiting key, one renewal statement for every held key, a write in flight never holding
the others back, the crash fast path through the shared connection's locks), and one listener
that wakes each cell for its deliveries in the signal's serving order (rotated from signal to
signal), with a backstop query for a lost notification."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from e2e_harness import wait_for

from rules_engine.pgstore import StoreSettings, acquire_lease
from rules_engine.pgstore.connection import connect
from rules_engine.pgstore.fanout import WORKER_CHANNEL, serving_order, store_signal
from rules_engine.pgstore.lease import LeaseSession
from rules_engine.service.delivery_hub import DeliveryHub
from rules_engine.service.worker_leases import WorkerLeases, WorkerStopping

pytestmark = pytest.mark.cluster

KEYS = [f"acct-{n}" for n in range(1, 7)]


def until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll `predicate` (on this thread) until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def settings(pg_server: Any, dsn: str, key: str = "default") -> StoreSettings:
    return StoreSettings(dsn, key, pg_server.password)


def take_all(pg_server: Any, dsn: str, leases: WorkerLeases, keys: list[str], ttl: float = 2.0) -> list[Any]:
    keepers = []
    for key in keys:
        session = leases.session(settings(pg_server, dsn, key), ttl)
        lease = session.try_take()
        assert lease is not None
        keeper = leases.keeper(session, lease, sent_at=time.monotonic(), renew_every=ttl / 3)
        keeper.start()
        keepers.append(keeper)
    return keepers


def test_one_poll_reads_every_waiting_key_and_wakes_only_the_takeable_ones(pg_server, pg_dsn) -> None:
    holders = [LeaseSession(settings(pg_server, pg_dsn, key), "other:1", ttl=30.0) for key in KEYS]
    for session in holders:
        assert session.try_take() is not None  # live holders with their session locks
    leases = WorkerLeases(settings(pg_server, pg_dsn), "me:2", poll=0.1)
    leases.start()
    woken: list[str] = []
    errors: list[BaseException] = []

    def stand_by(key: str) -> None:
        try:
            leases.wait_takeable(key)
            woken.append(key)
        except BaseException as exc:  # noqa: BLE001 - WorkerStopping at the end
            errors.append(exc)

    threads = [threading.Thread(target=stand_by, args=(key,)) for key in KEYS]
    try:
        for thread in threads:
            thread.start()
        until(lambda: leases.polls >= 3 and sorted(leases.last_poll) == KEYS)  # one query for every waiting key
        assert woken == []  # every holder lives: nobody is woken
        holders[2].close()  # its holder's session ends (a crash): the crash fast path
        until(lambda: woken == [KEYS[2]])
        holders[4].release(holders[4].current().epoch)  # a clean stop: the lease expires now
        until(lambda: sorted(woken) == [KEYS[2], KEYS[4]])
    finally:
        leases.close()
        for thread in threads:
            thread.join(10)
        for session in holders:
            session.close()
    assert len(errors) == 4 and all(isinstance(e, WorkerStopping) for e in errors)  # the rest stop with the worker


def test_every_held_key_is_renewed_in_one_statement_and_a_key_taken_by_a_newer_epoch_halts(pg_server, pg_dsn) -> None:
    leases = WorkerLeases(settings(pg_server, pg_dsn), "me:3")
    leases.start()
    halts: list[str] = []
    try:
        keepers = take_all(pg_server, pg_dsn, leases, KEYS, ttl=0.9)
        for keeper in keepers:
            keeper.on_halt = halts.append
        until(lambda: all(k.renewals >= 3 for k in keepers))
        assert leases.renewal_statements <= max(k.renewals for k in keepers) + 1  # one statement a round
        acquire_lease(settings(pg_server, pg_dsn, KEYS[1]), "intruder:9")  # epoch + 1 for that key
        until(lambda: keepers[1].halted is not None and halts)  # `halted` is set before `on_halt` is told
        assert len(halts) == 1 and "fenced" in halts[0]
        counts = [k.renewals for k in keepers]
        until(lambda: all(k.renewals > c for k, c in zip(keepers, counts) if k is not keepers[1]))
        assert all(k.problem() is None for k in keepers if k is not keepers[1])  # the others still trade
    finally:
        leases.close()


def test_a_write_in_flight_on_one_key_does_not_hold_back_the_renewal_of_the_others(pg_server, pg_dsn) -> None:
    leases = WorkerLeases(settings(pg_server, pg_dsn), "me:4")
    leases.start()
    conn = connect(settings(pg_server, pg_dsn))
    try:
        keepers = take_all(pg_server, pg_dsn, leases, KEYS, ttl=0.9)
        with conn.transaction():  # a cell's write in flight: its epoch check holds the row FOR SHARE
            conn.execute("SELECT epoch FROM key_lease WHERE key_id = %s FOR SHARE", (KEYS[0],))
            counts = [k.renewals for k in keepers]
            until(lambda: all(k.renewals >= c + 3 for k, c in zip(keepers[1:], counts[1:])))
            assert keepers[0].renewals == counts[0]  # skipped while busy, not waited for
        until(lambda: keepers[0].renewals > counts[0])  # renewed once the write ended
        assert all(k.halted is None for k in keepers)
    finally:
        conn.close()
        leases.close()


def test_the_workers_death_frees_every_key_it_held_at_once(pg_server, pg_dsn) -> None:
    leases = WorkerLeases(settings(pg_server, pg_dsn), "me:5")
    leases.start()
    take_all(pg_server, pg_dsn, leases, KEYS[:3], ttl=30.0)
    standby = LeaseSession(settings(pg_server, pg_dsn, KEYS[0]), "other:6", ttl=30.0)
    try:
        assert standby.try_take() is None  # a live holder (its lock is on the worker's shared connection)
        pids = [c.get().info.backend_pid for c in (*leases.takes, leases._renewals)]
        with connect(settings(pg_server, pg_dsn)) as admin:  # the worker's connections end (it was killed)
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        for key in KEYS[:3]:  # taken long before the 30 s leases expire
            session = LeaseSession(settings(pg_server, pg_dsn, key), "other:6", ttl=30.0)
            until(lambda s=session: s.try_take() is not None)
            session.close()
    finally:
        standby.close()
        leases.close()


async def test_one_listener_wakes_each_cell_in_the_signals_serving_order(pg_server, pg_dsn) -> None:
    hub = DeliveryHub(settings(pg_server, pg_dsn), poll=0.2)
    wakes = {key: hub.register(key) for key in KEYS}
    task = asyncio.ensure_future(hub.run())
    conn = connect(settings(pg_server, pg_dsn))
    try:
        assert all(e.is_set() for e in wakes.values())  # set at first: a cell claims what is there first
        await wait_for(lambda: hub.listening, timeout=10)
        orders = []
        for n in range(3):
            for event in wakes.values():
                event.clear()
            hub.woken.clear()
            accounts = {key: {"scale": 1} for key in KEYS}
            stored = await asyncio.to_thread(store_signal, conn, "signalco", f"sig-{n}", [], {"action": "buy"},
                                             accounts, 30.0, "test")
            assert stored.deliveries == len(KEYS)
            await wait_for(lambda: len(hub.woken) >= len(KEYS), timeout=10)
            assert hub.woken == serving_order(KEYS, "signalco", f"sig-{n}")  # in the order notified
            assert all(e.is_set() for e in wakes.values())
            orders.append(hub.woken[:])
            conn.execute("UPDATE fanout_deliveries SET status = 'done'")
        assert len({tuple(o) for o in orders}) > 1  # rotated from signal to signal
        for event in wakes.values():  # a delivery whose notification was lost: the backstop query finds it
            event.clear()
        conn.execute("INSERT INTO fanout_deliveries (key_id, provider, signal_id, status, account, created_at, "
                     "expires_at) VALUES (%s, 'signalco', 'sig-0', 'pending', '{}', now(), now() + interval '1 min') "
                     "ON CONFLICT (key_id, provider, signal_id) DO UPDATE SET status = 'pending'", (KEYS[3],))
        await wait_for(lambda: wakes[KEYS[3]].is_set(), timeout=10)
        assert hub.backstop_wakes >= 1 and not any(wakes[k].is_set() for k in KEYS if k != KEYS[3])
    finally:
        hub.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        conn.close()


def test_the_intake_notifies_the_workers_channel_with_every_key_in_serving_order(pg_server, pg_dsn) -> None:
    listener = psycopg.connect(pg_dsn, password=pg_server.password, autocommit=True)
    conn = connect(settings(pg_server, pg_dsn))
    try:
        listener.execute(f"LISTEN {WORKER_CHANNEL}")
        store_signal(conn, "signalco", "sig-a", [], {"action": "buy"}, {key: {} for key in KEYS}, 30.0, "test")
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=len(KEYS))]
        assert payloads == serving_order(KEYS, "signalco", "sig-a")
    finally:
        listener.close()
        conn.close()
