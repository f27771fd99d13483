"""One API key, one engine: a second engine on this machine with the same key refuses to
start even with its own state dir, and repeated nonce refusals show in `/healthz`."""

from __future__ import annotations

import pytest

from e2e_harness import E2E, get, wait_for
from rules_engine.kraken.key_use import forget_conflicts
from rules_engine.service.startup import StartupError

RULE = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


async def test_a_second_engine_on_the_same_key_refuses_to_start(e2e: E2E) -> None:
    e2e.write_rules(RULE)
    live = {"cli_live": True, "mode": "live", "dead_man_switch": {"enabled": False}}
    async with e2e.running(**live):
        first_dir = e2e.state_dir
        e2e.state_dir = e2e.tmp / "other-state"
        with pytest.raises(StartupError, match="another rules-engine on this machine is using API key"):
            await e2e.service(True, mode="live", dead_man_switch={"enabled": False}).start()
        e2e.state_dir = first_dir
    e2e.state_dir = e2e.tmp / "other-state"
    async with e2e.running(**live) as (service, _, _):  # free again once the first one stopped
        assert service.health()["ok"]


async def test_nonce_refusals_name_the_other_client_in_healthz(e2e: E2E) -> None:
    e2e.write_rules(RULE)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, _, url):
        e2e.sim.faults.fail_next("Balance", "EAPI:Invalid nonce", count=3)
        spot = service.executor.inner.spot
        for _ in range(2):
            with pytest.raises(Exception):
                spot.balance()
        status, body = await get(url + "/healthz")
        assert status == 200
        assert any("another client is using API key" in p for p in body["problems"])
        status, ready = await get(url + "/readyz")
        assert status == 503 and any(p["name"] == "api_key_in_use" and "another client" in p["reason"]
                                     for p in ready["problems"])
        await wait_for(lambda: [r for r in e2e.audit_records("error") if r["data"].get("where") == "api key"])
        (record,) = [r for r in e2e.audit_records("error") if r["data"].get("where") == "api key"]
        assert "another client is using API key" in record["data"]["error"]
        forget_conflicts(spot.credentials.fingerprint)  # not a problem of later tests' engines
