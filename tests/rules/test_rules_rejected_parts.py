"""One run reports every independent problem: the parts of a rule the schema accepted are checked
(expressions, names, templates, pairs, assets, symbols, durations, cron, time zones) even when
another part of the same rule, or of the same action, has a schema error; nothing the schema
rejected is reported again or causes further errors; no rule with an error is built."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rules_engine.rules import load_rules
from rules_engine.rules.schema_check import check_schema
from rules_engine.rules.yaml_source import read_source

EXAMPLES = Path(__file__).resolve().parents[2] / "rules"


def located(result) -> list[str]:
    """Every error as `line:column: code: message`."""
    return [f"{d.line}:{d.column}: {d.code}: {d.message}" for d in result.errors]


def test_schema_errors_do_not_hide_the_names_and_the_pair(write):
    path = write("bad.yaml", """
        version: 1
        rules:
          - id: y
            triggers: [{type: timer, every: 5 minutes}]
            when: "balance('ZUSD') > 10 and prise > 3"
            actions: [{type: place_order, pair: BTCUSDX, side: buy, ordertype: limit, volume: 1}]
        """)
    result = load_rules([path])
    assert located(result) == [
        "4:37: schema: expected a duration such as 500ms, 30s, 5m, 1h or 1d",
        "5:37: expression: invalid expression: unknown name 'prise' (did you mean 'price'?)",
        "6:15: schema: limit, iceberg, stop, take-profit and trailing orders need price:",
        '6:41: unknown-pair: unknown Kraken pair "BTCUSDX"',
    ]
    assert {d.rule_id for d in result.errors} == {"y"} and {d.file for d in result.errors} == {path.as_posix()}
    assert result.errors[3].hint == 'did you mean "BTC/USD"?'
    assert result.ruleset is None and result.rule_count == 1


def test_invalid_trigger_and_a_bad_expression_elsewhere(write):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: guarded
            cooldown: 1m
            triggers:
              - {type: pricee, symbol: NOPE, crosses_above: 5}
              - {type: timer, evry: 1m}
            when: "price > 3 and volume >> "
            actions:
              - {type: log, message: "at {price} {prise}", if: "bid > 1 and ask < 2"}
        """)
    result = load_rules([path])
    assert located(result) == [
        '6:16: unknown-type: unknown trigger type "pricee"',
        '7:23: unknown-key: unknown key "evry" in timer trigger',
        "8:33: expression: invalid expression: syntax error: the expression stops after '>>': something is "
        "missing after it",
        "10:42: expression: invalid message template: unknown name 'prise' (did you mean 'price'?)",
    ]
    # Both triggers were rejected, so every trigger's names are allowed (price, bid, ask): a fixed
    # trigger may provide them. NOPE is not checked: what it is depends on the rejected type.
    assert result.ruleset is None


def test_an_accepted_trigger_still_limits_the_names(write):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: timed
            cooldown: 1m
            triggers: [{type: timer, every: 1m}, {type: pricee, symbol: XBTUSD, crosses_above: 5}]
            when: "price > 3"
            actions: [{type: cancel_all}]
        """)
    result = load_rules([path])
    assert located(result) == [
        '5:49: unknown-type: unknown trigger type "pricee"',
        "6:12: expression: invalid expression: 'price' is not available here: price triggers provide it, "
        "and a rule may use it only if all of its triggers do",
    ]


def test_schema_error_in_one_action_and_unknown_pair_in_another(write):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: two-actions
            cooldown: 1m
            triggers: [{type: price, symbol: XBTUSD, crosses_above: 5}]
            actions:
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, price: 5}
              - {type: place_order, pair: BTCUSDX, side: buy, ordertype: market, volume: "=price * 2"}
              - {type: check_balance, asset: DOGECOINX}
              - {type: futures_send_order, symbol: PF_XBTUSD, side: sell, order_type: lmt, size: "=prise"}
        """)
    result = load_rules([path])
    assert located(result) == [
        "7:91: schema: market and settle-position orders take no price",
        '8:35: unknown-pair: unknown Kraken pair "BTCUSDX"',
        '9:9: schema: check_balance action is missing the required key "minimum"',
        '9:38: unknown-asset: unknown Kraken asset "DOGECOINX"',
        "10:9: schema: lmt, post, ioc and fok orders need limit_price:",
        "10:92: expression: invalid expression: unknown name 'prise' (did you mean 'price'?)",
    ]
    assert result.ruleset is None


