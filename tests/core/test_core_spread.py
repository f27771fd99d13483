"""The spread trigger at the core level: armed crossings of ask - bid (absolute or a percent of
mid), with hysteresis, first observations that never fire, feed resets, holds, and arming
state that survives a snapshot."""

from core_builders import D, fired, kinds, log, rule, ruleset, spread, tick

from rules_engine import jsoncodec
from rules_engine.core import Engine, EngineState
from rules_engine.core.events import Clock, FeedReset


def quote(engine, t, bid, ask, symbol="XBTUSD", market="spot"):
    """A bid/ask tick; the decision ids it fired."""
    return fired(engine.handle(tick(t, bid=bid, ask=ask, symbol=symbol, market=market)))


def test_the_first_spread_only_arms_and_a_widening_fires_with_the_spread_names():
    engine = Engine(ruleset(rule("s", spread(25), actions=(log("{symbol} {spread} {bid}/{ask} mid {mid} > {level}"),))))
    assert quote(engine, 1, "100", "110") == []  # 10: arms
    assert engine.trigger_states("s") == {0: "armed"}
    decision = engine.handle(tick(2, bid="100", ask="130"))
    assert fired(decision) == ["s#1"]
    assert decision.intents[0].message == "XBTUSD 30 100/130 mid 115 > 25"
    (record,) = [r for r in kinds(decision, "trigger") if r.rule_id == "s"]
    assert record.detail["field"] == "spread" and record.detail["value"] == D(30)


def test_a_spread_first_seen_wide_disarms_without_firing():
    engine = Engine(ruleset(rule("s", spread(25))))
    assert quote(engine, 1, "100", "130") == []
    assert engine.trigger_states("s") == {0: "disarmed"}
    assert quote(engine, 2, "100", "140") == []


def test_rearm_needs_the_spread_back_by_the_rearm_distance():
    engine = Engine(ruleset(rule("s", spread(25, rearm=5))))
    quote(engine, 1, "100", "110")
    assert quote(engine, 2, "100", "130") == ["s#1"]
    assert quote(engine, 3, "100", "122") == []  # 22: not back to 20
    assert quote(engine, 4, "100", "130") == []
    assert quote(engine, 5, "100", "120") == []  # 20: re-arms
    assert quote(engine, 6, "100", "126") == ["s#2"]


def test_crosses_below_fires_when_the_spread_narrows():
    engine = Engine(ruleset(rule("tight", spread(2, direction="below"))))
    quote(engine, 1, "100", "105")
    assert quote(engine, 2, "100", "101") == ["tight#1"]


def test_a_percent_level_is_a_percent_of_mid():
    engine = Engine(ruleset(rule("p", spread("0.05", percent=True))))
    quote(engine, 1, "10000", "10004")  # 0.04% of 10002
    assert quote(engine, 2, "10000", "10005") == []  # 0.049988%
    assert quote(engine, 3, "10000", "10006") == ["p#1"]  # 0.059982%


def test_only_bid_and_ask_move_the_spread_and_one_side_uses_the_other_sides_last_value():
    engine = Engine(ruleset(rule("s", spread(25))))
    quote(engine, 1, "100", "110")
    assert fired(engine.handle(tick(2, last="500"))) == []
    assert fired(engine.handle(tick(3, ask="130"))) == ["s#1"]  # bid still 100


def test_a_feed_reset_makes_the_next_spread_a_first_observation():
    engine = Engine(ruleset(rule("s", spread(25))))
    quote(engine, 1, "100", "110")
    engine.handle(FeedReset("spot", 2))
    assert quote(engine, 3, "100", "130") == []  # first observation again: disarms, never fires
    assert engine.trigger_states("s") == {0: "disarmed"}


def test_spread_and_price_triggers_on_one_symbol_fire_one_rule_once():
    from core_builders import price
    engine = Engine(ruleset(rule("both", price(100), spread(25))))
    engine.handle(tick(1, "90", bid="85", ask="95"))
    decision = engine.handle(tick(2, "110", bid="95", ask="125"))
    assert fired(decision) == ["both#1"]
    (decided,) = [r for r in kinds(decision, "decision") if "fire_seq" in r.detail]
    assert decided.detail["trigger"] == 0


def test_a_for_hold_is_cancelled_when_the_spread_narrows_again():
    engine = Engine(ruleset(rule("h", spread(25), hold=60.0)))
    quote(engine, 1, "100", "110")
    quote(engine, 2, "100", "130")
    assert engine.rule_status("h") == "pending"
    decision = engine.handle(tick(10, bid="100", ask="105"))
    (dropped,) = kinds(decision, "dropped")
    assert dropped.detail["reason"] == "pending cancelled: spread no longer beyond the level"
    assert fired(engine.handle(Clock(70))) == []


def test_a_for_hold_fires_with_the_current_spread_when_it_stays_wide():
    engine = Engine(ruleset(rule("h", spread(25), hold=60.0, actions=(log("{spread}"),))))
    quote(engine, 1, "100", "110")
    quote(engine, 2, "100", "130")
    quote(engine, 30, "100", "140")
    decision = engine.handle(Clock(62))
    assert fired(decision) == ["h#1"] and decision.intents[0].message == "40"


def test_arming_survives_a_snapshot_by_rule_id_and_definition():
    rules = ruleset(rule("s", spread(25)))
    engine = Engine(rules)
    quote(engine, 1, "100", "110")
    saved = jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))
    assert saved["watches"]["s#0"][1] == "armed"
    restored = Engine(rules, state=EngineState.from_snapshot(saved))
    assert restored.trigger_states("s") == {0: "armed"}
    assert quote(restored, 2, "100", "130") == []  # first tick after a restore is a first observation
    changed = Engine(ruleset(rule("s", spread(30))), state=EngineState.from_snapshot(saved))
    assert changed.trigger_states("s") == {0: "unobserved"}
