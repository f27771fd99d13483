"""A worker's key cells on one `ConnectionPool`: a cell holds a connection only for a transaction
or a read, so cells that start together (a takeover of many keys) take connections already open
instead of opening two each; the epoch check still opens every write, and a connection found
lost is replaced (the audit chain's head read again) and empties the pool."""

from __future__ import annotations

import pytest

from rules_engine.audit.verify import verify
from rules_engine.pgstore import ConnectionPool, FencedError, PgAuditLog, PgStateStore, StoreSettings, acquire_lease
from rules_engine.pgstore.audit import export_jsonl
from rules_engine.pgstore.connection import session_name

pytestmark = pytest.mark.cluster

KEYS = ("k1", "k2", "k3")


def open_cell(settings: StoreSettings, pool: ConnectionPool) -> tuple[PgStateStore, PgAuditLog]:
    epoch = acquire_lease(settings, "worker-1").epoch
    store = PgStateStore(settings, epoch=epoch, pool=pool)
    audit = PgAuditLog(settings, epoch=epoch, mode="live", pool=pool)
    store.pair_audit(audit)
    return store, audit


def decide(store: PgStateStore, audit: PgAuditLog, cl_ord_id: str) -> None:
    with store.transaction():
        store.record_decision(cl_ord_id, "r1", f"d-{cl_ord_id}", {"kind": "place_order"})
        audit.append("decision", rule_id="r1", data={"cl_ord_id": cl_ord_id})
    audit.append("response", rule_id="r1", data={"cl_ord_id": cl_ord_id}, sync=True)


def backends(server, dsn: str) -> int:  # type: ignore[no-untyped-def]
    """This process's sessions on the test database (the pool's)."""
    with server.connect(dsn.rsplit("/", 1)[1]) as conn:
        return int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                "AND datname = current_database()", (session_name(),)).fetchone()[0])


def test_cells_take_turns_on_one_connection_and_each_write_is_still_fenced(pg_server, pg_dsn, tmp_path) -> None:
    pool = ConnectionPool()
    cells = {key: open_cell(StoreSettings(pg_dsn, key, pg_server.password), pool) for key in KEYS}
    for key, (store, audit) in cells.items():
        decide(store, audit, f"{key}-1")
    assert pool.opened == 1 and pool.idle == 1  # six parts of three cells, one connection (not six)
    assert backends(pg_server, pg_dsn) == 1

    acquire_lease(StoreSettings(pg_dsn, "k2", pg_server.password), "worker-2")  # k2 taken over: epoch 2
    store2, audit2 = cells["k2"]
    with pytest.raises(FencedError), store2.transaction():
        store2.record_decision("k2-2", "r1", "d-k2-2", {})
    store1, audit1 = cells["k1"]
    decide(store1, audit1, "k1-2")  # the others write on, on the same connection
    assert pool.opened == 1
    with pg_server.connect(pg_dsn.rsplit("/", 1)[1]) as conn:
        assert conn.execute("SELECT cl_ord_id FROM decisions ORDER BY cl_ord_id").fetchall() == [
            ("k1-1",), ("k1-2",), ("k2-1",), ("k3-1",)]  # nothing of the fenced cell's

    for store, audit in cells.values():
        audit.close()
        store.close()
    for key in KEYS:
        path = tmp_path / f"{key}.jsonl"
        export_jsonl(StoreSettings(pg_dsn, key, pg_server.password), path)
        assert verify(path).ok


def test_a_lost_connection_is_replaced_and_the_chain_goes_on_from_its_head(pg_server, pg_dsn, tmp_path) -> None:
    pool = ConnectionPool()
    settings = {key: StoreSettings(pg_dsn, key, pg_server.password) for key in KEYS[:2]}
    cells = {key: open_cell(settings[key], pool) for key in settings}
    for key, (store, audit) in cells.items():
        decide(store, audit, f"{key}-1")
    with pg_server.connect(pg_dsn.rsplit("/", 1)[1]) as conn:  # the server ends the pool's session
        ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE application_name = %s AND datname = current_database()", (session_name(),)).fetchone()[0]
    assert ended == 1 and pool.idle == 1
    store, audit = cells["k1"]
    decide(store, audit, "k1-2")  # the dead connection is found at BEGIN and replaced once
    assert pool.opened == 2 and store.get_decision("k1-2") is not None
    store, audit = cells["k2"]
    decide(store, audit, "k2-2")
    assert pool.opened == 2
    for store, audit in cells.values():
        audit.close()
        store.close()
    for key in settings:
        path = tmp_path / f"{key}.jsonl"
        assert export_jsonl(settings[key], path) == 4  # two decisions of two records each: none lost
        assert verify(path).ok


def test_a_taker_waits_for_a_connection_to_come_back_rather_than_open_one_more(pg_server, pg_dsn) -> None:
    import threading

    settings = StoreSettings(pg_dsn, "k1", pg_server.password)
    pool = ConnectionPool(max_idle=1, take_wait=30.0)
    first = pool.take(settings)
    taken: list[object] = []
    waiter = threading.Thread(target=lambda: taken.append(pool.take(settings)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not taken  # one out already: it waits (a burst of takeovers reuses)
    pool.give_back(first)
    waiter.join(10)
    assert taken == [first] and pool.opened == 1
    hurried = ConnectionPool(max_idle=1, take_wait=0.0)
    one = hurried.take(settings)
    two = hurried.take(settings)  # never waits without end: a thread may need a second connection
    assert one is not two and hurried.opened == 2
    hurried.give_back(one)
    hurried.give_back(two)
    assert hurried.idle == 1  # the second is closed: at most max_idle are kept
    pool.give_back(first)
    pool.close()
    hurried.close()
    assert pool.idle == 0 and hurried.idle == 0
