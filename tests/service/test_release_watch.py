"""`release_after` (service.release) without a database: what counts as Kraken out of reach,
and when the watch releases the key (the release itself: tests/cluster/test_ha_lease.py; the
whole story with a partition: tests/cluster/test_ha_partitions.py)."""

from __future__ import annotations

import pytest

from rules_engine.kraken.errors import BadResponse, ConnectError, HTTPStatusError, InvalidArguments, ReadTimeout
from rules_engine.pgstore import StoreSettings
from rules_engine.service import release
from rules_engine.service.release import ExchangeReach, ReachTransport, ReleaseWatch, unreachable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Transport:
    def __init__(self) -> None:
        self.outcome: BaseException | dict = {"error": [], "result": {}}

    def request(self, *args, **kwargs):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def test_only_network_errors_and_timeouts_count_as_out_of_reach() -> None:
    assert unreachable(ConnectError("cannot connect")) and unreachable(ReadTimeout("no answer"))
    assert not unreachable(HTTPStatusError(502)) and not unreachable(BadResponse("not JSON"))
    assert not unreachable(InvalidArguments("EGeneral:Invalid arguments"))


def test_out_of_reach_counts_from_the_first_call_without_an_answer() -> None:
    clock, inner = Clock(), Transport()
    reach = ExchangeReach(clock)
    transport = ReachTransport(inner, reach)
    transport.request("POST", "u", api_method="Balance")
    assert reach.out_of_reach_for() == 0.0
    call = reach.started()  # a call into a black hole: it waits
    clock.now += 3
    assert reach.out_of_reach_for() == 3.0 and reach.in_flight() == 1
    clock.now += 7
    reach.failed(call, "Balance: no answer within the read timeout")
    inner.outcome = ConnectError("cannot connect")
    with pytest.raises(ConnectError):
        transport.request("POST", "u", api_method="CancelAllOrdersAfter")
    assert reach.out_of_reach_for() == 10.0 and reach.failures == 2
    inner.outcome = InvalidArguments("EGeneral:Invalid arguments")  # an answer, even an error: reachable
    with pytest.raises(InvalidArguments):
        transport.request("POST", "u", api_method="AddOrder")
    assert reach.out_of_reach_for() == 0.0 and reach.failures == 0


def test_the_watch_releases_once_out_of_reach_for_release_after_then_halts(monkeypatch) -> None:
    clock = Clock()
    released, halted, told = [], [], []
    monkeypatch.setattr(release, "release_lease", lambda settings, holder, epoch, **kw: released.append(
        (holder, epoch, kw["hold_off"])) or True)
    watch = ReleaseWatch(StoreSettings("postgresql://e@h/db", "main", "pw"), "host:1", 8.0, monotonic=clock)
    probes = []
    watch.probe = lambda: probes.append(clock.now)
    args = (3, halted.append, told.append)
    assert not watch.check(*args)  # nothing failed
    call = watch.reach.started()
    clock.now += 5
    assert not watch.check(*args) and probes == []  # 5 s < 8 s; a call is in flight: no probe
    watch.reach.failed(call, "Balance: cannot connect")
    clock.now += 2.7
    assert not watch.check(*args) and probes == [107.7]  # quiet for 2.7 s > 8/3 s while failing: probed
    clock.now += 0.8
    assert watch.check(*args)  # 8.5 s without an answer
    assert released == [("host:1", 3, 8.0)]
    assert told[0]["event"] == "released" and told[0]["out_of_reach_s"] == 8.5
    assert len(halted) == 1 and "Kraken out of reach for 8.5 s" in halted[0]


def test_a_watch_whose_key_was_taken_meanwhile_only_halts(monkeypatch) -> None:
    """The release's record is offered first (a key taken meanwhile fences this chain, so the
    store refuses it: tests/cluster), then the watch halts as fenced."""
    clock = Clock()
    halted, told = [], []
    monkeypatch.setattr(release, "release_lease", lambda *a, **kw: False)
    watch = ReleaseWatch(StoreSettings("postgresql://e@h/db", "main", "pw"), "host:1", 4.0, monotonic=clock)
    watch.reach.failed(watch.reach.started(), "x")
    clock.now += 5
    assert watch.check(1, halted.append, told.append)
    assert [t["event"] for t in told] == ["released"] and halted and halted[0].startswith("fenced")


def test_the_release_is_audited_before_it_commits_and_once_over_retries(monkeypatch) -> None:
    """Once the lease is released a standby may take the key at once, which fences this chain's
    writes: the record must be written before the release, not after it (a queued record lost
    that race under load), and a release retried after a store error is not audited twice."""
    clock, steps = Clock(), []
    outcomes = [release.StateStoreError("store out of reach"), True]

    def release_lease(*args, **kw):
        steps.append("release")
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(release, "release_lease", release_lease)
    watch = ReleaseWatch(StoreSettings("postgresql://e@h/db", "main", "pw"), "host:1", 4.0, monotonic=clock)
    watch.reach.failed(watch.reach.started(), "x")
    clock.now += 5
    told = lambda event: steps.append(f"told {event['event']}")  # noqa: E731
    halted: list[str] = []
    assert not watch.check(1, halted.append, told)  # the store refused the release: tried again
    assert watch.check(1, halted.append, told)
    assert steps == ["told released", "release", "release"] and watch.released and len(halted) == 1
