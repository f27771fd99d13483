"""`rules-engine demo` tells the story of the example rules and leaves a verified audit log."""

from __future__ import annotations

import io
import logging

from rules_engine.audit import verify
from rules_engine.demo import run_demo


def test_demo_narrates_fires_and_verifies_its_audit_log(tmp_path) -> None:
    out = io.StringIO()
    assert run_demo(tmp_path / "state", out, wait_timer=False) == 0
    text = out.getvalue()
    for line in ("btc-breakout-buy: last 70150 crossed above 70000", "FIRES: decision eth-buy-usd-amount#1",
                 "eth-dip-buy: pending cancelled", "FIRES: decision pf-btc-short#1",
                 "FIRES: decision tv-long#1", "409 replayed", "verify: OK"):
        assert line in text, line
    assert str(tmp_path / "state" / "audit.jsonl") in text
    assert verify(tmp_path / "state" / "audit.jsonl").ok


def test_demo_prints_the_story_without_the_decision_logs_error_lines(tmp_path, capsys) -> None:
    """The futures scene ends in a rule error on purpose: the narrator tells it, and the decision
    log's own ERROR line does not come out on stderr beside it (as `rules-engine demo` logs)."""
    from rules_engine.commands.demo import demo_logging

    decisions = logging.getLogger("rules_engine.decisions")
    root, level = logging.getLogger(), decisions.level
    handlers, root_level = list(root.handlers), root.level
    demo_logging()
    out = io.StringIO()
    try:
        assert run_demo(tmp_path / "state", out, wait_timer=False) == 0
    finally:  # the process's logging as it was, for the tests after this one
        decisions.setLevel(level)
        root.handlers[:], root.level = handlers, root_level
    assert "error in pf-btc-short: futures_send_order failed: wouldNotReducePosition" in out.getvalue()
    assert "level=error" not in capsys.readouterr().err


def test_demo_refuses_a_used_state_dir(tmp_path) -> None:
    (tmp_path / "audit.jsonl").write_text("")
    assert run_demo(tmp_path, io.StringIO(), wait_timer=False) == 2
