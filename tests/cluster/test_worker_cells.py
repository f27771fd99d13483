"""Many key cells in one worker process (`rules-engine worker`), two workers on the same keys,
a real PostgreSQL, the simulator in the test's process and two intake replicas in it: one signal
to every key, POSTed 3 times, one worker killed with SIGKILL mid-fan-out. Exactly one decision and
exactly one order per key: where the kill fell between a decision's commit and its request reaching
the exchange, the key's next holder proves it never placed and sends it (`execution.resend`); the
surviving worker takes over the dead worker's keys (issue 13, T5, with KEYS keys: see README
"Running more than one engine" for why not 300 here, and `bench/worker_fanout.py` for larger numbers)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from e2e_harness import post, signed, wait_for
from fanout_harness import PROVIDER, PROVIDER_SECRET, FanoutWorld
from worker_harness import WorkerProcess, write_worker_config

from rules_engine.cli import main
from rules_engine.pgstore import export_lines
from rules_engine.sim import Account, SimConfig, Simulator

pytestmark = pytest.mark.cluster

KEYS = 20


@pytest.fixture
def accounts() -> dict[str, Account]:
    return {f"acct-{n:03d}": Account.generate({"ZUSD": "100000", "XXBT": "1"}) for n in range(1, KEYS + 1)}


@pytest.fixture
def worker_sim(accounts) -> Iterator[Simulator]:
    simulator = Simulator(SimConfig(accounts=list(accounts.values()), prices={"XBTUSD": "69000"}, tick_interval=0,
                                    heartbeat_interval=0.5))
    with simulator.running("127.0.0.1", 0):
        yield simulator


def audit_records(w: FanoutWorld, key: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in (json.loads(line) for line in export_lines(w.settings(key))) if r["kind"] == kind]


def settled(w: FanoutWorld) -> dict[str, tuple[str, str]]:
    """Each key's order decisions that reached a final status: key -> (cl_ord_id, status)."""
    rows = w.rows("SELECT key_id, cl_ord_id, status FROM decisions WHERE status NOT IN ('pending', 'sent', 'unknown')")
    return {key: (cl_ord_id, status) for key, cl_ord_id, status in rows}


async def test_one_signal_to_many_keys_over_two_workers_one_killed_mid_fan_out(
        tmp_path, pg_server, pg_dsn, worker_sim, accounts, capsys, monkeypatch) -> None:
    w = FanoutWorld(tmp_path, pg_server, pg_dsn, worker_sim, accounts)
    config, env = write_worker_config(w, accounts)
    env = {**env, "RULES_ENGINE_STORE_PASSWORD": pg_server.password}
    workers = [WorkerProcess(name, config, env, tmp_path / name) for name in ("worker-a", "worker-b")]
    try:
        for worker in workers:
            await wait_for(worker.listening, timeout=30)
        # every key held by one of the two workers (they race for each key; the other stands by for it)
        await wait_for(lambda: sum(len(worker.holding()) for worker in workers) == KEYS, timeout=40)
        held = {worker.name: worker.holding() for worker in workers}
        assert not set(held["worker-a"]) & set(held["worker-b"])
        victim, survivor = sorted(workers, key=lambda worker: -len(worker.holding()))
        victim_keys = victim.holding()
        assert victim_keys  # it holds some keys: killing it leaves work for the survivor
        async with w.intakes(2) as urls:
            body, headers = signed({"action": "buy", "qty": 0.001, "id": "wide-t5"}, PROVIDER_SECRET)
            sent = time.time()
            answers = [await post(f"{urls[i % 2]}/signals/{PROVIDER}", body, headers) for i in range(3)]
            assert [a["duplicate"] for _, a in answers] == [False, True, True]
            assert answers[0][1]["deliveries"] == KEYS
            await wait_for(lambda: any(w.orders(k) for k in accounts), timeout=20)
            victim.process.send_signal(signal.SIGKILL)  # mid-fan-out: after the first order
            victim.process.wait(10)
            placed_at_kill = sum(1 for k in accounts if w.orders(k))
            await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'done'")
                           == [(KEYS,)], timeout=40)
            await wait_for(lambda: len(settled(w)) == KEYS, timeout=20)
            last = max(w.orders(k)[0].time for k in accounts if w.orders(k))
            await wait_for(lambda: survivor.holding() == sorted(accounts), timeout=30)
        report = (f"\nworker fan-out ({KEYS} keys over 2 workers, {len(victim_keys)} on the killed one, "
                  f"{placed_at_kill} orders placed at the kill): signal -> last order accepted {last - sent:.3f} s")
        ready = survivor.readyz()
        assert {c["key"]: c["state"] for c in ready["cells"]} == {k: "holding" for k in accounts}
        metrics = requests.get(f"{survivor.url}/metrics", timeout=5).text
        assert f'rules_engine_worker_cells{{state="holding"}} {float(KEYS)}' in metrics
        assert all(f'rules_engine_rules_loaded{{key="{k}"}} 1.0' in metrics for k in accounts)  # every cell's
    finally:
        for worker in workers:
            worker.stop()
    statuses = settled(w)
    assert sorted(statuses) == sorted(accounts)
    decisions = w.rows("SELECT key_id, cl_ord_id, decision_id FROM decisions")
    assert sorted(k for k, _, _ in decisions) == sorted(accounts)  # exactly one decision per key
    assert len({c for _, c, _ in decisions}) == KEYS  # client order ids differ across keys
    assert {k: c for k, c, _ in decisions} == {k: cl_ord_id for k, (cl_ord_id, _) in statuses.items()}
    # exactly one order per key, with its decision's client order id: placed by the first holder, or,
    # where the kill fell between the decision's commit and its request reaching the exchange, by the
    # key's next holder once proven never placed (see README "Running more than one engine")
    orders = {k: [o.cl_ord_id for o in w.orders(k)] for k in accounts}
    unplaced = [k for k in accounts if not orders[k]]
    if orders != {k: [statuses[k][0]] for k in accounts}:  # what became of a key without its order, in full
        pytest.fail("keys without their order: " + json.dumps({k: {
            "decisions": w.rows("SELECT status, outcome::text FROM decisions WHERE key_id = %s", k),
            "audit": [(r["kind"], r.get("seq"), r.get("data")) for r in (json.loads(line) for line in
                      export_lines(w.settings(k))) if r["kind"] not in ("trigger", "guard", "state")],
            "journal": [(e.time, e.method, e.cl_ord_id, e.accepted, e.error)
                        for e in worker_sim.journal.entries(key=accounts[k].api_key)],
        } for k in unplaced}, indent=1, default=str))
    assert all(status in ("accepted", "filled") for _, status in statuses.values()), statuses
    resent = {k for k in accounts if audit_records(w, k, "resent_after_proven_absent")}
    assert resent <= set(victim_keys)
    assert all(not audit_records(w, k, "abandoned") and not audit_records(w, k, "not_resent") for k in accounts)
    with capsys.disabled():
        print(f"{report}; decisions {len(decisions)}, orders {sum(len(o) for o in orders.values())}: "
              f"{len(resent)} committed before the kill and sent by the new holder")
    rejected = [e for k in accounts for e in worker_sim.journal.entries(key=accounts[k].api_key)
                if e.method == "AddOrder" and not e.accepted]
    assert rejected == []
    assert w.rows("SELECT count(*) FROM signal_inbox") == [(0,)]
    # every worker stopped: keys that receive signals have no holder now (leases released): degraded
    monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
    capsys.readouterr()
    forced = [x.name for x in workers if x.process.returncode != 0]  # the victim, and a stop that timed out
    # (SIGKILL after 30 s on a loaded machine): such a worker's leases lapse by their 2 s TTL, not at once
    deadline = time.monotonic() + (5 if len(forced) > 1 else 0)
    while True:
        assert main(["cluster", "status", "--store", pg_dsn]) == 1
        out = capsys.readouterr().out
        if "key acct-001: has deliveries but its lease expired" in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "key acct-001: has deliveries but its lease expired" in out, (out, forced)


