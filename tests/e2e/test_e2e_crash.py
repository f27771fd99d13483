"""The crash suite: `kill -9` (SIGKILL from a crash point) of `rules-engine run --live` at
every step around an order's send, then a restart. Every time: at most one order per
decision, the rule that was waiting for its result is settled at start (no crossing after
the restart is dropped as "previous run still in progress"), and `audit verify` passes."""

from __future__ import annotations

import pytest
import requests

from crash_harness import CrashEngine, audit, audit_ok, dropped_in_progress, kill_leftovers, orders_per_decision, wait
from e2e_harness import E2E, signed

pytestmark = pytest.mark.crash


@pytest.fixture(autouse=True)
def _no_engine_left_running():
    yield
    kill_leftovers()

UP = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions:
    - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}
    - {type: log, message: "order {{ actions[0].txid }} placed"}
"""

ORDER_POINTS = ("order.after_commit", "order.after_decision", "order.after_send", "order.after_outcome",
                "result.after_handled")


def live_config(e2e: E2E) -> dict:
    return e2e.config_data(mode="live", dead_man_switch={"enabled": False})


@pytest.mark.parametrize("point", ORDER_POINTS)
def test_kill_9_around_the_send_settles_the_rule_and_sends_each_decision_once(e2e: E2E, point: str) -> None:
    e2e.write_rules(UP)
    config = live_config(e2e)
    engine = CrashEngine(e2e, config, crash_at=point).start()
    engine.price(e2e, "XBTUSD", "69500")  # the first tick after a start only arms
    e2e.sim.set_price("XBTUSD", "70100")
    engine.killed()

    engine = CrashEngine(e2e, config).start()
    try:
        engine.price(e2e, "XBTUSD", "69500")
        engine.price(e2e, "XBTUSD", "70100")
        wait(lambda: orders_per_decision(e2e).get("up#2") == 1, what="the crossing after the restart ordered")
    finally:
        assert engine.stop() == 0
    counts = orders_per_decision(e2e)
    assert counts == {"up#1": 1, "up#2": 1}, counts  # sent before the crash, or proven never placed and sent now
    resent = audit(e2e, "resent_after_proven_absent")
    if point in ("order.after_commit", "order.after_decision"):
        assert [r["data"]["decision_id"] for r in resent] == ["up#1"]
        # its decision record was written before its row: it may have left, so it is looked up
        assert resent[0]["data"]["proof"] == "not found by cl_ord_id after its deadline"
        outcomes = [r["data"].get("outcome") for r in audit(e2e, "decision") if r["data"]["decision_id"] == "up#1"]
        assert "completed" in outcomes, outcomes  # the resent order's result reached the rule, which went on
    else:
        assert resent == []
    assert dropped_in_progress(e2e) == []
    assert not [r for r in audit(e2e, "error") if "no result within" in str(r["data"])]
    assert audit_ok(e2e)


def test_kill_9_between_the_decision_record_and_its_rows_abandons_it_and_never_reuses_its_id(e2e: E2E) -> None:
    """The decision's record is written (its fsync begun) before its rows are committed: a kill
    in between leaves a record without rows. The order was never sent (the send comes after the
    commit): the restart records it abandoned, the rule goes on from its state before it, and
    its next decision gets a new client order id."""
    e2e.write_rules(UP)
    config = live_config(e2e)
    engine = CrashEngine(e2e, config, crash_at="order.before_commit").start()
    engine.price(e2e, "XBTUSD", "69500")
    e2e.sim.set_price("XBTUSD", "70100")
    engine.killed()
    assert [r["data"]["decision_id"] for r in audit(e2e, "decision") if "cl_ord_id" in r["data"]] == ["up#1"]

    engine = CrashEngine(e2e, config).start()
    try:
        abandoned = audit(e2e, "abandoned")
        assert [r["data"]["decision_id"] for r in abandoned] == ["up#1"], abandoned
        engine.price(e2e, "XBTUSD", "69500")
        engine.price(e2e, "XBTUSD", "70100")
        wait(lambda: orders_per_decision(e2e).get("up#2") == 1, what="the crossing after the restart ordered")
    finally:
        assert engine.stop() == 0
    assert orders_per_decision(e2e) == {"up#2": 1}
    ids = [r["data"]["cl_ord_id"] for r in audit(e2e, "decision") if "cl_ord_id" in r["data"]]
    assert len(ids) == len(set(ids)) == 2, ids
    assert audit(e2e, "resent_after_proven_absent") == []
    assert dropped_in_progress(e2e) == []
    assert audit_ok(e2e)


BOT = """
- id: bot
  triggers: [{type: signal, source: mybot}]
  actions:
    - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}
"""


def post_signal(url: str, signal_id: str) -> int | None:
    """POST a signed signal; its HTTP status, or None if the engine died before answering. The
    body names the signal: two signals signed in the same second differ in their MAC (from
    which the engine also derives an id, and which a fast restart made equal)."""
    body, headers = signed({"action": "buy", "ref": signal_id}, signal_id=signal_id)
    try:
        return requests.post(f"{url}/signals/mybot", data=body, headers=headers, timeout=10).status_code
    except requests.ConnectionError:
        return None


@pytest.mark.parametrize("point", ["signal.after_durable", "signal.after_decided"])
def test_a_signal_accepted_before_kill_9_is_decided_exactly_once_after_restart(e2e: E2E, point: str) -> None:
    e2e.write_rules(BOT)
    config = live_config(e2e)
    engine = CrashEngine(e2e, config, crash_at=point).start(symbols=0)
    assert post_signal(engine.url, "sig-1") in (202, None)  # the 202 follows the durable write, if it gets out
    engine.killed()

    engine = CrashEngine(e2e, config).start(symbols=0)
    try:
        wait(lambda: orders_per_decision(e2e).get("bot#1") == 1, what="the accepted signal decided")
        assert post_signal(engine.url, "sig-1") == 409  # a replay: not decided twice
        assert post_signal(engine.url, "sig-2") == 202
        wait(lambda: orders_per_decision(e2e).get("bot#2") == 1, what="a new signal decided")
    finally:
        assert engine.stop() == 0
    assert orders_per_decision(e2e) == {"bot#1": 1, "bot#2": 1}
    fires = [r for r in audit(e2e, "decision") if r["rule_id"] == "bot" and "fire_seq" in r["data"]]
    assert [r["data"]["fire_seq"] for r in fires] == [1, 2]
    assert audit_ok(e2e)


def test_a_signal_whose_decision_was_audited_but_not_saved_is_decided_again_after_kill_9(e2e: E2E) -> None:
    """Killed between the decision's record and its commit (which also takes the signal out of
    the inbox): the signal is still undecided, so the restart abandons that decision (never
    sent) and decides the signal again, under a new client order id: one order for the signal."""
    e2e.write_rules(BOT)
    config = live_config(e2e)
    engine = CrashEngine(e2e, config, crash_at="order.before_commit").start(symbols=0)
    assert post_signal(engine.url, "sig-1") in (202, None)
    engine.killed()

    engine = CrashEngine(e2e, config).start(symbols=0)
    try:
        wait(lambda: orders_per_decision(e2e).get("bot#2") == 1, what="the signal decided again")
        assert post_signal(engine.url, "sig-1") == 409  # still one signal
    finally:
        assert engine.stop() == 0
    assert orders_per_decision(e2e) == {"bot#2": 1}
    assert [r["data"]["decision_id"] for r in audit(e2e, "abandoned")] == ["bot#1"]
    assert audit_ok(e2e)
