"""`transaction(durable=False)`: committed at once (another connection sees it, a killed
process keeps it) without waiting for the disk; the next durable commit's fsync of the
write-ahead log carries it to disk. The connection's `synchronous` is switched only when a
commit of the other kind comes (an order's writes, all non-durable, switch nothing), and each
commit runs at the level it asked for."""

import sqlite3

import pytest

from rules_engine.state import StateStore


def _synchronous(store: StateStore) -> int:
    return store._conn.execute("PRAGMA synchronous").fetchone()[0]


def test_a_non_durable_commit_is_visible_at_once_and_full_sync_comes_back(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        assert _synchronous(store) == 2  # FULL: a commit waits for the disk
        with store.transaction(durable=False):
            assert _synchronous(store) == 1  # NORMAL: the commit does not fsync
            store.record_decision("cl-1", "r", "r#1", {"pair": "XBTUSD"})
            with store.transaction():  # an inner block is a savepoint of the outer one
                store.save_engine_snapshot({"n": 1})
        other = sqlite3.connect(path)
        assert other.execute("SELECT status FROM decisions").fetchall() == [("pending",)]
        other.close()
        store.mark_sent("cl-1", durable=False)
        assert _synchronous(store) == 1  # still NORMAL: nothing switched between two such writes
        store.mark_sent("cl-1")  # a durable write switches back to FULL before it commits
        assert _synchronous(store) == 2
        with store.transaction():
            assert _synchronous(store) == 2
            store.record_outcome("cl-1", "accepted")
        assert store.get_decision("cl-1").status == "accepted" and store.load_engine_snapshot() == {"n": 1}


def test_a_failed_non_durable_transaction_rolls_back_and_restores_full_sync(tmp_path):
    with StateStore(tmp_path / "engine.sqlite") as store:
        with pytest.raises(RuntimeError):
            with store.transaction(durable=False):
                store.record_decision("cl-1", "r", "r#1", {})
                raise RuntimeError("boom")
        assert store.get_decision("cl-1") is None
        with store.transaction():
            assert _synchronous(store) == 2  # the next durable commit waits for the disk


def test_a_checkpoint_copies_the_log_into_the_database_and_the_log_starts_over(tmp_path):
    """`checkpoint` (the service's housekeeping, about once a second): the write-ahead log is
    copied into the database, and the next commits write the log from its start again, so it
    does not reach the 1,000 pages at which a commit would checkpoint on an order's way."""
    path = tmp_path / "engine.sqlite"
    wal = tmp_path / "engine.sqlite-wal"
    with StateStore(path) as store:
        for n in range(100):  # ~4 pages per commit: under the 1,000 pages of an automatic checkpoint
            with store.transaction(durable=False):
                store.record_decision(f"cl-{n}", "r", f"r#{n}", {"pad": "x" * 5000})
        before, grown = path.stat().st_size, wal.stat().st_size
        store.checkpoint()
        assert path.stat().st_size > before + 100 * 4096  # the pages are in the database now (2 per row)
        for n in range(100, 150):
            with store.transaction(durable=False):
                store.record_decision(f"cl-{n}", "r", f"r#{n}", {"pad": "y" * 5000})
        assert wal.stat().st_size == grown  # written from its start again: not grown
        assert len(store.decision_times(0)) == 150


def test_deferred_checkpoints_leave_the_log_to_grow_until_checkpoint_is_called(tmp_path):
    """`defer_checkpoints` (the service): no commit checkpoints at SQLite's 1,000 pages (that
    would put two fsyncs on an order's way); the housekeeping's `checkpoint` does."""
    path = tmp_path / "engine.sqlite"
    wal = tmp_path / "engine.sqlite-wal"
    with StateStore(path) as store:
        store.defer_checkpoints()
        for n in range(400):  # ~4 pages per commit: far past 1,000 pages
            with store.transaction(durable=False):
                store.record_decision(f"cl-{n}", "r", f"r#{n}", {"pad": "x" * 5000})
        assert wal.stat().st_size > 1400 * 4096  # never checkpointed, so never started over
        before = path.stat().st_size
        store.checkpoint()
        assert path.stat().st_size > before + 400 * 4096  # a page or more per decision
        assert len(store.decision_times(0)) == 400
