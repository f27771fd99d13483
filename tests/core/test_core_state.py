"""State that outlives one event: snapshot/restore, hot reload and the kill switch."""

from core_builders import D, fired, kinds, log, order, price, rule, ruleset, tick

from rules_engine import jsoncodec
from rules_engine.actions.futures_send_order import FuturesSendOrderAction
from rules_engine.core import model
from rules_engine.core import CancelAll, Engine, EngineState, client_order_id
from rules_engine.core.events import ActionResult, Clock, KillSwitch, OrderUpdate


def restored(engine, rules=None, **kw):
    """A new engine from a JSON round trip of `engine`'s snapshot, as after a restart."""
    data = jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))
    return Engine(rules or engine.ruleset, state=EngineState.from_snapshot(data), **kw)


# ------------------------------------------------------------------ snapshot / restore

def test_snapshot_is_json_and_round_trips():
    engine = Engine(ruleset(rule("r", price(100), cooldown=60, max_fires=model.MaxFires(5, 3600),
                                 actions=(order(), log()))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    data = jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))
    assert data["rules"]["r"]["status"] == "running" and data["rules"]["r"]["run"]["waiting"] == "r#1/0"
    assert data["rules"]["r"]["cooldown_until"] == 62 and data["rules"]["r"]["fire_times"] == [2]
    assert data["fire_seq"] == {"r": 1} and data["watches"] == {"r#0": [data["watches"]["r#0"][0], "disarmed"]}
    assert EngineState.from_snapshot(data).to_snapshot() == data


def test_snapshot_keeps_context_decimals_exactly_and_shares_nothing_with_the_engine():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(),))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101.50"))
    snapshot = engine.snapshot()
    context = snapshot["rules"]["r"]["run"]["context"]
    assert context["price"] == D("101.50") and str(context["price"]) == "101.50"
    context["price"] = "changed"
    assert engine.snapshot()["rules"]["r"]["run"]["context"]["price"] == D("101.50")
    restored_context = jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))["rules"]["r"]["run"]["context"]
    assert str(restored_context["price"]) == "101.50"


def test_no_refire_after_restore_even_if_the_price_stays_beyond_the_level():
    engine = Engine(ruleset(rule("r", price(100, rearm=5))))
    engine.handle(tick(1, "90"))
    assert fired(engine.handle(tick(2, "101"))) == ["r#1"]
    again = restored(engine)
    assert [fired(again.handle(tick(t, p))) for t, p in [(3, "102"), (4, "98"), (5, "101")]] == [[], [], []]
    assert [fired(again.handle(tick(t, p))) for t, p in [(6, "95"), (7, "100")]] == [[], ["r#2"]]


def test_an_armed_trigger_seen_beyond_the_level_after_restart_does_not_fire():
    engine = Engine(ruleset(rule("r", price(100))))
    engine.handle(tick(1, "90"))
    again = restored(engine)
    assert again.trigger_states("r") == {0: "armed"}
    assert fired(again.handle(tick(100, "105"))) == []  # the crossing happened while we were down
    assert again.trigger_states("r") == {0: "disarmed"}


def test_order_ids_continue_from_the_persisted_fire_sequence():
    rules = ruleset(rule("r", price(100), actions=(order(),)))
    engine = Engine(rules)
    engine.handle(tick(1, "90"))
    first = engine.handle(tick(2, "101")).intents[0]
    engine.handle(ActionResult(first.intent_id, True, 3, {"txid": ["O1"]}))
    again = restored(engine)
    again.handle(tick(4, "90"))
    again.handle(tick(5, "90"))
    second = again.handle(tick(6, "101")).intents[0]
    assert (first.decision_id, second.decision_id) == ("r#1", "r#2")
    assert second.cl_ord_id == client_order_id("r", 2, 0) != first.cl_ord_id


def test_the_same_decision_restored_before_it_was_persisted_gets_the_same_order_id():
    rules = ruleset(rule("r", price(100), actions=(order(),)))
    engine = Engine(rules)
    engine.handle(tick(1, "90"))
    saved = jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))  # persisted before the decision
    original = engine.handle(tick(2, "101")).intents[0]
    crashed = Engine(rules, state=EngineState.from_snapshot(saved))
    crashed.handle(tick(3, "90"))
    replay = crashed.handle(tick(4, "101")).intents[0]
    assert replay.cl_ord_id == original.cl_ord_id  # Kraken refuses the duplicate


def test_a_run_waiting_on_a_result_resumes_after_restore():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(), log("after {price}")))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    again = restored(engine)
    assert again.rule_status("r") == "running" and again.next_deadline() == 62
    decision = again.handle(ActionResult("r#1/0", True, 3, {"txid": ["O1"]}))
    assert [i.message for i in decision.intents] == ["after 101"]


