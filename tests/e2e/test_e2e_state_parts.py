"""The service persists the core's state incrementally (only the rules a decision changed),
and what it persisted is the core's whole snapshot: at each fire, and at stop."""

from __future__ import annotations

import sqlite3

from e2e_harness import E2E, move, wait_for

from rules_engine import jsoncodec
from rules_engine.state import StateStore, database_path

RULES = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  cooldown: 1h
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
- id: down
  triggers: [{type: price, symbol: XBTUSD, crosses_below: 60000}]
  actions: [{type: log, message: "down {price}"}]
- id: eth
  triggers: [{type: price, symbol: ETHUSD, crosses_above: 3000}]
  actions: [{type: log, message: "eth {price}"}]
"""


def _plain(snapshot: dict) -> dict:
    return jsoncodec.loads(jsoncodec.dumps(snapshot))


async def test_each_fire_commits_its_rules_rows_and_a_restart_restores_the_whole_snapshot(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
        saved = service.store.load_engine_snapshot()  # committed before the order was sent
        assert saved["fire_seq"] == {"up": 1} and saved["watches"]["up#0"][1] == "disarmed"
        assert saved["rules"]["up"]["cooldown_until"] == service.engine.snapshot()["rules"]["up"]["cooldown_until"]
        # the run's end (its order's result) is saved by the next write: here the periodic one
        await wait_for(lambda: service.store.load_engine_snapshot()["rules"]["up"]["status"] == "cooling_down")
        live = _plain(service.engine.snapshot())
        assert service.store.load_engine_snapshot()["rules"] == live["rules"]
        conn = sqlite3.connect(database_path(e2e.state_dir))
        names = {name for (name,) in conn.execute("SELECT name FROM engine_parts")}
        conn.close()
        assert names == {"up", "down", "eth"}
        await move(e2e, service, "XBTUSD", "59000")
        await wait_for(lambda: seen.fires("down"))
        await service.settle()
        assert service.store.load_engine_snapshot()["fire_seq"] == {"up": 1, "down": 1}
    at_stop = _plain(service.engine.snapshot())
    with StateStore(database_path(e2e.state_dir)) as store:
        assert store.load_engine_snapshot() == at_stop
    async with e2e.running() as (service, seen, url):
        assert service.engine.rule_status("up") == "cooling_down"
        restored = _plain(service.engine.snapshot())
    assert restored["fire_seq"] == at_stop["fire_seq"] and restored["rules"]["up"] == at_stop["rules"]["up"]
