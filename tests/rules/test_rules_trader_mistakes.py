"""Mistakes a trader makes in a rule file, through `rules-engine validate` as they would run it:
each is reported at file:line:column with what is wrong and what was probably meant, the exit
code is 1 (a warning: 0, and 1 with --strict), and no traceback is printed."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from rules_engine import cli

HEAD = "version: 1\nrules:\n"


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *args: str) -> tuple[int, list[str]]:
    path = tmp_path / "rules.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    code = cli.main(["validate", str(path), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    prefix = path.as_posix() + ":"
    return code, [line.removeprefix(prefix) for line in out.splitlines() if line]


def rule(body: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(body).lstrip("\n"), "  ")


def at(text: str, needle: str, nth: int = 0) -> str:
    """`line:column:` of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}:"


@pytest.mark.parametrize(
    ("body", "needle", "expected"),
    [
        # a thousands separator in a quoted number, in a flow mapping, and a decimal comma
        ("""
         - id: r
           triggers: [{type: price, symbol: XBTUSD, crosses_above: "70,000"}]
           actions: [{type: log, message: x}]
         """, '"70,000"', 'rule "r": expected a positive number (write 70000: a number takes no thousands separator)'),
        ("""
         - id: r
           triggers: [{type: price, symbol: XBTUSD, crosses_above: 70,000}]
           actions: [{type: log, message: x}]
         """, "000}", 'rule "r": unknown key "000" in price trigger '
                      "(the comma in 70,000 ends the entry inside {...}: write 70000)"),
        ("""
         - id: r
           cooldown: 1m
           triggers: [{type: timer, every: 1m}]
           actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "0,5"}]
         """, '"0,5"', 'rule "r": expected a non-negative number, a quoted decimal such as "0.5", or an expression '
                       "starting with = (write 0.5: a number takes a decimal point, not a comma)"),
        ("""
         - id: r
           triggers: [{type: price, symbol: XBTUSD, crosses_above: "$70,000"}]
           actions: [{type: log, message: x}]
         """, '"$70,000"', 'rule "r": expected a positive number '
                          "(write 70000: a number takes no currency and no thousands separator)"),
        # an asset where a pair belongs
        ("""
         - id: r
           triggers: [{type: price, symbol: ETH, crosses_above: 3000}]
           actions: [{type: log, message: x}]
         """, "ETH", 'rule "r": unknown Kraken pair "ETH" (ETH is an asset; a pair names two, e.g. "ETH/USD" or '
                     '"ETH/EUR")'),
        # a count where max_fires takes a count and a window
        ("""
         - id: r
           max_fires: 3
           triggers: [{type: timer, every: 1m}]
           actions: [{type: log, message: x}]
         """, "3\n", 'rule "r": "max_fires" must be a mapping, not the number 3 '
                      "(write max_fires: {count: 3, window: 1d}: at most 3 fires within any day)"),
        # a spot pair on a futures trigger
        ("""
         - id: r
           triggers: [{type: price, symbol: XBT/USD, market: futures, crosses_above: 60000}]
           actions: [{type: log, message: x}]
         """, "XBT/USD", 'rule "r": "XBT/USD" is not a Kraken Futures product id such as PF_XBTUSD (XBT/USD is a '
                         "spot pair: for its price, leave out market: futures (and defaults.market))"),
        # a cron schedule without quotes: YAML reads a leading * as an alias
        ("""
         - id: r
           triggers:
             - type: timer
               cron: */5 * * * *
           actions: [{type: log, message: x}]
         """, "*/5", 'rule "r": invalid YAML: a value that starts with "*" is read as a YAML alias (a reference to '
                     'an &anchor): put the value in quotes, as in cron: "*/5 * * * *"'),
        # a duration without its unit, or with the unit in words
        ("""
         - id: r
           triggers: [{type: timer, every: 30}]
           actions: [{type: log, message: x}]
         """, "30}", 'rule "r": expected a duration such as 500ms, 30s, 5m, 1h or 1d '
                     '(a duration needs its unit: write "30s" for seconds or "30m" for minutes)'),
        ("""
         - id: r
           cooldown: 1 hour
           triggers: [{type: timer, every: 1m}]
           actions: [{type: log, message: x}]
         """, "1 hour", 'rule "r": expected a duration such as 500ms, 30s, 5m, 1h or 1d (did you mean "1h"?)'),
        # a comma inside an expression: a tuple, which as a guard would never be true or false
        ("""
         - id: r
           triggers: [{type: price, symbol: XBTUSD, crosses_above: 60000}]
           when: "price > 70,500"
           actions: [{type: log, message: x}]
         """, "500\"", 'rule "r": invalid expression: several values separated by commas where one value is '
                       "expected; a comma is not a thousands separator or a decimal mark: write 70000 (or 70_000) "
                       "and 0.99"),
        # a futures product id on a spot trigger
        ("""
         - id: r
           triggers: [{type: price, symbol: PF_XBTUSD, crosses_above: 60000}]
           actions: [{type: log, message: x}]
         """, "PF_XBTUSD", 'rule "r": unknown Kraken pair "PF_XBTUSD" (PF_XBTUSD is a Kraken Futures product id: a '
                           "trigger on it needs market: futures, and futures orders are futures_send_order actions)"),
        # a percent written as a percent: in an expression, % is the remainder operator
        ("""
         - id: r
           triggers: [{type: price, symbol: XBTUSD, crosses_above: 60000}]
           when: "ask - bid < 0.1% * price"
           actions: [{type: log, message: x}]
         """, "0.1%", "rule \"r\": invalid expression: syntax error: '0.1%' is not a percent: % is the remainder "
                      "operator; write 0.001 (0.1 / 100)"),
        ("""
         - id: r
           cooldown: 1m
           triggers: [{type: timer, every: 1m}]
           actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 5%}]
         """, "5%", 'rule "r": expected a non-negative number, a quoted decimal such as "0.5", or an expression '
                    "starting with = (5% is not a number: write the amount, or compute it with an expression, e.g. "
                    "\"=balance('ZUSD') * 0.05 / price\" for 5% of the USD balance)"),
        ("""
         - id: r
           triggers: [{type: price, symbol: XBTUSD, crosses_above: 5%}]
           actions: [{type: log, message: x}]
         """, "5%", 'rule "r": expected a positive number (a level is a price, not a percent of one: write the '
                    "price; a percent is for rearm: and spread levels)"),
        # a relative price without its sign passed validation and then failed every fire
        ("""
         - id: r
           cooldown: 1m
           triggers: [{type: timer, every: 1m}]
           actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: "1.5%"}]
         """, '"1.5%"', 'rule "r": expected a positive number, a relative price such as "+50" or "-1.5%", or an '
                        'expression starting with = (a relative price starts with + or -: "+1.5%" above the last '
                        'price, "-1.5%" below it)'),
        # Kraken Futures takes no relative prices: the schema let one through and every fire failed
        ("""
         - id: r
           max_fires: {count: 1, window: 1d}
           triggers: [{type: timer, every: 1m}]
           actions:
             - {type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: lmt, size: 1, limit_price: "-1%"}
         """, '"-1%"', 'rule "r": expected a positive number, a quoted decimal such as "0.5", or an expression '
                       'starting with = (Kraken Futures takes no relative prices: compute the price, e.g. '
                       '"=price * 0.99")'),
    ],
)
def test_a_mistake_is_explained_where_it_is(tmp_path, capsys, body, needle, expected):
    text = rule(body)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 1
    assert lines[0] == f"{at(text, needle)} {expected}"
    assert lines[-1].startswith("invalid: 1 file")


