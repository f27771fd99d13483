"""T3 of the scale-out design note: partitions through a TCP proxy (a black hole: bytes stop,
connections stay open), with engines as child processes on one key (TTL 2 s):

- leader <-> PostgreSQL: the leader cannot renew, so it stops calling Kraken once its lease
  lapses by its own monotonic clock; the standby takes the key when the lease expires (no
  crash fast path: the leader's session looks alive) and fences it; when the partition heals
  the old leader finds itself fenced and stops (exit code 3). No order without a committed
  decision, none twice; the resting order survives (a holder kept the dead man's switch armed);
- leader <-> the exchange: the leader keeps its lease but cannot refresh the dead man's
  switch, so the exchange cancels the resting orders after its timeout (fails closed); no
  takeover happens (the standby sees a live lease)."""

from __future__ import annotations

import time
from decimal import Decimal
from collections.abc import Iterator

import pytest
from ha_harness import HaWorld, kill_leftovers, wait
from tcp_proxy import TcpProxy

from rules_engine.sim import Account

pytestmark = pytest.mark.cluster


@pytest.fixture
def account() -> Account:
    return Account.generate({"ZUSD": "100000", "XXBT": "2"}, tier="pro")


@pytest.fixture
def world(e2e, pg_server, pg_dsn, request) -> Iterator[HaWorld]:
    """The dead man's switch timeout exceeds the worst takeover (a leader cut off in the middle
    of a transaction holds the key until the server ends its session: 5 s), except where the
    test wants it to fire."""
    timeout = getattr(request, "param", "10s")
    try:
        yield HaWorld(e2e, pg_server, pg_dsn, dead_man_switch={"enabled": True, "interval": "1s", "timeout": timeout})
    finally:
        kill_leftovers()


def accepted_orders(world: HaWorld) -> list[str]:
    return [e.cl_ord_id for e in world.journal() if e.method == "AddOrder" and e.accepted]


def test_a_leader_cut_off_from_postgresql_stops_sending_and_is_fenced(world, pg_server) -> None:
    with TcpProxy("127.0.0.1", pg_server.port) as proxy:
        via_proxy = world.dsn.replace(f":{pg_server.port}/", f":{proxy.port}/")
        leader = world.engine(config={"store": {"url": via_proxy}}).leading()
        standby = world.engine().standing_by()
        world.cross(leader)
        wait(lambda: len(accepted_orders(world)) == 1, what="a resting order")
        (order,) = world.e2e.spot_orders()
        proxy.cut()
        cut_at = time.time()
        # a crossing while partitioned (the leader's own loop waits on the database: its HTTP
        # does not answer, so the prices are not confirmed): nothing it decides can be committed
        for price in ("69800", "70200"):
            world.e2e.sim.set_price("XBTUSD", Decimal(price))
        standby.leading()
        took_over = time.time() - cut_at
        epoch = world.audit_records("epoch_started")[-1]["data"]
        # no fast path (the cut-off leader's session looks alive): the standby waited for expiry
        assert epoch["previous"]["holder"] != epoch["holder"] and epoch["lease_wait_s"] >= 1.0
        fence = int(epoch["fence"]["nonce"])
        calls_after_cut = [e for e in world.journal() if e.time > cut_at + 2.0 and int(e.nonce or 0) < fence]
        assert calls_after_cut == []  # nothing from the old leader once its lease lapsed (TTL 2 s)
        proxy.heal()
        assert leader.process.wait(30) == 3, leader.text()  # fenced: it stops
        assert 'msg="lease: fenced' in leader.text()
        assert len(accepted_orders(world)) == 1
        world.check_history()
        assert order.status == "open"  # a holder existed throughout: the dead man's switch never fired
        print(f"T3 leader<->PostgreSQL: the standby took over {took_over:.2f} s after the cut (TTL 2 s)")
        assert standby.stop() == 0


