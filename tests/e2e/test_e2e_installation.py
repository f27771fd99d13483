"""Client order ids are unique per installation: a fresh state dir (its fire numbers start
at 1 again) never reproduces an id an earlier one sent on the same account, so its order is
placed rather than refused as a duplicate or "recovered" as someone else's."""

from __future__ import annotations

from e2e_harness import E2E, move, wait_for
from rules_engine.core.ids import client_order_id, installation_tag
from rules_engine.state import StateStore, database_path

UP = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


async def test_a_fresh_state_dir_places_its_order_under_a_new_id(e2e: E2E) -> None:
    e2e.write_rules(UP)
    placed = []
    for attempt in ("first", "second"):
        e2e.state_dir = e2e.tmp / f"state-{attempt}"  # what "delete the state dir to reset" gives
        async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, _):
            installation = service.health()["installation_id"]
            assert installation == service.store.installation_id and len(installation) == 32
            await move(e2e, service, "XBTUSD", "69900", "70100")
            await wait_for(lambda: seen.reports)
            await service.settle()
            (intent, report), *_ = [(i, r) for i, r in seen.reports if i is not None and i.kind == "place_order"]
            assert intent.decision_id == "up#1" and report.result.ok, report.result
            assert installation_tag(intent.cl_ord_id) == installation[:8]
            placed.append(intent.cl_ord_id)
    assert placed[0] != placed[1]
    orders = {o.cl_ord_id for o in e2e.spot_orders() if o.account == e2e.account.api_key}
    assert orders == set(placed)


def test_the_installation_id_is_made_with_the_state_dir_and_kept(tmp_path) -> None:
    with StateStore(database_path(tmp_path / "a")) as store:
        first = store.installation_id
    with StateStore(database_path(tmp_path / "a")) as store:
        assert store.installation_id == first
    with StateStore(database_path(tmp_path / "b")) as store:
        assert store.installation_id != first
    assert client_order_id("up", 1, 0, first).startswith(first[:8])
    assert client_order_id("up", 1, 0, first) == client_order_id("up", 1, 0, first)
    assert client_order_id("up", 1, 0, first) != client_order_id("up", 1, 0, "0" * 32)
    assert client_order_id("up", 1, 0, first) != client_order_id("up", 1, 0)