def test_bitcoin_as_btc_in_a_futures_product_id_is_a_warning(tmp_path, capsys):
    """Kraken Futures writes PF_XBTUSD: PF_BTCUSD passed validate and its rule never had a price."""
    text = rule("""
        - id: r
          max_fires: {count: 1, window: 1d}
          triggers: [{type: price, symbol: PF_BTCUSD, market: futures, crosses_below: 60000}]
          actions:
            - {type: futures_send_order, symbol: pf_btcusd, side: sell, order_type: mkt, size: 1}
        """)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 0
    assert lines[:2] == [
        f'{at(text, "PF_BTCUSD")} warning: rule "r": Kraken Futures names bitcoin XBT, so there is no product '
        'PF_BTCUSD (did you mean "PF_XBTUSD"?)',
        f'{at(text, "pf_btcusd")} warning: rule "r": Kraken Futures names bitcoin XBT, so there is no product '
        'PF_BTCUSD (did you mean "PF_XBTUSD"?)',
    ]
    assert validate(tmp_path, capsys, text, "--strict")[0] == 1


ORDERS = """
- id: r
  cooldown: 1h
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions:
    - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.0123456789, price: 70000.15}
    - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 70000, close: {ordertype: limit, price: 75000.25}}
    - {type: place_order, pair: XBTUSD, side: buy, ordertype: stop-loss-limit, volume: 0.01, price: 70000, price2: "70000.05"}
"""


