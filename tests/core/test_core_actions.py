"""Runs: actions in order, results fed back, resolved values, balance checks, order ids."""

import json
import uuid

from core_builders import (
    D, check_balance, expr, fired, kinds, log, order, price, rule, ruleset, signal, template, tick,
)

from rules_engine.actions.cancel_order import CancelOrderAction
from rules_engine.actions.futures_send_order import FuturesSendOrderAction
from rules_engine.actions.notify import NotifyAction
from rules_engine.actions.place_order import CloseOrder
from rules_engine.core import model
from rules_engine.core import Engine, PlaceOrder, ReadBalance, client_order_id
from rules_engine.core.ids import ORDER_ID_NAMESPACE
from rules_engine.core.events import ActionResult, BalanceUpdate, Clock, OrderUpdate, Signal


def fire(engine, t=2.0):
    engine.handle(tick(t - 1, "90"))
    return engine.handle(tick(t, "101"))


def test_log_and_notify_do_not_wait_and_render_the_context():
    notify = NotifyAction(message=template("{symbol} crossed {level}"), channel="ops")
    engine = Engine(ruleset(rule("n", price(100), actions=(log("at {price}"), notify))))
    decision = fire(engine)
    assert [(i.kind, i.message) for i in decision.intents] == [("log", "at 101"), ("notify", "XBTUSD crossed 100")]
    assert decision.intents[1].channel == "ops" and engine.rule_status("n") == "idle"


def test_action_if_is_evaluated_at_its_turn():
    engine = Engine(ruleset(rule("i", price(100), actions=(
        log("skipped", condition="price > 500"), log("kept", condition="price > 100")))))
    decision = fire(engine)
    assert [i.message for i in decision.intents] == ["kept"]
    skipped = [r for r in kinds(decision, "action") if r.detail.get("skipped")]
    assert skipped[0].detail["expression"] == "price > 500"


def test_expression_volume_and_price_resolve_to_decimals_and_every_kraken_parameter_is_set():
    act = order(volume="=balance('ZUSD') * 0.1 / price", price="=price - 1", ordertype="limit",
                oflags=("post",), timeinforce="GTC", close=CloseOrder("stop-loss", price=D(90)))
    engine = Engine(ruleset(rule("v", price(100), actions=(act,))))
    engine.handle(BalanceUpdate({"ZUSD": D(1000)}, 0.5))
    (intent,) = fire(engine).intents
    assert isinstance(intent, PlaceOrder)
    assert intent.volume == D(1000) * D("0.1") / D(101)
    assert intent.price == D(100)
    assert (intent.pair, intent.side, intent.ordertype, intent.timeinforce, intent.oflags) == (
        "XBTUSD", "buy", "limit", "GTC", ("post",))
    assert (intent.close_ordertype, intent.close_price, intent.close_price2) == ("stop-loss", D(90), None)
    assert intent.notional == intent.volume * D(100)


def test_relative_prices_stay_as_written():
    act = order(ordertype="trailing-stop", price="+1.5%", side="sell")
    (intent,) = fire(Engine(ruleset(rule("t", price(100), actions=(act,))))).intents
    assert intent.price == "+1.5%" and intent.notional == D("0.1") * D(101)  # valued at the last price


def test_expire_after_becomes_an_absolute_gtd_expiry():
    (intent,) = fire(Engine(ruleset(rule("e", price(100), actions=(order(expire_after=30.0),)))), t=1000.2).intents
    assert (intent.timeinforce, intent.expiretm) == ("GTD", "1031")


def test_a_failing_value_expression_stops_the_run_with_an_error():
    engine = Engine(ruleset(rule("x", price(100), actions=(order(volume="=price_of('ETHUSD') * 0"), log()))))
    decision = fire(engine)
    assert decision.intents == ()
    (error,) = kinds(decision, "error")
    assert error.detail["where"] == "actions[0].volume" and "no price seen for ETHUSD" in error.detail["reason"]
    assert engine.rule_status("x") == "idle"


def balance_rule():
    return rule("b", price(100), actions=(check_balance("ZUSD", "50"), order(), log("after")))


def test_check_balance_passes_with_a_fresh_balance_and_the_run_goes_on():
    engine = Engine(ruleset(balance_rule()), balance_max_age=10)
    engine.handle(BalanceUpdate({"ZUSD": D(60)}, 1.5))
    decision = fire(engine)
    assert [i.kind for i in decision.intents] == ["place_order"]
    check = [r for r in kinds(decision, "action") if r.detail.get("type") == "check_balance"][0]
    assert check.detail["passed"] is True and check.detail["balance"] == D(60)


