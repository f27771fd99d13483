import os
import sqlite3
import stat
import threading
from decimal import Decimal

import pytest

from rules_engine.kraken.nonce import NonceSource
from rules_engine.state import (
    DecisionConflictError,
    StateStore,
    StateStoreError,
    UnknownDecisionError,
    add_state_dir_argument,
    audit_log_path,
    database_path,
    default_state_dir,
    ensure_state_dir,
    resolve_state_dir,
)
from rules_engine.state.scratch import ScratchStateStore
from rules_engine.state.store import SCHEMA_VERSION


@pytest.fixture(params=[StateStore, ScratchStateStore])
def store(tmp_path, request):
    """Each test runs on the state store and on the scratch store of replay and rule tests,
    which must answer the same."""
    with request.param(tmp_path / "engine.sqlite", clock=lambda: 1_000.0) as opened:
        yield opened


@pytest.mark.parametrize(("kind", "synchronous"), [(StateStore, 2), (ScratchStateStore, 0)])  # FULL, OFF
def test_pragmas_and_schema_version(tmp_path, kind, synchronous):
    with kind(tmp_path / "engine.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION
        conn = sqlite3.connect(tmp_path / "engine.sqlite")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous


def test_a_new_database_is_owner_only_whatever_the_umask(tmp_path):
    """engine.sqlite (and SQLite's -wal beside it) came out 0644 under the usual umask 022,
    world-readable in a state dir made with `install -d` (0755), while audit.jsonl is 0600."""
    old = os.umask(0o022)
    try:
        store = StateStore(tmp_path / "engine.sqlite")
        store.set_meta("k", "v")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        store.close()
    finally:
        os.umask(old)
    assert modes["engine.sqlite"] == 0o600 and modes["engine.sqlite-wal"] == 0o600, modes


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "engine.sqlite"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StateStoreError, match="schema version 99"):
        StateStore(path)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "engine.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateStoreError, match="cannot open state database"):
        StateStore(path)


def test_snapshots_round_trip_with_decimals(tmp_path):
    path = tmp_path / "engine.sqlite"
    snapshot = {"rules": {"buy-dip": {"armed": True, "pending_since": 12.5, "fires": 3, "level": Decimal("61000.10")}}}
    wallet = {"balances": {"ZUSD": Decimal("1000.00"), "XXBT": Decimal("0")}, "orders": []}
    with StateStore(path) as store:
        assert store.load_engine_snapshot() is None and store.load_paper_wallet() is None
        store.save_engine_snapshot({"old": 1})
        store.save_engine_snapshot(snapshot)
        store.save_paper_wallet(wallet)
    with StateStore(path) as store:
        assert store.load_engine_snapshot() == snapshot
        assert store.load_engine_snapshot()["rules"]["buy-dip"]["level"] == Decimal("61000.10")
        assert str(store.load_paper_wallet()["balances"]["ZUSD"]) == "1000.00"


def test_snapshots_that_are_not_json_are_refused_with_the_path(store):
    with pytest.raises(TypeError, match=r"engine\.rules\.x: set"):
        store.save_engine_snapshot({"rules": {"x": {1}}})
    with pytest.raises(TypeError, match="mapping"):
        store.save_paper_wallet([1])
    with pytest.raises(TypeError, match="reserved"):
        store.save_engine_snapshot({"$decimal": "1"})
    assert store.load_engine_snapshot() is None


def test_record_decision_is_idempotent(store):
    first = store.record_decision("cl-1", "buy-dip", "d-1", {"pair": "XBTUSD", "volume": Decimal("0.01")})
    assert first.created and first.status == "pending" and first.intent["volume"] == Decimal("0.01")
    again = store.record_decision("cl-1", "buy-dip", "d-1", {"pair": "XBTUSD", "volume": Decimal("0.02")})
    assert not again.created and again.intent["volume"] == Decimal("0.01")
    assert store.decisions_for("d-1") == [first]
    with pytest.raises(DecisionConflictError, match="already recorded"):
        store.record_decision("cl-1", "other-rule", "d-9", {})


def test_decision_lifecycle_only_moves_forward(store):
    store.record_decision("cl-1", "r", "d", {})
    assert store.mark_sent("cl-1").status == "sent"
    assert store.record_outcome("cl-1", "unknown", {"error": "timeout"}).status == "unknown"
    accepted = store.record_outcome("cl-1", "accepted", {"txid": ["OABC-1"]})
    assert accepted.status == "accepted" and accepted.outcome == {"txid": ["OABC-1"]}
    assert store.record_outcome("cl-1", "unknown").status == "accepted"
    assert store.mark_sent("cl-1").status == "accepted"
    assert store.record_outcome("cl-1", "filled", {"vol_exec": "1"}).status == "filled"
    final = store.record_outcome("cl-1", "cancelled")
    assert final.status == "filled" and final.outcome == {"vol_exec": "1"}
    assert store.get_decision("cl-1").sent_at == 1_000.0


