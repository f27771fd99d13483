"""`Engine.snapshot_changes()`: applied in turn, the reported changes always rebuild exactly
`Engine.snapshot()`, whatever the events (the service persists only these changes)."""

import random

from core_builders import D, check_balance, log, order, price, rule, ruleset, signal, tick, when

from rules_engine import jsoncodec
from rules_engine.core import model
from rules_engine.core import Engine, EngineState
from rules_engine.core.state import merge_parts
from rules_engine.core.events import ActionResult, BalanceUpdate, Clock, FeedReset, KillSwitch, OrderUpdate, Signal


class Mirror:
    """What a store holds after writing each set of changes (parts by rule id)."""

    def __init__(self) -> None:
        self.base: dict = {}
        self.parts: dict = {}

    def apply(self, changes) -> None:
        self.base = changes.base
        if changes.complete:
            self.parts = {}
        for name, part in changes.parts.items():
            if part is None:
                self.parts.pop(name, None)
            else:
                self.parts[name] = part

    def snapshot(self) -> dict:
        return jsoncodec.loads(jsoncodec.dumps(merge_parts(self.base, self.parts)))


def _rules(variant: int = 0) -> model.RuleSet:
    return ruleset(
        rule("plain", price(100 + variant)),
        rule("cool", price(100, direction="below"), cooldown=5.0),
        rule("capped", price(102, rearm=1), max_fires=model.MaxFires(2, 20.0)),
        rule("held", price(101), hold=3.0, when=when("price > 100")),
        rule("queued", price(99, direction="below"), mode="queued", actions=(order(), log("after {price}"))),
        rule("balance", price(103), actions=(check_balance("ZUSD", "10"), order(price="=round(price, 1)"))),
        rule("sig", signal("tv"), actions=(order(),)),
        rule("two", price(98, direction="below"), price(104)),
        *([rule("late", price(100 + variant))] if variant else []),
    )


def _check(engine: Engine, mirror: Mirror) -> None:
    mirror.apply(engine.snapshot_changes())
    assert mirror.snapshot() == jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))


def test_changes_applied_in_turn_rebuild_the_snapshot_after_every_event():
    rng = random.Random(11)
    engine = Engine(_rules(), result_timeout=4.0)
    mirror = Mirror()
    _check(engine, mirror)
    now, last = 0.0, 100.0
    awaited: list[str] = []
    for step in range(1500):
        now += rng.choice((0.1, 0.5, 1.0, 2.5))
        roll = rng.random()
        if roll < 0.6:
            last = max(90.0, min(110.0, last + rng.choice((-2, -1, -0.5, 0.5, 1, 2))))
            decision = engine.handle(tick(now, f"{last:.1f}", bid=f"{last - 0.1:.1f}", ask=f"{last + 0.1:.1f}"))
        elif roll < 0.75 and awaited:
            intent_id = awaited.pop(rng.randrange(len(awaited)))
            data = {"balances": {"ZUSD": "50"}} if intent_id.startswith("balance") else {"txid": [f"T{step}"]}
            decision = engine.handle(ActionResult(intent_id, rng.random() < 0.8, now, data))
        elif roll < 0.8:
            decision = engine.handle(Signal("tv", {"n": step}, now, f"s{step}"))
        elif roll < 0.85:
            decision = engine.handle(Clock(now + rng.choice((0, 5, 30, 70))))
        elif roll < 0.88:
            decision = engine.handle(KillSwitch(rng.random() < 0.5, now, cancel_all=rng.random() < 0.5))
        elif roll < 0.9:
            decision = engine.handle(FeedReset("spot", now))
        elif roll < 0.93:
            decision = engine.handle(BalanceUpdate({"ZUSD": D(rng.randint(0, 100))}, now))
        elif roll < 0.96:
            decision = engine.handle(OrderUpdate(now, rng.choice(("open", "closed")), txid=f"T{step - 3}"))
        else:
            decision = engine.replace_rules(_rules(rng.randint(0, 2)))
        awaited += [i.intent_id for i in decision.intents if i.kind in ("place_order", "read_balance", "cancel_all")]
        _check(engine, mirror)


def test_only_the_rules_that_changed_are_reported():
    engine = Engine(ruleset(*[rule(f"r{n}", price(100 + n)) for n in range(50)]))
    first = engine.snapshot_changes()
    assert first.complete and len(first.parts) == 50
    engine.handle(tick(1, "90"))  # first observation: every trigger arms
    assert len(engine.snapshot_changes().parts) == 50
    engine.handle(tick(2, "91"))  # no level between 90 and 91
    quiet = engine.snapshot_changes()
    assert quiet.parts == {} and not quiet.complete and quiet.base["now"] == 2
    engine.handle(tick(3, "102.5"))  # crosses r0, r1, r2
    assert sorted(engine.snapshot_changes().parts) == ["r0", "r1", "r2"]


def test_a_removed_rule_keeps_only_its_fire_sequence_and_a_never_fired_one_is_dropped():
    engine = Engine(ruleset(rule("fired", price(100)), rule("idle", price(200))))
    engine.handle(tick(1, "90"))
    engine.handle(tick(2, "101"))
    mirror = Mirror()
    mirror.apply(engine.snapshot_changes())
    engine.replace_rules(ruleset(rule("other", price(300))))
    changes = engine.snapshot_changes()
    assert changes.complete and changes.parts["fired"] == {"fire_seq": {"fired": 1}} and "idle" not in changes.parts
    mirror.apply(changes)
    restored = EngineState.from_snapshot(mirror.snapshot())
    assert restored.fire_seq == {"fired": 1} and list(restored.rules) == ["other"]


def test_later_changes_stack_on_earlier_ones_not_yet_saved():
    engine = Engine(ruleset(rule("a", price(100)), rule("b", price(200))))
    mirror = Mirror()
    mirror.apply(engine.snapshot_changes())
    engine.handle(tick(1, "150"))
    older = engine.snapshot_changes()
    engine.handle(tick(2, "201"))
    combined = older.then(engine.snapshot_changes())
    assert sorted(combined.parts) == ["a", "b"] and combined.base["now"] == 2
    mirror.apply(combined)
    assert mirror.snapshot() == jsoncodec.loads(jsoncodec.dumps(engine.snapshot()))
