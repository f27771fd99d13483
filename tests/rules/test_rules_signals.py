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


OWN = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["side"],
       "properties": {"side": {"enum": ["long", "short"]}, "size": {"type": "number"}}}


def test_own_schemas_come_from_the_folders_in_the_environment_before_the_package(tmp_path, monkeypatch):
    import json

    first, second = tmp_path / "mine", tmp_path / "team"
    first.mkdir()
    second.mkdir()
    (first / "mybot.schema.json").write_text(json.dumps(OWN))
    (second / "mybot.schema.json").write_text(json.dumps({"type": "object", "required": ["other"]}))
    (second / "tradingview.schema.json").write_text(json.dumps({"type": "object", "required": ["mine"]}))
    with pytest.raises(LookupError, match=r"no payload schema named 'mybot' in schemas/signals/"):
        load_signal_schema("mybot")
    monkeypatch.setenv("RULES_ENGINE_SIGNAL_SCHEMAS", f"{first}:{second}")
    assert load_signal_schema("mybot") == OWN  # the first folder that has it
    assert load_signal_schema("tradingview") == {"type": "object", "required": ["mine"]}  # yours over the shipped
    assert {"mybot", "tradingview"} <= set(signal_schema_names())


def test_a_missing_own_schema_says_where_it_looked(tmp_path, monkeypatch):
    import json

    (tmp_path / "mybot.schema.json").write_text(json.dumps(OWN))
    monkeypatch.setenv("RULES_ENGINE_SIGNAL_SCHEMAS", f"{tmp_path / 'nowhere'}:{tmp_path}")
    with pytest.raises(LookupError) as caught:
        load_signal_schema("mybotx")
    assert str(caught.value) == (f"no payload schema named 'mybotx' in {tmp_path / 'nowhere'} (not a folder), "
                                 f"{tmp_path} (RULES_ENGINE_SIGNAL_SCHEMAS) or schemas/signals/ "
                                 '(did you mean "mybot"?)')
    (tmp_path / "broken.schema.json").write_text('{"type": "nonsense"}')
    with pytest.raises(ValueError, match="signal schema 'broken' is invalid"):
        load_signal_schema("broken")