@pytest.mark.parametrize("world", ["3s"], indirect=True)
def test_a_leader_cut_off_from_the_exchange_keeps_its_key_and_the_dead_mans_switch_fires(world) -> None:
    sim_port = int(world.e2e.endpoints.spot_rest.rsplit(":", 1)[1].split("/")[0])
    with TcpProxy("127.0.0.1", sim_port) as proxy:
        leader = world.engine(config={"kraken": {"simulator": f"http://127.0.0.1:{proxy.port}"}}).leading()
        standby = world.engine().standing_by()
        world.cross(leader)
        wait(lambda: len(accepted_orders(world)) == 1, what="a resting order")
        (order,) = world.e2e.spot_orders()
        proxy.cut()
        cut_at = time.time()
        wait(lambda: order.status != "open", timeout=15, what="the exchange's dead man's switch")
        assert order.status in ("canceled", "cancelled")
        refreshed = [e.time for e in world.journal() if e.method == "CancelAllOrdersAfter" and e.accepted]
        assert time.time() >= max(refreshed) + 3.0 and max(refreshed) <= cut_at + 0.5
        assert len(world.audit_records("epoch_started")) == 1  # no takeover: the leader kept its lease
        assert standby.process.poll() is None and "took key" not in standby.text()
        proxy.heal()
        world.check_history()
        assert leader.stop() == 0


def test_a_short_cut_from_postgresql_pauses_the_leader_and_it_resumes_on_renewal(world, pg_server) -> None:
    """No standby: the lease lapses by the leader's own clock (it stops calling Kraken), nobody
    takes the key, and the first renewal after the cut heals resumes it; the chain records both."""
    with TcpProxy("127.0.0.1", pg_server.port) as proxy:
        via_proxy = world.dsn.replace(f":{pg_server.port}/", f":{proxy.port}/")
        leader = world.engine(config={"store": {"url": via_proxy}}).leading()
        proxy.cut()
        cut_at = time.time()
        wait(lambda: time.time() > cut_at + 4.0, what="2 x TTL")
        quiet = [e for e in world.journal() if cut_at + 2.0 < e.time]
        assert quiet == []  # nothing signed while the lease had lapsed
        proxy.heal()
        wait(lambda: [r for r in world.audit_records("lease") if r["data"]["event"] == "renewed"],
             what="the renewal after the cut, audited")
        (renewed,) = [r["data"] for r in world.audit_records("lease") if r["data"]["event"] == "renewed"]
        assert renewed["epoch"] == 1 and renewed["lapsed_s"] > 1.0
        world.cross(leader)
        wait(lambda: len(accepted_orders(world)) == 1, what="an order after the lease was renewed")
        assert len(world.audit_records("epoch_started")) == 1
        world.check_history()
        assert leader.stop() == 0


@pytest.mark.parametrize("world", ["30s"], indirect=True)
def test_a_leader_cut_off_from_the_exchange_releases_its_key_after_release_after(world, tmp_path) -> None:
    """`release_after: 4s`: the leader's calls to the exchange all fail (a black hole: each waits
    for its read timeout), so it releases its lease and stops (exit code 3); the standby takes the
    key, fences it, and trades. The T1 invariants hold; the resting order survives (the new holder
    re-arms the dead man's switch before it fires: a holder existed throughout)."""
    sim_port = int(world.e2e.endpoints.spot_rest.rsplit(":", 1)[1].split("/")[0])
    release = {"store": {"release_after": "4s"}}
    with TcpProxy("127.0.0.1", sim_port) as proxy:
        leader = world.engine(config={"kraken": {"simulator": f"http://127.0.0.1:{proxy.port}"}, **release}).leading()
        standby = world.engine(config=release).standing_by()
        world.cross(leader)
        wait(lambda: len(accepted_orders(world)) == 1, what="a resting order")
        (order,) = world.e2e.spot_orders()
        proxy.cut()
        cut_at = time.time()
        standby.leading(timeout=60)
        took_over = time.time() - cut_at
        assert leader.process.wait(30) == 3, leader.text()  # released, then stopped
        (released,) = [r["data"] for r in world.audit_records("lease") if r["data"]["event"] == "released"]
        assert released["epoch"] == 1 and released["out_of_reach_s"] >= 4.0 and released["hold_off_s"] == 4.0
        assert "Kraken out of reach" in leader.text()
        started = world.audit_records("epoch_started")[-1]["data"]
        assert started["epoch"] == 2 and started["previous"]["holder"].endswith("(released)")
        assert took_over >= 4.0
        fence = int(started["fence"]["nonce"])
        assert [e for e in world.journal() if e.time > cut_at and e.accepted and int(e.nonce or 0) < fence] == []
        world.cross(standby)
        wait(lambda: len(accepted_orders(world)) == 2, what="the new holder's order")
        world.check_history()
        assert order.status == "open"  # the dead man's switch never fired: the key changed hands in time
        proxy.heal()
        assert standby.stop() == 0
        assert world.audit_verifies(tmp_path)
        print(f"T3 leader<->exchange with release_after 4 s: the standby took over {took_over:.2f} s after the cut")
