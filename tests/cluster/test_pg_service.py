"""The engine service end to end on the PostgreSQL store, against the simulator: a rule fires
and its order is placed once, a restart restores the state, the audit chain verifies and
exports; a second engine on the key fences the first; `pg_ctl restart -m immediate` under a
running engine sends no order without a committed decision, and the engine resumes."""

from __future__ import annotations

import asyncio
import json

import pytest
from e2e_harness import E2E, move, wait_for
from pg_harness import PgServer

from rules_engine.audit import verify
from rules_engine.cli import main
from rules_engine.config import parse_config
from rules_engine.pgstore import PgStateStore, StoreSettings, export_jsonl
from rules_engine.pgstore import audit as pg_audit
from rules_engine.service.status_offline import offline_status

pytestmark = pytest.mark.cluster

UP = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  cooldown: COOLDOWN
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""
LIVE = {"cli_live": True, "mode": "live", "dead_man_switch": {"enabled": False}}


def on_store(e2e: E2E, server: PgServer, dsn: str) -> dict[str, object]:
    """The config overrides that put the engine on `dsn` (password through the environment)."""
    e2e.environ["RULES_ENGINE_STORE_PASSWORD"] = server.password
    return {**LIVE, "store": {"url": dsn, "key": "main"}}


async def test_a_rule_fires_once_and_a_restart_restores_state_on_postgresql(e2e, pg_server, pg_dsn, tmp_path,
                                                                            monkeypatch, capsys) -> None:
    e2e.write_rules(UP.replace("COOLDOWN", "200ms"))
    config = on_store(e2e, pg_server, pg_dsn)
    async with e2e.running(**config) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: e2e.spot_orders())
        await service.settle()
        first = seen.intents("place_order")[0]
        assert service.store.get_decision(first.cl_ord_id).status == "accepted"
        health = service.health()
        assert health["storage"]["state"]["writable"]
        assert health["store"]["kind"] == "postgresql" and health["store"]["epoch"] == 1
        assert health["store"]["store"] == f"{pg_dsn} (key main)"
    async with e2e.running(**config) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "70200", "70300")  # first tick after the restart: an observation
        await service.settle()
        assert seen.fires() == []
        await wait_for(lambda: service.engine.rule_status("up") == "idle")
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        second = seen.intents("place_order")[0]
    assert second.decision_id == "up#2" and second.cl_ord_id != first.cl_ord_id
    assert sorted(o.cl_ord_id for o in e2e.spot_orders()) == sorted([first.cl_ord_id, second.cl_ord_id])
    # Nothing went to the state dir's files: state and audit are in PostgreSQL.
    assert not (e2e.state_dir / "audit.jsonl").exists() and not (e2e.state_dir / "engine.sqlite").exists()
    settings = StoreSettings(pg_dsn, "main", pg_server.password)
    assert export_jsonl(settings, tmp_path / "exported.jsonl") > 0
    assert verify(tmp_path / "exported.jsonl").ok
    records = [json.loads(line) for line in (tmp_path / "exported.jsonl").read_text().splitlines()]
    starts = [r["data"] for r in records if r["kind"] == "startup"]
    assert [s["restored_snapshot"] for s in starts] == [False, True]
    assert [s["store"]["epoch"] for s in starts] == [1, 2]
    assert pg_server.password not in (tmp_path / "exported.jsonl").read_text()
    decisions = [r["data"]["cl_ord_id"] for r in records if r["kind"] == "decision" and "cl_ord_id" in r["data"]]
    assert decisions == [first.cl_ord_id, second.cl_ord_id]
    monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
    assert main(["audit", "verify", "--store", pg_dsn, "--key", "main"]) == 0
    assert "OK: " in capsys.readouterr().out
    # `rules-engine status` of the stopped engine reads the store the config names
    stopped = offline_status(parse_config(e2e.config_data(**{k: v for k, v in config.items() if k != "cli_live"})),
                             e2e.state_dir)
    assert stopped["stopped_cleanly"] is True and stopped["problems"] == []
    assert [rule["id"] for rule in stopped["rules"]] == ["up"]
    assert stopped["risk"]["orders_last_day"]["value"] == "2"  # the decisions the store holds
    from rules_engine.commands.status import render_text

    shown = render_text(stopped)  # names the store it read, not the state dir (which holds only KILL)
    assert f"from the store {pg_dsn} (key main), last audit record" in shown and "from state dir" not in shown


