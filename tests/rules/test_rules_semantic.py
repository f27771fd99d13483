"""Checks across files and warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_engine.rules import load_rules


def price_rule(rule_id: str = "r", direction: str = "crosses_above", level: str = "70000", when: str | None = None,
               throttle: str = "cooldown: 5m", volume: str = "0.01") -> str:
    guard = f'\n    when: "{when}"' if when else ""
    return f"""
version: 1
rules:
  - id: {rule_id}
    {throttle}
    triggers: [{{type: price, symbol: XBTUSD, {direction}: {level}}}]{guard}
    actions:
      - {{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: {volume}}}
"""


def test_duplicate_ids_across_files_point_at_both(write):
    a = write("a.yaml", price_rule("same"))
    b = write("sub/b.yaml", price_rule("same"))
    result = load_rules([a.parent])
    [error] = result.errors
    assert error.code == "duplicate-id" and Path(error.file).name == "b.yaml"
    assert (error.line, error.column) == (3, 9)
    assert error.hint == f"first defined at {a.as_posix()}:3:9"
    assert str(error).endswith(f'rule "same": duplicate rule id "same" (first defined at {a.as_posix()}:3:9)')
    assert result.ruleset is None


def test_duplicate_ids_in_one_file(load):
    text = price_rule("x") + "  - {id: x, triggers: [{type: timer, every: 1m}], actions: [{type: cancel_all}]}\n"
    [error] = load(text).errors
    assert error.code == "duplicate-id" and error.line == 8


def test_order_placing_rule_without_throttle_warns(load):
    result = load(price_rule(throttle="mode: single"))
    [warning] = result.warnings
    assert warning.code == "no-cooldown" and warning.severity == "warning" and warning.line == 3
    assert str(warning).split(": ", 1)[1].startswith('warning: rule "r": places orders but has no cooldown')
    assert result.ruleset is not None  # warnings do not invalidate


@pytest.mark.parametrize("throttle", ["cooldown: 1m", "max_fires: {count: 1, window: 1d}"])
def test_cooldown_or_max_fires_silences_the_warning(load, throttle):
    assert load(price_rule(throttle=throttle)).warnings == []


def test_default_cooldown_counts(load):
    text = price_rule(throttle="mode: single").replace("version: 1\n", "version: 1\ndefaults: {cooldown: 1m}\n")
    assert load(text).warnings == []


@pytest.mark.parametrize(
    ("direction", "level", "when"),
    [
        ("crosses_above", "70000", "price < 65000"),
        ("crosses_above", "70000", "price < 70000"),
        ("crosses_above", "70000", "65000 > price"),
        ("crosses_above", "70000", "price <= 69999.5"),
        ("crosses_above", "70000", "price == 1"),
        ("crosses_above", "70000", "ask - bid < 5 and price < 60000"),
        ("crosses_above", "70000", "60000 < price < 65000"),
        ("crosses_above", "70000", "last < 65000"),
        ("crosses_below", "60000", "price > 65000"),
        ("crosses_below", "60000", "price >= 60000.01"),
        ("crosses_below", "60000", "70000 <= price"),
    ],
)
def test_level_contradicted_by_its_guard_warns(load, direction, level, when):
    result = load(price_rule(direction=direction, level=level, when=when))
    [warning] = result.warnings
    assert warning.code == "contradicted-level" and warning.line == 6 and warning.column == 12
    assert f'the guard "{when}" can never hold when trigger 1 fires' in warning.message


@pytest.mark.parametrize(
    ("direction", "level", "when"),
    [
        ("crosses_above", "70000", "price < 75000"),
        ("crosses_above", "70000", "price <= 70000"),
        ("crosses_above", "70000", "price > 65000"),
        ("crosses_above", "70000", "price < 65000 or ask > 1"),
        ("crosses_above", "70000", "not price < 65000"),
        ("crosses_above", "70000", "bid < 65000"),  # another field than the trigger's
        ("crosses_below", "60000", "price >= 60000"),
        ("crosses_below", "60000", "price > 55000"),
    ],
)
def test_consistent_guards_do_not_warn(load, direction, level, when):
    assert load(price_rule(direction=direction, level=level, when=when)).warnings == []


def test_contradiction_found_inside_all_but_not_inside_any(load):
    text = price_rule().replace("    triggers:", '    when: {all: ["ask > 0", "price < 100"]}\n    triggers:')
    assert [w.code for w in load(text).warnings] == ["contradicted-level"]
    text = price_rule().replace("    triggers:", '    when: {any: ["ask > 0", "price < 100"]}\n    triggers:')
    assert load(text).warnings == []


def test_volume_below_ordermin_warns(load):
    [warning] = load(price_rule(volume="0.00001")).warnings
    assert warning.code == "below-ordermin" and "minimum order of 0.00005 for XBTUSD" in warning.message


def test_strict_failure_is_left_to_the_caller(load):
    result = load(price_rule(throttle="mode: single", when="price < 1"))
    assert {w.code for w in result.warnings} == {"no-cooldown", "contradicted-level"}
    assert result.errors == [] and result.ruleset is not None
