"""The engine snapshot saved in parts (`save_engine_changes`): one row per rule, rewritten
only when that rule changed, joined back into the whole snapshot on load."""

import sqlite3
from decimal import Decimal

from rules_engine import jsoncodec
from rules_engine.state import SCHEMA_VERSION, StateStore

BASE = {"version": 1, "now": 5.0, "rules": {}, "watches": {}, "fire_seq": {}, "orders": []}


def _part(rule_id: str, level: str, seq: int | None = None) -> dict:
    part = {"rules": {rule_id: {"status": "idle", "level": Decimal(level)}}, "watches": {f"{rule_id}#0": ["fp", "armed"]}}
    if seq is not None:
        part["fire_seq"] = {rule_id: seq}
    return part


def _rows(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [name for (name,) in conn.execute("SELECT name FROM engine_parts ORDER BY rowid")]
    finally:
        conn.close()


def test_parts_are_joined_into_the_base_and_replaced_one_by_one(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        store.save_engine_changes(BASE, {"a": _part("a", "1.10"), "b": _part("b", "2")}, complete=True)
        store.save_engine_changes({**BASE, "now": 6.0}, {"b": _part("b", "2.50", seq=3)})
    with StateStore(path) as store:
        loaded = store.load_engine_snapshot()
    assert loaded["now"] == 6.0 and loaded["orders"] == []
    assert loaded["rules"] == {"a": {"status": "idle", "level": Decimal("1.10")},
                               "b": {"status": "idle", "level": Decimal("2.50")}}
    assert list(loaded["rules"]) == ["a", "b"]  # the order the rules were first saved in
    assert loaded["watches"] == {"a#0": ["fp", "armed"], "b#0": ["fp", "armed"]} and loaded["fire_seq"] == {"b": 3}


def test_none_deletes_a_part_and_complete_drops_those_not_given(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        store.save_engine_changes(BASE, {"a": _part("a", "1"), "b": _part("b", "2"), "c": _part("c", "3")})
        store.save_engine_changes(BASE, {"a": None})
        assert _rows(path) == ["b", "c"]
        store.save_engine_changes(BASE, {"c": _part("c", "4")}, complete=True)
        assert _rows(path) == ["c"]
        assert store.load_engine_snapshot()["rules"] == {"c": {"status": "idle", "level": Decimal("4")}}


def test_a_whole_snapshot_replaces_the_parts(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        store.save_engine_changes(BASE, {"a": _part("a", "1")})
        store.save_engine_snapshot({"next": 1})
        assert _rows(path) == [] and store.load_engine_snapshot() == {"next": 1}


def test_parts_commit_with_the_decision_rows_or_not_at_all(tmp_path):
    path = tmp_path / "engine.sqlite"
    with StateStore(path) as store:
        store.save_engine_changes(BASE, {"a": _part("a", "1")})
        try:
            with store.transaction():
                store.record_decision("cl-1", "a", "a#1", {"pair": "XBTUSD"})
                store.save_engine_changes({**BASE, "now": 9.0}, {"a": _part("a", "2")})
                raise RuntimeError("crash before commit")
        except RuntimeError:
            pass
        assert store.get_decision("cl-1") is None
        assert store.load_engine_snapshot()["rules"]["a"]["level"] == Decimal("1")


def test_a_version_1_database_is_migrated_and_keeps_its_whole_snapshot(tmp_path):
    path = tmp_path / "engine.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE snapshots (name TEXT PRIMARY KEY, data TEXT NOT NULL, saved_at REAL NOT NULL);"
    )
    conn.execute("INSERT INTO snapshots VALUES ('engine', ?, 0)", (jsoncodec.dumps({**BASE, "rules": {"x": {}}}),))
    conn.commit()
    conn.close()
    with StateStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert store.load_engine_snapshot()["rules"] == {"x": {}}
        store.save_engine_changes(BASE, {"x": {"rules": {"x": {"status": "idle"}}}}, complete=True)
        assert store.load_engine_snapshot()["rules"] == {"x": {"status": "idle"}}


def test_a_store_that_is_not_durable_holds_changes_until_read_flushed_or_closed(tmp_path):
    """Replay and rule tests: the same calls, batched; what the store says is unchanged, and
    everything is on disk once it is closed."""
    path = tmp_path / "engine.sqlite"
    fast = StateStore(path, durable=False)
    fast.save_engine_changes({"version": 1, "rules": {}}, {"a": {"rules": {"a": {"n": 1}}}}, complete=True)
    fast.save_engine_changes({"version": 1, "rules": {}, "now": 5.0},
                             {"a": {"rules": {"a": {"n": 2}}}, "b": {"rules": {"b": {"n": Decimal("0.1")}}}})
    fast.save_engine_changes({"version": 1, "rules": {}, "now": 6.0}, {"b": None})
    for n in range(1200):  # more than one batch of transactions
        with fast.transaction():
            fast.record_decision(f"cl-{n}", "r", f"r#{n}", {"kind": "place_order"})
        fast.mark_sent(f"cl-{n}")
    assert fast.load_engine_snapshot() == {"version": 1, "now": 6.0, "rules": {"a": {"n": 2}}}
    assert fast.get_decision("cl-1199").status == "sent"
    fast.save_engine_changes({"version": 1, "rules": {}, "now": 7.0}, {"c": {"rules": {"c": {"n": 3}}}})
    fast.close()
    reopened = StateStore(path)
    assert reopened.load_engine_snapshot() == {"version": 1, "now": 7.0, "rules": {"a": {"n": 2}, "c": {"n": 3}}}
    assert len(reopened.unresolved_decisions()) == 1200
    reopened.close()
