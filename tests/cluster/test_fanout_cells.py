"""Signal fan-out end to end: intake replicas, one engine per account key on a real PostgreSQL,
the simulator as Kraken. Each subscribed key decides each signal exactly once (its rule fires
unchanged, with the account's sizing), however often and to whichever replica the provider
POSTs it; a delivery past its max_age is expired and audited, never traded; `rules-engine
cluster status` shows keys, holders, epochs and delivery counts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from e2e_harness import post, signed, wait_for
from fanout_harness import PROVIDER, PROVIDER_SECRET, FanoutWorld

from rules_engine.cli import main
from rules_engine.pgstore import export_lines
from rules_engine.pgstore.fanout import DeliveryClaimer
from rules_engine.sim import Account, SimConfig, Simulator

pytestmark = pytest.mark.cluster


def accounts(count: int) -> dict[str, Account]:
    return {f"acct-{n:02d}": Account.generate({"ZUSD": "100000", "XXBT": "1"}) for n in range(1, count + 1)}


@pytest.fixture
def many() -> dict[str, Account]:
    return accounts(20)


@pytest.fixture
def fanout_sim(many) -> Iterator[Simulator]:
    simulator = Simulator(SimConfig(accounts=list(many.values()), prices={"XBTUSD": "69000"}, tick_interval=0,
                                    heartbeat_interval=0.5))
    with simulator.running("127.0.0.1", 0):
        yield simulator


def audit_kinds(w: FanoutWorld, key: str, kind: str) -> list[dict]:
    records = [json.loads(line) for line in export_lines(w.settings(key))]
    return [r for r in records if r["kind"] == kind]


async def test_each_key_decides_a_signal_posted_three_times_to_two_replicas_exactly_once(
        tmp_path, pg_server, pg_dsn, fanout_sim, many) -> None:
    keys = ["acct-01", "acct-02", "acct-03"]
    w = FanoutWorld(tmp_path, pg_server, pg_dsn, fanout_sim, {k: many[k] for k in keys},
                    sizing={"acct-01": {"scale": 1}, "acct-02": {"scale": 0.5}, "acct-03": {"scale": 3}})
    async with w.intakes(2) as urls, w.engines() as engines:
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "sig-7"}, PROVIDER_SECRET)
        answers = [await post(f"{urls[i % 2]}/signals/{PROVIDER}", body, headers) for i in range(3)]
        assert [a["duplicate"] for _, a in answers] == [False, True, True]
        await wait_for(lambda: all(w.orders(k) for k in keys), timeout=10)
        await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'done'") == [(3,)])
        for service in engines.values():
            await service.settle()
        # a signal that no rule acts on is decided too (its delivery done), and sends nothing
        body, headers = signed({"action": "sell", "qty": 0.01, "id": "sig-8"}, PROVIDER_SECRET)
        assert (await post(f"{urls[1]}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 3
        await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'done'") == [(6,)])
    for key in keys:
        assert len(w.orders(key)) == 1, key  # the simulator's journal: one accepted AddOrder per key, no more
    volumes = {}
    for key in keys:
        with fanout_sim.lock:
            order = fanout_sim.exchange.orders[w.orders(key)[0].txid]
        volumes[key] = Decimal(order.volume)
    assert volumes == {"acct-01": Decimal("0.01"), "acct-02": Decimal("0.005"), "acct-03": Decimal("0.03")}
    assert w.rows("SELECT count(*) FROM signal_inbox") == [(0,)]
    for key in keys:
        signals = audit_kinds(w, key, "signal")
        assert [s["data"]["signal_id"] for s in signals] == ["sig-7", "sig-8"]
        assert signals[0]["data"]["payload"]["account"]["key"] == key
        assert len([d for d in audit_kinds(w, key, "decision") if "cl_ord_id" in d["data"]]) == 1


async def test_a_delivery_taken_by_an_engine_that_stopped_before_deciding_is_decided_once_at_its_restart(
        tmp_path, pg_server, pg_dsn, fanout_sim, many) -> None:
    w = FanoutWorld(tmp_path, pg_server, pg_dsn, fanout_sim, {"acct-01": many["acct-01"]})
    async with w.intakes(1) as (url,):
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "held-1"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 1
    claimer = DeliveryClaimer(w.settings("acct-01"), None)  # what the engine's claim does; then it is killed
    taken, _ = claimer.claim(time=time.time(), limit=10)
    claimer.close()
    assert [t.signal_id for t in taken] == ["held-1"]
    assert w.rows("SELECT status FROM fanout_deliveries") == [("taken",)]
    async with w.engines() as engines:
        await wait_for(lambda: w.orders("acct-01"), timeout=10)
        await wait_for(lambda: w.rows("SELECT status FROM fanout_deliveries") == [("done",)])
        await engines["acct-01"].settle()
    async with w.engines():  # and once more: nothing left to decide
        pass
    assert len(w.orders("acct-01")) == 1
    assert [r["data"].get("restored") for r in audit_kinds(w, "acct-01", "signal")] == [True]


async def test_a_delivery_past_max_age_is_expired_and_audited_not_traded(tmp_path, pg_server, pg_dsn, fanout_sim,
                                                                         many) -> None:
    keys = ["acct-01", "acct-02"]
    w = FanoutWorld(tmp_path, pg_server, pg_dsn, fanout_sim, {k: many[k] for k in keys}, max_age="5s")
    async with w.intakes(1) as (url,):  # no engine runs: the deliveries wait
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "late-1"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 2
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "late-2"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 2
    # acct-02's engine took late-2 into its inbox and stopped before deciding it (a crash)
    claimer = DeliveryClaimer(w.settings("acct-02"), None)
    taken, _ = claimer.claim(time=time.time(), limit=10)
    claimer.close()
    assert [t.signal_id for t in taken] == ["late-1", "late-2"]
    w.rows("UPDATE fanout_deliveries SET status = 'pending', inbox_seq = NULL, taken_epoch = NULL "
           "WHERE key_id = 'acct-02' AND signal_id = 'late-1' RETURNING 1")
    w.rows("DELETE FROM signal_inbox WHERE key_id = 'acct-02' AND signal_id = 'late-1' RETURNING 1")
    # the outage lasts longer than max_age: the database's clock moves on 60 s (the rows are dated back)
    w.rows("UPDATE fanout_signals SET received_at = received_at - interval '60 s' RETURNING 1")
    w.rows("UPDATE fanout_deliveries SET created_at = created_at - interval '60 s', "
           "expires_at = expires_at - interval '60 s' RETURNING 1")
    async with w.engines() as engines:
        await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'expired'") == [(4,)])
        for service in engines.values():
            await service.settle()
            assert service.metrics.signals_expired.labels(PROVIDER)._value.get() == 2  # what the alert watches
    assert all(w.orders(k) == [] for k in keys)  # nothing traded late
    assert w.rows("SELECT count(*) FROM signal_inbox") == [(0,)]
    for key in keys:
        expired = audit_kinds(w, key, "signal_expired")
        assert sorted(e["data"]["signal_id"] for e in expired) == ["late-1", "late-2"]
        assert all(e["data"]["max_age"] == 5.0 and e["data"]["age"] >= 60 for e in expired)
        assert audit_kinds(w, key, "signal") == []
    taken = {e["data"]["signal_id"]: e["data"]["taken"] for e in audit_kinds(w, "acct-02", "signal_expired")}
    assert taken == {"late-1": False, "late-2": True}  # late-2 had been taken: expired from the inbox at the start


async def test_one_signal_fans_out_to_twenty_keys_with_one_order_each(tmp_path, pg_server, pg_dsn, fanout_sim,
                                                                       many, capsys, monkeypatch) -> None:
    w = FanoutWorld(tmp_path, pg_server, pg_dsn, fanout_sim, many)
    async with w.intakes(2) as urls, w.engines() as engines:
        body, headers = signed({"action": "buy", "qty": 0.001, "id": "wide-1"}, PROVIDER_SECRET)
        sent = time.time()
        assert (await post(f"{urls[0]}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 20
        for url in urls:  # the provider retries to both replicas
            assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["duplicate"]
        await wait_for(lambda: all(w.orders(k) for k in many), timeout=20)
        last = max(w.orders(k)[0].time for k in many)
        await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'done'") == [(20,)])
        for service in engines.values():
            await service.settle()
        with capsys.disabled():
            print(f"\nfan-out: signal -> last of 20 orders accepted by the simulator in {last - sent:.3f} s")
        monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
        capsys.readouterr()
        assert main(["cluster", "status", "--store", pg_dsn, "--format", "json"]) == 0
        status = json.loads(capsys.readouterr().out)
    assert {k: len(w.orders(k)) for k in many} == {k: 1 for k in many}
    keys = {k["key"]: k for k in status["keys"]}
    assert sorted(keys) == sorted(many)
    for row in keys.values():
        assert row["epoch"] == 1 and row["holder"] and row["deliveries"] == {"pending": 0, "taken": 0, "done": 1,
                                                                             "expired": 0}
        assert row["lag"]["p50"] is not None and row["lag"]["p50"] < 20
    assert status["ok"] is True and status["totals"]["done"] == 20
    assert main(["cluster", "status", "--store", pg_dsn]) == 0
    text = capsys.readouterr().out
    assert "acct-01" in text and "acct-20" in text and "20 keys" in text


async def test_intake_and_engine_carry_on_after_a_database_crash_restart(tmp_path, fanout_sim, many,
                                                                         monkeypatch) -> None:
    from pg_harness import PgServer

    from rules_engine.service import intake as intake_module

    monkeypatch.setattr(intake_module, "IDLE_CHECK", 0.0)  # ping every pooled connection before use
    with PgServer.start() as server:  # its own server: this test crashes it
        w = FanoutWorld(tmp_path, server, server.create_database("fanout"), fanout_sim, {"acct-01": many["acct-01"]})
        async with w.intakes(1) as (url,), w.engines():
            body, headers = signed({"action": "buy", "qty": 0.01, "id": "before"}, PROVIDER_SECRET)
            assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[0] == 200
            await wait_for(lambda: len(w.orders("acct-01")) == 1, timeout=10)
            server.restart_immediate()  # every connection dies: the intake's pool, the engine's, its LISTEN
            body, headers = signed({"action": "buy", "qty": 0.01, "id": "after"}, PROVIDER_SECRET)
            status, answer = await post(f"{url}/signals/{PROVIDER}", body, headers)
            assert (status, answer["duplicate"]) == (200, False)  # the pool reconnected; no 500 for the provider
            # the engine claims again (its NOTIFY listener is re-made; the 1 s poll covers the gap)
            await wait_for(lambda: len(w.orders("acct-01")) == 2, timeout=15)
            await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'done'") == [(2,)],
                           timeout=10)


async def test_a_fenced_engine_takes_no_delivery_and_the_next_holder_decides_it_once(
        tmp_path, pg_server, pg_dsn, fanout_sim, many) -> None:
    from rules_engine.pgstore import acquire_lease

    w = FanoutWorld(tmp_path, pg_server, pg_dsn, fanout_sim, {"acct-01": many["acct-01"]})
    async with w.intakes(1) as (url,):
        async with w.engines() as engines:
            acquire_lease(w.settings("acct-01"), "another engine")  # what a second engine does at its start
            body, headers = signed({"action": "buy", "qty": 0.01, "id": "fenced-1"}, PROVIDER_SECRET)
            assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 1
            consumer_stopped = lambda: any("fenced" in p["reason"]  # noqa: E731
                                           for p in engines["acct-01"].visibility.readyz()["problems"])
            await wait_for(consumer_stopped, timeout=10)
            await engines["acct-01"].settle()
            assert w.rows("SELECT status FROM fanout_deliveries") == [("pending",)]  # the fenced engine took nothing
            assert w.orders("acct-01") == []
        async with w.engines():  # the next holder of the key
            await wait_for(lambda: w.orders("acct-01"), timeout=10)
            await wait_for(lambda: w.rows("SELECT status, taken_epoch FROM fanout_deliveries") == [("done", 3)])
    assert len(w.orders("acct-01")) == 1
