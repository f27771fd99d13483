"""Round trips and connections of a key cell on the PostgreSQL store. Read from libpq's own
trace of the messages sent: the store's writes inside a caller's transaction (the commit
before an order is sent: its decision, the engine's state, the signals it consumed) join
that transaction without a savepoint each, while a caller's own nested block stays a
savepoint. The cell's delivery claims share its state store's connection (same key and
epoch, every transaction still epoch-checked) instead of opening one more per key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_engine.pgstore import FencedError, PgStateStore, StoreSettings, acquire_lease
from rules_engine.pgstore.fanout import DeliveryClaimer, store_signal

pytestmark = pytest.mark.cluster


@pytest.fixture
def settings(pg_server, pg_dsn) -> StoreSettings:
    return StoreSettings(pg_dsn, "key-trips", pg_server.password)


def traced(store: PgStateStore, path: Path, block) -> str:  # type: ignore[no-untyped-def]
    """The queries libpq sent while `block` ran, as its trace writes them."""
    conn = store._db._conn
    with path.open("w") as out:
        conn.pgconn.trace(out.fileno())
        try:
            block()
        finally:
            conn.pgconn.untrace()
    return path.read_text()


def test_the_stores_writes_join_the_callers_transaction_without_savepoints(settings, tmp_path):
    epoch = acquire_lease(settings, "worker-1").epoch
    with PgStateStore(settings, epoch=epoch) as store:

        def commit() -> None:
            with store.transaction():
                store.record_decision("c1", "r1", "d1", {"kind": "place_order"})
                store.save_engine_changes({"now": 1.0}, {"r1": {"fire_seq": {"r1": 1}}})
                store.consume_signals([])
                store.record_outcome("c1", "accepted", {"result": {"ok": True}})

        sent = traced(store, tmp_path / "commit.trace", commit)
        assert "BEGIN" in sent and "COMMIT" in sent and "key_lease" in sent  # one transaction, epoch-checked
        assert "SAVEPOINT" not in sent
        assert store.get_decision("c1").status == "accepted"
        assert store.load_engine_snapshot() == {"now": 1.0, "fire_seq": {"r1": 1}}

        def nested() -> None:
            with store.transaction():
                store.record_decision("c2", "r1", "d2", {})
                with pytest.raises(RuntimeError), store.transaction():  # the caller's block: a savepoint
                    store.record_decision("c3", "r1", "d3", {})
                    raise RuntimeError("inner")

        sent = traced(store, tmp_path / "nested.trace", nested)
        assert "SAVEPOINT" in sent
        assert store.get_decision("c2") is not None and store.get_decision("c3") is None


def test_an_error_in_a_joined_write_fails_the_whole_transaction(settings):
    epoch = acquire_lease(settings, "worker-1").epoch
    with PgStateStore(settings, epoch=epoch) as store:
        with pytest.raises(Exception), store.transaction():  # noqa: B017 - whatever the store raises
            store.record_decision("c1", "r1", "d1", {})
            store.record_outcome("missing", "accepted", {})  # no such decision
        assert store.get_decision("c1") is None
        store.record_decision("c1", "r1", "d1", {})  # the connection is usable again
        assert store.get_decision("c1") is not None


def backend_pid(conn) -> int:  # type: ignore[no-untyped-def]
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])


def test_a_cells_claims_share_its_state_stores_connection_and_its_epoch_check(settings, pg_server, pg_dsn):
    epoch = acquire_lease(settings, "worker-1").epoch
    with PgStateStore(settings, epoch=epoch) as store:
        claimer = DeliveryClaimer(settings, epoch, db=store.connection)
        with pg_server.connect(pg_dsn.rsplit("/", 1)[1]) as intake:
            stored = store_signal(intake, "prov", "sig-1", [], {"action": "buy"}, {settings.key_id: {"scale": 1}},
                                  30.0, "intake")
        assert stored.deliveries == 1
        with store.connection.reading() as conn:
            pid = backend_pid(conn)
        taken, expired = claimer.claim(time=1.0)
        assert [t.signal_id for t in taken] == ["sig-1"] and expired == []
        with claimer._db.reading() as conn:
            assert backend_pid(conn) == pid  # the state store's own session
        assert store.pending_signals()[0][2] == "sig-1"  # in the inbox, read on the same connection
        claimer.close()  # leaves the store's connection open
        store.record_decision("c1", "r1", "d1", {})
    with pytest.raises(ValueError, match="own key and epoch"):
        with PgStateStore(settings, epoch=epoch) as other:
            DeliveryClaimer(settings, epoch + 1, db=other.connection)


def test_a_claim_that_finds_the_key_taken_fences_the_state_store_it_shares(settings, pg_server, pg_dsn):
    epoch = acquire_lease(settings, "worker-1").epoch
    with PgStateStore(settings, epoch=epoch) as store:
        claimer = DeliveryClaimer(settings, epoch, db=store.connection)
        with pg_server.connect(pg_dsn.rsplit("/", 1)[1]) as admin:  # another engine took the key
            admin.execute("UPDATE key_lease SET epoch = epoch + 1, holder = 'worker-2' WHERE key_id = %s",
                          (settings.key_id,))
        with pytest.raises(FencedError):
            claimer.claim(time=1.0)
        assert store.fenced  # the store learns it at once: the cell stops acting
        with pytest.raises(FencedError):
            store.record_decision("c1", "r1", "d1", {})


def round_trips(trace: str) -> int:
    """How many times the client waited for the server: each turn from sending messages (`F`
    lines of the trace) to reading answers (`B` lines)."""
    sides = [line.split("\t")[1] for line in trace.splitlines() if line.count("\t") >= 3]
    return sum(1 for before, after in zip(sides, sides[1:], strict=False) if (before, after) == ("F", "B"))


def test_a_decisions_commit_waits_only_where_a_result_is_read(settings, tmp_path):
    """The cell's transactions run in pipeline mode: BEGIN with the epoch check is one round trip,
    the decision's insert (its result says whether it is new) one, and the rest of the writes go
    with the COMMIT (was one round trip per statement)."""
    epoch = acquire_lease(settings, "worker-1").epoch
    with PgStateStore(settings, epoch=epoch) as store:
        store.record_decision("c0", "r1", "d0", {})

        def commit() -> None:
            with store.transaction():
                assert store.record_decision("c1", "r1", "d1", {"kind": "place_order"}).created
                assert not store.record_decision("c0", "r1", "d0", {}).created
                store.save_engine_changes({"now": 1.0}, {"r1": {"fire_seq": {"r1": 1}}, "r2": None},
                                          complete=True)
                store.consume_signals([1, 2])

        sent = traced(store, tmp_path / "commit.trace", commit)
        # BEGIN with the epoch check; c1's insert; c0's insert, then its row read; the rest with the COMMIT
        assert round_trips(sent) == 5
        assert store.load_engine_snapshot() == {"now": 1.0, "fire_seq": {"r1": 1}}
        sent = traced(store, tmp_path / "outcome.trace", lambda: store.record_outcome("c1", "accepted", {}))
        assert round_trips(sent) == 3  # BEGIN with the epoch check; the row read for update; the update, COMMIT
        assert store.get_decision("c1").status == "accepted"
