"""The fan-out intake against a real PostgreSQL: a verified signal is stored with one delivery
per subscribed account in one transaction and answered 200 only after the commit; a retry, to
any replica and under any of the signal's ids, answers 200 as a duplicate and writes nothing;
a refused signal writes nothing; a replica killed mid-request leaves no rows or all of them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from decimal import Decimal

import aiohttp
import pytest
from e2e_harness import post, signed
from fanout_harness import PROVIDER, PROVIDER_SECRET, FanoutWorld
from pg_harness import free_port

from rules_engine import jsoncodec
from rules_engine.pgstore.fanout import DeliveryClaimer
from rules_engine.sim import Account

pytestmark = pytest.mark.cluster

KEYS = ["acct-1", "acct-2", "acct-3"]


def world(tmp_path, pg_server, pg_dsn, sim=None, **options) -> FanoutWorld:
    accounts = {key: Account.generate() for key in KEYS}
    return FanoutWorld(tmp_path, pg_server, pg_dsn, sim, accounts,  # type: ignore[arg-type]
                       sizing={"acct-1": {"scale": 1}, "acct-2": {"scale": 0.5, "max_volume": 2},
                               "acct-3": {}}, **options)


def counts(w: FanoutWorld) -> tuple[int, int, int]:
    (signals,), = w.rows("SELECT count(*) FROM fanout_signals")
    (ids,), = w.rows("SELECT count(*) FROM fanout_signal_ids")
    (deliveries,), = w.rows("SELECT count(*) FROM fanout_deliveries")
    return int(signals), int(ids), int(deliveries)


async def test_a_signal_is_stored_once_with_a_delivery_per_account_and_retries_are_duplicates(
        tmp_path, pg_server, pg_dsn) -> None:
    w = world(tmp_path, pg_server, pg_dsn)
    async with w.intakes(2) as urls:
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "sig-1"}, PROVIDER_SECRET)
        answers = [await post(f"{urls[i % 2]}/signals/{PROVIDER}", body, headers) for i in range(3)]
        assert answers[0] == (200, {"ok": True, "signal_id": "sig-1", "duplicate": False, "deliveries": 3})
        assert answers[1] == answers[2] == (200, {"ok": True, "signal_id": "sig-1", "duplicate": True,
                                                  "deliveries": 0})
        assert counts(w) == (1, 2, 3)  # the id and the MAC id; one delivery per account
        # the same signed request under another X-Signal-Id header (not covered by the MAC): still the same signal
        status, answer = await post(f"{urls[1]}/signals/{PROVIDER}", body, {**headers, "X-Signal-Id": "other"})
        assert (status, answer["duplicate"], answer["signal_id"]) == (200, True, "sig-1")
        # concurrent retries of a new signal to both replicas: one stores it, every other answer is a duplicate
        body2, headers2 = signed({"action": "buy", "qty": 0.02}, PROVIDER_SECRET)
        results = await asyncio.gather(*[post(f"{urls[i % 2]}/signals/{PROVIDER}", body2, headers2)
                                         for i in range(6)])
        assert [a["duplicate"] for _, a in results].count(False) == 1
        assert {a["signal_id"] for _, a in results} == {results[0][1]["signal_id"]}
        assert results[0][1]["signal_id"].startswith("mac:")  # no id: the digest of body and timestamp
        assert counts(w) == (2, 3, 6)
        rows = w.rows("SELECT key_id, status, account, expires_at - created_at FROM fanout_deliveries "
                      "WHERE signal_id = 'sig-1' ORDER BY key_id")
        assert [(r[0], r[1]) for r in rows] == [(k, "pending") for k in KEYS]
        assert [jsoncodec.loads(r[2]) for r in rows] == [{"scale": 1}, {"scale": Decimal("0.5"), "max_volume": 2}, {}]
        assert {r[3].total_seconds() for r in rows} == {30.0}  # the provider's max_age (default 30 s)
        (intake,), = w.rows("SELECT intake FROM fanout_signals WHERE signal_id = 'sig-1'")
        assert intake == "intake-1"


async def test_refused_signals_write_nothing(tmp_path, pg_server, pg_dsn) -> None:
    w = world(tmp_path, pg_server, pg_dsn)
    async with w.intakes(1) as (url,):
        body, headers = signed({"action": "buy", "qty": 1}, "not-the-secret")
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[0] == 401
        body, headers = signed({"action": "buy"}, PROVIDER_SECRET, timestamp=time.time() - 3600)
        status, answer = await post(f"{url}/signals/{PROVIDER}", body, headers)
        assert (status, answer["error"]) == (401, "stale_timestamp")
        body, headers = signed({"action": "buy", "account": {"scale": 100}}, PROVIDER_SECRET)
        status, answer = await post(f"{url}/signals/{PROVIDER}", body, headers)
        assert (status, answer["error"]) == (422, "reserved_field")
        assert (await post(f"{url}/signals/nobody", body, headers))[0] == 404
        assert counts(w) == (0, 0, 0)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
            health = await response.json()
        assert response.status == 200 and health["ok"]
        assert health["counts"]["rejected"] == 4 and health["counts"]["accepted"] == 0
        assert pg_server.password not in str(health)


def _start_intake(w: FanoutWorld, crash_at: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, **w.environ, "RULES_ENGINE_CRASH_AT": crash_at}
    process = subprocess.Popen(
        [sys.executable, "-m", "rules_engine", "intake", "--subscriptions", str(w.subscriptions_file),
         "--store", w.dsn, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until ready (or the process ended)
    assert "ready on" in line, process.stderr.read() if process.stderr else line
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(("point", "stored"), [("intake.before_commit", False), ("intake.after_commit", True)])
async def test_an_intake_killed_mid_request_leaves_no_rows_or_all_rows(tmp_path, pg_server, pg_dsn, point,
                                                                       stored) -> None:
    w = world(tmp_path, pg_server, pg_dsn)
    process, url = await asyncio.to_thread(_start_intake, w, point)
    try:
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "sig-k"}, PROVIDER_SECRET)
        with pytest.raises(aiohttp.ClientError):  # killed before it could answer
            await post(f"{url}/signals/{PROVIDER}", body, headers)
        assert await asyncio.to_thread(process.wait, 10) == -9
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert counts(w) == ((1, 2, 3) if stored else (0, 0, 0))  # one transaction: all of it or none of it
    async with w.intakes(1) as (again,):  # the provider retries: the signal is stored once either way
        status, answer = await post(f"{again}/signals/{PROVIDER}", body, headers)
    assert (status, answer["duplicate"], answer["deliveries"]) == (200, stored, 0 if stored else 3)
    assert counts(w) == (1, 2, 3)


def test_two_consumers_of_one_key_never_take_a_delivery_twice(tmp_path, pg_server, pg_dsn) -> None:
    """SKIP LOCKED contention: two claimers of the same key (the same epoch) in two threads take
    every delivery exactly once between them."""
    from concurrent.futures import ThreadPoolExecutor

    from rules_engine.pgstore.connection import connect
    from rules_engine.pgstore.fanout import store_signal

    w = world(tmp_path, pg_server, pg_dsn)
    conn = connect(w.settings())
    try:
        for n in range(200):
            store_signal(conn, PROVIDER, f"s{n}", [], {"n": n}, {"acct-1": {}, "acct-2": {}}, 30.0, "test")
    finally:
        conn.close()
    claimers = [DeliveryClaimer(w.settings("acct-1"), None) for _ in range(2)]
    start = time.monotonic()

    def drain(claimer: DeliveryClaimer) -> list[str]:
        got: list[str] = []
        while time.monotonic() - start < 30:
            taken, expired = claimer.claim(time=time.time(), limit=3)
            assert expired == []
            if not taken:
                return got
            got.extend(t.signal_id for t in taken)
        raise AssertionError("not drained")

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(drain, claimers)
    for claimer in claimers:
        claimer.close()
    assert first and second  # both took some (they ran side by side)
    assert sorted(first + second) == sorted(f"s{n}" for n in range(200)) and not set(first) & set(second)
    inbox = w.rows("SELECT count(*), count(DISTINCT signal_id) FROM signal_inbox WHERE key_id = 'acct-1'")
    assert inbox == [(200, 200)]
    assert w.rows("SELECT status, count(*) FROM fanout_deliveries GROUP BY status ORDER BY status") == [
        ("pending", 200), ("taken", 200)]  # acct-2's are untouched


async def test_cluster_status_is_degraded_while_deliveries_wait_for_a_key_no_engine_holds(
        tmp_path, pg_server, pg_dsn, capsys, monkeypatch) -> None:
    from rules_engine.cli import main
    from rules_engine.pgstore import acquire_lease

    w = world(tmp_path, pg_server, pg_dsn)
    acquire_lease(w.settings("acct-1"), "host-a:1")
    async with w.intakes(1) as (url,):
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "wait-1"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 3
    monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
    assert main(["cluster", "status", "--store", pg_dsn]) == 1
    text = capsys.readouterr().out
    assert "3 keys, 1 held; deliveries pending 3, taken 0, done 0, expired 0" in text
    assert "problem: key acct-2: 1 deliveries but no engine has ever held the key" in text
    assert "host-a:1" in text and pg_server.password not in text
    assert main(["cluster", "status", "--store", pg_dsn, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    held = next(k for k in report["keys"] if k["key"] == "acct-1")
    assert held["epoch"] == 1 and held["lease"]["age"] >= 0 and held["deliveries"]["pending"] == 1
    assert len(report["problems"]) == 2
    assert main(["cluster", "status", "--store", "postgresql://engine:pw@127.0.0.1/x"]) == 2  # a password in the URL
    assert "holds a password" in capsys.readouterr().err


async def test_cluster_prune_deletes_old_signals_whose_deliveries_are_all_final(tmp_path, pg_server, pg_dsn,
                                                                                capsys, monkeypatch) -> None:
    from rules_engine.cli import main

    w = world(tmp_path, pg_server, pg_dsn)
    async with w.intakes(1) as (url,):
        old, headers_old = signed({"action": "buy", "qty": 0.01, "id": "old-done"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", old, headers_old))[1]["deliveries"] == 3
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "old-waiting"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 3
        body, headers = signed({"action": "buy", "qty": 0.01, "id": "recent"}, PROVIDER_SECRET)
        assert (await post(f"{url}/signals/{PROVIDER}", body, headers))[1]["deliveries"] == 3
        w.rows("UPDATE fanout_deliveries SET status = CASE WHEN key_id = 'acct-1' THEN 'expired' ELSE 'done' END "
               "WHERE signal_id IN ('old-done', 'recent') RETURNING 1")
        w.rows("UPDATE fanout_deliveries SET status = 'done' WHERE signal_id = 'old-waiting' AND key_id = 'acct-1' "
               "RETURNING 1")
        w.rows("UPDATE fanout_signals SET received_at = now() - interval '10 days' WHERE signal_id LIKE 'old-%%' "
               "RETURNING 1")
        monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
        assert main(["cluster", "prune", "--store", pg_dsn, "--older-than", "7d"]) == 0
        assert "pruned 1 signal(s) and 3 deliveries older than 7d" in capsys.readouterr().out
        assert sorted(r[0] for r in w.rows("SELECT signal_id FROM fanout_signals")) == ["old-waiting", "recent"]
        assert w.rows("SELECT count(*) FROM fanout_deliveries WHERE signal_id = 'old-done'") == [(0,)]
        assert w.rows("SELECT count(*) FROM fanout_signal_ids WHERE signal_id = 'old-done'") == [(0,)]
        assert counts(w) == (2, 4, 6)
        assert main(["cluster", "prune", "--store", pg_dsn, "--older-than", "soon"]) == 2
        assert "not a duration" in capsys.readouterr().err