def test_a_literal_volume_or_price_kraken_would_refuse_is_an_error(tmp_path, capsys):
    text = rule(ORDERS)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 1
    assert lines == [
        f'{at(text, "0.0123456789")} rule "r": volume 0.0123456789 has more than 8 decimals, the most Kraken '
        "takes for XBTUSD (write 0.01234567)",
        f'{at(text, "70000.15")} rule "r": price 70000.15 is not a multiple of XBTUSD\'s tick size 0.1; Kraken '
        "refuses it (write 70000.1)",
        f'{at(text, "75000.25")} rule "r": price 75000.25 is not a multiple of XBTUSD\'s tick size 0.1; Kraken '
        "refuses it (write 75000.2)",
        f'{at(text, chr(34) + "70000.05")} rule "r": price 70000.05 is not a multiple of XBTUSD\'s tick size 0.1; Kraken '
        "refuses it (write 70000.0)",
        "invalid: 1 file, 1 rule: 4 errors, 0 warnings",
    ]


def test_a_tiny_literal_volume_or_price_is_shown_as_written(tmp_path, capsys):
    """1E-9 and "write 0E-8" were the volume's message and hint: plain notation, and for a
    volume that rounds down to nothing, the pair's smallest order instead."""
    text = rule("""
        - id: r
          cooldown: 1h
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions:
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.000000001, price: 0.05}
        """)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 1
    assert lines[:2] == [
        f'{at(text, "0.000000001")} rule "r": volume 0.000000001 has more than 8 decimals, the most Kraken takes '
        "for XBTUSD (Kraken's smallest XBTUSD order is 0.00005)",
        f'{at(text, "0.05")} rule "r": price 0.05 is not a multiple of XBTUSD\'s tick size 0.1; Kraken refuses it '
        "(write 0.1)",
    ]


@pytest.mark.parametrize(("written", "expected"), [
    ('"70k"', "expected a positive number (write 70000: a number takes no k for thousands)"),
    ('"70 000"', "expected a positive number (write 70000: a number takes no spaces)"),
    ("1e5", "expected a positive number (write 100000: a number takes no exponent)"),
    ("\"=price_of('ETHUSD') * 20\"", "expected a positive number (a level is a fixed number, not an expression: "
                                      "compare a computed level in when: instead)"),
])
def test_a_level_written_another_way_gets_a_hint(tmp_path, capsys, written, expected):
    text = rule(f"""
        - id: r
          triggers: [{{type: price, symbol: XBTUSD, crosses_above: {written}}}]
          actions: [{{type: log, message: x}}]
        """)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 1
    assert lines[0] == f'{at(text, written)} rule "r": {expected}'


