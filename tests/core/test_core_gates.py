"""What stands between a trigger and a run: guards, for-holds, cooldown, max_fires, mode,
priority, signals' where, timer beats, and errors that stay inside one rule."""

from decimal import Decimal

from core_builders import (
    all_of, any_of, expr, fired, kinds, log, not_, order, price, rule, ruleset, signal, tick, timer, when,
)

from rules_engine.core import model
from rules_engine.core import Engine
from rules_engine.core.events import ActionResult, Clock, Signal, TimerBeat


def armed(engine, symbol="XBTUSD", at=1.0, below="90"):
    engine.handle(tick(at, below, symbol=symbol))


def cross(engine, t, up="110", down="90", symbol="XBTUSD"):
    """Go back below, then above: one crossing of 100. Returns the decision of the crossing tick."""
    engine.handle(tick(t, down, symbol=symbol))
    return engine.handle(tick(t + 0.5, up, symbol=symbol))


# ------------------------------------------------------------------ guards

def test_guard_false_blocks_the_fire_and_traces_the_values_seen():
    engine = Engine(ruleset(rule("g", price(100), when=when("price > 105"))))
    armed(engine)
    decision = engine.handle(tick(2, "101"))
    assert fired(decision) == []
    (guard,) = kinds(decision, "guard")
    assert guard.detail["result"] is False
    assert guard.detail["values"] == [{"where": "when", "expression": "price > 105", "value": False}]
    assert fired(cross(engine, 3, up="106")) == ["g#1"]


def test_guard_all_any_not():
    g = all_of(when("price > 100"), any_of(when("symbol == 'ETHUSD'"), not_(when("bid is None"))))
    engine = Engine(ruleset(rule("g", price(100), when=g)))
    armed(engine)
    assert fired(engine.handle(tick(2, "101"))) == []  # bid unknown: not(...) is false, any(...) false
    engine.handle(tick(3, "90", bid="89", ask="91"))
    decision = engine.handle(tick(4, "101"))
    assert fired(decision) == ["g#1"]
    assert [v["where"] for v in kinds(decision, "guard")[0].detail["values"]] == [
        "when.all[0]", "when.all[1].any[0]", "when.all[1].any[1].not"]


# ------------------------------------------------------------------ for: holds

def test_hold_matures_on_a_clock_event_when_the_guard_still_holds():
    engine = Engine(ruleset(rule("h", price(100), hold=30.0, when=when("price < 200"))))
    armed(engine)
    decision = engine.handle(tick(10, "101"))
    assert fired(decision) == [] and engine.rule_status("h") == "pending"
    assert engine.next_deadline() == 40.0
    assert fired(engine.handle(Clock(39.9))) == []
    decision = engine.handle(Clock(40.0))
    assert fired(decision) == ["h#1"]
    assert kinds(decision, "guard")[0].detail["phase"] == "hold matured"
    assert kinds(decision, "decision")[0].detail["context"]["price"] == Decimal(101)


def test_hold_is_cancelled_when_the_guard_fails_in_between():
    engine = Engine(ruleset(rule("h", price(100), hold=30.0, when=when("price < 150"))))
    armed(engine)
    engine.handle(tick(10, "101"))
    decision = engine.handle(tick(20, "160"))
    assert engine.rule_status("h") == "idle"
    assert [r.detail["reason"] for r in kinds(decision, "dropped")] == ["pending cancelled: guard no longer holds"]
    assert fired(engine.handle(Clock(40))) == []
    assert engine.next_deadline() is None


def test_hold_is_cancelled_when_the_price_goes_back_below_the_level():
    engine = Engine(ruleset(rule("h", price(100), hold=30.0)))
    armed(engine)
    engine.handle(tick(10, "101"))
    decision = engine.handle(tick(20, "99"))
    assert "price no longer beyond the level" in kinds(decision, "dropped")[0].detail["reason"]
    assert fired(engine.handle(Clock(45))) == []


# ------------------------------------------------------------------ cooldown, max_fires

def test_cooldown_drops_crossings_until_it_ends():
    engine = Engine(ruleset(rule("c", price(100), cooldown=60.0)))
    armed(engine)
    assert fired(engine.handle(tick(2, "101"))) == ["c#1"]
    assert engine.rule_status("c") == "cooling_down" and engine.next_deadline() == 62.0
    decision = cross(engine, 10)
    assert fired(decision) == [] and kinds(decision, "dropped")[0].detail["reason"] == "cooling down"
    ended = engine.handle(Clock(62.0))
    assert [r.detail for r in kinds(ended, "state")] == [{"previous": "cooling_down", "status": "idle"}]
    assert fired(cross(engine, 70)) == ["c#2"]


