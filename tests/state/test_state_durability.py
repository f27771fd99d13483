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


def test_checkpoints_can_be_left_to_the_housekeeping(tmp_path):
    """`checkpoint_elsewhere`: no commit checkpoints the write-ahead log at SQLite's 1,000 pages
    (that would put two fsyncs on an order's way); `checkpoint` copies it into the database
    from a connection of its own while the store stays open."""
    path = tmp_path / "engine.sqlite"
    wal = tmp_path / "engine.sqlite-wal"
    with StateStore(path) as store:
        store.checkpoint_elsewhere()
        for n in range(800):  # 3 pages per commit: far past 1,000 pages
            with store.transaction(durable=False):
                store.save_engine_snapshot({"n": n, "pad": "x" * 5000})
        assert wal.stat().st_size > 2000 * 4096  # never checkpointed (and so never restarted)
        before = path.stat().st_size
        store.checkpoint()
        assert path.stat().st_size > before + 4096  # the pages are in the database now
        with store.transaction(durable=False):
            store.save_engine_snapshot({"n": "last"})
        assert store.load_engine_snapshot() == {"n": "last"}
