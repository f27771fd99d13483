"""Decision traces built from audit records as they are written: a fire gathers its trigger
and guard (written just before it) and every later record naming its decision; an evaluation
that did not fire is a trace of its own; each rule keeps its latest traces only."""

from __future__ import annotations

from typing import Any

from rules_engine.service.traces import TraceBook


def rec(seq: int, record_kind: str, rule: str | None, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": record_kind, "rule_id": rule, "time": 1000.0 + seq / 1000, "data": data}


def test_a_fire_gathers_its_trigger_guard_and_later_records() -> None:
    book = TraceBook()
    book([rec(1, "trigger", "r", trigger=0, value="70100", state="fired"),
          rec(2, "guard", "r", result=True, values=[]),
          rec(3, "decision", "r", decision_id="r#1", fire_seq=1, trigger=0),
          rec(4, "action", "r", decision_id="r#1", intent_id="r#1/0", type="place_order")])
    book([rec(5, "request", "r", intent_id="r#1/0", kind="place_order", request={"method": "AddOrder"})])
    book([rec(6, "response", "r", intent_id="r#1/0", result={"ok": True})])
    book([rec(7, "decision", "r", decision_id="r#1", outcome="completed")])
    book([rec(8, "action", "r", order="cl-1", status="closed", txid="T1")])  # a later fill, no decision id
    trace = book.trace("r#1")
    assert trace is not None and trace["fired"] and trace["outcome"] == "completed"
    assert [s["seq"] for s in trace["steps"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert trace["value"] == "70100" and book.trace("r@1") is None  # re-keyed to the decision id
    assert book.rule("r")["last_fire"] == {"time": 1000.003, "decision_id": "r#1", "outcome": "completed"}


def test_evaluations_that_do_not_fire_and_errors() -> None:
    book = TraceBook(per_rule=2)
    book([rec(1, "trigger", "r", trigger=0, state="fired"), rec(2, "guard", "r", result=False, values=[])])
    assert book.recent("r")[0]["outcome"] == "guard false" and book.recent("r")[0]["id"] == "r@1"
    book([rec(3, "trigger", "r", trigger=0, state="fired"), rec(4, "error", "r", phase="trigger", reason="boom")])
    assert book.rules_in_error() == ["r"] and book.rule("r")["last_error"]["reason"] == "boom"
    book([rec(5, "trigger", "r", trigger=0, state="fired"), rec(6, "dropped", "r", reason="cooling down")])
    assert [t["id"] for t in book.recent("r")] == ["r@5", "r@3"]  # only the latest two kept
    assert book.trace("r@1") is None
    book([rec(7, "trigger", "r", trigger=0), rec(8, "guard", "r", result=True, values=[])])
    assert book.rules_in_error() == []  # evaluated cleanly again
    book.forget_rules(["other"])
    assert book.recent("r") == [] and book.rule("r")["last_error"] is None


def test_signals_and_reloads_are_kept_engine_wide() -> None:
    book = TraceBook(signals=2)
    book([rec(1, "signal", None, source="tv", signal_id="a"),
          rec(2, "signal_rejected", None, source="tv", status=401, code="invalid_signature", reason="bad"),
          rec(3, "signal", None, source="tv", signal_id="c"),
          rec(4, "reload", None, ok=False, reason="changed", errors=["rules.yaml:3:1: x"])])
    assert [s.get("signal_id") for s in book.recent_signals()] == ["c", None]
    assert book.last_reload is not None and book.last_reload["errors"] == ["rules.yaml:3:1: x"]
