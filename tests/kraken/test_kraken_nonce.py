import json
import threading

import pytest

from rules_engine.kraken.nonce import FileNonceStore, MemoryNonceStore, NonceSource


class CountingStore(MemoryNonceStore):
    def __init__(self):
        super().__init__()
        self.saves = 0

    def save(self, key_fingerprint, value):
        self.saves += 1
        super().save(key_fingerprint, value)


def test_nonces_increase_even_when_the_clock_stands_still_or_goes_back():
    times = iter([1000, 1000, 999, 500, 2000])
    source = NonceSource(clock_ns=lambda: next(times), lease=0)
    assert [source.next("k") for _ in range(5)] == [1000, 1001, 1002, 1003, 2000]


def test_keys_have_independent_sequences():
    source = NonceSource(clock_ns=lambda: 10, lease=0)
    assert source.next("a") == 10 and source.next("b") == 10 and source.next("a") == 11


def test_many_threads_get_unique_nonces_in_issue_order():
    source = NonceSource(clock_ns=lambda: 1)  # a stuck clock forces the +1 path
    received: list[int] = []

    def worker():
        for _ in range(200):
            with source.issue("k") as nonce:
                received.append(nonce)  # "sent" while the key's lock is held

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(received) == 3200
    assert received == sorted(received) and len(set(received)) == 3200


def test_restart_continues_above_the_persisted_high_water_mark(tmp_path):
    path = tmp_path / "nonces.json"
    first = NonceSource(FileNonceStore(path), clock_ns=lambda: 5_000, lease=100)
    issued = [first.next("k") for _ in range(150)]
    # restarted process whose clock went back a long way
    second = NonceSource(FileNonceStore(path), clock_ns=lambda: 10, lease=100)
    assert second.next("k") > max(issued)
    assert json.loads(path.read_text())["k"] >= max(issued)
    assert [p.name for p in tmp_path.iterdir()] == ["nonces.json"]  # no temp files left behind


def test_the_lease_limits_store_writes():
    store = CountingStore()
    ticks = iter(range(1000, 2000))
    source = NonceSource(store, clock_ns=lambda: next(ticks), lease=100)
    for _ in range(250):
        source.next("k")
    assert store.saves == 3  # at 1000, 1101, 1202
    assert store.load("k") == 1302


def test_file_store_keeps_other_keys_and_never_goes_down(tmp_path):
    store = FileNonceStore(tmp_path / "n.json")
    store.save("a", 10)
    store.save("b", 20)
    store.save("a", 5)
    assert (store.load("a"), store.load("b"), store.load("c")) == (10, 20, 0)


def test_unreadable_store_is_a_clear_error(tmp_path):
    path = tmp_path / "n.json"
    path.write_text("{not json")
    with pytest.raises(RuntimeError, match="unreadable"):
        NonceSource(FileNonceStore(path)).next("k")


def test_millisecond_scale():
    source = NonceSource(unit_ns=1_000_000, clock_ns=lambda: 1_700_000_000_123_456_789)
    assert source.next("k") == 1_700_000_000_123


def test_keep_ahead_renews_a_reservation_running_low_so_next_does_not_write():
    store = CountingStore()
    now = [1000]
    source = NonceSource(store, clock_ns=lambda: now[0], lease=100)
    assert source.next("k") == 1000 and store.saves == 1  # reserved up to 1100
    now[0] = 1040
    assert source.keep_ahead() == 0 and store.saves == 1  # more than half the lease is left
    now[0] = 1060
    assert source.keep_ahead() == 1 and store.load("k") == 1160  # renewed ahead of the clock
    now[0] = 1150
    assert source.next("k") == 1150 and store.saves == 2  # within the renewed lease: no write on the way
    restarted = NonceSource(store, clock_ns=lambda: 0, lease=100)
    assert restarted.next("k") == 1161  # above the renewed reservation after a restart


def test_keep_ahead_without_any_key_used_writes_nothing():
    store = CountingStore()
    assert NonceSource(store, lease=100).keep_ahead() == 0 and store.saves == 0
    assert not NonceSource(store, lease=100).running_low()


def test_running_low_tells_without_writing_whether_keep_ahead_would_renew():
    """The housekeeping asks first, on the event loop, and goes to a thread only for a renewal."""
    store = CountingStore()
    now = [1000]
    source = NonceSource(store, clock_ns=lambda: now[0], lease=100)
    source.next("k")  # reserved up to 1100
    now[0] = 1040
    assert not source.running_low() and store.saves == 1
    now[0] = 1060
    assert source.running_low() and store.saves == 1
    assert source.keep_ahead() == 1 and not source.running_low()
    source.next("k")
    now[0] = 1000  # the clock stepped back: the last nonce issued still counts
    for _ in range(60):
        source.next("k")
    assert source.running_low() == (source.keep_ahead() == 1)


def test_a_turn_passes_on_grace_seconds_after_its_request_was_handed_over():
    source = NonceSource(clock_ns=lambda: 1)
    handed, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_sender():
        with source.turn("k", grace=0.05) as turn:
            turn.handed()
            handed.set()
            release.wait(5)  # the answer does not come
            order.append(f"slow answered {turn.nonce}")

    thread = threading.Thread(target=slow_sender)
    thread.start()
    handed.wait(5)
    with source.turn("k", grace=0.05) as turn:  # taken over after the grace, not after the answer
        order.append(f"next sent {turn.nonce}")
    release.set()
    thread.join(5)
    assert order == ["next sent 2", "slow answered 1"]
    with source.issue("k") as nonce:  # the late give-back of the slow call freed nothing twice
        assert nonce == 3


def test_a_turn_not_yet_handed_over_is_waited_for_whole():
    source = NonceSource(clock_ns=lambda: 1)
    inside, done = threading.Event(), []

    def holder():
        with source.turn("k", grace=0.0):
            inside.set()
            threading.Event().wait(0.05)  # signing: the request has not left yet
            done.append("holder")

    thread = threading.Thread(target=holder)
    thread.start()
    inside.wait(5)
    with source.issue("k"):
        done.append("next")
    thread.join(5)
    assert done == ["holder", "next"]
