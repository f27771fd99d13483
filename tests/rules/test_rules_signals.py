"""Signal payload schemas under schemas/signals/."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from rules_engine.rules import load_signal_schema, signal_schema_names


def test_tradingview_schema_loads_and_checks_payloads():
    assert "tradingview" in signal_schema_names()
    schema = load_signal_schema("tradingview")
    validator = Draft202012Validator(schema)
    assert validator.is_valid({"id": "1", "ticker": "BTCUSD", "action": "buy", "price": 70000.5, "extra": 1})
    errors = {e.message for e in validator.iter_errors({"ticker": "BTCUSD", "action": "hold", "price": -1})}
    assert len(errors) == 2


def test_every_shipped_signal_schema_is_valid():
    for name in signal_schema_names():
        Draft202012Validator.check_schema(load_signal_schema(name))


def test_unknown_schema_name_suggests_the_closest():
    with pytest.raises(LookupError, match=r"no payload schema named 'tradingveiw'.*did you mean \"tradingview\""):
        load_signal_schema("tradingveiw")


@pytest.mark.parametrize("name", ["../rules", "/etc/passwd", "Trading View", ""])
def test_names_cannot_escape_the_folder(name):
    with pytest.raises(LookupError, match="is not a signal schema name"):
        load_signal_schema(name)