def test_max_fires_within_a_sliding_window():
    engine = Engine(ruleset(rule("m", price(100), max_fires=model.MaxFires(2, 100.0))))
    armed(engine)
    results = [fired(cross(engine, t)) for t in (10, 20, 30, 111)]
    assert results == [["m#1"], ["m#2"], [], ["m#3"]]  # the fire at 10.5 left the window at 110.5


# ------------------------------------------------------------------ mode

def rule_waiting_on_an_order(mode):
    return rule("w", price(100), mode=mode, actions=(order(), log("after order")))


def test_single_mode_drops_a_fire_while_the_previous_run_waits():
    engine = Engine(ruleset(rule_waiting_on_an_order("single")))
    armed(engine)
    assert fired(engine.handle(tick(2, "101"))) == ["w#1"]
    decision = cross(engine, 3)
    assert fired(decision) == []
    assert kinds(decision, "dropped")[0].detail["reason"] == "previous run still in progress"
    done = engine.handle(ActionResult("w#1/0", True, 5, {"txid": ["O1"]}))
    assert [i.message for i in done.intents] == ["after order"]
    assert fired(cross(engine, 6)) == ["w#2"]


def test_queued_mode_runs_the_next_fire_when_the_previous_run_ends():
    engine = Engine(ruleset(rule_waiting_on_an_order("queued")))
    armed(engine)
    engine.handle(tick(2, "101"))
    decision = cross(engine, 3)
    assert fired(decision) == ["w#2"] and decision.intents == ()
    done = engine.handle(ActionResult("w#1/0", True, 5, {"txid": ["O1"]}))
    assert [i.kind for i in done.intents] == ["log", "place_order"]
    assert done.intents[1].decision_id == "w#2"


# ------------------------------------------------------------------ priority

def test_rules_fired_by_one_event_run_in_priority_order_then_load_order():
    rules = [rule("low", price(100), priority=-1), rule("a", price(100)), rule("high", price(100), priority=5),
             rule("b", price(100))]
    engine = Engine(ruleset(*rules))
    armed(engine)
    decision = engine.handle(tick(2, "101"))
    assert fired(decision) == ["high#1", "a#1", "b#1", "low#1"]
    assert [i.rule_id for i in decision.intents] == ["high", "a", "b", "low"]


# ------------------------------------------------------------------ signals and timers

def test_signal_where_filters_payloads_and_the_guard_sees_the_signal():
    engine = Engine(ruleset(rule("s", signal("tv", where="signal['action'] == 'buy'"),
                                 when=when("signal['size'] < 5"), actions=(log("size {signal[size]}"),))))
    assert fired(engine.handle(Signal("tv", {"action": "sell", "size": 1}, 1))) == []
    assert fired(engine.handle(Signal("other", {"action": "buy", "size": 1}, 2))) == []
    assert fired(engine.handle(Signal("tv", {"action": "buy", "size": 9}, 3))) == []
    decision = engine.handle(Signal("tv", {"action": "buy", "size": 2}, 4, signal_id="sig-7"))
    assert fired(decision) == ["s#1"] and decision.intents[0].message == "size 2"


def test_timer_beats_fire_their_rule_with_the_scheduled_time():
    engine = Engine(ruleset(rule("t", timer(60), actions=(log("beat {scheduled_time}"),))))
    decision = engine.handle(TimerBeat("t", 0, 120.2, scheduled_time=120.0))
    assert fired(decision) == ["t#1"] and decision.intents[0].message == "beat 120.0"
    assert kinds(engine.handle(TimerBeat("nope", 0, 121)), "dropped")
    assert kinds(engine.handle(TimerBeat("t", 3, 122)), "error")


# ------------------------------------------------------------------ error isolation

def test_an_evaluation_error_stops_only_its_rule_and_is_traced_with_the_rule_id():
    bad = rule("bad", price(100), when=when("price / (price - price) > 10"), priority=1)  # division by zero
    good = rule("good", price(100))
    engine = Engine(ruleset(bad, good))
    armed(engine)
    decision = engine.handle(tick(2, "101"))
    assert fired(decision) == ["good#1"]
    (error,) = kinds(decision, "error")
    assert error.rule_id == "bad" and "division by zero" in error.detail["reason"]
    assert error.detail["expression"] == "price / (price - price) > 10"


def test_a_non_boolean_guard_is_an_error_not_truthiness():
    engine = Engine(ruleset(rule("n", price(100), when=model.Guard("expr", expr("price")))))
    armed(engine)
    decision = engine.handle(tick(2, "101"))
    assert fired(decision) == [] and "expected true or false" in kinds(decision, "error")[0].detail["reason"]