def test_check_balance_failure_stops_the_remaining_actions_and_records_why():
    engine = Engine(ruleset(balance_rule()))
    engine.handle(BalanceUpdate({"USD": D(20)}, 1.5))  # same asset as ZUSD
    decision = fire(engine)
    assert decision.intents == ()
    (blocked,) = kinds(decision, "blocked")
    assert blocked.detail["reason"] == "check_balance failed: ZUSD balance 20 is below 50"
    assert kinds(decision, "decision")[-1].detail["outcome"] == "stopped"


def test_stale_balance_reads_first_and_resumes_on_the_result():
    engine = Engine(ruleset(balance_rule()), balance_max_age=10)
    engine.handle(BalanceUpdate({"ZUSD": D(100)}, 0.0))
    decision = fire(engine, t=20.0)  # seen 20 s ago: stale
    (read,) = decision.intents
    assert isinstance(read, ReadBalance) and read.intent_id == "b#1/0/balance"
    resumed = engine.handle(ActionResult(read.intent_id, True, 21.0, {"balances": {"ZUSD": "75.5", "XXBT": "1"}}))
    assert [i.kind for i in resumed.intents] == ["place_order"]
    assert engine.handle(ActionResult("b#1/1", True, 22.0, {"txid": ["O1"]})).intents[0].message == "after"


def test_balance_read_without_the_asset_means_zero_and_fails_the_check():
    engine = Engine(ruleset(balance_rule()))
    (read,) = fire(engine).intents
    decision = engine.handle(ActionResult(read.intent_id, True, 3.0, {"balances": {"XXBT": "1"}}))
    assert decision.intents == () and "balance 0 is below 50" in kinds(decision, "blocked")[0].detail["reason"]


def test_a_failed_balance_read_stops_the_run():
    engine = Engine(ruleset(balance_rule()))
    (read,) = fire(engine).intents
    decision = engine.handle(ActionResult(read.intent_id, False, 3.0, error="EAPI:Rate limit exceeded"))
    assert decision.intents == ()
    assert kinds(decision, "error")[0].detail["reason"] == "read_balance failed: EAPI:Rate limit exceeded"


def test_an_order_result_makes_balances_stale_again():
    engine = Engine(ruleset(balance_rule()), balance_max_age=1000)
    engine.handle(BalanceUpdate({"ZUSD": D(500)}, 1.0))
    assert [i.kind for i in fire(engine).intents] == ["place_order"]
    engine.handle(ActionResult("b#1/1", True, 3.0, {"txid": ["O1"]}))
    engine.handle(tick(4, "90"))
    assert [i.kind for i in engine.handle(tick(5, "101")).intents] == ["read_balance"]


# ------------------------------------------------------------------ order ids, results, own orders

def test_cl_ord_id_is_a_uuid5_of_rule_fire_sequence_and_action_index():
    (intent,) = fire(Engine(ruleset(rule("r", price(100), actions=(order(),))))).intents
    assert intent.cl_ord_id == client_order_id("r", 1, 0) == str(uuid.uuid5(ORDER_ID_NAMESPACE, "r\x1f1\x1f0"))
    assert uuid.UUID(intent.cl_ord_id).version == 5


def test_two_engines_derive_the_same_ids_and_new_decisions_get_new_ones():
    def ids(engine):
        out = []
        for t in (2, 4, 6):
            decision = fire(engine, t)
            out += [i.cl_ord_id for i in decision.intents]
            engine.handle(ActionResult(f"r#{len(out)}/0", True, t + 0.5, {"txid": [f"O{t}"]}))
        return out
    rules = ruleset(rule("r", price(100), actions=(order(),)))
    first, second = ids(Engine(rules)), ids(Engine(rules))
    assert first == second and len(set(first)) == 3


def test_a_refused_order_stops_the_run_and_is_forgotten():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(), log("placed")))))
    fire(engine)
    decision = engine.handle(ActionResult("r#1/0", False, 3.0, error="EOrder:Insufficient funds"))
    assert decision.intents == () and "EOrder:Insufficient funds" in kinds(decision, "error")[0].detail["reason"]
    assert engine.snapshot()["orders"] == []


