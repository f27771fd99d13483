"""The worker's status page, `/api/status` and kill switch over real HTTP, on a real PostgreSQL with
the simulator: one cell holds its key, the other stands by (another engine holds its key). The page
shows every cell (API key fingerprint, never the key or secret; state, epoch, lease holder, last
decision) and the cluster with a degraded key marked; `POST /kill?key=K` engages one cell with the
worker's token or that cell's own (not another cell's), `POST /kill` every cell (worker token only),
each holding cell's change in its key's audit chain, a standing-by cell's in its kill file, obeyed
and recorded in its key's chain once it takes the key; `/kill/clear` clears them."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml
from e2e_harness import FAST_FEED, get, wait_for
from test_worker_inprocess import orders, sim2, two, write  # noqa: F401 - fixtures

from rules_engine.cli import main
from rules_engine.pgstore import StoreSettings, export_jsonl
from rules_engine.pgstore.lease import LeaseSession
from rules_engine.service.worker import Worker
from rules_engine.service.worker_config import load_worker_config
from rules_engine.sim import Account, Simulator

pytestmark = pytest.mark.cluster

TOKENS = {"worker": "worker-admin-token-0123456789", "k1": "k1-admin-token-0123456789",
          "k2": "k2-admin-token-0123456789"}
OTHER = "other-worker:77"


def configure(tmp: Path, dsn: str, password: str, sim: Simulator,
              accounts: dict[str, Account]) -> tuple[Path, dict[str, str]]:
    """`test_worker_inprocess`'s two cells, with a kill switch token for the worker and one per cell."""
    path, env = write(tmp, dsn, password, sim, accounts)
    for key in ("k1", "k2"):
        engine = tmp / f"engine-{key}.yaml"
        engine.write_text(yaml.safe_dump({**yaml.safe_load(engine.read_text()),
                                          "kill_switch": {"token_env": f"{key.upper()}_ADMIN"}}))
        env[f"{key.upper()}_ADMIN"] = TOKENS[key]
    worker = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**worker, "kill_switch": {"token_env": "WORKER_ADMIN"}}))
    env["WORKER_ADMIN"] = TOKENS["worker"]
    return path, env


async def call(method: str, url: str, token: str | None = None, body: dict[str, Any] | None = None
               ) -> tuple[int, dict[str, Any]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, json=body, headers=headers) as answer:
            return answer.status, await answer.json()


