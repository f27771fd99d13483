"""Guards that read state the core has not seen yet (a balance never reported, a symbol with no
price) do not consume the trigger: the rule waits, is re-checked on every event, fires once the
guard can be evaluated and holds, and is dropped after `result_timeout` or when the price is no
longer beyond the level."""

from core_builders import fired, kinds, log, order, price, rule, ruleset, signal, tick, when

from rules_engine import jsoncodec
from rules_engine.core import Engine, EngineState
from rules_engine.core.events import BalanceUpdate, Clock, Signal


def waiting_engine(**kw):
    engine = Engine(ruleset(rule("w", price(100), when=when("balance('ZUSD') > 10")), rule("good", price(100))),
                    result_timeout=30, **kw)
    engine.handle(tick(1, "90"))
    return engine


def test_an_unknown_balance_makes_the_rule_wait_instead_of_failing():
    engine = waiting_engine()
    decision = engine.handle(tick(2, "101"))
    assert fired(decision) == ["good#1"]
    assert kinds(decision, "error") == []
    (blocked,) = [r for r in kinds(decision, "blocked") if r.rule_id == "w"]
    assert blocked.detail["reason"] == "waiting for balance of ZUSD"
    assert engine.rule_status("w") == "waiting"
    assert engine.trigger_states("w") == {0: "disarmed"}  # the crossing fired; the rule holds on to it
    assert engine.next_deadline() == 32


def test_the_waiting_rule_fires_once_the_balance_arrives_and_the_guard_holds():
    engine = waiting_engine()
    engine.handle(tick(2, "101"))
    quiet = engine.handle(tick(3, "102"))
    assert kinds(quiet, "blocked") == []  # traced once, not on every event
    decision = engine.handle(BalanceUpdate({"ZUSD": "50"}, 4))
    assert fired(decision) == ["w#1"]
    (guard,) = kinds(decision, "guard")
    assert guard.detail["phase"] == "wait" and guard.detail["result"] is True
    (decided,) = [r for r in kinds(decision, "decision") if "fire_seq" in r.detail]
    assert decided.detail["context"]["price"] == 102  # the trigger's values now
    assert engine.rule_status("w") == "idle"


def test_a_guard_that_becomes_ready_but_is_false_ends_the_wait_without_firing():
    engine = waiting_engine()
    engine.handle(tick(2, "101"))
    decision = engine.handle(BalanceUpdate({"ZUSD": "5"}, 3))
    assert fired(decision) == []
    (guard,) = kinds(decision, "guard")
    assert guard.detail["result"] is False
    assert engine.rule_status("w") == "idle"


def test_a_wait_is_dropped_after_result_timeout():
    engine = waiting_engine()
    engine.handle(tick(2, "101"))
    assert kinds(engine.handle(Clock(31)), "dropped") == []
    decision = engine.handle(Clock(32))
    (dropped,) = kinds(decision, "dropped")
    assert dropped.detail["reason"] == "wait cancelled: guard never became ready within 30s"
    assert dropped.detail["waiting"] == "balance of ZUSD"
    assert engine.rule_status("w") == "idle" and engine.next_deadline() is None
    assert fired(engine.handle(BalanceUpdate({"ZUSD": "50"}, 33))) == []


def test_a_wait_is_cancelled_when_the_price_is_no_longer_beyond_the_level():
    engine = waiting_engine()
    engine.handle(tick(2, "101"))
    decision = engine.handle(tick(3, "95"))
    (dropped,) = [r for r in kinds(decision, "dropped") if r.rule_id == "w"]
    assert dropped.detail["reason"] == "wait cancelled: price no longer beyond the level"
    assert fired(engine.handle(BalanceUpdate({"ZUSD": "50"}, 4))) == []