async def test_the_housekeeping_of_an_idle_engine_on_postgresql_goes_to_a_thread_only_with_work(
        e2e, pg_server, pg_dsn, monkeypatch) -> None:
    """Every `snapshot_interval` the housekeeping syncs the audit chain, checks the storage,
    checkpoints a SQLite store and renews nonce reservations running low; it first looks (no
    I/O) and goes to a thread only when there is something to do: a worker's 300 idle cells
    made some 1,200 thread hops a second doing nothing. A record left queued is still committed
    by it."""
    monkeypatch.setattr(pg_audit, "LINGER", 60.0)  # a queued record waits for the housekeeping, not the flusher
    e2e.write_rules(UP.replace("COOLDOWN", "200ms"))
    async with e2e.running(**on_store(e2e, pg_server, pg_dsn)) as (service, seen, url):
        await service.settle()
        hops: list[str] = []
        to_thread = asyncio.to_thread

        async def counted(func, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            hops.append(getattr(func, "__qualname__", repr(func)))
            return await to_thread(func, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counted)
        await asyncio.sleep(1.0)  # five rounds of the housekeeping (snapshot_interval 0.2 s)
        assert not {"AuditTap.sync", "StorageHealth.check", "checkpoint_state", "keep_nonces_ahead"} & set(hops)
        assert service.health()["storage"]["state"]["writable"]  # refreshed without a thread
        record = service.audit.append("trigger", rule_id="up", data={"n": 1})  # queued (LINGER: a minute)
        assert service.audit_tap.needs_sync()
        await wait_for(lambda: not service.audit.needs_sync(), timeout=5)  # committed (with a state write, or by
        with pg_server.connect(pg_dsn.rsplit("/", 1)[1]) as conn:  # the housekeeping's sync)
            assert conn.execute("SELECT kind FROM audit WHERE key_id = 'main' AND seq = %s",
                                (record["seq"],)).fetchone() == ("trigger",)
        service.store._db._note("an outage")  # the store failed: the housekeeping's check probes it, on a thread
        assert service.storage.needs_check()
        await wait_for(lambda: "StorageHealth.check" in hops and service.store.failure is None, timeout=5)


async def test_a_second_engine_on_the_key_fences_the_first(e2e, pg_server, pg_dsn) -> None:
    e2e.write_rules(UP.replace("COOLDOWN", "200ms"))
    config = on_store(e2e, pg_server, pg_dsn)
    async with e2e.running(**config) as (service, seen, url):
        settings = StoreSettings(pg_dsn, "main", pg_server.password)
        from rules_engine.pgstore import acquire_lease

        acquire_lease(settings, "another engine")  # what a second engine does at its start
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await service.settle()

        def fenced() -> bool:
            return any("fenced" in p["reason"] for p in service.visibility.readyz()["problems"])

        await wait_for(fenced, timeout=10)
        assert e2e.spot_orders() == []  # fenced: nothing it decides can be committed, so nothing is sent
    with PgStateStore(StoreSettings(pg_dsn, "main", pg_server.password), epoch=None) as store:
        assert store.unresolved_decisions() == []


async def test_pg_restart_immediate_under_a_running_engine(e2e, tmp_path) -> None:
    e2e.write_rules(UP.replace("COOLDOWN", "100ms"))
    with PgServer.start() as server:  # its own server: this test crashes it
        dsn = server.create_database("engine")
        config = on_store(e2e, server, dsn)
        async with e2e.running(**config) as (service, seen, url):
            await move(e2e, service, "XBTUSD", "69900", "70100")
            await wait_for(lambda: len(e2e.spot_orders()) == 1)
            await service.settle()
            server.stop_immediate()  # the crash half of `pg_ctl restart -m immediate`, held down a while
            await move(e2e, service, "XBTUSD", "69800", "70200")  # a crossing while the store is down
            await service.settle()
            await wait_for(lambda: not service.visibility.readyz()["ready"], timeout=10)
            assert len(e2e.spot_orders()) == 1  # refused to act: no order without a committed decision
            server.start_again()
            await wait_for(lambda: service.visibility.readyz()["ready"], timeout=10)
            await move(e2e, service, "XBTUSD", "69700", "70300")
            await wait_for(lambda: len(e2e.spot_orders()) == 2, timeout=10)
            server.restart_immediate()  # and a crash-restart in one step: the engine reconnects by itself
            await move(e2e, service, "XBTUSD", "69600", "70400")
            await wait_for(lambda: len(e2e.spot_orders()) == 3, timeout=10)
            await service.settle()
        assert len(e2e.spot_orders()) == 3  # one order per crossing the engine could commit, none twice
        settings = StoreSettings(dsn, "main", server.password)
        with PgStateStore(settings, epoch=None) as store:
            for order in e2e.spot_orders():  # every order the exchange has was committed as a decision first
                assert store.decision_status(order.cl_ord_id) == "accepted", order.cl_ord_id
        assert export_jsonl(settings, tmp_path / "after.jsonl") > 0
        report = verify(tmp_path / "after.jsonl")
        assert report.ok, report.summary()
        kinds = [json.loads(line)["kind"] for line in (tmp_path / "after.jsonl").read_text().splitlines()]
        assert "storage_recovered" in kinds


async def test_a_store_that_cannot_be_reached_stops_the_start_with_a_clear_error(e2e) -> None:
    from pg_harness import free_port

    from rules_engine.service.startup import StartupError

    e2e.write_rules(UP.replace("COOLDOWN", "1s"))
    e2e.environ["RULES_ENGINE_STORE_PASSWORD"] = "not-shown-anywhere"
    service = e2e.service(**LIVE, store=f"postgresql://engine@127.0.0.1:{free_port()}/rules")
    with pytest.raises(StartupError, match=r"state store postgresql://engine@127\.0\.0\.1:\d+/rules \(key default\): "
                                           r"cannot connect") as refused:
        await service.start()
    assert "not-shown-anywhere" not in str(refused.value)
    assert e2e.spot_orders() == []


async def test_a_second_engine_of_the_key_on_this_machine_is_refused_before_it_takes_the_key(
        e2e, pg_server, pg_dsn) -> None:
    """As without a store, a second engine on this machine with the same API key is refused. It
    used to be refused only after taking the key's lease: the running engine was fenced (and
    stopped, exit code 3), leaving the key with no engine at all."""
    from rules_engine.pgstore import read_leases
    from rules_engine.service.startup import StartupError

    e2e.write_rules(UP.replace("COOLDOWN", "200ms"))
    config = on_store(e2e, pg_server, pg_dsn)
    async with e2e.running(**config) as (service, seen, url):
        first_dir = e2e.state_dir
        e2e.state_dir = e2e.tmp / "other-state"
        with pytest.raises(StartupError, match="another rules-engine on this machine is using API key"):
            await e2e.service(True, **{k: v for k, v in config.items() if k != "cli_live"}).start()
        e2e.state_dir = first_dir
        [lease] = read_leases(StoreSettings(pg_dsn, "main", pg_server.password))
        assert lease.epoch == 1  # the first engine still holds the key, unfenced
        assert not any("fenced" in p["reason"] for p in service.visibility.readyz()["problems"])
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: len(e2e.spot_orders()) == 1, timeout=10)  # and trades
