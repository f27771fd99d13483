"""`validate` checks the `signal.<field>` names a rule reads against its signal sources' payload
schemas (`schemas/signals/<source>.schema.json`), with "did you mean"."""

from __future__ import annotations

import pytest

from rules_engine.cli import main
from rules_engine.rules import signal_fields

ALLOWED = '"buy", "sell", "close"'


def found(result) -> list[tuple[str, int, int, str, str | None]]:
    return [(d.severity, d.line, d.column, d.message, d.hint) for d in result.errors + result.warnings]


def test_a_misspelled_field_in_where_is_reported_with_did_you_mean(load):
    result = load("""
        version: 1
        rules:
          - id: tv
            triggers:
              - {type: signal, source: tradingview, where: "signal.acton == 'sel'"}
            actions: [{type: log, message: hi}]
        """)
    assert found(result) == [("warning", 5, 53, 'the "tradingview" payload schema has no field "acton"',
                              'did you mean "action"?')]
    assert result.warnings[0].code == "unknown-signal-field"


def test_every_way_of_reading_a_field_everywhere_in_the_rule(load):
    result = load("""
        version: 1
        rules:
          - id: tv
            triggers:
              - type: signal
                source: tradingview
                where: "signal.action == 'sel' and signal['tickr'] != ''"
            when: "signal.price > 1 and 'contract' in signal"
            actions:
              - {type: log, message: "go {signal.commnt} {signal.action}"}
              - {type: log, message: x, if: "signal.action in ('buy', 'hodl')"}
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=signal.contracs"}
            cooldown: 1m
        """)
    assert [(line, message, hint) for _, line, _, message, hint in found(result)] == [
        (7, "signal.action is never 'sel' (the payload schema allows " + ALLOWED + ")",
         'did you mean "sell"?'),
        (7, 'the "tradingview" payload schema has no field "tickr"', 'did you mean "ticker"?'),
        (8, 'the "tradingview" payload schema has no field "contract"', 'did you mean "contracts"?'),
        (10, 'the "tradingview" payload schema has no field "commnt"', 'did you mean "comment"?'),
        (11, "signal.action is never 'hodl' (the payload schema allows " + ALLOWED + ")", None),
        (12, 'the "tradingview" payload schema has no field "contracs"', 'did you mean "contracts"?'),
    ]
    assert result.errors == []


def test_fields_the_schema_lists_and_sources_without_a_schema_are_not_reported(load):
    result = load("""
        version: 1
        rules:
          - id: tv
            triggers: [{type: signal, source: tradingview, where: "signal.action == 'buy' and 'comment' in signal"}]
            actions: [{type: log, message: "{signal.ticker} {signal['price']}"}]
          - id: bot
            triggers: [{type: signal, source: mybot, where: "signal.anything == 1"}]
            actions: [{type: log, message: "{signal.whatever}"}]
          - id: both
            triggers:
              - {type: signal, source: tradingview}
              - {type: signal, source: mybot}
            actions: [{type: log, message: "{signal.free}"}]
        """)
    assert found(result) == []


def test_a_closed_schema_makes_an_unknown_field_an_error(load, monkeypatch):
    closed = {"type": "object", "additionalProperties": False,
              "properties": {"side": {"enum": ["buy", "sell"]}, "qty": {"type": "number"}}}
    monkeypatch.setattr(signal_fields, "signal_schema_names", lambda: ["ops"])
    monkeypatch.setattr(signal_fields, "load_signal_schema", lambda name: closed)
    result = load("""
        version: 1
        rules:
          - id: ops
            triggers: [{type: signal, source: ops, where: "signal.sid == 'buy'"}]
            actions: [{type: log, message: hi}]
        """)
    [error] = result.errors
    assert error.message == 'the "ops" payload schema has no field "sid" (it allows no other fields)'
    assert (error.code, error.hint, error.severity) == ("unknown-signal-field", 'did you mean "side"?', "error")
    assert result.ruleset is None


def test_validate_strict_fails_on_the_typo(write, capsys):
    path = write("tv.yaml", """
        version: 1
        rules:
          - id: tv
            triggers: [{type: signal, source: tradingview, where: "signal.acton == 'sell'"}]
            actions: [{type: log, message: hi}]
        """)
    assert main(["validate", str(path)]) == 0
    assert main(["validate", "--strict", str(path)]) == 1
    assert 'no field "acton" (did you mean "action"?)' in capsys.readouterr().out


@pytest.mark.parametrize("example", ["tradingview.yaml"])
def test_the_example_rules_read_only_fields_their_schema_lists(example):
    from pathlib import Path

    from rules_engine.rules import load_rules

    result = load_rules([Path(__file__).resolve().parents[2] / "rules" / example])
    assert result.ok and not [w for w in result.warnings if "signal" in w.code]


def test_a_where_typo_is_reported_in_the_same_run_as_the_rules_other_errors(load):
    result = load("""
        version: 1
        rules:
          - id: tv
            triggers:
              - {type: signal, source: tradingview, where: "signal.acton == 'buy'"}
            actions: [{type: place_order, pair: XBTUSDD, side: buy, ordertype: market, volume: 1}]
        """)
    assert [d.code for d in result.errors] == ["unknown-pair"]
    assert [(d.line, d.code, d.hint) for d in result.warnings] == [(5, "unknown-signal-field", 'did you mean "action"?')]


def test_each_where_is_checked_against_its_own_source(load, monkeypatch):
    """A rule fired by two sources: each trigger's `where` sees only its own source's signals."""
    schemas = {"tradingview": {"type": "object", "properties": {"action": {"enum": ["buy", "sell"]}}},
               "ops": {"type": "object", "properties": {"command": {"type": "string"}}}}
    monkeypatch.setattr(signal_fields, "signal_schema_names", lambda: sorted(schemas))
    monkeypatch.setattr(signal_fields, "load_signal_schema", lambda name: schemas[name])
    result = load("""
        version: 1
        rules:
          - id: two
            triggers:
              - {type: signal, source: tradingview, where: "signal.command == 'x'"}
              - {type: signal, source: ops, where: "signal.command == 'stop'"}
            actions: [{type: log, message: "{signal.action} {signal.command} {signal.other}"}]
        """)
    assert [d.message for d in result.warnings] == [
        'the "tradingview" payload schema has no field "command"',
        'the "ops" and "tradingview" payload schemas have no field "other"',
    ]