def test_expire_after_with_an_expiry_of_kraken_is_an_error(tmp_path, capsys):
    """expire_after was silently ignored beside expiretm (the README's own example expired after
    an hour, not ten minutes) and beside timeinforce IOC."""
    text = rule("""
        - id: r
          cooldown: 1h
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions:
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 70000,
               timeinforce: GTD, expiretm: "+3600", expire_after: 10m}
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 70000,
               timeinforce: IOC, expire_after: 1m}
        """)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 1
    hint = "(give one: expire_after (it becomes GTD with its expiretm) or timeinforce and expiretm)"
    assert lines[:2] == [
        f'{at(text, "10m")} rule "r": expire_after cannot be combined with expiretm: the order\'s own expiry would '
        f"win and expire_after would be ignored {hint}",
        f'{at(text, "1m}")} rule "r": expire_after cannot be combined with timeinforce: IOC: the order\'s own expiry '
        f"would win and expire_after would be ignored {hint}",
    ]


def test_what_the_paper_exchange_refuses_is_a_warning(tmp_path, capsys):
    """Valid for Kraken, but a dry run, a rule test or a replay refuses it: it cannot be rehearsed."""
    text = rule("""
        - id: r
          cooldown: 1h
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions:
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 70000,
               leverage: "2:1", close: {ordertype: stop-loss, price: "-2%"}}
            - {type: place_order, pair: XBTUSD, side: sell, ordertype: stop-loss, volume: 0.01, price: 65000,
               trigger: index}
        """)
    code, lines = validate(tmp_path, capsys, text)
    assert code == 0
    refuses = "cannot be rehearsed: the paper exchange of dry runs, rule tests, replays and the simulator refuses it"
    assert lines[:3] == [
        f'{at(text, chr(34) + "2:1")} warning: rule "r": leverage {refuses} (it has no margin: EOrder:Cannot open position)',
        f'{at(text, chr(34) + "-2%")} warning: rule "r": a relative close price ("-2%") {refuses} (EGeneral:Invalid '
        'arguments:close[price]) (compute it, as in "=round(ask * 0.98, 1)")',
        f'{at(text, "index")} warning: rule "r": trigger: index {refuses} (it has no index prices: '
        "EGeneral:Invalid arguments:Index unavailable)",
    ]
    code, lines = validate(tmp_path, capsys, text, "--strict")  # a leverage user's CI fails on it...
    assert code == 1 and lines[-2:] == ["failing warnings by code: not-rehearsable (3); --allow-warning CODE lets "
                                        "--strict pass one that you accept", "invalid: 1 file, 1 rule: 0 errors, 3 warnings"]
    code, lines = validate(tmp_path, capsys, text, "--strict", "--allow-warning", "not-rehearsable")
    assert code == 0 and lines[-1] == "valid: 1 file, 1 rule: 0 errors, 3 warnings"  # ...unless it accepts it: shown
    code, lines = validate(tmp_path, capsys, re.sub(r"\n *cooldown: 1h", "", text), "--strict",
                           "--allow-warning", "not-rehearsable")
    assert code == 1 and lines[-2].startswith("failing warnings by code: no-cooldown (1);")  # another still fails


def test_a_number_hint_is_given_only_where_a_number_belongs(tmp_path, capsys):
    code, lines = validate(tmp_path, capsys, rule("""
        - id: "$5"
          triggers: [{type: timer, every: 1m}]
          actions: [{type: log, message: x}]
        """))
    assert code == 1
    assert lines[0].endswith("a rule id is 1-64 letters, digits, '-', '_', '.' or ':' and starts with a letter or digit")


def test_values_kraken_takes_pass(tmp_path, capsys):
    valid = (ORDERS.replace("0.0123456789", "0.01234567").replace("70000.15", "70000.1")
             .replace("75000.25", "75000.2").replace('"70000.05"', '"70000.0"'))
    valid += "    - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 10.123456789, oflags: [viqc]}\n"
    valid += '    - {type: place_order, pair: XBTUSD, side: sell, ordertype: trailing-stop, volume: 0.01, price: "+1.55%"}\n'
    assert validate(tmp_path, capsys, rule(valid)) == (0, ["valid: 1 file, 1 rule: 0 errors, 0 warnings"])


