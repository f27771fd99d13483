"""`rules-engine worker` in the test's process: two key cells on a real PostgreSQL share ONE public
WebSocket (subscribed to the union of their pairs), each tick reaches the cells that watch its
pair, each cell trades with its own credentials and client order ids, and the worker's HTTP
server reports every cell (/readyz) and labels every cell's metrics with its key."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_harness import FAST_FEED, get, wait_for

from rules_engine.cli import main
from rules_engine.pgstore import read_leases
from rules_engine.pgstore.lease import lock_id
from rules_engine.pgstore.connection import StoreSettings
from rules_engine.service.worker import Worker
from rules_engine.service.worker_config import load_worker_config
from rules_engine.sim import Account, SimConfig, Simulator

pytestmark = pytest.mark.cluster

RULES = {
    "k1": """
version: 1
rules:
  - id: up
    cooldown: 1h
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
""",
    "k2": """
version: 1
rules:
  - id: up
    cooldown: 1h
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.02, price: 60000}]
  - id: eth
    cooldown: 1h
    triggers: [{type: price, symbol: ETHUSD, crosses_above: 3000}]
    actions: [{type: place_order, pair: ETHUSD, side: buy, ordertype: limit, volume: 0.1, price: 2000}]
""",
}


@pytest.fixture
def two() -> dict[str, Account]:
    return {key: Account.generate({"ZUSD": "100000", "XXBT": "1"}) for key in RULES}


@pytest.fixture
def sim2(two) -> Iterator[Simulator]:
    simulator = Simulator(SimConfig(accounts=list(two.values()), prices={"XBTUSD": "69000", "ETHUSD": "2600"},
                                    tick_interval=0, heartbeat_interval=0.5))
    with simulator.running("127.0.0.1", 0):
        yield simulator


def write(tmp: Path, dsn: str, password: str, sim: Simulator, accounts: dict[str, Account],
          **worker: Any) -> tuple[Path, dict[str, str]]:
    """The worker config and its environment (each cell's credentials, the store's password)."""
    cells, env = [], {"RULES_ENGINE_STORE_PASSWORD": password}
    for key, text in RULES.items():
        (tmp / f"rules-{key}").mkdir()
        (tmp / f"rules-{key}" / "rules.yaml").write_text(text)
        config = {"version": 1, "mode": "live",
                  "kraken": {"simulator": sim.endpoints.spot_rest, "api_key_env": f"{key.upper()}_KEY",
                             "api_secret_env": f"{key.upper()}_SECRET"},
                  "dead_man_switch": {"enabled": False},
                  "store": {"url": dsn, "key": key, "standby": True, "exclusive": True, "lease_ttl": "2s"}}
        (tmp / f"engine-{key}.yaml").write_text(yaml.safe_dump(config))
        cells.append({"config": f"engine-{key}.yaml", "rules": [f"rules-{key}"]})
        env[f"{key.upper()}_KEY"], env[f"{key.upper()}_SECRET"] = accounts[key].api_key, accounts[key].secret
    path = tmp / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "server": {"host": "127.0.0.1", "port": 0}, "cells": cells,
                                    **worker}))
    return path, env


def fast_worker(path: Path, env: dict[str, str]) -> Worker:
    """A worker on the config at `path`, with fast feeds and housekeeping, no rule reloads."""
    return Worker(load_worker_config(path), cli_live=True, port=0, environ=env,
                  cell_options={"feed_options": FAST_FEED, "reload_interval": None, "kill_poll_interval": 0.2,
                                "snapshot_interval": 0.2, "drain_timeout": 5.0})


def count_time_calls(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times of the simulator's answers to the public `Time` call from now on."""
    calls: list[float] = []
    answer = sim.spot_api.public_methods["Time"]

    def counted(params: Any, now: float) -> Any:
        calls.append(now)
        return answer(params, now)

    monkeypatch.setitem(sim.spot_api.public_methods, "Time", counted)
    return calls


def public_connections(sim: Simulator) -> list[Any]:
    return [c for c in sim._hub.connections if c.tickers]


def ticks(worker: Worker) -> dict[str, float]:
    return {key: service.metrics.ticks.labels("spot")._value.get() for key, service in worker.holding_services()}