def test_cancel_own_orders_cancels_what_this_rule_placed_and_nothing_else():
    place = rule("p", price(100), actions=(order(),))
    cancel = rule("c", price(200), actions=(CancelOrderAction(own=True),))
    cancel_mine = rule("p2", price(200), actions=(CancelOrderAction(own=True),))
    engine = Engine(ruleset(place, cancel, cancel_mine))
    fire(engine)
    engine.handle(ActionResult("p#1/0", True, 3.0, {"txid": ["OAAA"]}))
    engine.handle(OrderUpdate(3.5, "open", txid="OZZZ", pair="XBTUSD"))  # placed by hand
    decision = engine.handle(tick(4, "201"))
    assert [i.rule_id for i in decision.intents] == []  # c and p2 own nothing
    assert len([r for r in kinds(decision, "action") if r.detail.get("skipped")]) == 2
    engine2 = Engine(ruleset(rule("p", price(100), actions=(order(), CancelOrderAction(own=True)))))
    fire(engine2)
    (cancel_intent,) = engine2.handle(ActionResult("p#1/0", True, 3.0, {"txid": ["OBBB"]})).intents
    assert cancel_intent.txids == ("OBBB",) and cancel_intent.cl_ord_ids == ()
    engine2.handle(ActionResult(cancel_intent.intent_id, True, 3.5, {"count": 1}))
    assert engine2.snapshot()["orders"] == []


def test_order_updates_close_orders_and_open_orders_counts_the_view():
    engine = Engine(ruleset(rule("p", price(100), actions=(order(),)),
                            rule("q", price(300), when=model.Guard("expr", expr("open_orders('XBTUSD') == 0")))))
    fire(engine)
    engine.handle(ActionResult("p#1/0", True, 3.0, {"txid": ["OAAA"]}))
    engine.handle(tick(4, "290"))
    assert fired(engine.handle(tick(5, "301"))) == []
    engine.handle(OrderUpdate(6, "closed", txid="OAAA"))
    engine.handle(tick(7, "290"))
    assert fired(engine.handle(tick(8, "301"))) == ["q#1"]


def test_futures_orders_get_a_deterministic_cli_ord_id_and_kraken_parameters():
    act = FuturesSendOrderAction(symbol="PF_XBTUSD", side="sell", order_type="lmt", size=D("0.5"),
                                 limit_price=expr("price + 10"), reduce_only=True)
    engine = Engine(ruleset(rule("f", price(100, symbol="PF_XBTUSD", market="futures"), actions=(act,))))
    engine.handle(tick(1, "90", symbol="PF_XBTUSD", market="futures"))
    (intent,) = engine.handle(tick(2, "101", symbol="PF_XBTUSD", market="futures")).intents
    assert intent.cli_ord_id == client_order_id("f", 1, 0)
    assert (intent.order_type, intent.symbol, intent.side, intent.size, intent.limit_price, intent.reduce_only) == (
        "lmt", "PF_XBTUSD", "sell", D("0.5"), D(111), True)
    assert intent.notional == D("55.5")


def test_a_result_that_never_comes_stops_the_run_after_the_timeout():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(), log()))), result_timeout=30)
    fire(engine)
    assert engine.next_deadline() == 32.0
    decision = engine.handle(Clock(32.0))
    assert "no result within 30s" in kinds(decision, "error")[0].detail["reason"]
    assert engine.rule_status("r") == "idle"
    assert engine.snapshot()["orders"][0]["status"] == "sending"  # may exist: still counted as open


def test_a_result_for_an_unknown_intent_is_traced_and_ignored():
    engine = Engine(ruleset(rule("r", price(100))))
    decision = engine.handle(ActionResult("nope#1/0", True, 1.0))
    assert kinds(decision, "dropped")[0].detail["intent_id"] == "nope#1/0"


def test_a_malformed_result_stops_the_run_instead_of_raising():
    engine = Engine(ruleset(rule("b", price(100), actions=(check_balance(), log()))))
    (read,) = fire(engine).intents
    decision = engine.handle(ActionResult(read.intent_id, True, 3.0, {"balances": ["not", "a", "mapping"]}))
    assert decision.intents == () and "malformed result data" in kinds(decision, "error")[0].detail["reason"]


def test_decisions_serialise_to_json_for_the_audit_log():
    engine = Engine(ruleset(rule("s", signal("tv"), actions=(order(volume="=signal['qty']"),))))
    decision = engine.handle(Signal("tv", {"qty": 2}, 1.0))
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["intents"][0]["volume"] == "2" and data["intents"][0]["kind"] == "place_order"
    assert {r["kind"] for r in data["trace"]} >= {"trigger", "decision", "action", "state"}


def test_an_event_dated_before_the_last_one_is_handled_at_the_last_time():
    engine = Engine(ruleset(rule("c", price(100), cooldown=10.0)))
    fire(engine, t=50.0)
    engine.handle(tick(55, "90"))
    decision = engine.handle(tick(40, "101"))  # late: treated as time 55, still cooling down
    assert kinds(decision, "dropped")[0].detail["reason"] == "cooling down"
    assert decision.trace[0].time == 55
