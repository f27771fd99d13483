"""`rules-engine demo` tells the story of the example rules and leaves a verified audit log."""

from __future__ import annotations

import io

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


def test_demo_refuses_a_used_state_dir(tmp_path) -> None:
    (tmp_path / "audit.jsonl").write_text("")
    assert run_demo(tmp_path, io.StringIO(), wait_timer=False) == 2