def test_decision_input_errors(store):
    with pytest.raises(UnknownDecisionError):
        store.mark_sent("nope")
    with pytest.raises(UnknownDecisionError):
        store.record_outcome("nope", "accepted")
    store.record_decision("cl-1", "r", "d", {})
    with pytest.raises(ValueError):
        store.record_outcome("cl-1", "sent")
    with pytest.raises(ValueError):
        store.record_decision("", "r", "d", {})
    with pytest.raises(ValueError):
        store.record_decision("cl-2", "r", "d", {}, status="bogus")
    assert store.get_decision("nope") is None and store.get_decision("cl-2") is None


def test_unresolved_decisions_are_what_a_restart_must_reconcile(tmp_path):
    path = tmp_path / "engine.sqlite"
    clock = iter(range(100, 200))
    with StateStore(path, clock=lambda: float(next(clock))) as store:
        for n in range(1, 7):
            store.record_decision(f"cl-{n}", "r", f"d-{n}", {"n": n})
        store.mark_sent("cl-2")
        store.mark_sent("cl-3")
        store.record_outcome("cl-3", "unknown")
        store.record_outcome("cl-4", "accepted")
        store.record_outcome("cl-5", "rejected", {"error": ["EOrder:Insufficient funds"]})
        store.record_outcome("cl-6", "abandoned")
    with StateStore(path) as store:
        unresolved = store.unresolved_decisions()
    assert [(d.cl_ord_id, d.status) for d in unresolved] == [("cl-1", "pending"), ("cl-2", "sent"), ("cl-3", "unknown")]
    assert not any(d.resolved for d in unresolved)


def test_transaction_is_atomic_and_nested_blocks_are_savepoints(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.record_decision("cl-1", "r", "d", {})
            store.save_engine_snapshot({"fires": 1})
            raise RuntimeError("crash before commit")
    assert store.get_decision("cl-1") is None and store.load_engine_snapshot() is None
    with store.transaction():
        store.record_decision("cl-1", "r", "d", {})
        try:
            with store.transaction():
                store.save_engine_snapshot({"fires": 99})
                raise ValueError("inner")
        except ValueError:
            pass
        store.save_engine_snapshot({"fires": 1})
    assert store.get_decision("cl-1") is not None and store.load_engine_snapshot() == {"fires": 1}


def test_nonce_store_only_ever_rises(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        assert store.load("key-a") == 0
        store.save("key-a", 1_700_000_000_000_000_000)
        store.save("key-a", 5)
        store.save("key-b", 2**64 - 1)
        for bad in (-1, 2**64, True, "7"):
            with pytest.raises(ValueError):
                store.save("key-a", bad)
    with StateStore(path) as store:
        assert store.load("key-a") == 1_700_000_000_000_000_000
        assert store.load("key-b") == 2**64 - 1


def test_nonce_source_continues_above_the_stored_mark_after_a_restart(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        issued = NonceSource(store, clock_ns=lambda: 5_000).next("key")
    with StateStore(path) as store:
        after_restart = NonceSource(store, clock_ns=lambda: 1_000).next("key")  # clock stepped back
    assert after_restart > issued


def test_seen_signal_dedupes_within_ttl(store):
    assert store.seen_signal("tv", "sig-1", now=100.0, ttl=60.0) is False
    assert store.seen_signal("tv", "sig-1", now=150.0, ttl=60.0) is True
    assert store.seen_signal("other", "sig-1", now=150.0, ttl=60.0) is False
    assert store.seen_signal("tv", "sig-1", now=160.0, ttl=60.0) is False  # expired at 160, recorded again
    assert store._conn.execute("SELECT count(*) FROM seen_signals").fetchone()[0] == 2
    with pytest.raises(ValueError):
        store.seen_signal("tv", "sig-2", now=1.0, ttl=0)


def test_concurrent_threads_never_double_record(store):
    results = []

    def worker():
        results.append(store.record_decision("cl-x", "r", "d", {}).created)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1 and len(results) == 8


def test_closed_store_raises(tmp_path):
    store = StateStore(tmp_path / "engine.sqlite")
    store.close()
    store.close()
    with pytest.raises(StateStoreError, match="closed"):
        store.load("k")


def test_state_dir_convention(tmp_path, monkeypatch):
    monkeypatch.delenv("RULES_ENGINE_STATE_DIR", raising=False)
    assert str(default_state_dir()) == "state"
    assert default_state_dir({"RULES_ENGINE_STATE_DIR": "/var/lib/re"}).as_posix() == "/var/lib/re"
    monkeypatch.setenv("RULES_ENGINE_STATE_DIR", str(tmp_path / "env"))
    assert resolve_state_dir(None) == tmp_path / "env"
    assert resolve_state_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert audit_log_path(tmp_path).name == "audit.jsonl" and database_path(tmp_path).name == "engine.sqlite"
    made = ensure_state_dir(tmp_path / "new")
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700
    import argparse

    parser = argparse.ArgumentParser()
    add_state_dir_argument(parser)
    assert parser.parse_args([]).state_dir is None
    assert parser.parse_args(["--state-dir", "x"]).state_dir == "x"