def test_another_trigger_of_a_waiting_rule_is_dropped_as_already_pending():
    engine = Engine(ruleset(rule("w", price(100), signal("tv"), when=when("balance('ZUSD') > 10"))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    decision = engine.handle(Signal("tv", {}, 3))
    (dropped,) = kinds(decision, "dropped")
    assert dropped.detail["reason"] == "already pending (waiting for balance of ZUSD)"


def test_a_price_of_a_symbol_never_seen_is_waited_for_too():
    engine = Engine(ruleset(rule("p", price(100), when=when("price_of('ETHUSD') > 1000"))))
    engine.handle(tick(1, "90"))
    (blocked,) = kinds(engine.handle(tick(2, "101")), "blocked")
    assert blocked.detail["reason"] == "waiting for price of ETHUSD"
    assert fired(engine.handle(tick(3, "2000", symbol="ETHUSD"))) == ["p#1"]


def test_a_signal_where_waits_for_the_balance_and_then_decides():
    engine = Engine(ruleset(rule("s", signal("tv", where="balance('ZUSD') > signal['min']"))))
    decision = engine.handle(Signal("tv", {"min": 10}, 1, signal_id="a"))
    assert fired(decision) == [] and kinds(decision, "error") == []
    assert [r.detail["reason"] for r in kinds(decision, "blocked")] == ["waiting for balance of ZUSD"]
    assert engine.rule_status("s") == "waiting"
    decision = engine.handle(BalanceUpdate({"ZUSD": "50"}, 2))
    assert fired(decision) == ["s#1"]
    assert [r.detail["where"] for r in kinds(decision, "guard")] == ["balance('ZUSD') > signal['min']"]


def test_a_signal_where_that_becomes_false_drops_the_wait():
    engine = Engine(ruleset(rule("s", signal("tv", where="balance('ZUSD') > 100"))))
    engine.handle(Signal("tv", {}, 1))
    decision = engine.handle(BalanceUpdate({"ZUSD": "50"}, 2))
    assert fired(decision) == []
    assert kinds(decision, "dropped")[0].detail["reason"] == "wait cancelled: where is false"


def test_a_guard_ready_after_waiting_starts_its_for_hold_then():
    engine = Engine(ruleset(rule("h", price(100), when=when("balance('ZUSD') > 10"), hold=60.0)), result_timeout=30)
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    assert engine.rule_status("h") == "waiting"
    decision = engine.handle(BalanceUpdate({"ZUSD": "50"}, 5))
    assert fired(decision) == [] and engine.rule_status("h") == "pending"
    assert engine.next_deadline() == 65
    assert fired(engine.handle(Clock(65))) == ["h#1"]


def test_a_hold_whose_guard_loses_its_value_waits_past_maturity_at_most_result_timeout():
    engine = Engine(ruleset(rule("h", price(100), when=when("price_of('ETHUSD') > 10"), hold=60.0)),
                    result_timeout=30)
    engine.handle(tick(1, "90"))
    engine.handle(tick(1, "20", symbol="ETHUSD"))
    engine.handle(tick(2, "101"))
    assert engine.rule_status("h") == "pending"
    from rules_engine.core.events import FeedReset
    decision = engine.handle(FeedReset("spot", 10, symbols=("ETHUSD",)))  # the ETHUSD price is forgotten
    assert [r.detail["reason"] for r in kinds(decision, "blocked")] == ["waiting for price of ETHUSD"]
    assert engine.rule_status("h") == "waiting"
    assert fired(engine.handle(Clock(62))) == []  # matured, but the guard cannot be evaluated
    assert engine.next_deadline() == 92
    decision = engine.handle(Clock(92))
    assert kinds(decision, "dropped")[0].detail["reason"] == "pending cancelled: guard never became ready within 30s"


def test_a_waiting_rule_survives_a_snapshot():
    rules = ruleset(rule("w", price(100), when=when("balance('ZUSD') > 10")))
    engine = Engine(rules, result_timeout=30)
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    saved = jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))
    assert saved["rules"]["w"]["pending"]["waiting"] == "balance of ZUSD"
    restored = Engine(rules, state=EngineState.from_snapshot(saved), result_timeout=30)
    assert restored.rule_status("w") == "waiting"
    restored.handle(tick(3, "102"))  # a first observation after the restore; the price is still beyond
    assert fired(restored.handle(BalanceUpdate({"ZUSD": "50"}, 4))) == ["w#1"]


def test_an_action_value_not_known_yet_still_stops_the_run_and_says_what_was_missing():
    engine = Engine(ruleset(rule("a", price(100), actions=(order(volume="=balance('ZUSD') / price"), log()))))
    engine.handle(tick(1, "90"))
    decision = engine.handle(tick(2, "101"))
    (error,) = kinds(decision, "error")
    assert error.detail["reason"] == "balance of ZUSD is not known yet"
    assert error.detail["where"] == "actions[0].volume"