def test_a_volume_below_the_minimum_warns_at_the_volume_and_fails_only_strict(tmp_path, capsys):
    text = rule("""
        - id: r
          cooldown: 1h
          triggers: [{type: timer, every: 1m}]
          actions:
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.00001}
            - {type: place_order, pair: XDGUSD, side: buy, ordertype: market, volume: 5, oflags: [viqc]}
        """)
    warning = (f'{at(text, "0.00001")} warning: rule "r": volume 0.00001 is below Kraken\'s minimum order of 0.00005 for XBTUSD '
               "(Kraken refuses smaller orders: write at least 0.00005)")
    # viqc: the volume is in USD, so 5 is not below XDGUSD's minimum in DOGE
    assert validate(tmp_path, capsys, text) == (0, [warning, "valid: 1 file, 1 rule: 0 errors, 1 warning"])
    assert validate(tmp_path, capsys, text, "--strict")[0] == 1


def test_a_file_saved_as_latin_1_is_pointed_at_its_byte(tmp_path, capsys):
    text = rule("""
        - id: café
          triggers: [{type: timer, every: 1m}]
          actions: [{type: log, message: x}]
        """).encode("latin-1")
    code, lines = validate(tmp_path, capsys, text)
    assert code == 1
    assert lines[0] == (f"{at(text.decode('latin-1'), 'é')} the file is not UTF-8 text (bad byte 0xE9 at offset 29) "
                        "(save it as UTF-8; an editor set to Latin-1 or Windows-1252 writes such bytes)")


def test_a_condition_that_cannot_be_true_or_false_is_refused_at_load(tmp_path, capsys):
    text = rule("""
        - id: r
          cooldown: 1m
          triggers: [{type: signal, source: tradingview, where: "signal.action == 'buy' or 'long'"}]
          when: "price_of('XBTUSD') - 70000"
          actions:
            - {type: log, message: x, if: "signal.ticker == 'XBTUSD' and 1"}
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=signal.contracts or 0.01"}
        """)
    code, lines = validate(tmp_path, capsys, text)
    long, price_of, one = at(text, "'long'"), at(text, "price_of"), at(text, '1"')
    assert code == 1
    assert lines == [
        # the classic: 'long' alone is a non-empty text, so the where would not mean what it says
        f"{long} rule \"r\": invalid expression: 'long' on its own is not a condition: compare it too, "
        "as in signal.action in ('buy', 'long')",
        f"{price_of} rule \"r\": invalid expression: a condition gives true or false, and this gives a "
        "number or a text: compare it, as in price > 70000",
        f"{one} rule \"r\": invalid expression: 1 on its own is not a condition: compare it too",
        # a value may use `or` to give a default: only conditions are held to true or false
        "invalid: 1 file, 1 rule: 3 errors, 0 warnings",
    ]


def test_a_rule_test_file_given_to_validate_says_to_run_it_with_test(tmp_path, capsys):
    text = "rules: [btc.yaml]\nwallet: {ZUSD: 1000}\ninputs:\n  - prices: {symbol: XBTUSD, series: \"1 2\"}\nexpect: []\n"
    assert validate(tmp_path, capsys, text) == (1, [
        "1:1: this is a rule test file (its rules: names rule files, beside inputs:, expect: or tests:), not a rule "
        "file (run it with rules-engine test; validate and run read rule files)",
        "invalid: 1 file, 0 rules: 1 error, 0 warnings",
    ])


def test_a_file_that_is_a_list_of_rules_says_where_the_list_belongs(tmp_path, capsys):
    text = "- id: r\n  triggers: [{type: timer, every: 1m}]\n  actions: [{type: log, message: x}]\n"
    assert validate(tmp_path, capsys, text) == (1, [
        "1:1: rule file must be a mapping, not a list (a rule file starts with version: 1 and rules:, and its "
        "rules are the list under rules:)",
        "invalid: 1 file, 0 rules: 1 error, 0 warnings",
    ])