def chain(dsn: str, password: str, key: str, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / f"{key}-chain.jsonl"
    export_jsonl(StoreSettings(dsn, key, password), out)
    return [json.loads(line) for line in out.read_text().splitlines()]


async def test_the_worker_status_page_and_kill_switch_over_http(tmp_path, pg_server, pg_dsn, sim2, two,  # noqa: F811
                                                                 monkeypatch, capsys) -> None:
    path, env = configure(tmp_path, pg_dsn, pg_server.password, sim2, two)
    other = LeaseSession(StoreSettings(pg_dsn, "k2", pg_server.password), OTHER, ttl=60.0)
    assert other.try_take() is not None  # another worker holds k2: this worker's k2 cell stands by
    with psycopg.connect(pg_dsn, password=pg_server.password, autocommit=True) as conn:  # a key nobody holds
        conn.execute("INSERT INTO fanout_deliveries (key_id, provider, signal_id, status, account, created_at, "
                     "expires_at) VALUES ('k9', 'p', 's1', 'pending', '{}', now(), now() + interval '1 hour')")
    worker = Worker(load_worker_config(path), cli_live=True, port=0, environ=env,
                    cell_options={"feed_options": FAST_FEED, "reload_interval": None, "kill_poll_interval": 0.2,
                                  "snapshot_interval": 0.2, "drain_timeout": 5.0})
    url = f"http://127.0.0.1:{await worker.start()}"
    try:
        await wait_for(lambda: worker.cells["k1"].state == "holding" and worker.cells["k2"].state == "standby",
                       timeout=30)
        await wait_for(lambda: worker.cells["k1"].service.health()["feeds"]["spot"]["subscribed"] >= 1, timeout=10)
        service = worker.cells["k1"].service
        sim2.set_price("XBTUSD", Decimal("69500"))
        await wait_for(lambda: service.metrics.ticks.labels("spot")._value.get() >= 1, timeout=10)
        await service.settle()
        sim2.set_price("XBTUSD", Decimal("71000"))  # k1's rule fires: its last decision
        await wait_for(lambda: orders(sim2, two["k1"]), timeout=10)
        await service.settle()

        status, doc = await get(url + "/api/status")
        assert status == 200 and doc["kind"] == "worker" and doc["holding"] == ["k1"] and doc["uptime"] > 0
        cells = {c["key"]: c for c in doc["cells"]}
        k1, k2 = cells["k1"], cells["k2"]
        assert (k1["state"], k1["epoch"], k1["holder_epoch"]) == ("holding", 1, 1) and k1["lease_age"] is not None
        assert k1["last_decision"]["decision_id"] == "up#1" and k1["why_not_ready"] is None
        assert (k2["state"], k2["epoch"], k2["holder"]) == ("standby", None, OTHER)
        assert f"held by {OTHER}" in k2["why_not_ready"]
        assert doc["feeds"]["spot"]["connected"]
        [cluster] = doc["clusters"]
        marked = {row["key"]: row["problem"] for row in cluster["keys"]}
        assert marked["k1"] is None and "k9: 1 deliveries but no engine has ever held the key" in marked["k9"]
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["status", "--url", url]) == 0  # `rules-engine status` on a worker
        out = capsys.readouterr().out
        assert "holding 1 of 2 keys" in out and f"{OTHER} (epoch 1)" in out and "problem: key k9" in out
        status, page = await get(url + "/")
        assert status == 200 and "rules-engine worker" in page
        assert 'data-key="k1" data-state="holding"' in page and 'data-key="k2" data-state="standby"' in page
        assert 'class="degraded"' in page and 'data-key="k9"' in page
        assert f'<span id="health" class="badge {doc["health"]}">' in page and '<span id="holding">1 of 2</span>' in page
        status, live = await get(url + "/?part=live")  # what the page swaps in every 2 s; the header follows it
        assert status == 200 and f'<span id="live-health" class="badge {doc["health"]}">{doc["health"]}<' in live
        assert '<span id="live-holding">1 of 2</span>' in live
        for key in ("k1", "k2"):
            assert k1["fingerprint"] != k2["fingerprint"] and cells[key]["fingerprint"] in page
            assert two[key].api_key not in page and two[key].secret not in page
        assert all(token not in page for token in TOKENS.values())

        # one cell: its own token or the worker's; never another cell's
        assert (await call("POST", url + "/kill?key=k1", TOKENS["k2"]))[0] == 401
        assert (await call("POST", url + "/kill", TOKENS["k1"]))[0] == 401
        assert (await call("POST", url + "/kill?key=nope", TOKENS["worker"]))[0] == 404
        status, answer = await call("POST", url + "/kill?key=k1", TOKENS["k1"], {"reason": "k1 drill"})
        assert status == 200 and list(answer["cells"]) == ["k1"] and answer["kill_switch"]["engaged"]
        assert "warning" not in answer  # k1 is held here: nothing trades on
        assert service.kill_switch.engaged and not (tmp_path / "state" / "k2" / "KILL").exists()
        assert (tmp_path / "state" / "k1" / "KILL").exists()  # its KILL file: it survives a restart
        # every cell: the worker's token
        status, answer = await call("POST", url + "/kill", TOKENS["worker"], {"reason": "all stop", "source": "ops"})
        assert status == 200 and all(answer["cells"][k]["engaged"] for k in ("k1", "k2"))
        assert (tmp_path / "state" / "k2" / "KILL").exists()  # k2 stands by: its kill file
        # ... while k2's holder (another engine) trades on: the answer (and `rules-engine kill`) says so
        assert answer["warning"].startswith("cell k2 does not hold its key here: its holder trades on")
        status, answer = await call("GET", url + "/kill", TOKENS["worker"])
        assert answer["cells"]["k2"]["reason"] == "all stop"
        status, doc = await get(url + "/api/status")
        assert all(c["kill_switch"]["engaged"] for c in doc["cells"])
        def switched() -> list[tuple[str, str]]:  # trace records: committed by the audit chain's group commit
            records = [r for r in chain(pg_dsn, pg_server.password, "k1", tmp_path) if r["kind"] == "kill_switch"]
            return [(r["data"]["reason"], r["data"]["source"]) for r in records]

        await wait_for(lambda: len(switched()) >= 2, timeout=10)
        assert switched() == [("k1 drill", "http 127.0.0.1"), ("all stop", "http 127.0.0.1 (ops)")]

        other.release(1)  # the other worker goes: k2's cell takes its key, killed from its first moment
        other.close()
        await wait_for(lambda: worker.cells["k2"].state == "holding", timeout=20)
        assert worker.cells["k2"].service.kill_switch.engaged
        await worker.cells["k2"].service.settle()
        blocked = [r for r in chain(pg_dsn, pg_server.password, "k2", tmp_path)
                   if r["kind"] == "blocked" and r["data"].get("kill_switch") == "engaged"]
        assert blocked and blocked[0]["data"]["reason"] == "all stop"

        status, answer = await call("POST", url + "/kill/clear", TOKENS["worker"])
        assert status == 200 and not any(s["engaged"] for s in answer["cells"].values())
        assert not (tmp_path / "state" / "k2" / "KILL").exists()
        await wait_for(lambda: not worker.cells["k2"].service.kill_switch.engaged, timeout=5)

        # `rules-engine kill --url` on a worker: one cell with --key, every cell without
        monkeypatch.setenv("RULES_ENGINE_ADMIN_TOKEN", TOKENS["k2"])
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["kill", "--url", url, "--key", "k2", "--reason", "cli drill"]) == 0
        assert capsys.readouterr().out.startswith("kill switch: ENGAGED")
        assert worker.cells["k2"].service.kill_switch.state.reason == "cli drill"
        assert await asyncio.to_thread(main, ["kill", "--url", url, "--status"]) == 1  # a cell's token: one cell
        monkeypatch.setenv("RULES_ENGINE_ADMIN_TOKEN", TOKENS["worker"])
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["kill", "--url", url, "--status"]) == 0
        out = capsys.readouterr().out
        assert "cell k1: kill switch: clear" in out and "cell k2: kill switch: ENGAGED" in out
    finally:
        other.close()
        await worker.stop()
