"""Hot reload (valid and invalid edits, subscriptions and timers following the rules) and
restarts on the same state dir (no rule fires twice, no order is sent twice)."""

from __future__ import annotations

from decimal import Decimal

from e2e_harness import E2E, move, wait_for

UP = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  cooldown: 1h
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


async def test_valid_edit_swaps_rules_keeps_state_and_follows_symbols(e2e: E2E) -> None:
    e2e.write_rules(UP)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.fires("up"))
        assert service.health()["feeds"]["spot"]["symbols"] == 1
        e2e.write_rules(UP + """
- id: eth
  triggers: [{type: price, symbol: ETHUSD, crosses_below: 2500}]
  actions: [{type: log, message: "eth {price}"}]
- id: beat
  triggers: [{type: timer, every: 1s}]
  actions: [{type: log, message: "beat"}]
""")
        await wait_for(lambda: seen.reloads)
        assert seen.reloads[0]["ok"] and seen.reloads[0]["added"] == ["eth", "beat"]
        await wait_for(lambda: service.health()["feeds"]["spot"]["subscribed"] == 2)
        assert service.engine.rule_status("up") == "cooling_down"  # state carried over by rule id
        await move(e2e, service, "ETHUSD", "2550", "2450")
        await wait_for(lambda: seen.fires("eth"))
        await wait_for(lambda: seen.fires("beat"), timeout=3)
        await move(e2e, service, "XBTUSD", "69900", "70100")
        assert len(seen.fires("up")) == 1
    reload = e2e.audit_records("reload")[0]
    assert reload["data"]["ok"] is True and reload["data"]["added"] == ["eth", "beat"]


async def test_invalid_edit_is_reported_and_previous_rules_keep_running(e2e: E2E) -> None:
    path = e2e.write_rules(UP.replace("cooldown: 1h", "cooldown: 1s"))
    async with e2e.running() as (service, seen, url):
        path.write_text(path.read_text().replace("crosses_above: 70000", "crosses_above: lots"))
        await wait_for(lambda: seen.reloads)
        assert seen.reloads[0]["ok"] is False and "rules.yaml" in seen.reloads[0]["errors"][0]
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.fires("up"))
        assert service.metrics.reloads.labels("invalid")._value.get() == 1
    record = e2e.audit_records("reload")[0]
    assert record["data"]["ok"] is False and record["data"]["errors"]


async def test_explicit_reload_removes_a_rule_and_unsubscribes(e2e: E2E) -> None:
    e2e.write_rules(UP + """
- id: eth
  triggers: [{type: price, symbol: ETHUSD, crosses_below: 2500}]
  actions: [{type: log, message: "eth"}]
""")
    async with e2e.running() as (service, seen, url):
        assert service.health()["feeds"]["spot"]["symbols"] == 2
        e2e.write_rules(UP)
        assert await service.reload("test")
        await wait_for(lambda: service.health()["feeds"]["spot"]["subscribed"] == 1)
        await move(e2e, service, "XBTUSD", "69900")
        assert service.engine.ruleset.by_id().keys() == {"up"}


async def test_restart_resumes_without_refiring_or_resending(e2e: E2E) -> None:
    e2e.write_rules(UP.replace("cooldown: 1h", "cooldown: 200ms"))
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: e2e.spot_orders())
        await service.settle()
        first = seen.intents("place_order")[0]
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "70200", "70300")  # first tick after restart: an observation only
        await service.settle()
        assert seen.fires() == []
        await wait_for(lambda: service.engine.rule_status("up") == "idle")
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        second = seen.intents("place_order")[0]
    assert second.decision_id == "up#2" and second.cl_ord_id != first.cl_ord_id
    ids = [o.cl_ord_id for o in e2e.spot_orders()]
    assert sorted(ids) == sorted([first.cl_ord_id, second.cl_ord_id])
    starts = e2e.audit_records("startup")
    assert [s["data"]["restored_snapshot"] for s in starts] == [False, True]
    assert e2e.audit_ok()


async def test_restart_sends_a_fresh_decision_left_pending_once_and_abandons_a_stale_one(e2e: E2E) -> None:
    """A crash between committing the decision and sending it: the next start sends it, once,
    if its rule fired within `recovery.resend_within` (30 s by default); an older one, or one
    whose recorded order cannot be read back, is abandoned, never traded late."""
    import time

    from rules_engine.core import intents as it
    from rules_engine.state import StateStore, database_path

    e2e.write_rules(UP)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        pass
    fresh, stale, unreadable = ("2f1e0d3c-0000-5000-8000-00000000000" + str(n) for n in (1, 2, 3))

    def intent(cl_ord_id: str, seq: int) -> dict:
        return it.PlaceOrder(intent_id=f"up#{seq}/0", rule_id="up", decision_id=f"up#{seq}", cl_ord_id=cl_ord_id,
                             pair="XBTUSD", side="buy", ordertype="limit", volume=Decimal("0.01"),
                             price=Decimal("60000")).to_dict()

    with StateStore(database_path(e2e.state_dir)) as store:
        store.record_decision(fresh, "up", "up#7", intent(fresh, 7))
        store.record_decision(unreadable, "up", "up#9", {"intent_id": "up#9/0", "kind": "place_order"})
    with StateStore(database_path(e2e.state_dir), clock=lambda: time.time() - 45) as store:
        store.record_decision(stale, "up", "up#8", intent(stale, 8))
    for _ in range(2):  # a second start changes nothing: each is settled once
        async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, _, _):
            assert [service.store.get_decision(c).status for c in (fresh, stale, unreadable)] == \
                ["accepted", "abandoned", "abandoned"]
    assert [o.cl_ord_id for o in e2e.spot_orders()] == [fresh]
    (resent,) = e2e.audit_records("resent_after_proven_absent")
    assert resent["data"]["cl_ord_id"] == fresh and resent["data"]["proof"] == "never sent"
    not_resent = {r["data"]["cl_ord_id"]: r["data"]["reason"] for r in e2e.audit_records("not_resent")}
    assert "too old" in not_resent[stale] and "cannot be read back" in not_resent[unreadable]
    assert not_resent[stale] and e2e.audit_records("not_resent")[0]["data"]["bound_s"] == 30.0
    assert len(e2e.audit_records("abandoned")) == 2
    assert e2e.audit_ok()


async def test_the_per_day_order_limit_counts_orders_decided_before_a_restart(e2e: E2E) -> None:
    """The order times the risk limits count are not in every snapshot write: a restart takes
    them from the decisions the state store recorded, so a limit holds across it."""
    e2e.write_rules(UP.replace("  cooldown: 1h\n", ""))
    async with e2e.running(risk={"max_orders_per_day": 1}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        assert service.store.decision_times(0.0)
    async with e2e.running(risk={"max_orders_per_day": 1}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.fires("up"))
        assert seen.intents("place_order") == []
    (risk,) = e2e.audit_records("risk")
    assert risk["data"]["limit"] == "max_orders_per_day"
