"""The schema layer: plain-words errors at file:line:column, did-you-mean, every error at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from rules_engine.durations import DURATION_PATTERN
from rules_engine.resources import schema_path
from rules_engine.rules import load_rules, rules_schema, rules_validator
from rules_engine.registry import action_types, trigger_types
from rules_engine.rules.yaml_source import read_source

FIXTURES = Path(__file__).parent / "fixtures"

RULE = """
version: 1
rules:
  - id: {id}
    cooldown: 1m
    triggers:
      - {trigger}
    actions:
      - {action}
"""


def one_rule(trigger: str = "{type: timer, every: 1m}", action: str = "{type: cancel_all}", id: str = "r1") -> str:
    return RULE.format(trigger=trigger, action=action, id=id)


def test_schema_is_valid_2020_12_and_lists_every_built_type():
    schema = json.loads(schema_path("rules.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["trigger"]["properties"]["type"]["enum"] == list(trigger_types())
    assert set(schema["$defs"]["action"]["properties"]["type"]["enum"]) == set(action_types())
    assert schema["$defs"]["duration"]["pattern"] == DURATION_PATTERN


def test_many_errors_in_one_file_each_with_position_rule_and_hint():
    result = load_rules([FIXTURES / "many_errors.yaml"])
    lines = [str(d).split(":", 1)[1] for d in result.errors]
    assert lines == [
        '5:15: rule "btc-dip-buy": unknown trigger type "pricee" (did you mean "price"?)',
        '14:9: rule "eth-breakout": unknown key "crosses_abve" in price trigger (did you mean "crosses_above"?)',
        '17:15: rule "eth-breakout": unknown action type "place_ordr" (did you mean "place_order"?)',
        '22:17: rule "bad-guard": unknown Kraken pair "XBTUSDD" (did you mean "XBTUSD"?)',
        result.errors[4].__str__().split(":", 1)[1],
    ]
    assert result.errors[4].code == "expression" and result.errors[4].line == 25
    assert result.ruleset is None


def test_errors_in_all_files_are_reported_in_one_run(write):
    first = write("a.yaml", one_rule(trigger="{type: timer, evry: 1m}"))
    second = write("b.yaml", one_rule(action="{type: cancel_al}", id="r2"))
    result = load_rules([first, second])
    assert [(Path(d.file).name, d.code) for d in result.errors] == [("a.yaml", "unknown-key"), ("b.yaml", "unknown-type")]
    assert result.errors[0].hint == 'did you mean "every"?'


def test_misspelled_key_is_not_also_reported_as_missing(load):
    result = load(one_rule(trigger="{type: price, symbol: XBTUSD, crosses_belw: 5}"))
    assert [d.code for d in result.errors] == ["unknown-key"]
    result = load(one_rule(action="{type: check_balance, asset: ZUSD, minimun: 5}"))
    assert [(d.code, d.hint) for d in result.errors] == [("unknown-key", 'did you mean "minimum"?')]


def test_missing_required_key(load):
    [error] = load(one_rule(trigger="{type: price, crosses_above: 5}")).errors
    assert error.message == 'price trigger is missing the required key "symbol"'
    assert (error.line, error.column) == (6, 9)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1}", "limit, iceberg, stop, take-profit and trailing orders need price:"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, price: 5}", "market and settle-position orders take no price"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: stop-loss-limit, volume: 1, price: 5}", "stop-loss-limit, take-profit-limit and trailing-stop-limit orders need price2: (the limit price)"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: 5, price2: 4}", "price2 applies only to stop-loss-limit, take-profit-limit and trailing-stop-limit orders"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: iceberg, volume: 1, price: 5}", "an iceberg order needs displayvol:"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: trailing-stop, volume: 1, price: 50}", "a trailing stop's price is an offset with a + prefix, e.g. \"+50\" or \"+1.5%\""),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: 5, timeinforce: GTD}", "timeinforce GTD needs expiretm:"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, oflags: [post]}", "the post flag needs ordertype limit"),
        ("{type: place_order, pair: XBTUSD, side: sell, ordertype: market, volume: 1, oflags: [viqc]}", "the viqc flag is for buy market orders only"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, oflags: [fcib, fciq]}", "fcib and fciq exclude each other"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, oflags: post}", "write oflags as a list, e.g. [post, fciq]"),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: -1}", "expected a non-negative number, a quoted decimal such as \"0.5\", or an expression starting with ="),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1, leverage: 5x}", "leverage is \"none\", a whole number such as 2, or \"5:1\""),
        ("{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: 5, close: {ordertype: stop-loss}}", "a close order needs price:"),
        ("{type: cancel_order}", "cancel_order needs exactly one of txid:, cl_ord_id:, userref: or own: true"),
        ("{type: cancel_order, txid: A, userref: 5}", "cancel_order needs exactly one of txid:, cl_ord_id:, userref: or own: true"),
        ("{type: cancel_order, own: false}", "own: true cancels the orders this rule placed"),
        ("{type: futures_cancel_order}", "futures_cancel_order needs exactly one of order_id:, cli_ord_id: or own: true"),
        ("{type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: lmt, size: 1}", "lmt, post, ioc and fok orders need limit_price:"),
        ("{type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: stp, size: 1}", "stp and take_profit orders need stop_price:"),
        ("{type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: mkt, size: 1, limit_price: 5}", "a mkt order takes no limit_price"),
        ("{type: futures_send_order, symbol: XBTUSD, side: buy, order_type: mkt, size: 1}", "a futures symbol is a product id such as PF_XBTUSD"),
        ("{type: dead_man_switch, timeout: 60}", "expected a duration such as 500ms, 30s, 5m, 1h or 1d"),
        ("{type: log}", 'log action is missing the required key "message"'),
        ("{type: notify, message: hi, level: info}", 'unknown key "level" in notify action'),
    ],
)
def test_action_constraints(load, action, message):
    result = load(one_rule(action=action))
    assert message in [d.message for d in result.errors], [str(d) for d in result.errors]
    assert all(d.rule_id == "r1" and d.line >= 8 for d in result.errors)


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("{type: timer}", "a timer trigger needs exactly one of every: or cron:"),
        ("{type: timer, every: 1m, cron: '* * * * *'}", "a timer trigger needs exactly one of every: or cron:"),
        ("{type: timer, every: 1m, timezone: UTC}", "timezone: applies to cron: timers only"),
        ("{type: price, symbol: XBTUSD}", "a price trigger needs exactly one of crosses_above or crosses_below"),
        ("{type: price, symbol: XBTUSD, crosses_above: 1, crosses_below: 2}", "a price trigger needs exactly one of crosses_above or crosses_below"),
        ("{type: price, symbol: XBTUSD, crosses_above: -5}", "expected a positive number"),
        ("{type: price, symbol: XBTUSD, crosses_above: 5, rearm: 1x}", "rearm is a positive distance (250) or a percent of the level (\"0.5%\")"),
        ("{type: price, symbol: XBTUSD, crosses_above: 5, field: close}", '"field" must be one of "last", "bid", "ask", "mid", not the string "close"'),
        ("{type: signal, source: Trading View}", "a signal source is lower-case letters, digits, '-' or '_', e.g. tradingview"),
        ("just-a-string", "trigger must be a mapping, not the string \"just-a-string\""),
    ],
)
def test_trigger_constraints(load, trigger, message):
    result = load(one_rule(trigger=trigger))
    assert message in [d.message for d in result.errors], [str(d) for d in result.errors]


def test_enum_value_gets_did_you_mean(load):
    [error] = load(one_rule(action="{type: place_order, pair: XBTUSD, side: buy, ordertype: stop-los, volume: 1, price: 5}")).errors
    assert error.hint == 'did you mean "stop-loss"?'


def test_nested_guard_errors_point_inside_the_guard(load):
    result = load(
        """
        version: 1
        rules:
          - id: g
            triggers: [{type: timer, every: 1m}]
            when:
              all:
                - "1 < 2"
                - any:
                    - 5
                    - nott: "1 < 2"
            actions: [{type: cancel_all}]
        """
    )
    assert [(d.line, d.column, d.message, d.hint) for d in result.errors] == [
        (9, 15, "a condition is an expression string, or a mapping with exactly one of all:, any: or not:", None),
        (10, 15, 'unknown key "nott" in condition', 'did you mean "not"?'),
    ]


def test_rule_level_constraints(load):
    result = load(
        """
        version: 2
        defaults: {market: spott}
        rules:
          - id: "bad id!"
            triggers: []
            actions: [{type: cancel_all}]
            mode: parallel
            max_fires: {count: 0, window: 1h}
            priorty: 5
        """
    )
    found = {(d.line, d.message) for d in result.errors}
    assert (1, "version must be 1") in found
    assert (2, '"market" must be one of "spot", "futures", not the string "spott"') in found
    assert (4, "a rule id is 1-64 letters, digits, '-', '_', '.' or ':' and starts with a letter or digit") in found
    assert (5, '"triggers" needs at least 1 entry') in found
    assert (7, '"mode" must be one of "single", "queued", not the string "parallel"') in found
    assert (8, '"count" must be at least 1, not 0') in found
    assert (9, 'unknown key "priorty" in rule') in found
    assert next(d for d in result.errors if d.line == 9).hint == 'did you mean "priority"?'


def _findings(validator, data):
    """What the diagnostics are made of: where, jsonschema's message, and the schema's own words."""
    def words(error):
        schema = error.schema if isinstance(error.schema, dict) else {}
        own = tuple(str(schema.get(k)) for k in ("title", "errorMessage", "patternErrorMessage"))
        return own + (tuple(schema.get("properties", ())),)

    return sorted((tuple(map(str, e.absolute_path)), e.validator, e.message, words(e)) for e in validator.iter_errors(data))


def _plain_errors(data):
    return _findings(Draft202012Validator(rules_schema()), data)


def _fast_errors(data):
    return _findings(rules_validator(), data)


@pytest.mark.parametrize("name", ["many_errors.yaml", "python_tag.yaml", "warnings_only.yaml"])
def test_fast_dispatch_finds_exactly_what_the_schema_file_says(name):
    text = (FIXTURES / name).read_text().replace("!!python/object/apply:os.system", "")
    document, _ = read_source(text.encode(), name)
    assert _fast_errors(document.data) == _plain_errors(document.data)


def test_fast_dispatch_matches_on_every_example_and_a_mangled_copy():
    for path in sorted(Path(__file__).resolve().parents[2].joinpath("rules").glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue  # rule unit tests, not rules
        document, _ = read_source(path.read_bytes(), path.name)
        assert _fast_errors(document.data) == _plain_errors(document.data) == []
        mangled = re.sub(r"(ordertype|order_type|every|symbol|side|own|asset): [\w/-]+$", r"\1: 5", path.read_text(), flags=re.M)
        mangled = mangled.replace("type: cancel_all", "type: cancel_everything").replace("type: timer", "type: timr")
        document, _ = read_source(mangled.encode(), path.name)
        expected = _plain_errors(document.data)
        assert expected and _fast_errors(document.data) == expected
