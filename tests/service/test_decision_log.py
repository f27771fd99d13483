"""The decision log's line for each kind of audit record (level, message, fields), and the
formatters writing a line's fields with secrets masked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from rules_engine.redact import register_secret
from rules_engine.service.decision_log import describe
from rules_engine.service.logs import setup_logging

W, I, E = logging.WARNING, logging.INFO, logging.ERROR


@pytest.mark.parametrize(("record", "level", "message", "fields"), [
    ({"kind": "risk", "rule_id": "r", "data": {"limit": "max_order_notional", "value": "7000", "allowed": "5000",
                                                "pair": "XBTUSD"}},
     W, "risk limit blocked an order", {"limit": "max_order_notional", "value": "7000", "allowed": "5000"}),
    ({"kind": "response", "rule_id": "r", "data": {"intent_id": "r#1/0", "kind": "place_order", "result": {
        "ok": False, "error": "EOrder:Insufficient funds", "data": {"error_class": "InsufficientFunds"}}}},
     W, "request refused", {"error": "EOrder:Insufficient funds", "error_class": "InsufficientFunds"}),
    ({"kind": "response", "rule_id": "r", "data": {"intent_id": "r#1/0", "kind": "place_order", "result": {
        "ok": False, "error": "timed out", "data": {"ambiguous": True, "error_class": "OrderStateUnknown"}}}},
     E, "request ambiguous: order state unknown", {"intent_id": "r#1/0"}),
    ({"kind": "blocked", "rule_id": None, "data": {"kill_switch": "engaged", "reason": "drill"}},
     W, "kill switch engaged: actions blocked", {"reason": "drill"}),
    ({"kind": "blocked", "rule_id": "r", "data": {"reason": "waiting for balance of ZUSD"}},
     I, "blocked", {"reason": "waiting for balance of ZUSD"}),
    ({"kind": "dropped", "rule_id": "r", "data": {"reason": "max_fires reached", "trigger": 0}},
     I, "trigger dropped", {"reason": "max_fires reached"}),
    ({"kind": "error", "rule_id": "r", "data": {"phase": "trigger", "reason": "ZeroDivisionError"}},
     E, "rule error", {"phase": "trigger", "reason": "ZeroDivisionError"}),
    ({"kind": "decision", "rule_id": "r", "data": {"decision_id": "r#1", "outcome": "failed", "reason": "x"}},
     W, "run failed", {"outcome": "failed"}),
    ({"kind": "kill_switch", "rule_id": None, "data": {"engaged": False, "source": "cli"}},
     W, "kill switch cleared", {"engaged": False, "source": "cli"}),
    ({"kind": "trigger", "rule_id": "t", "data": {"trigger": 0, "state": "fired", "scheduled_time": 1700000000}},
     I, "timer beat fired", {"scheduled_time": 1700000000}),
    ({"kind": "notification", "rule_id": "r", "data": {"ok": False, "channel": "ops", "attempts": 4,
                                                       "error": "refused"}},
     W, "notification not delivered", {"channel": "ops", "attempts": 4}),
])
def test_each_record_kind_has_its_line(record: dict, level: int, message: str, fields: dict) -> None:
    line = describe({"seq": 5, **record})
    assert line is not None
    assert (line[0], line[1]) == (level, message)
    assert line[2]["seq"] == 5 and line[2]["event"] == record["kind"]
    assert fields.items() <= line[2].items()


def test_formatters_write_fields_and_mask_secrets_in_them() -> None:
    register_secret("hunter2-very-secret")
    logger = logging.getLogger("rules_engine.decisions.test")
    for fmt in ("json", "text"):
        stream = io.StringIO()
        handler = setup_logging(fmt, logging.INFO, stream)
        try:
            logger.info("request refused", extra={"fields": {
                "rule": "r", "error": "bad key hunter2-very-secret", "token": "abc", "n": 3, "ok": False}})
        finally:
            logging.getLogger().removeHandler(handler)
        out = stream.getvalue()
        assert "hunter2-very-secret" not in out and "abc" not in out
        if fmt == "json":
            entry = json.loads(out)
            assert entry["rule"] == "r" and entry["n"] == 3 and entry["ok"] is False and entry["token"] == "***"
        else:
            assert ' rule=r error="bad key ***" token=*** n=3 ok=false' in out