async def test_decisions_committed_by_a_killed_worker_are_sent_once_by_the_next_holder(
        tmp_path, pg_server, pg_dsn, worker_sim, accounts, capsys) -> None:
    """Deterministic T5 kill: the worker holding every key is killed (`kill -9` at a crash point)
    right after committing its third decision, before that one's request leaves. The standby worker
    takes the keys, proves the committed decisions that never reached the exchange were not placed
    (after their deadline), and sends each once: exactly one decision and one order per key."""
    w = FanoutWorld(tmp_path, pg_server, pg_dsn, worker_sim, accounts)
    config, env = write_worker_config(w, accounts)
    env = {**env, "RULES_ENGINE_STORE_PASSWORD": pg_server.password}
    victim = WorkerProcess("worker-a", config, {**env, "RULES_ENGINE_CRASH_AT": "order.after_commit@3"},
                           tmp_path / "worker-a")
    survivor = None
    try:
        await wait_for(victim.listening, timeout=30)
        await wait_for(lambda: victim.holding() == sorted(accounts), timeout=40)
        survivor = WorkerProcess("worker-b", config, env, tmp_path / "worker-b")
        await wait_for(survivor.listening, timeout=30)
        await wait_for(lambda: survivor.readyz()["cells"] and all(
            c["state"] == "standby" for c in survivor.readyz()["cells"]), timeout=30)
        async with w.intakes(1) as urls:
            body, headers = signed({"action": "buy", "qty": 0.001, "id": "t5-commit-kill"}, PROVIDER_SECRET)
            answer = await post(f"{urls[0]}/signals/{PROVIDER}", body, headers)
            assert answer[1]["deliveries"] == KEYS
            assert await asyncio.to_thread(victim.process.wait, 30) == -signal.SIGKILL
            await wait_for(lambda: w.rows("SELECT count(*) FROM fanout_deliveries WHERE status = 'done'")
                           == [(KEYS,)], timeout=60)
            await wait_for(lambda: len(settled(w)) == KEYS, timeout=60)
    finally:
        victim.stop()
        if survivor is not None:
            survivor.stop()
    statuses = settled(w)
    decisions = w.rows("SELECT key_id, cl_ord_id FROM decisions")
    assert sorted(k for k, _ in decisions) == sorted(accounts)  # exactly one decision per key
    orders = {k: [o.cl_ord_id for o in w.orders(k)] for k in accounts}
    assert orders == {k: [statuses[k][0]] for k in accounts}  # exactly one order per key, its decision's
    resent = {k: audit_records(w, k, "resent_after_proven_absent") for k in accounts}
    resent = {k: records for k, records in resent.items() if records}
    assert resent, "the killed worker's last committed decision never left it: the next holder sent it"
    for k, records in resent.items():
        assert [r["data"]["cl_ord_id"] for r in records] == [statuses[k][0]]
        assert records[0]["data"]["age_s"] <= records[0]["data"]["bound_s"]
    with capsys.disabled():
        print(f"\nworker killed after its 3rd commit: {len(resent)} decision(s) committed by it and sent by the "
              f"next holder; decisions {len(decisions)}, orders {sum(len(o) for o in orders.values())}")