def test_accepted_parts_of_a_rejected_rule_get_every_check(write):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: many
            enabled: maybe
            for: 0.5.s
            triggers:
              - {type: timer, cron: "61 * * * *", timezone: Mars/Olympus}
              - {type: signal, source: tv, where: "signal[ "}
              - {type: price, symbol: XBTUSD, crosses_below: 5, rearm: "0%"}
            when: {all: ["prise > 1"], any: ["rule_id == 'x'"]}
            max_fires: {count: 0, window: 0s}
            actions:
              - {type: dead_man_switch, timeout: 2d, iff: "x"}
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: iceberg, volume: 30, displayvol: 1, price: 5, expire_after: 0s, userref: 1}
        """)
    assert located(load_rules([path])) == [
        '4:14: schema: "enabled" must be true or false, not the string "maybe"',
        "5:10: schema: expected a duration such as 500ms, 30s, 5m, 1h or 1d",
        '7:29: invalid-cron: "61 * * * *" is not a cron schedule: minute 61 is out of range 0-59',
        '7:53: unknown-timezone: unknown time zone "Mars/Olympus"',
        "8:50: expression: invalid expression: syntax error: '[' was never closed",
        "9:64: invalid-value: rearm must be more than 0 (and a percent less than 100%)",
        "10:11: schema: a condition is an expression string, or a mapping with exactly one of all:, any: or not:",
        "10:19: expression: invalid expression: unknown name 'prise' (did you mean 'price_of'?)",
        '11:24: schema: "count" must be at least 1, not 0',
        "11:35: invalid-value: the max_fires window must be longer than 0s",
        "13:42: invalid-value: timeout must be whole seconds below 1d (Kraken's limit); 0s disables the switch",
        '13:46: unknown-key: unknown key "iff" in dead_man_switch action',
        "14:98: invalid-value: displayvol must be at least 1/15 of volume (Kraken's iceberg rule)",
        "14:125: invalid-value: expire_after must be longer than 0s",
        "14:138: userref-not-allowed: place_order cannot set userref: Kraken refuses userref together with "
        "cl_ord_id, and every order the engine places carries a deterministic cl_ord_id so that no retry or "
        "restart can place it twice",
    ]


def schema_errors(path: Path) -> list[str]:
    """The schema layer's own findings for the file, as `line:column: code: message`."""
    document, _ = read_source(path.read_bytes(), path.as_posix())
    return [f"{d.line}:{d.column}: {d.code}: {d.message}" for d in check_schema(document).diagnostics]


def test_only_schema_errors_means_no_cascades(write):
    path = write("r.yaml", """
        version: 1
        defaults: {market: futurs, cooldown: 5 minutes}
        rules:
          - id: a
            whn: "prise"
            for: 5 minutes
            max_fires: {count: 1}
            triggers:
              - {type: price, symbol: PF_XBTUSD, crosses_above: 5}
              - {type: price, markt: futures, symbol: PF_XBTUSD, crosses_above: 5}
              - {type: signall, source: tv, where: "nonsense >>"}
              - {type: timer, every: 1m, timezone: UTC}
            when: "price > 1 and level > 2"
            actions:
              - {type: place_ordr, pair: BTCUSDX, volume: "=prise"}
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: lmit, volume: "=", price: 5, if: ""}
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, close: {ordertype: limit}}
              - {type: futures_send_order, symbol: "PF XBTUSD", side: buy, order_type: mkt, size: 1}
          - id: b
            triggers: []
            when: {not: {all: "price > 1"}}
            actions: [{type: log, message: "{price} {signal}", level: loud}]
          - id: c
            triggers: [{type: timer, cron: "*/5 * * * *", timezone: 5}]
            actions: []
        """)
    result = load_rules([path])
    assert located(result) == schema_errors(path)
    assert len(result.errors) == 19 and result.ruleset is None
    assert {d.code for d in result.errors} == {"schema", "unknown-key", "unknown-type"}


def test_version_error_does_not_stop_the_rules_being_checked(write):
    path = write("r.yaml", """
        version: 2
        defaults: [market, futures]
        rules:
          - id: a
            triggers: [{type: price, symbol: PF_XBTUSD, crosses_above: 5}]
            actions: [{type: place_order, pair: XBTUSDX, side: buy, ordertype: market, volume: 1}]
        """)
    result = load_rules([path])
    assert [(d.line, d.code) for d in result.errors] == [(1, "schema"), (2, "schema"), (6, "unknown-pair")]
    assert result.ruleset is None and result.warnings == []


def test_one_accepted_rule_beside_a_rejected_one_is_checked_but_nothing_is_built(write):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: ok
            triggers: [{type: timer, every: 1m}]
            actions: [{type: cancel_all}]
          - id: rejected
            triggers: [{type: timer, every: 1m, cron: "* * * * *"}]
            actions: [{type: notify, message: "{nope}"}]
        """)
    result = load_rules([path])
    assert [(d.line, d.code) for d in result.errors] == [(7, "schema"), (8, "expression")]
    assert result.ruleset is None and result.rule_count == 2


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(".test.yaml")))
def test_any_value_of_an_example_made_invalid_is_reported_alone(example, write):
    """Replace each value of a valid example with one the schema rejects at that spot (a list of
    numbers): the load reports exactly what the schema says, without a crash or a cascade."""
    data = yaml.safe_load((EXAMPLES / example).read_text())
    for where in list(_paths(data))[1:]:
        mangled = copy.deepcopy(data)
        *parents, last = where
        container = mangled
        for key in parents:
            container = container[key]
        container[last] = [1, 2]
        path = write(example, yaml.safe_dump(mangled, sort_keys=False))
        result = load_rules([path])
        assert located(result) == schema_errors(path) != [], where
        assert result.ruleset is None


def _paths(node, path=()):
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, path + (key,))
