"""The offline loop shared by tests and replays: ordering of timers, deadlines and inputs,
simulated fills fed back, outcomes classified from the trace, determinism."""

import json
from decimal import Decimal

from rules_engine.core.events import Signal, Tick
from rules_engine.replay.runner import OfflineRunner
from rules_engine.rules import load_rules_text

D = Decimal
T0 = 1767225600.0


def rules(text):
    loaded = load_rules_text("version: 1\nrules:\n" + text)
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    return loaded.ruleset


def tick(seconds, price, symbol="XBTUSD"):
    return Tick(symbol, "spot", T0 + seconds, last=D(price), bid=D(price), ask=D(price))


TIMER = """\
  - id: beat
    triggers: [{type: timer, every: 20s}]
    actions: [{type: log, message: "beat {scheduled_time}"}]
"""

DIP = """\
  - id: dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 100}]
    for: 1m
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: "=price - 5"}]
"""


def test_timers_beat_on_schedule_before_later_inputs_and_after_inputs_at_the_same_time():
    runner = OfflineRunner(rules(TIMER), start=T0)
    seen = []
    original = runner.engine.handle
    runner.engine.handle = lambda event: (seen.append((type(event).__name__, event.time - T0)), original(event))[1]
    runner.feed(tick(40, 100))
    runner.feed(tick(50, 101))
    runner.finish(T0 + 60)
    ordered = [(kind, t) for kind, t in seen if kind in ("Tick", "TimerBeat")]
    assert ordered == [("TimerBeat", 20.0), ("Tick", 40.0), ("TimerBeat", 40.0), ("Tick", 50.0), ("TimerBeat", 60.0)]
    assert [o.time - T0 for o in runner.outcomes] == [20.0, 40.0, 60.0]


def test_a_hold_matures_on_a_clock_between_inputs_and_sees_the_latest_price():
    runner = OfflineRunner(rules(DIP), start=T0, wallet={"ZUSD": 1000})
    runner.feed(tick(0, 110))
    runner.feed(tick(10, 99))        # crosses: hold until +70s
    runner.feed(tick(30, 98))
    runner.feed(tick(200, 97))       # the Clock at +70s comes first
    (fire,) = runner.outcomes
    assert fire.time == T0 + 70 and fire.price == D(98)
    assert fire.intents[0].price == D(93)
    # the limit buy at 93 rests, then fills when the market reaches it
    assert fire.fills == []
    runner.feed(tick(300, 92))
    assert [(f.side, f.price, f.time - T0) for f in fire.fills] == [("buy", D(93), 300.0)]
    assert runner.balances()["XXBT"] == D(1)


def test_refusals_and_gates_are_classified():
    text = DIP.replace("for: 1m\n", "cooldown: 1h\n") + """\
  - id: tv
    triggers: [{type: signal, source: tv}]
    when: "signal.size > 1"
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=signal.size"}]
"""
    runner = OfflineRunner(rules(text), start=T0, wallet={"ZUSD": 50})
    runner.feed(tick(0, 110))
    runner.feed(tick(10, 99))        # the limit buy needs 94 USD: refused by the paper exchange
    runner.feed(tick(20, 101))
    runner.feed(tick(30, 99))        # cooling down
    runner.feed(Signal("tv", {"size": D("0.5")}, T0 + 40))
    summary = [(o.rule_id, o.fired, o.block.by if o.block else None) for o in runner.outcomes]
    assert summary == [("dip", True, "exchange"), ("dip", False, "cooldown"), ("tv", False, "guard")]
    assert "EOrder:Insufficient funds" in runner.outcomes[0].block.reason
    assert runner.outcomes[0].balances_after == {"ZUSD": D(50)}


def test_runs_are_deterministic():
    def run():
        runner = OfflineRunner(rules(DIP + TIMER), start=T0, wallet={"ZUSD": 1000})
        for n, price in enumerate([110, 99, 98, 97, 96, 92, 120, 99, 91]):
            runner.feed(tick(n * 45, price))
        runner.finish(T0 + 1000)
        return [(o.time, o.rule_id, [i.to_dict() for i in o.intents], o.fills) for o in runner.outcomes]

    assert run() == run()


def test_a_run_goes_through_the_commit_then_send_path_and_audits_it(tmp_path):
    """Rule tests and replays commit each order's decision row before it is sent and audit
    it as the service does; kept in memory, or in `state_dir/audit.jsonl`, the same records."""
    def run(state_dir=None):
        runner = OfflineRunner(rules(DIP), start=T0, wallet={"ZUSD": 1000}, state_dir=state_dir)
        for n, price in enumerate([110, 99, 98, 97]):
            runner.feed(tick(n * 45, price))
        runner.finish(T0 + 200)
        cl_ord_id = runner.outcomes[0].intents[0].cl_ord_id
        row = runner.store.get_decision(cl_ord_id)
        records = runner.audit.records if state_dir is None else None
        runner.close()
        return row, records

    row, in_memory = run()
    assert row.status == "accepted" and row.rule_id == "dip"  # recorded, marked sent, resting on the paper book
    assert in_memory[0]["kind"] == "state"  # the rules loaded, then the account read before any event
    assert [r["kind"] for r in in_memory[1:3]] == ["request", "response"]
    assert in_memory[1]["data"]["kind"] == "account"
    placed = [(r["kind"], r["data"].get("cl_ord_id")) for r in in_memory if r["data"].get("kind") == "place_order"
              or (r["kind"] == "decision" and "intent" in r["data"])]
    assert placed == [("decision", row.cl_ord_id), ("request", row.cl_ord_id), ("response", row.cl_ord_id)]
    order = next(r for r in in_memory if r["kind"] == "decision" and "intent" in r["data"])
    assert order["data"]["action"] == "would_send"

    row_kept, _ = run(tmp_path / "state")
    on_disk = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert row_kept.cl_ord_id == row.cl_ord_id
    assert [(r["kind"], r["rule_id"]) for r in on_disk] == [(r["kind"], r["rule_id"]) for r in in_memory]
