"""Risk limits: checked on every order after guards; a breach blocks it and says which limit."""


import pytest
from core_builders import D, fired, kinds, log, order, price, rule, ruleset, tick, when

from rules_engine.actions.futures_send_order import FuturesSendOrderAction
from rules_engine.core import model
from rules_engine import jsoncodec
from rules_engine.core import Engine, EngineState, RiskLimits
from rules_engine.core.events import ActionResult, OrderUpdate
from rules_engine.core.views import Orders, OrderView


def run_order(limits, act=None, t=2.0, engine=None):
    engine = engine or Engine(ruleset(rule("r", price(100), actions=(act or order(), log("after")))), limits)
    engine.handle(tick(t - 1, "90"))
    return engine, engine.handle(tick(t, "101"))


def breach(decision):
    """The one risk record's limit, value, allowed and pair (it also names the decision and action)."""
    (record,) = kinds(decision, "risk")
    assert record.detail["action"] == 0 and record.detail["decision_id"].startswith(record.rule_id + "#")
    return {k: record.detail[k] for k in ("limit", "value", "allowed", "pair")}


def test_no_limits_lets_the_order_through():
    _, decision = run_order(RiskLimits())
    assert [i.kind for i in decision.intents] == ["place_order"] and not kinds(decision, "risk")


def test_allowed_pairs():
    _, decision = run_order(RiskLimits(allowed_pairs=frozenset({"ETHUSD"})))
    assert decision.intents == ()
    assert breach(decision) == {"limit": "allowed_pairs", "value": "XBTUSD", "allowed": ["ETHUSD"], "pair": "XBTUSD"}
    assert kinds(decision, "blocked")[0].detail["reason"] == "risk limit: allowed_pairs (XBTUSD is not one of ETHUSD)"


def test_max_order_notional_per_pair_and_default():
    limits = RiskLimits(max_order_notional={"XBTUSD": D(5), "default": D(1000)})
    _, decision = run_order(limits, order(volume="0.1", price="100"))  # notional 10 > 5
    assert breach(decision) == {"limit": "max_order_notional", "value": D("10.0"), "allowed": D(5), "pair": "XBTUSD"}
    # the reason a trader reads says by how much
    reason = kinds(decision, "blocked")[0].detail["reason"]
    assert reason == "risk limit: max_order_notional (would be 10.0 for XBTUSD, the limit is 5)"
    _, decision = run_order(RiskLimits(max_order_notional={"default": D(9)}), order(volume="0.1", price="100"))
    assert breach(decision)["allowed"] == D(9)
    _, decision = run_order(RiskLimits(max_order_notional={"default": D(11)}), order(volume="0.1", price="100"))
    assert [i.kind for i in decision.intents] == ["place_order"]


def test_market_orders_are_valued_at_the_last_price():
    limits = RiskLimits(max_order_notional={"default": D(50)})
    _, decision = run_order(limits, order(volume="1", ordertype="market", price=None))
    assert breach(decision)["value"] == D(101)


def test_no_known_price_blocks_when_a_notional_limit_applies():
    act = order(pair="ETHUSD", volume="1", ordertype="market", price=None)
    _, decision = run_order(RiskLimits(max_total_notional=D(10**9)), act)
    assert breach(decision)["limit"] == "notional_unknown" and decision.intents == ()


def test_max_total_notional_counts_open_and_in_flight_orders():
    limits = RiskLimits(max_total_notional=D(25))
    engine = Engine(ruleset(rule("r", price(100), mode="queued", actions=(order(volume="0.1", price="100"),))),
                    limits)
    for t in (2, 4):
        engine.handle(tick(t - 1, "90"))
        decision = engine.handle(tick(t, "101"))
        engine.handle(ActionResult(f"r#{t // 2}/0", True, t + 0.5, {"txid": [f"O{t}"]}))
    engine.handle(tick(5, "90"))
    decision = engine.handle(tick(6, "101"))
    assert breach(decision) == {"limit": "max_total_notional", "value": D("30.0"), "allowed": D(25), "pair": "XBTUSD"}


def test_max_open_orders():
    engine, _ = run_order(RiskLimits(max_open_orders=1))
    engine.handle(ActionResult("r#1/0", True, 2.5, {"txid": ["O1"]}))
    _, decision = run_order(None, t=4.0, engine=engine)
    assert breach(decision) == {"limit": "max_open_orders", "value": 2, "allowed": 1, "pair": "XBTUSD"}


@pytest.mark.parametrize("field,window", [("max_orders_per_minute", 60), ("max_orders_per_day", 86400)])
def test_orders_per_window(field, window):
    engine = Engine(ruleset(rule("r", price(100), actions=(order(),))), RiskLimits(**{field: 2}))
    results = []
    for t in (10, 20, 30, 10 + window + 1):
        engine.handle(tick(t - 1, "90"))
        decision = engine.handle(tick(t, "101"))
        results.append([i.kind for i in decision.intents])
        if decision.intents:
            engine.handle(ActionResult(decision.intents[0].intent_id, True, t + 0.1, {"txid": [f"O{t}"]}))
    assert results == [["place_order"], ["place_order"], [], ["place_order"]]


