"""The state store's signal inbox: an accepted signal and its ids are recorded in one
transaction, stay until consumed, and a replayed id records nothing."""

from rules_engine.state import StateStore


def test_accept_records_the_signal_and_its_ids_until_consumed(tmp_path):
    with StateStore(tmp_path / "engine.sqlite") as store:
        assert not store.signal_seen("bot", "s1", 100.0)
        first = store.accept_signal("bot", "s1", {"action": "buy"}, 100.0, {"s1": 400.0, "mac:ab": 400.0})
        assert first is not None
        assert store.signal_seen("bot", "s1", 101.0) and store.signal_seen("bot", "mac:ab", 101.0)
        assert not store.signal_seen("bot", "s1", 400.0)  # expired
        assert store.accept_signal("bot", "s2", {}, 101.0, {"s2": 400.0, "mac:ab": 400.0}) is None
        assert not store.signal_seen("bot", "s2", 101.0)  # the replay recorded nothing
        second = store.accept_signal("bot", "s3", {"n": 1}, 102.0, {})
    with StateStore(tmp_path / "engine.sqlite") as store:  # durable: still there after a reopen
        assert store.pending_signals() == [(first, "bot", "s1", {"action": "buy"}, 100.0),
                                           (second, "bot", "s3", {"n": 1}, 102.0)]
        store.consume_signals([first])
        assert [row[0] for row in store.pending_signals()] == [second]
