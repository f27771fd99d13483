"""Hot reload (valid and invalid edits, subscriptions and timers following the rules) and
restarts on the same state dir (no rule fires twice, no order is sent twice)."""

from __future__ import annotations

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


async def test_restart_settles_a_decision_left_pending_without_sending_it(e2e: E2E) -> None:
    """A crash between committing the decision and sending it: the next start abandons it."""
    e2e.write_rules(UP)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        pass
    from rules_engine.state import StateStore, database_path

    with StateStore(database_path(e2e.state_dir)) as store:
        store.record_decision("2f1e0d3c-0000-5000-8000-000000000001", "up", "up#7",
                              {"intent_id": "up#7/0", "kind": "place_order"})
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        decision = service.store.get_decision("2f1e0d3c-0000-5000-8000-000000000001")
        assert decision.status == "abandoned"
    assert e2e.spot_orders() == []
    assert e2e.audit_records("abandoned")


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