def test_pending_hold_and_cooldown_survive_restore():
    engine = Engine(ruleset(rule("h", price(100), hold=30.0), rule("c", price(100), cooldown=100.0)))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    again = restored(engine)
    assert (again.rule_status("h"), again.rule_status("c")) == ("pending", "cooling_down")
    again.handle(tick(3, "101"))
    assert fired(again.handle(Clock(32))) == ["h#1"]


def test_snapshot_of_another_version_is_refused():
    try:
        EngineState.from_snapshot({"version": 99})
    except ValueError as exc:
        assert "version 99" in str(exc)
    else:
        raise AssertionError("accepted a snapshot of an unknown version")


# ------------------------------------------------------------------ hot reload

def test_reload_carries_state_by_rule_id_and_starts_new_rules_unobserved_then_seen():
    engine = Engine(ruleset(rule("keep", price(100), cooldown=60.0), rule("gone", price(100))))
    engine.handle(tick(1, "90"))
    assert fired(engine.handle(tick(2, "101"))) == ["keep#1", "gone#1"]
    decision = engine.replace_rules(ruleset(rule("keep", price(100), cooldown=60.0), rule("new", price(100)),
                                            rule("moved", price(120))))
    (loaded,) = [r for r in kinds(decision, "state") if "rules_loaded" in r.detail]
    assert loaded.detail["added"] == ["new", "moved"] and loaded.detail["removed"] == ["gone"]
    assert engine.rule_status("keep") == "cooling_down"
    # new triggers are initialised against the last price seen: beyond 100 -> disarmed, below 120 -> armed
    assert engine.trigger_states("new") == {0: "disarmed"} and engine.trigger_states("moved") == {0: "armed"}
    assert fired(engine.handle(tick(3, "121"))) == ["moved#1"]
    assert engine.snapshot()["fire_seq"]["gone"] == 1  # kept so a re-added rule never reuses ids


def test_reload_with_a_changed_level_resets_that_trigger_only():
    engine = Engine(ruleset(rule("r", price(100), price(200))))
    engine.handle(tick(1, "150"))
    assert engine.trigger_states("r") == {0: "disarmed", 1: "armed"}
    engine.replace_rules(ruleset(rule("r", price(140), price(200))))
    assert engine.trigger_states("r") == {0: "disarmed", 1: "armed"}
    engine.replace_rules(ruleset(rule("r", price(160), price(200))))
    assert engine.trigger_states("r") == {0: "armed", 1: "armed"}


def test_reload_that_changes_actions_abandons_the_run_in_progress():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(), log("old")))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    decision = engine.replace_rules(ruleset(rule("r", price(100), actions=(order(), log("new")))))
    assert kinds(decision, "dropped")[0].detail == {"decision_id": "r#1", "reason": "rule actions changed"}
    late = engine.handle(ActionResult("r#1/0", True, 3, {"txid": ["O1"]}))
    assert late.intents == () and engine.snapshot()["orders"][0]["txids"] == ["O1"]  # the view still learns


def test_reload_that_keeps_actions_keeps_the_run():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(), log("same")))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    engine.replace_rules(ruleset(rule("r", price(100), priority=3, actions=(order(), log("same")))))
    assert engine.handle(ActionResult("r#1/0", True, 3, {"txid": ["O1"]})).intents[0].message == "same"


# ------------------------------------------------------------------ kill switch

def test_kill_switch_blocks_fires_and_runs_until_cleared():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(), log("after")))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    decision = engine.handle(KillSwitch(True, 3, reason="manual"))
    assert decision.intents == ()
    assert kinds(decision, "blocked")[-1].detail["reason"] == "kill switch engaged"
    assert engine.handle(ActionResult("r#1/0", True, 4, {"txid": ["O1"]})).intents == ()  # no resume
    engine.handle(tick(5, "90"))
    decision = engine.handle(tick(6, "101"))
    assert decision.intents == () and kinds(decision, "blocked")[0].detail["reason"] == "kill switch engaged"
    assert engine.snapshot()["kill_switch"]["engaged"] is True
    cleared = engine.handle(KillSwitch(False, 7))
    assert kinds(cleared, "state")[0].detail["kill_switch"] == "cleared"
    engine.handle(tick(8, "90"))
    assert [i.kind for i in engine.handle(tick(9, "101")).intents] == ["place_order"]


