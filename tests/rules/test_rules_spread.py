"""The spread trigger through the loader: the spec it builds, the names its rules may use, and
validation errors at file:line:column."""

from __future__ import annotations

from decimal import Decimal

from rules_engine.core.model import Market, Rearm
from rules_engine.triggers.spread import SpreadTrigger

RULE = """
version: 1
{defaults}rules:
  - id: s
    triggers:
      - {trigger}
    actions:
      - {{type: log, message: "{message}"}}
"""


def spread_rule(trigger: str, message: str = "{spread}", defaults: str = "") -> str:
    return RULE.format(trigger=trigger, message=message, defaults=defaults)


def test_spread_triggers_build_with_the_price_triggers_symbol_and_market_handling(load):
    result = load(spread_rule("{type: spread, symbol: XBT/USD, crosses_above: 25, rearm: 5}"))
    assert result.errors == []
    (trigger,) = result.ruleset.rules[0].triggers
    assert trigger == SpreadTrigger("XBTUSD", Market.SPOT, "above", Decimal(25), False, Rearm(Decimal(5)))
    result = load(spread_rule('{type: spread, symbol: pf_xbtusd, crosses_below: "0.05%", rearm: "20%"}',
                              defaults="defaults: {market: futures}\n"))
    assert result.errors == []
    (trigger,) = result.ruleset.rules[0].triggers
    assert trigger == SpreadTrigger("PF_XBTUSD", Market.FUTURES, "below", Decimal("0.05"), True,
                                    Rearm(Decimal(20), True))


def test_spread_rules_may_use_the_spread_names_but_not_price(load):
    message = "{symbol} {market} {spread} {bid} {ask} {mid} {level}"
    assert load(spread_rule("{type: spread, symbol: XBTUSD, crosses_above: 25}", message)).errors == []
    [error] = load(spread_rule("{type: spread, symbol: XBTUSD, crosses_above: 25}", "{price}")).errors
    assert "'price' is not available here: price triggers provide it" in error.message
    assert (error.line, error.column) == (7, 31)  # the placeholder in the message


def test_bad_spread_fields_are_reported_at_their_position(load):
    cases = [  # (trigger, message, the text the error points at)
        ("{type: spread, symbol: XBTUSD}", "spread trigger needs exactly one of crosses_above or crosses_below", "{"),
        ("{type: spread, symbol: XBTUSD, crosses_above: -3}",
         'a spread level is a positive amount in the quote currency (25) or a percent of mid ("0.05%")', "-3"),
        ('{type: spread, symbol: XBTUSD, crosses_above: "0%"}',
         "a spread level must be more than 0 (and a percent less than 100%)", '"0%"'),
        ("{type: spread, symbol: XBTUSD, crosses_above: 25, rearm: 0}",
         'rearm is a positive distance (5) or a percent of the level ("20%")', "0}"),
        ("{type: spread, symbol: XBTUSDD, crosses_above: 25}", 'unknown Kraken pair "XBTUSDD"', "XBTUSDD"),
        ("{type: spread, symbol: XBTUSD, crosses_abov: 25}", 'unknown key "crosses_abov" in spread trigger',
         "crosses_abov"),
        ("{type: spred, symbol: XBTUSD, crosses_above: 25}", 'unknown trigger type "spred"', "spred"),
    ]
    for trigger, message, at in cases:
        errors = load(spread_rule(trigger)).errors
        found = [e for e in errors if message in e.message]
        assert len(found) == 1, (trigger, [str(e) for e in errors])
        # the trigger is written on line 5 from column 9
        assert (found[0].line, found[0].column, found[0].rule_id) == (5, 9 + trigger.index(at), "s"), str(found[0])
    hints = {e.hint for e in load(spread_rule("{type: spread, symbol: XBTUSD, crosses_abov: 25}")).errors}
    assert 'did you mean "crosses_above"?' in hints
    hints = {e.hint for e in load(spread_rule("{type: spred, symbol: XBTUSD, crosses_above: 25}")).errors}
    assert 'did you mean "spread"?' in hints
