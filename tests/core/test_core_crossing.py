"""Armed price crossings: start-up never fires, hysteresis, directions, fields, the index."""

from decimal import Decimal

import pytest
from core_builders import D, fired, kinds, price, rule, ruleset, tick

from rules_engine.core import Engine
from rules_engine.core.crossing import Crossing, LevelBook
from rules_engine.core.events import FeedReset
from rules_engine.core.model import Rearm


def feed(engine, prices, symbol="XBTUSD", start=1.0, **kw):
    """Ticks of `last` prices one second apart; the decision ids fired on each."""
    return [fired(engine.handle(tick(start + n, str(p), symbol=symbol, **kw))) for n, p in enumerate(prices)]


def test_first_tick_beyond_the_level_does_not_fire_and_later_ticks_need_the_near_side_first():
    engine = Engine(ruleset(rule("up", price(100))))
    assert feed(engine, [105, 106, 101]) == [[], [], []]
    assert engine.trigger_states("up") == {0: "disarmed"}
    assert feed(engine, [99, 100], start=10) == [[], ["up#1"]]


def test_first_tick_on_the_near_side_arms_without_firing():
    engine = Engine(ruleset(rule("up", price(100))))
    assert feed(engine, [95]) == [[]]
    assert engine.trigger_states("up") == {0: "armed"}
    assert feed(engine, [100.5], start=5) == [["up#1"]]


def test_a_fired_trigger_rearms_only_when_back_strictly_below_without_hysteresis():
    engine = Engine(ruleset(rule("up", price(100))))
    assert feed(engine, [99, 101, 100, 102, 99.99, 100]) == [[], ["up#1"], [], [], [], ["up#2"]]


def test_absolute_rearm_distance():
    engine = Engine(ruleset(rule("up", price(100, rearm=5))))
    assert feed(engine, [90, 101, 96, 101, 95.01, 100, 95, 100]) == [
        [], ["up#1"], [], [], [], [], [], ["up#2"]]


def test_percent_rearm_distance():
    engine = Engine(ruleset(rule("dn", price(200, "below", rearm=1, percent=True))))  # re-arm at >= 202
    assert feed(engine, [210, 199, 201.99, 199, 202, 200]) == [[], ["dn#1"], [], [], [], ["dn#2"]]


def test_below_crossing_fires_on_the_way_down_only():
    engine = Engine(ruleset(rule("dn", price(100, "below"))))
    assert feed(engine, [101, 100, 99, 102, 98]) == [[], ["dn#1"], [], [], ["dn#2"]]


@pytest.mark.parametrize("field,kw_before,kw_after", [
    ("bid", {"bid": "99", "ask": "101"}, {"bid": "100", "ask": "101"}),
    ("ask", {"bid": "98", "ask": "99"}, {"bid": "98", "ask": "100"}),
    ("mid", {"bid": "98", "ask": "100"}, {"bid": "99", "ask": "101"}),
])
def test_bid_ask_and_mid_fields(field, kw_before, kw_after):
    engine = Engine(ruleset(rule("f", price(100, field=field))))
    assert fired(engine.handle(tick(1, **kw_before))) == []
    decision = engine.handle(tick(2, **kw_after))
    assert fired(decision) == ["f#1"]
    context = kinds(decision, "decision")[0].detail["context"]
    assert context["price"] == Decimal(100) and context["bid"] == D(kw_after["bid"])


def test_mid_is_bid_plus_ask_over_two_across_partial_updates():
    engine = Engine(ruleset(rule("m", price("100.5", field="mid"))))
    engine.handle(tick(1, bid="100", ask="100.5"))  # mid 100.25: armed
    assert fired(engine.handle(tick(2, ask="101"))) == ["m#1"]  # bid 100 kept: mid 100.5


def test_a_tick_without_the_watched_field_changes_nothing():
    engine = Engine(ruleset(rule("b", price(100, field="bid"))))
    engine.handle(tick(1, bid="99", ask="99.5"))
    assert fired(engine.handle(tick(2, last="150"))) == []
    assert engine.trigger_states("b") == {0: "armed"}