def test_orders_per_minute_breach_reports_the_count_it_would_reach():
    engine = Engine(ruleset(rule("r", price(100), actions=(order(),))), RiskLimits(max_orders_per_minute=1))
    run_order(None, engine=engine)
    engine.handle(ActionResult("r#1/0", True, 2.5, {"txid": ["O1"]}))
    _, decision = run_order(None, t=4.0, engine=engine)
    assert breach(decision) == {"limit": "max_orders_per_minute", "value": 2, "allowed": 1, "pair": "XBTUSD"}
    assert kinds(decision, "blocked")[0].detail["reason"] == "risk limit: max_orders_per_minute (would be 2, the limit is 1)"


def test_risk_is_checked_after_the_guard_and_the_action_if():
    limits = RiskLimits(allowed_pairs=frozenset())
    _, decision = run_order(limits, order(condition="price > 1000"))
    assert not kinds(decision, "risk")  # the `if` was false: nothing to check
    act = order(pair="ETHUSD")
    engine = Engine(ruleset(rule("r", price(100), when=when("price > 500"), actions=(act,))), limits)
    _, decision = run_order(None, engine=engine)
    assert fired(decision) == [] and not kinds(decision, "risk")


def test_limits_built_from_the_engine_config():
    from rules_engine.config import parse_config

    config = parse_config({"risk": {"max_order_notional": {"XBTUSD": 5}, "max_open_orders": 3}})
    limits = config.risk
    assert isinstance(limits, RiskLimits)
    assert limits.max_order_notional == {"XBTUSD": D(5)} and limits.max_open_orders == 3
    _, decision = run_order(limits)
    assert breach(decision)["limit"] == "max_order_notional"


def test_futures_inverse_contract_size_is_the_usd_notional():
    act = FuturesSendOrderAction(symbol="PI_XBTUSD", side="buy", order_type="mkt", size=D(500))
    engine = Engine(ruleset(rule("f", price(100), actions=(act,))), RiskLimits(max_order_notional={"PI_XBTUSD": D(400)}))
    _, decision = run_order(None, engine=engine)
    assert breach(decision) == {"limit": "max_order_notional", "value": D(500), "allowed": D(400), "pair": "PI_XBTUSD"}


def test_the_open_notional_follows_fills_and_closes_and_survives_a_restart():
    """The running total a risk check reads (kept as orders come, fill and go) is what the
    open orders add up to: a partial fill frees its part, a cancel frees the rest."""
    limits = RiskLimits(max_total_notional=D(25))
    engine = Engine(ruleset(rule("r", price(100), mode="queued", actions=(order(volume="0.1", price="100"),))),
                    limits)
    for t in (2, 4):  # two resting orders of notional 10 each
        engine.handle(tick(t - 1, "90"))
        engine.handle(tick(t, "101"))
        engine.handle(ActionResult(f"r#{t // 2}/0", True, t + 0.5, {"txid": [f"O{t}"]}))
    orders = engine._state.orders
    assert orders.total_notional() == D("20.0")
    engine.handle(OrderUpdate(time=4.7, status="open", txid="O2", pair="XBTUSD", market="spot", filled=D("0.06")))
    assert orders.total_notional() == D("14.0")  # 0.04 left of the first: 4, and 10
    engine.handle(tick(5, "90"))
    decision = engine.handle(tick(6, "101"))
    assert [i.kind for i in decision.intents] == ["place_order"]  # 14 + 10 <= 25: it may go
    engine.handle(ActionResult("r#3/0", True, 6.5, {"txid": ["O6"]}))
    engine.handle(OrderUpdate(time=6.7, status="canceled", txid="O4", pair="XBTUSD", market="spot"))
    assert orders.total_notional() == D("14.0")  # 4 + 10: the cancelled one is gone
    assert orders.total_notional() == sum((o.notional for o in orders), D(0))
    again = Engine(engine.ruleset, limits, state=EngineState.from_snapshot(
        jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))))
    assert again._state.orders.total_notional() == D("14.0")


def test_the_orders_running_total_is_their_sum_whatever_the_order_of_changes():
    views = [OrderView(key=f"k{n}", market="spot", pair="XBTUSD", status="open", volume=D("0.5"),
                       price=D(100 + n)) for n in range(5)]
    orders = Orders(views[:3])
    orders.add(views[3])
    orders.set_filled(views[0], D("0.2"))
    orders.add(OrderView(key="k1", market="spot", pair="XBTUSD", status="open", volume=D(1), price=D(7)))  # replaced
    orders.remove(views[2])
    orders.remove(views[4])  # not one of them: nothing changes
    orders.set_filled(views[3], D("0.9"))  # more than its volume: nothing left open
    assert orders.total_notional() == sum((o.notional for o in orders), D(0)) == D("0.3") * 100 + 7


def test_order_times_count_as_a_full_scan_would_even_when_the_clock_steps_back():
    import random

    from rules_engine.core.risk import DAY, OrderTimes

    rng = random.Random(5)
    times = OrderTimes([50.0, 10.0, 30.0])  # a restored list need not be in order
    seen = [10.0, 30.0, 50.0]
    now = 100.0
    for _ in range(500):
        now += rng.uniform(-20, 400)  # now and then the clock steps back
        times.record(now)
        seen = [t for t in seen + [now] if t > now - DAY]  # what a day's window keeps
        for since in (now - 60, now - 3600, now - DAY, now - 10 * DAY, now + 1):
            assert times.count_since(since) == sum(1 for t in seen if t > since)
    assert times.to_json(now) == sorted(t for t in seen if t > now - DAY)