def orders(sim: Simulator, account: Account) -> list[Any]:
    return [e for e in sim.journal.entries(key=account.api_key) if e.method == "AddOrder" and e.accepted]


async def test_two_cells_share_one_public_feed_and_one_http_server(tmp_path, pg_server, pg_dsn, sim2, two,
                                                                  capsys, monkeypatch) -> None:
    path, env = write(tmp_path, pg_dsn, pg_server.password, sim2, two)
    time_calls = count_time_calls(sim2, monkeypatch)
    worker = fast_worker(path, env)
    port = await worker.start()
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for(lambda: worker.holding() == ["k1", "k2"], timeout=30)
        await wait_for(lambda: [c.tickers for c in public_connections(sim2)] == [{"XBTUSD", "ETHUSD"}], timeout=10)
        # trading first, then the private feeds (`service.quiet_gate`): once both cells are idle, both connect
        await wait_for(lambda: sim2.private_subscribers() == 2, timeout=10)
        # the feeds' first messages (balance snapshots) may be events in hand for a moment under load
        await wait_for(lambda: not worker.busy() and worker.quiet.waiting == 0, timeout=5)
        status, ready = await get(f"{url}/readyz")
        assert status == 200 and ready["holding"] == ["k1", "k2"]
        assert {c["key"]: c["state"] for c in ready["cells"]} == {"k1": "holding", "k2": "holding"}
        assert all(c["store"]["key"] == c["key"] for c in ready["cells"])
        before = ticks(worker)
        sim2.set_price("XBTUSD", Decimal("69500"))  # the first tick a cell handles arms its crossing
        sim2.set_price("ETHUSD", Decimal("2700"))
        await wait_for(lambda: all(ticks(worker)[k] >= before[k] + n for k, n in (("k1", 1), ("k2", 2))), timeout=10)
        for _, service in worker.holding_services():
            await service.settle()
        sim2.set_price("XBTUSD", Decimal("71000"))  # both cells watch XBTUSD
        await wait_for(lambda: orders(sim2, two["k1"]) and orders(sim2, two["k2"]), timeout=10)
        sim2.set_price("ETHUSD", Decimal("3100"))  # only k2 watches ETHUSD
        await wait_for(lambda: len(orders(sim2, two["k2"])) == 2, timeout=10)
        for _, service in worker.holding_services():
            await service.settle()
        assert len(orders(sim2, two["k1"])) == 1
        handled = ticks(worker)
        assert handled["k2"] - before["k2"] == handled["k1"] - before["k1"] + 2  # k1 is not handed ETHUSD ticks
        cl_ord_ids = {key: [e.cl_ord_id for e in orders(sim2, two[key])] for key in two}
        assert cl_ord_ids["k1"][0] != cl_ord_ids["k2"][0]  # same rule id, same first fire, different keys
        assert cl_ord_ids["k1"][0][:8] == cl_ord_ids["k2"][0][:8]  # the database's installation tag
        rest = sim2.endpoints.spot_rest.split("://", 1)
        assert list(worker.http_environment) == [(rest[0], rest[1].split("/", 1)[0])]  # read once for both cells
        assert len(time_calls) == 1  # Kraken's clock: measured once for both cells' takeovers
        offsets = {service.cell.offset for _, service in worker.holding_services() if service.cell is not None}
        assert len(offsets) == 1 and abs(offsets.pop()) < 2  # both cells' deadlines on that one figure
        status, text = await get(f"{url}/metrics")
        assert status == 200
        assert 'rules_engine_ticks_total{key="k1",market="spot"}' in text
        assert 'rules_engine_ticks_total{key="k2",market="spot"}' in text
        assert 'rules_engine_worker_cells{state="holding"} 2.0' in text
        monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
        capsys.readouterr()
        assert main(["cluster", "status", "--store", pg_dsn, "--worker-config", str(path)]) == 0
        out = capsys.readouterr().out
        assert "holds 2 key(s): k1, k2" in out
    finally:
        await worker.stop()
    leases = {lease.key_id: lease for lease in read_leases(StoreSettings(pg_dsn, "k1", pg_server.password))}
    assert sorted(leases) == ["k1", "k2"]
    # stopped: both leases released, so the configured keys are held by nobody: degraded
    assert main(["cluster", "status", "--store", pg_dsn, "--worker-config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problem: key k1: is configured in a worker but its lease expired" in out


async def test_a_cell_whose_key_was_taken_stands_by_again_and_takes_it_back_when_it_lapses(
        tmp_path, pg_server, pg_dsn, sim2, two) -> None:
    from rules_engine.pgstore import acquire_lease

    path, env = write(tmp_path, pg_dsn, pg_server.password, sim2, two)
    worker = fast_worker(path, env)
    await worker.start()
    try:
        await wait_for(lambda: worker.holding() == ["k1", "k2"], timeout=30)
        first = worker.cells["k1"].service
        # another engine takes k1 (epoch 2) and goes away: k1's cell is fenced at its next renewal,
        # stops (exit code 3), stands by again and takes the key back (epoch 3)
        acquire_lease(StoreSettings(pg_dsn, "k1", pg_server.password), "another engine", ttl=3.0)
        # bounds that prove "not stalled" on a loaded 2-core machine (the lease lapses after 3 s)
        await wait_for(lambda: first is not None and first.exit_code == 3, timeout=20)
        await wait_for(lambda: worker.cells["k1"].state == "holding" and worker.cells["k1"].service is not first,
                       timeout=40)
        assert worker.cells["k1"].takeovers == 2 and worker.cells["k2"].takeovers == 1
        assert worker.cells["k1"].service.backend["epoch"] == 3
        assert worker.readyz()["status"] in ("ready", "degraded")
    finally:
        await worker.stop()


async def test_a_cell_standing_by_for_a_key_held_elsewhere_does_not_hold_up_the_private_feeds(
        tmp_path, pg_server, pg_dsn, sim2, two) -> None:
    """The private feeds wait while the worker takes keys over (`service.quiet_gate`), but a cell
    waiting for a key another engine holds is not taking it over: k2's feed connects at once."""
    from rules_engine.pgstore.lease import LeaseSession

    path, env = write(tmp_path, pg_dsn, pg_server.password, sim2, two)
    other = LeaseSession(StoreSettings(pg_dsn, "k1", pg_server.password), "another engine", ttl=60.0)
    assert other.try_take() is not None  # held, its session alive: k1's cell stands by throughout
    worker = fast_worker(path, env)
    await worker.start()
    try:
        await wait_for(lambda: worker.holding() == ["k2"] and worker._shared["k1"].leases.is_waiting("k1"),
                       timeout=30)
        await wait_for(lambda: sim2.private_subscribers() == 1, timeout=5)  # MAX_WAIT is 10 s: not waited out
        assert not worker.busy() and worker.cells["k1"].state == "standby"
    finally:
        await worker.stop()
        other.close()


async def test_the_private_feeds_keep_within_the_workers_budget_of_connection_attempts(
        tmp_path, pg_server, pg_dsn, sim2, two) -> None:
    """`private_feeds.connects_per_10min` (Kraken bans an IP after about 150 WebSocket connection
    attempts in 10 minutes): with 1, one cell's feed connects and the other's waits; both trade."""
    path, env = write(tmp_path, pg_dsn, pg_server.password, sim2, two, private_feeds={"connects_per_10min": 1})
    worker = fast_worker(path, env)
    await worker.start()
    try:
        await wait_for(lambda: worker.holding() == ["k1", "k2"], timeout=30)
        await wait_for(lambda: sim2.private_subscribers() == 1 and worker.connect_budget.waiting == 1, timeout=10)
        sim2.set_price("XBTUSD", Decimal("69500"))
        await wait_for(lambda: all(n >= 1 for n in ticks(worker).values()), timeout=10)
        for _, service in worker.holding_services():
            await service.settle()
        sim2.set_price("XBTUSD", Decimal("71000"))  # the cell without its feed trades all the same
        await wait_for(lambda: orders(sim2, two["k1"]) and orders(sim2, two["k2"]), timeout=10)
        assert sim2.private_subscribers() == 1 and worker.connect_budget.used() == 1
        text = worker.render_metrics().decode()
        for what, value in (("used", 1), ("budget", 1), ("waiting", 1)):
            assert f'rules_engine_worker_private_connects{{what="{what}"}} {value}.0' in text
    finally:
        await worker.stop()


async def test_the_cells_trade_on_after_a_database_crash_restart_on_new_pooled_connections(
        tmp_path, sim2, two) -> None:
    """The worker's cells share a pool of connections (`pgstore.ConnectionPool`): after `pg_ctl
    restart -m immediate` every pooled connection is dead; the first transaction that finds one
    dead replaces it and empties the pool, and every cell commits its decision before its order
    on a new connection."""
    from pg_harness import PgServer

    with PgServer.start() as server:  # its own server: this test crashes it
        dsn = server.create_database("restart")
        path, env = write(tmp_path, dsn, server.password, sim2, two)
        worker = fast_worker(path, env)
        await worker.start()
        try:
            await wait_for(lambda: worker.holding() == ["k1", "k2"], timeout=30)
            before = ticks(worker)
            sim2.set_price("XBTUSD", Decimal("69500"))  # arms both cells' crossing
            await wait_for(lambda: all(ticks(worker)[k] > before[k] for k in ("k1", "k2")), timeout=10)
            for _, service in worker.holding_services():
                await service.settle()
            [(_, _, pool)] = worker._stores.values()
            opened = pool.opened
            assert opened >= 1 and pool.idle >= 1
            server.restart_immediate()  # every connection dies: the pool's, the leases', the listener's
            sim2.set_price("XBTUSD", Decimal("71000"))
            await wait_for(lambda: orders(sim2, two["k1"]) and orders(sim2, two["k2"]), timeout=30)
            assert pool.opened > opened  # on new connections
            with server.connect("restart") as conn:
                rows = conn.execute("SELECT key_id, status FROM decisions ORDER BY key_id").fetchall()
            assert [key for key, _ in rows] == ["k1", "k2"]  # each order's decision committed before it was sent
            assert worker.holding() == ["k1", "k2"]
            # the restart ended the sessions holding the keys' advisory locks (a standby's crash detector):
            # the worker locks them again (before renewing), so no standby takes a live worker's keys
            epochs = {key: service.backend["epoch"] for key, service in worker.holding_services()}

            def locked() -> set[str]:
                with server.connect("restart") as conn:
                    held = conn.execute("SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = "
                                        "'advisory' AND granted AND objsubid = 2").fetchall()
                return {k for k, e in epochs.items() if ((lock_id(k) & 0xFFFFFFFF), e) in set(held)}

            await wait_for(lambda: locked() == {"k1", "k2"}, timeout=10)
            assert {key: service.backend["epoch"] for key, service in worker.holding_services()} == epochs
        finally:
            await worker.stop()


async def test_a_cell_that_cannot_start_is_failed_with_its_reason_and_the_worker_not_ready(
        tmp_path, pg_server, pg_dsn, sim2, two, monkeypatch) -> None:
    """A cell whose start raises is `failed` with the reason, logged, and makes /readyz 503; it
    never stays `starting` (and "ready") in silence. k1: its state dir cannot be made (under a
    file, as a path outside a systemd unit's StateDirectory is read-only); k2: an unexpected error."""
    from rules_engine.service.app import EngineService

    path, env = write(tmp_path, pg_dsn, pg_server.password, sim2, two)
    (tmp_path / "blocker").write_text("")
    data = yaml.safe_load(path.read_text())
    data["cells"][0]["state_dir"] = "blocker/k1"
    path.write_text(yaml.safe_dump(data))
    start = EngineService.start

    async def broken_for_k2(self: EngineService) -> int:
        if self.config.store is not None and self.config.store.key == "k2":
            raise RuntimeError("boom")
        return await start(self)

    monkeypatch.setattr(EngineService, "start", broken_for_k2)
    worker = fast_worker(path, env)
    await worker.start()
    try:
        await wait_for(lambda: {c.state for c in worker.cells.values()} == {"failed"}, timeout=30)
        assert "cannot create the state dir" in str(worker.cells["k1"].problem)
        assert worker.cells["k2"].problem == "its start failed: RuntimeError: boom"
        ready = worker.readyz()
        assert ready["status"] == "not_ready" and ready["holding"] == []
    finally:
        await worker.stop()
