"""A standby engine (`store: {standby: true}`) serves HTTP from its start, over real HTTP on a real
PostgreSQL: `/healthz` 200 (alive), `/readyz` 503 with the problem `standby` naming the key's
holder, a status page saying it stands by and who holds the key (and the cluster), signals
refused with 503, the kill switch engaged over HTTP while standing by kept through the takeover
and recorded in the key's audit chain; and two engines given one port on one machine: the
standby binds the port once it is free, standing by or not."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest
from e2e_harness import ADMIN_TOKEN, E2E, get, post, signed, wait_for
from pg_harness import PgServer, free_port

from rules_engine.cli import main
from rules_engine.pgstore import StoreSettings, export_jsonl
from rules_engine.pgstore.lease import LeaseSession
from rules_engine.rules import load_rules
from rules_engine.service.app import EngineService
from rules_engine.service.killswitch import KillSwitchFile

pytestmark = pytest.mark.cluster

RULE = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: log, message: up}]
- id: tv
  triggers: [{type: signal, source: mybot}]
  actions: [{type: log, message: signal}]
"""
HOLDER = "other-host:4242"


def standby_config(e2e: E2E, pg: PgServer, dsn: str, **extra: Any) -> dict[str, Any]:
    e2e.write_rules(RULE)
    e2e.environ["RULES_ENGINE_STORE_PASSWORD"] = pg.password
    return {"store": {"url": dsn, "key": "main", "standby": True, "exclusive": True, "lease_ttl": "2s"}, **extra}


def hold_key(server: PgServer, dsn: str) -> LeaseSession:
    """Another engine holds the key (a live session: its lease is not taken until released)."""
    session = LeaseSession(StoreSettings(dsn, "main", server.password), HOLDER, ttl=60.0)
    lease = session.try_take()
    assert lease is not None and lease.epoch == 1
    return session


async def kill(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/kill", json=body, headers={"Authorization": f"Bearer {token}"}) as answer:
            return answer.status, await answer.json()


async def status_until(url: str, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, doc = await get(url + "/api/status")
        if status == 200 and predicate(doc):
            return doc
        assert asyncio.get_running_loop().time() < deadline, doc
        await asyncio.sleep(0.1)


async def test_a_standby_serves_http_from_its_start_and_the_same_port_after_its_takeover(
        e2e, pg_server, pg_dsn, tmp_path, capsys) -> None:
    holder = hold_key(pg_server, pg_dsn)
    service: EngineService = e2e.service(**standby_config(e2e, pg_server, pg_dsn))
    starting = asyncio.ensure_future(service.start())
    try:
        await wait_for(lambda: service.port, timeout=15)
        url = f"http://127.0.0.1:{service.port}"
        status, health = await get(url + "/healthz")
        assert status == 200 and health["ok"] is True and health["ready"] is False
        rules = load_rules([e2e.rules_dir]).ruleset
        assert rules is not None and health["rules_loaded"] == len(rules.rules) > 0  # checked while standing by (was 0)
        await wait_for(lambda: "other-host" in str(service.visibility.readyz()), timeout=10)
        status, ready = await get(url + "/readyz")
        assert status == 503 and ready["status"] == "not_ready"
        problem = next(p for p in ready["problems"] if p["name"] == "standby")
        assert f"held by {HOLDER} (epoch 1)" in problem["reason"]
        status, page = await get(url + "/")
        assert status == 200 and "standing by" in page and HOLDER in page and 'id="cluster"' in page
        status, doc = await get(url + "/api/status")
        assert doc["health"] == "standby" and doc["standby"]["holder"] == HOLDER
        assert [k["key"] for k in doc["cluster"]["keys"]] == ["main"] and doc["cluster"]["keys"][0]["epoch"] == 1
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["status", "--url", url]) == 1  # standing by: not healthy
        out = capsys.readouterr().out
        assert f"standing by for key main: held by {HOLDER} (epoch 1)" in out and "  main " in out
        raw, headers = signed({"id": "s-1", "action": "buy"})
        status, refused = await post(url + "/signals/mybot", raw, headers)
        assert status == 503 and refused["error"] == "standby"
        assert (await kill(url, "wrong-token-0123456789", {}))[0] == 401
        status, engaged = await kill(url, ADMIN_TOKEN, {"reason": "drill while standing by"})
        assert status == 200 and engaged["kill_switch"]["engaged"]
        assert engaged["warning"].startswith("this engine stands by: the key's holder trades on")  # engage it there too
        assert (e2e.state_dir / "KILL").exists()
        assert not starting.done()  # still standing by
        port = service.port
        holder.release(1)  # the holder stops: the standby takes the key over
        holder.close()
        assert await asyncio.wait_for(starting, 20) == port  # the same port as while standing by
        await wait_for(lambda: all(p["name"] != "standby" for p in service.visibility.readyz()["problems"]))
        doc = await status_until(url, lambda d: d["cluster"]["keys"][0]["epoch"] == 2)  # read at most once a second
        assert "standby" not in doc and doc["kill_switch"]["engaged"] and doc["cluster"]["keys"][0]["holder"] != HOLDER
        await service.settle()
    finally:
        holder.close()
        if not starting.done():
            starting.cancel()
        await service.stop()
    export_jsonl(StoreSettings(pg_dsn, "main", pg_server.password), tmp_path / "main.jsonl")
    records = [json.loads(line) for line in (tmp_path / "main.jsonl").read_text().splitlines()]
    blocked = [r for r in records if r["kind"] == "blocked" and r["data"].get("kill_switch") == "engaged"]
    assert [r["data"]["reason"] for r in blocked] == ["drill while standing by"]  # once, as at any start


async def test_a_standby_whose_port_is_in_use_binds_it_once_free(e2e, pg_server, pg_dsn, monkeypatch) -> None:
    port = free_port()
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.bind(("127.0.0.1", port))
    other.listen()  # the key's other engine on this machine, on the same port
    holder = hold_key(pg_server, pg_dsn)
    config = standby_config(e2e, pg_server, pg_dsn, server={"host": "127.0.0.1", "port": port})
    service: EngineService = e2e.service(**config)
    starting = asyncio.ensure_future(service.start())
    try:
        await asyncio.sleep(0)
        await wait_for(lambda: service._http is not None, timeout=15)
        assert service.port is None and not starting.done()  # standing by, not refusing to start
        assert not service.http_bound  # `run` does not claim to listen
        other.close()  # the other engine stops
        await wait_for(lambda: service.port == port, timeout=5)
        assert service.http_bound
        status, ready = await get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and any(p["name"] == "standby" for p in ready["problems"])
        # `rules-engine kill` writes the KILL file while it stands by: obeyed from its takeover's first
        # moment (read again then, not only by the file watch, which this test turns off)
        async def no_watch(self: KillSwitchFile, *args: Any, **kwargs: Any) -> None:
            return None
        monkeypatch.setattr(KillSwitchFile, "watch", no_watch)
        assert main(["kill", "--state-dir", str(e2e.state_dir), "--reason", "cli while standing by"]) == 0
        holder.release(1)
        holder.close()
        assert await asyncio.wait_for(starting, 20) == port
        assert service.health()["kill_switch"]["engaged"] and service.engine.snapshot()["kill_switch"]["engaged"]
    finally:
        other.close()
        holder.close()
        if not starting.done():
            starting.cancel()
        await service.stop()
