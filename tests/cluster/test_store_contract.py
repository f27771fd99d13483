"""The state store's contract (`rules_engine.state.protocol.EngineStore`), checked the same way
on the SQLite `StateStore` (the default) and on `PgStateStore` against a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from rules_engine.kraken.nonce import NonceSource
from rules_engine.pgstore import PgStateStore, StoreSettings, acquire_lease
from rules_engine.state import DecisionConflictError, StateStore, UnknownDecisionError

Opener = Callable[[], Any]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.cluster)])
def opener(request, tmp_path) -> Iterator[Opener]:
    """A function opening the store again (same data each time); every store opened is closed."""
    opened: list[Any] = []
    clock = lambda: 1_000.0  # noqa: E731
    if request.param == "sqlite":
        def open_store() -> Any:
            opened.append(StateStore(tmp_path / "engine.sqlite", clock=clock))
            return opened[-1]
    else:
        server = request.getfixturevalue("pg_server")
        settings = StoreSettings(request.getfixturevalue("pg_dsn"), "key-a", server.password)

        def open_store() -> Any:
            epoch = acquire_lease(settings, "test").epoch
            opened.append(PgStateStore(settings, epoch=epoch, clock=clock))
            return opened[-1]
    yield open_store
    for store in opened:
        store.close()


def test_decisions_are_idempotent_by_client_order_id(opener):
    store = opener()
    first = store.record_decision("c1", "r1", "d1", {"pair": "XBTUSD", "volume": Decimal("0.1")})
    again = store.record_decision("c1", "r1", "d1", {"pair": "XBTUSD"})
    assert first.created and not again.created
    assert again.intent == {"pair": "XBTUSD", "volume": Decimal("0.1")}
    with pytest.raises(DecisionConflictError, match="c1"):
        store.record_decision("c1", "r2", "d9", {})
    with pytest.raises(UnknownDecisionError):
        store.record_outcome("nope", "accepted")


def test_a_decision_only_moves_forward(opener):
    store = opener()
    store.record_decision("c1", "r1", "d1", {})
    assert store.mark_sent("c1").status == "sent"
    assert store.record_outcome("c1", "accepted", {"txid": "T1"}).status == "accepted"
    assert store.record_outcome("c1", "unknown").status == "accepted"  # backwards: ignored
    assert store.record_outcome("c1", "filled").status == "filled"
    assert store.record_outcome("c1", "cancelled").status == "filled"  # final stays final
    assert store.get_decision("c1").outcome == {}  # the filled outcome (none given) replaced the accepted one
    assert store.decision_status("c1") == "filled"
    assert store.decision_status("c2") is None


def test_unresolved_decisions_survive_a_reopen_in_order(opener):
    store = opener()
    for name in ("a", "b", "c", "d"):
        store.record_decision(name, "r", f"d-{name}", {})
    store.mark_sent("b")
    store.record_outcome("c", "rejected")
    store.record_outcome("d", "unknown")
    store.close()
    again = opener()
    assert [(d.cl_ord_id, d.status) for d in again.unresolved_decisions()] == [
        ("a", "pending"), ("b", "sent"), ("d", "unknown")]
    assert [d.cl_ord_id for d in again.decisions_for("d-a")] == ["a"]
    assert again.decision_times(999.0) == [1000.0] * 4
    assert again.decision_times(1000.0) == []


def test_a_transaction_is_atomic_and_nested_blocks_are_savepoints(opener):
    store = opener()
    with pytest.raises(RuntimeError), store.transaction():
        store.record_decision("x", "r", "d", {})
        raise RuntimeError("boom")
    assert store.get_decision("x") is None
    with store.transaction():
        store.record_decision("y", "r", "d", {})
        with pytest.raises(RuntimeError), store.transaction():
            store.record_decision("z", "r", "d", {})
            raise RuntimeError("inner")
    assert store.get_decision("y") is not None and store.get_decision("z") is None


def test_engine_snapshot_and_parts_round_trip_with_decimals(opener):
    store = opener()
    assert store.load_engine_snapshot() is None
    store.save_engine_snapshot({"armed": {"r1": True}, "price": Decimal("69000.10")})
    assert store.load_engine_snapshot() == {"armed": {"r1": True}, "price": Decimal("69000.10")}
    store.save_engine_changes({"armed": {}}, {"r2": {"armed": {"r2": False}}, "r1": {"armed": {"r1": True}}})
    store.save_engine_changes({"armed": {}}, {"r2": None, "r3": {"fired": {"r3": 2}}})
    store.close()
    again = opener()
    assert again.load_engine_snapshot() == {"armed": {"r1": True}, "fired": {"r3": 2}}
    again.save_paper_wallet({"ZUSD": Decimal("1.5")})
    assert again.load_paper_wallet() == {"ZUSD": Decimal("1.5")}


def test_nonces_only_rise_and_a_nonce_source_continues_above_them(opener):
    store = opener()
    assert store.load("fp") == 0
    store.save("fp", 2**63)
    store.save("fp", 5)
    assert store.load("fp") == 2**63
    with pytest.raises(ValueError):
        store.save("fp", -1)
    source = NonceSource(store, clock_ns=lambda: 10)
    assert source.next("fp") > 2**63


def test_signals_inbox_and_replay_protection(opener):
    store = opener()
    assert store.seen_signal("tv", "s1", 100.0, 60.0) is False
    assert store.seen_signal("tv", "s1", 120.0, 60.0) is True
    assert store.seen_signal("tv", "s1", 161.0, 60.0) is False  # expired, recorded again
    number = store.accept_signal("tv", "s2", {"side": "buy", "q": Decimal("1")}, 200.0, {"s2": 500.0})
    assert number is not None
    assert store.signal_seen("tv", "s2", 300.0) and not store.signal_seen("tv", "s2", 600.0)
    assert store.accept_signal("tv", "s2", {}, 201.0, {"s2": 500.0}) is None  # a replay: nothing recorded
    assert store.pending_signals() == [(number, "tv", "s2", {"side": "buy", "q": Decimal("1")}, 200.0)]
    store.consume_signals([number])
    assert store.pending_signals() == []


def test_meta_checkpoint_and_installation_id(opener):
    store = opener()
    installation = store.installation_id
    assert len(installation) == 32
    assert store.audit_checkpoint() is None and store.meta("boot_id") is None
    store.save_audit_checkpoint(42)
    store.set_meta("boot_id", "b1")
    assert store.probe() and store.failure is None
    store.close()
    again = opener()
    assert (again.audit_checkpoint(), again.meta("boot_id"), again.installation_id) == (42, "b1", installation)


def test_threads_never_record_one_decision_twice(opener):
    store = opener()
    created: list[bool] = []

    def worker() -> None:
        for i in range(20):
            created.append(store.record_decision(f"c{i}", "r", f"d{i}", {}).created)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 20 and len(created) == 80


def test_a_decision_proven_never_placed_is_marked_resent_once(opener):
    store = opener()
    store.record_decision("c1", "r1", "d1", {"pair": "XBTUSD"})
    assert store.resent("c1") is None
    store.mark_sent("c1")
    store.record_outcome("c1", "unknown")
    marked = store.mark_resent("c1", {"proof": "not found", "age_s": 1.5})
    assert marked is not None and marked.status == "sent" and marked.sent_at == 1_000.0
    assert store.mark_resent("c1", {"proof": "again"}) is None  # once
    store.record_decision("c2", "r1", "d2", {})
    store.record_outcome("c2", "abandoned")
    assert store.mark_resent("c2", {}) is None and store.resent("c2") is None  # settled: never resent
    assert store.get_decision("c2").status == "abandoned"
    assert opener().resent("c1") == {"proof": "not found", "age_s": 1.5}  # durable, seen by a reopen