def test_kill_switch_with_cancel_all_cancels_every_open_order_and_survives_restore():
    rules = ruleset(rule("r", price(100), actions=(FuturesSendOrderAction("PF_XBTUSD", "buy", "mkt", D(1)),)))
    engine = Engine(rules)
    decision = engine.handle(KillSwitch(True, 1, cancel_all=True))
    assert [(type(i), i.market, i.intent_id) for i in decision.intents] == [
        (CancelAll, "spot", "kill-switch#1/spot"), (CancelAll, "futures", "kill-switch#1/futures")]
    engine.handle(OrderUpdate(1.5, "open", txid="OX", pair="XBTUSD"))
    engine.handle(OrderUpdate(1.6, "open", txid="OF", pair="PF_XBTUSD", market="futures"))
    engine.handle(ActionResult("kill-switch#1/spot", True, 2, {"count": 3}))
    assert [o["key"] for o in engine.snapshot()["orders"]] == ["OF"]  # spot cleared, futures await their result
    again = restored(engine)
    again.handle(tick(3, "90"))
    assert kinds(again.handle(tick(4, "101")), "blocked")


def test_kill_switch_cancels_pending_holds_and_queued_runs():
    engine = Engine(ruleset(rule("h", price(100), hold=10.0),
                            rule("q", price(100), mode="queued", actions=(order(),))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    engine.handle(tick(3, "90"))
    engine.handle(tick(4, "101"))  # q#2 queued behind q#1
    decision = engine.handle(KillSwitch(True, 5))
    reasons = sorted(r.detail["reason"] for r in kinds(decision, "dropped"))
    assert reasons == ["kill switch engaged", "pending cancelled: kill switch engaged"]
    assert (engine.rule_status("h"), engine.rule_status("q")) == ("idle", "idle")
    assert fired(engine.handle(Clock(20))) == []


def test_a_snapshot_saved_before_the_plugin_types_still_loads_with_its_state():
    """fixtures/snapshot_before_plugins.json was written by the version whose specs lived in
    core/model.py (PlaceOrder, not PlaceOrderAction): fingerprints name specs by type, so the
    arming, the pending hold and the awaited order all carry over."""
    from pathlib import Path

    from rules_engine.core.events import ActionResult
    from rules_engine.rules import load_rules_text

    fixtures = Path(__file__).parent / "fixtures"
    rules = load_rules_text((fixtures / "snapshot_before_plugins.rules.yaml").read_text(), "rules.yaml").ruleset
    saved = jsoncodec.loads((fixtures / "snapshot_before_plugins.json").read_text())
    engine = Engine(rules, state=EngineState.from_snapshot(saved))
    assert engine.trigger_states("armed-above") == {0: "armed"}
    assert engine.trigger_states("held") == {0: "disarmed"}
    assert (engine.rule_status("held"), engine.rule_status("ordering")) == ("pending", "running")
    engine.handle(tick(103, "59000"))  # first observation after the restore: still beyond
    decision = engine.handle(ActionResult("ordering#1/0", True, 104, {"txid": ["OABC"]}))
    assert [i.message for i in decision.intents] == ["placed"]
    decision = engine.handle(Clock(162))
    assert fired(decision) == ["held#1"] and decision.intents[0].message == "held 59000"


def test_an_account_read_drops_orders_that_closed_on_the_exchange_and_keeps_those_in_flight():
    from rules_engine.core.events import OpenOrders, OrderUpdate
    from rules_engine.core.views import OrderView

    engine = Engine(model.RuleSet(()))
    orders = engine._state.orders  # the view the guards' open_orders() and the risk limits count
    engine.handle(OrderUpdate(100.0, "open", txid="OAAAAA-AAAAA-AAAAAA", pair="XBTUSD"))
    engine.handle(OrderUpdate(100.0, "open", txid="OBBBBB-BBBBB-BBBBBB", pair="XBTUSD"))
    orders.add(OrderView(key="sending-1", market="spot", pair="XBTUSD", status="sending", cl_ord_id="sending-1",
                         placed_at=100.0))
    engine.handle(OrderUpdate(100.0, "open", txid="PF-1", pair="PF_XBTUSD", market="futures"))
    assert engine._open_orders() == 4
    engine.handle(OpenOrders(110.0, "spot", ("OBBBBB-BBBBB-BBBBBB",)))
    assert sorted(o.key for o in orders) == ["OBBBBB-BBBBB-BBBBBB", "PF-1", "sending-1"]
    engine.handle(OrderUpdate(120.0, "open", txid="OCCCCC-CCCCC-CCCCCC", pair="XBTUSD"))
    engine.handle(OpenOrders(115.0, "spot", ()))  # a read older than the order does not drop it
    assert "OCCCCC-CCCCC-CCCCCC" in {o.key for o in orders}