def test_feed_reset_makes_the_next_tick_a_first_observation():
    engine = Engine(ruleset(rule("up", price(100))))
    feed(engine, [99])
    engine.handle(FeedReset("spot", 2.0))
    assert feed(engine, [105], start=3) == [[]]  # a reconnect that jumped over the level does not fire
    assert engine.trigger_states("up") == {0: "disarmed"}


def test_each_symbol_is_independent_and_a_tick_visits_only_its_own_books(monkeypatch):
    rules = [rule(f"r{n}", price(100 + n, symbol=f"S{n % 5}")) for n in range(50)]
    engine = Engine(ruleset(*rules))
    for n in range(5):
        engine.handle(tick(1, "50", symbol=f"S{n}"))
    visited = []
    original = Crossing.observe
    monkeypatch.setattr(Crossing, "observe", lambda self, v: visited.append(self.rule_id) or original(self, v))
    decision = engine.handle(tick(2, "200", symbol="S3"))
    assert sorted(fired(decision)) == sorted(f"r{n}#1" for n in range(50) if n % 5 == 3)
    assert set(visited) == {f"r{n}" for n in range(50) if n % 5 == 3}


def test_a_small_move_visits_only_the_thresholds_between_the_two_prices(monkeypatch):
    levels = [D(1000 + n) for n in range(10_000)]
    watches = [Crossing("r", n, price(level), ("spot", "XBTUSD", "last"), level, "above", None)
               for n, level in enumerate(levels)]
    book = LevelBook(watches)
    book.update(D("5000.5"))  # first observation: arms 4000 levels above, disarms the rest
    calls = []
    original = Crossing.observe
    monkeypatch.setattr(Crossing, "observe", lambda self, v: calls.append(self.level) or original(self, v))
    changes = book.update(D("5003.2"))
    assert sorted(calls) == [D(5001), D(5002), D(5003)]
    assert [(w.level, c) for w, c in changes] == [(D(5001), "fired"), (D(5002), "fired"), (D(5003), "fired")]


def test_the_quiet_band_is_bounded_by_the_thresholds_that_can_act_in_each_crossings_state():
    rearm = Rearm(D(2), False)
    low = Crossing("a", 0, price(D(100)), ("spot", "XBTUSD", "last"), D(100), "above", rearm)
    high = Crossing("b", 0, price(D(110)), ("spot", "XBTUSD", "last"), D(110), "above", rearm)
    book = LevelBook([low, high])
    assert book.band() is None  # nothing observed yet
    book.update(D(95))  # both armed: only their levels can act, not their re-arm points
    assert book.band() == (None, D(100)) and book.band(firing=True) == (None, D(100))
    assert [(w.rule_id, c) for w, c in book.update(D(101))] == [("a", "fired")]
    # a is disarmed (acts at its re-arm point 98), b armed (acts at its level 110)
    assert book.band() == (D(98), D(110)) and book.band(firing=True) == (None, D(110))
    assert book.update(D(99)) == [] and book.update(D("108.5")) == []  # inside: no change
    assert [(w.rule_id, c) for w, c in book.update(D(98))] == [("a", "armed")]
    assert book.band() == (None, D(100))  # sitting on a's re-arm point, which no longer acts
    assert [(w.rule_id, c) for w, c in book.update(D(100))] == [("a", "fired")]
    assert book.band() == (D(98), D(110))  # on a's level, which no longer acts


def test_no_quiet_band_on_a_threshold_that_can_act():
    crossing = Crossing("c", 0, price(D(105)), ("spot", "XBTUSD", "last"), D(105), "above", None)
    book = LevelBook([crossing])
    book.update(D(100))
    assert [(w.rule_id, c) for w, c in book.update(D(105))] == [("c", "fired")]
    assert book.band() is None  # without hysteresis its level is its re-arm point
    assert book.band(firing=True) == (None, None)  # but nothing can fire
