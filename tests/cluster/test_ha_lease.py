"""The parts of high availability on their own: the lease session on a real PostgreSQL
(take only when expired or orphaned, renew only the own epoch, release), the lease keeper's
send deadline and halt, the lease-gated nonce source and the nonce-watching transport, and
the config checks (standby needs exclusive)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from rules_engine.config import ConfigError, parse_config
from rules_engine.kraken.nonce import MemoryNonceStore
from rules_engine.pgstore import StoreSettings
from rules_engine.pgstore.connection import session_name
from rules_engine.pgstore.lease import Lease, LeaseSession
from rules_engine.service.ha import GatedNonceSource, GatedTransport, LeaseKeeper, LeaseLost
from rules_engine.state import StateStoreError


def settings(pg_server: Any, dsn: str) -> StoreSettings:
    return StoreSettings(dsn, "main", pg_server.password)


@pytest.mark.cluster
def test_a_live_lease_is_not_taken_until_it_expires_or_its_holder_session_ends(pg_server, pg_dsn) -> None:
    first = LeaseSession(settings(pg_server, pg_dsn), "first", ttl=1.0)
    second = LeaseSession(settings(pg_server, pg_dsn), "second", ttl=30.0)
    third = LeaseSession(settings(pg_server, pg_dsn), "third", ttl=30.0)
    try:
        lease = first.try_take()
        assert lease is not None and (lease.holder, lease.epoch) == ("first", 1)
        assert second.try_take() is None  # live, and its holder's session holds the key
        assert first.renew(1)
        # expiry by the database's clock: the holder stops renewing, the lease lapses
        deadline = time.monotonic() + 10
        taken = None
        while taken is None and time.monotonic() < deadline:
            taken = second.try_take()
            time.sleep(0.05)
        assert taken is not None and (taken.holder, taken.epoch) == ("second", 2)
        assert not first.renew(1)  # fenced: the key is held by a newer epoch
        # the crash fast path: the holder's session ends (its process died), its lease still runs
        assert third.try_take() is None
        second.close()  # its 30 s lease still runs: only the ended session lets the key go
        deadline = time.monotonic() + 10  # (the server notices the closed connection at once, or nearly)
        taken = None
        while taken is None and time.monotonic() < deadline:
            taken = third.try_take()
            time.sleep(0.02)
        assert taken is not None and (taken.holder, taken.epoch) == ("third", 3)
        third.release(3)
        again = LeaseSession(settings(pg_server, pg_dsn), "fourth", ttl=5.0)
        try:
            assert again.try_take() is not None  # a released lease is free at once
        finally:
            again.close()
    finally:
        for session in (first, second, third):
            session.close()


class FakeSession:
    ttl = 2.0

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.renewed: list[int] = []

    def renew(self, epoch: int) -> bool:
        self.renewed.append(epoch)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    def release(self, epoch: int) -> None:
        self.released = epoch

    def close(self) -> None:
        pass


def keeper(session: FakeSession, clock: list[float], halts: list[str]) -> LeaseKeeper:
    lease = Lease("main", "me", 4, None, None)  # type: ignore[arg-type]
    return LeaseKeeper(session, lease, sent_at=clock[0], renew_every=0.5,  # type: ignore[arg-type]
                       monotonic=lambda: clock[0], on_halt=halts.append)


def test_the_keeper_refuses_sends_once_its_monotonic_deadline_passed_and_resumes_on_renewal() -> None:
    clock, halts = [100.0], []
    session = FakeSession()
    gate = keeper(session, clock, halts)
    gate.check()  # valid until 100 + 2 - 2/6
    clock[0] = 101.6
    gate.check()
    clock[0] = 101.7
    with pytest.raises(LeaseLost, match="not renewed in time"):
        gate.check()
    session.answers = [StateStoreError("store unreachable"), True]
    gate.renew_once()
    assert "store unreachable" in (gate.problem() or "")
    gate.renew_once()  # the same epoch renewed: the lease was never taken, sending may resume
    assert gate.problem() is None and halts == []
    assert session.renewed == [4, 4]


def test_a_fenced_renewal_or_a_refused_nonce_halts_for_good_and_once() -> None:
    clock, halts = [0.0], []
    session = FakeSession()
    gate = keeper(session, clock, halts)
    session.answers = [False]
    gate.renew_once()
    assert halts and "fenced" in halts[0]
    with pytest.raises(LeaseLost, match="fenced"):
        gate.check()
    gate.halt("again")
    assert len(halts) == 1
    gate.stop(release=True)
    assert not hasattr(session, "released")  # a halted holder does not touch the lease


def test_the_gated_nonce_source_issues_nothing_when_the_gate_is_shut() -> None:
    shut = [False]

    def gate() -> None:
        if shut[0]:
            raise LeaseLost("lease lapsed")

    source = GatedNonceSource(MemoryNonceStore(), gate=gate, clock_ns=lambda: 1_000)
    with source.turn("fp", 0.0) as turn:
        assert turn.nonce == 1_000 and source.last_issued == 1_000
    shut[0] = True
    with pytest.raises(LeaseLost):
        with source.turn("fp", 0.0):
            pass
    assert source.last_issued == 1_000


def test_the_transport_halts_the_cell_on_a_refused_nonce() -> None:
    class Inner:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def request(self, *args: Any, **kwargs: Any) -> Any:
            return self.answer

    refused: list[str] = []
    ok = GatedTransport(Inner({"error": [], "result": {}}), refused.append)
    assert ok.request("POST", "u", api_method="Balance") == {"error": [], "result": {}}
    assert refused == []
    bad = GatedTransport(Inner({"error": ["EAPI:Invalid nonce"]}), refused.append)
    assert bad.request("POST", "u", api_method="AddOrder") == {"error": ["EAPI:Invalid nonce"]}
    assert refused == ["AddOrder: EAPI:Invalid nonce"]


def test_standby_needs_a_key_declared_exclusive() -> None:
    store = {"url": "postgresql://engine@db:5432/rules", "key": "main", "standby": True}
    with pytest.raises(ConfigError, match="standby: true needs exclusive: true"):
        parse_config({"store": store})
    config = parse_config({"store": {**store, "exclusive": True, "lease_ttl": "2s"}})
    assert config.store is not None and (config.store.standby, config.store.exclusive, config.store.lease_ttl) == \
        (True, True, 2.0)
    with pytest.raises(ConfigError, match="lease_ttl"):
        parse_config({"store": {**store, "exclusive": True, "lease_ttl": "100ms"}})


def test_the_keeper_reports_a_lapse_and_its_end() -> None:
    clock, halts, events = [0.0], [], []
    session = FakeSession()
    gate = keeper(session, clock, halts)
    gate.on_event = events.append
    clock[0] = 1.0
    gate._note_lapse()
    assert events == []
    clock[0] = 2.0  # past 0 + 2 - 1/3
    with pytest.raises(LeaseLost):
        gate.check()  # the gate notices the lapse itself (a renewal may be hanging)
    gate._note_lapse()
    assert events == []  # logged only: while a lapse lasts the store is usually out of reach
    session.answers = [True]
    gate.renew_once()
    clock[0] = 2.5
    gate._note_lapse()
    assert [e["event"] for e in events] == ["renewed"]
    assert events[0]["lapsed_s"] == round(2.5 - (2 - 2 / 6), 3)  # from when sending stopped


@pytest.mark.cluster
def test_a_fenced_write_halts_the_cell_at_the_next_call(pg_server, pg_dsn) -> None:
    from rules_engine.config import StoreConfig
    from rules_engine.pgstore import PgStateStore, acquire_lease
    from rules_engine.service.ha import HaCell

    spec = StoreConfig(pg_dsn, "main", standby=True, exclusive=True, lease_ttl=30.0)
    cell = HaCell(settings(pg_server, pg_dsn), spec, "me", environ={})
    halts: list[str] = []
    cell.on_halt = halts.append
    lease = cell.wait_for_key()
    store = PgStateStore(settings(pg_server, pg_dsn), epoch=lease.epoch)
    cell.store_fenced = lambda: store.fenced
    try:
        cell.check()  # holds the key
        acquire_lease(settings(pg_server, pg_dsn), "another engine")  # takes it over (epoch + 1)
        with pytest.raises(StateStoreError, match="fenced"):
            store.set_meta("x", "1")
        with pytest.raises(LeaseLost, match="a write of this engine found the key held by a newer epoch"):
            cell.check()  # at once, not at the next renewal (30 s TTL)
        assert len(halts) == 1
    finally:
        store.close()
        cell.close()


@pytest.mark.cluster
def test_an_expired_holder_stuck_inside_a_transaction_is_ended_and_the_key_taken(pg_server, pg_dsn) -> None:
    """A holder cut off inside a message keeps its transaction (and its lock on the lease row)
    open past idle_in_transaction_session_timeout; once its lease has expired, a standby ends it."""
    first = LeaseSession(settings(pg_server, pg_dsn), "first", ttl=0.5)
    second = LeaseSession(settings(pg_server, pg_dsn), "second", ttl=30.0)
    stuck = psycopg.connect(pg_dsn, password=pg_server.password, application_name=session_name("first"))
    try:
        assert first.try_take() is not None
        stuck.execute("SELECT epoch FROM key_lease WHERE key_id = 'main' FOR SHARE")  # an open transaction
        time.sleep(0.6)  # the lease expires by the database's clock (TTL 0.5 s)
        assert second.try_take() is None  # the row is locked: the stuck session is ended
        deadline = time.monotonic() + 10
        taken = None
        while taken is None and time.monotonic() < deadline:
            taken = second.try_take()
        assert taken is not None and (taken.holder, taken.epoch) == ("second", 2)
        with pytest.raises(psycopg.OperationalError):
            stuck.execute("SELECT 1")  # its session was ended: nothing of it commits
    finally:
        stuck.close()
        first.close()
        second.close()


@pytest.mark.cluster
def test_a_released_lease_is_free_at_once_for_others_and_held_off_for_its_releaser(pg_server, pg_dsn) -> None:
    """`release_after` (pgstore.release): the lease expires now, the releaser's renewals stop
    matching, another engine takes the key at once; the releaser keeps off it for the hold-off."""
    from rules_engine.pgstore.release import release_lease, released_hold_off

    store = settings(pg_server, pg_dsn)
    holder = LeaseSession(store, "host-a:1", ttl=30.0)
    other = LeaseSession(store, "host-b:2", ttl=30.0)
    try:
        assert holder.try_take() is not None
        assert not release_lease(store, "host-a:1", 7, hold_off=5.0, reason="x")  # not its epoch: nothing
        assert other.try_take() is None
        assert release_lease(store, "host-a:1", 1, hold_off=5.0, reason="Kraken out of reach")
        assert not holder.renew(1)  # a released lease cannot be extended by its old holder
        assert 4.0 < released_hold_off(store, "host-a:1") <= 5.0
        assert released_hold_off(store, "host-b:2") == 0.0  # only the releaser keeps off
        taken = other.try_take()
        assert taken is not None and (taken.holder, taken.epoch) == ("host-b:2", 2)
        assert not release_lease(store, "host-a:1", 1, hold_off=5.0, reason="again")  # no longer its key
    finally:
        holder.close()
        other.close()


def test_release_after_needs_a_standby_and_at_least_two_lease_ttls() -> None:
    store = {"url": "postgresql://engine@db/rules", "standby": True, "exclusive": True, "lease_ttl": "5s"}
    assert parse_config({"store": {**store, "release_after": "30s"}}).store.release_after == 30.0
    assert parse_config({"store": store}).store.release_after is None  # off by default
    with pytest.raises(ConfigError, match="at least twice lease_ttl"):
        parse_config({"store": {**store, "release_after": "8s"}})
    with pytest.raises(ConfigError, match="needs standby: true"):
        parse_config({"store": {"url": "postgresql://engine@db/rules", "release_after": "30s"}})
    with pytest.raises(ConfigError, match="release_after"):
        parse_config({"store": {**store, "release_after": "soon"}})
    assert parse_config({"recovery": {"resend_within": "10s"}}).resend_within == 10.0
    assert parse_config({}).resend_within == 30.0
    with pytest.raises(ConfigError, match="resend_within"):
        parse_config({"recovery": {"resend_within": "-1s"}})


@pytest.mark.cluster
def test_a_standby_that_released_the_key_waits_out_its_hold_off_before_taking_it_back(pg_server, pg_dsn) -> None:
    from rules_engine.config import StoreConfig
    from rules_engine.pgstore.release import release_lease
    from rules_engine.service.ha import HaCell

    store = settings(pg_server, pg_dsn)
    spec = StoreConfig(pg_dsn, "main", standby=True, exclusive=True, lease_ttl=0.5, release_after=1.5)
    first = LeaseSession(store, "host-a:1", ttl=30.0)
    try:
        assert first.try_take() is not None
        assert release_lease(store, "host-a:1", 1, hold_off=1.5, reason="test")
    finally:
        first.close()
    cell = HaCell(store, spec, "host-a:1", environ={})  # the same holder, standing by again
    began = time.monotonic()
    try:
        lease = cell.wait_for_key()
        waited = time.monotonic() - began
    finally:
        cell.close(release=True)
    assert lease.epoch == 2 and waited >= 1.0  # nobody else took it: taken back after the hold-off
    other = HaCell(store, spec, "host-b:2", environ={})  # released again (cleanly): free for anyone at once
    began = time.monotonic()
    try:
        assert other.wait_for_key().epoch == 3 and time.monotonic() - began < 1.0
    finally:
        other.close(release=True)


def _check_in_thread(gate: LeaseKeeper, wait: float) -> tuple[Any, list[BaseException | None]]:
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            gate.check(wait=wait)
            outcome.append(None)
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_lapse_is_waited_out_until_a_renewal_of_the_same_epoch_ends_it() -> None:
    """A renewal late (its thread starved of CPU) does not refuse a call at once: the call waits
    (up to `wait`) and goes on once the same epoch is renewed."""
    clock, halts = [10.0], []
    session = FakeSession()
    gate = keeper(session, clock, halts)
    clock[0] = 20.0  # long past valid_until: lapsed
    thread, outcome = _check_in_thread(gate, wait=30)
    session.answers = [True]
    gate.renew_once()  # sent at 20.0: valid until 20 + 2 - 1/3
    thread.join(10)
    assert not thread.is_alive() and outcome == [None] and halts == []


def test_a_halt_during_the_wait_refuses_the_call_and_a_lapse_that_lasts_refuses_it_after_the_wait() -> None:
    clock, halts = [10.0], []
    gate = keeper(FakeSession(), clock, halts)
    clock[0] = 20.0
    thread, outcome = _check_in_thread(gate, wait=30)
    gate.halt("fenced: a newer epoch holds the key")
    thread.join(10)
    assert not thread.is_alive() and isinstance(outcome[0], LeaseLost) and "fenced" in str(outcome[0])
    lapsed = keeper(FakeSession(), [10.0], [])
    lapsed._monotonic = lambda: 20.0  # type: ignore[method-assign]
    with pytest.raises(LeaseLost, match="not renewed in time"):
        lapsed.check(wait=0.05)  # nobody renews it: refused once the wait is over


@pytest.mark.cluster
def test_a_server_restart_does_not_hand_a_live_holders_key_to_a_standby(pg_server, pg_dsn) -> None:
    """A restart of PostgreSQL ends every session: the live holder's advisory lock goes with it,
    as a crashed holder's would. Within a TTL of the server's start the standby waits for the
    lease instead; the holder renews (locking again) and keeps its key. Its crash afterwards is
    seen by the fast path again."""
    holder = LeaseSession(settings(pg_server, pg_dsn), "holder", ttl=3.0)
    standby = LeaseSession(settings(pg_server, pg_dsn), "standby", ttl=3.0)
    try:
        assert holder.try_take() is not None and standby.try_take() is None
        pg_server.restart_immediate()
        taken, renewed, next_renewal = None, 0, time.monotonic()
        until = time.monotonic() + 4.5  # 1.5 TTL: the holder renews every second (TTL/3)
        while time.monotonic() < until and taken is None:
            if time.monotonic() >= next_renewal:
                next_renewal += 1.0
                try:
                    renewed += holder.renew(1)
                except StateStoreError:  # the connection the restart cut: made again at the next renewal
                    pass
            try:
                taken = standby.try_take()
            except StateStoreError:
                pass
            time.sleep(0.1)
        assert taken is None and renewed >= 3  # kept by its live holder
        holder.close()  # a crash now: the fast path
        deadline = time.monotonic() + 10
        while taken is None and time.monotonic() < deadline:
            taken = standby.try_take()
            time.sleep(0.05)
        assert taken is not None and taken.epoch == 2
    finally:
        holder.close()
        standby.close()
