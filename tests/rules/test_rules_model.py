"""The model builder: YAML rules to the specs of the trigger and action types."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rules_engine.actions.cancel_order import CancelOrderAction
from rules_engine.actions.check_balance import CheckBalanceAction
from rules_engine.actions.futures_send_order import FuturesSendOrderAction
from rules_engine.actions.place_order import PlaceOrderAction
from rules_engine.core.model import Expr, Market, MaxFires, Rearm
from rules_engine.pairs import PairRegistry
from rules_engine.rules import load_rules, load_rules_text
from rules_engine.triggers.price import PriceTrigger
from rules_engine.triggers.signal import SignalTrigger
from rules_engine.triggers.timer import TimerTrigger


def test_full_rule_builds_the_model(load):
    result = load(
        """
        version: 1
        rules:
          - id: btc
            description: buy the breakout
            priority: 3
            enabled: false
            triggers:
              - type: price
                symbol: BTC/USD
                field: mid
                crosses_above: 70000.50
                rearm: "0.5%"
            when: "ask - bid < 10"
            for: 1m30s
            cooldown: 500ms
            max_fires: {count: 2, window: 1d}
            mode: queued
            actions:
              - type: check_balance
                asset: USD
                minimum: "100.10"
              - type: place_order
                if: "price > 1"
                pair: XXBTZUSD
                side: buy
                ordertype: stop-loss-limit
                volume: "= round(balance('ZUSD') * 0.05 / price, 6)"
                price: 70100
                price2: "+0.5%"
                leverage: 2
                reduce_only: true
                oflags: [fciq, nompp]
                timeinforce: GTD
                starttm: 0
                expiretm: "+3600"
                close: {ordertype: take-profit, price: "#5%"}
                trigger: index
        """
    )
    assert result.errors == []
    # valid for Kraken, but the paper exchange refuses leverage, index triggers and relative close prices
    assert [w.code for w in result.warnings] == ["not-rehearsable"] * 3
    [rule] = result.ruleset.rules
    assert (rule.id, rule.description, rule.priority, rule.enabled, rule.mode) == ("btc", "buy the breakout", 3, False, "queued")
    assert (rule.hold, rule.cooldown, rule.max_fires) == (90.0, 0.5, MaxFires(2, 86400.0))
    [trigger] = rule.triggers
    assert trigger == PriceTrigger("XBTUSD", Market.SPOT, "mid", "above", Decimal("70000.50"), Rearm(Decimal("0.5"), True))
    assert str(trigger.level) == "70000.50"
    assert rule.when.kind == "expr" and rule.when.expr.source == "ask - bid < 10"
    check, order = rule.actions
    assert check == CheckBalanceAction(asset="ZUSD", minimum=Decimal("100.10"))
    assert isinstance(order, PlaceOrderAction)
    assert order.volume == Expr("round(balance('ZUSD') * 0.05 / price, 6)", None)
    assert order.volume.compiled.names >= {"balance", "price"}
    assert (order.price, order.price2, order.leverage, order.reduce_only) == (Decimal("70100"), "+0.5%", "2", True)
    assert (order.oflags, order.timeinforce, order.starttm, order.expiretm) == (("fciq", "nompp"), "GTD", "0", "+3600")
    assert (order.close.ordertype, order.close.price, order.expire_after, order.trigger) == ("take-profit", "#5%", None, "index")
    assert order.condition.source == "price > 1"
    assert (order.where.line, order.where.column) == (22, 9)
    assert (rule.source.line, rule.source.column) == (3, 5)


def test_expressions_evaluate(load):
    result = load(
        """
        version: 1
        rules:
          - id: e
            cooldown: 1m
            triggers: [{type: price, symbol: XBTUSD, crosses_above: 5}]
            actions:
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=price * 2"}
        """
    )
    volume = result.ruleset.rules[0].actions[0].volume
    assert volume.compiled.evaluate({"price": Decimal("1.25")}) == Decimal("2.50")


@pytest.mark.parametrize("written", ["XBTUSD", "XBT/USD", "BTC/USD", "xbt/usd", "XXBTZUSD"])
def test_every_kraken_name_of_a_pair_is_stored_as_the_altname(load, written):
    result = load(
        f"""
        version: 1
        rules:
          - id: p
            triggers: [{{type: price, symbol: "{written}", crosses_below: 5}}]
            actions: [{{type: log, message: hi}}]
        """
    )
    assert result.ruleset.rules[0].triggers[0].symbol == "XBTUSD"


def test_unknown_pair_and_asset_have_suggestions(load):
    result = load(
        """
        version: 1
        rules:
          - id: p
            cooldown: 1m
            triggers: [{type: price, symbol: ETH/USDD, crosses_below: 5}]
            actions:
              - {type: check_balance, asset: ZUSDD, minimum: 1}
              - {type: place_order, pair: "=pair", side: buy, ordertype: market, volume: 1}
        """
    )
    assert [(d.line, d.code, d.message, d.hint) for d in result.errors] == [
        (5, "unknown-pair", 'unknown Kraken pair "ETH/USDD"', 'did you mean "ETH/USD"?'),
        (7, "unknown-asset", 'unknown Kraken asset "ZUSDD"', 'did you mean "ZUSD"?'),
        (8, "expression", "a pair must be written literally; expressions are not allowed here", None),
    ]


def test_assets_resolve_to_kraken_ids(load):
    result = load(
        """
        version: 1
        rules:
          - id: a
            triggers: [{type: timer, every: 1m}]
            actions:
              - {type: check_balance, asset: BTC, minimum: 1}
              - {type: check_balance, asset: xbt, minimum: 1}
              - {type: check_balance, asset: SOL, minimum: 1}
              - {type: check_balance, asset: EUR, minimum: 1}
        """
    )
    assert [a.asset for a in result.ruleset.rules[0].actions] == ["XXBT", "XXBT", "SOL", "ZEUR"]


def test_pairs_are_checked_against_the_given_registry(load):
    registry = PairRegistry.from_asset_pairs(
        {"result": {"XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD", "status": "cancel_only"}}}
    )
    text = """
    version: 1
    rules:
      - id: a
        triggers: [{type: price, symbol: BTC/USD, crosses_below: 5}]
        actions: [{type: log, message: hi}]
      - id: b
        triggers: [{type: price, symbol: ETH/USD, crosses_below: 5}]
        actions: [{type: log, message: hi}]
    """
    result = load_rules_text(text, "mem.yaml", registry)
    assert [d.code for d in result.errors] == ["unknown-pair"]
    assert [d.code for d in result.warnings] == ["pair-not-online"]


def test_futures_symbols_and_orders(load):
    result = load(
        """
        version: 1
        defaults: {market: futures}
        rules:
          - id: f
            cooldown: 1m
            triggers: [{type: price, symbol: pf_xbtusd, crosses_below: 60000}]
            actions:
              - {type: futures_send_order, symbol: pf_ethusd, side: sell, order_type: take_profit, size: "=1", stop_price: 5, trigger_signal: mark}
              - {type: futures_cancel_order, cli_ord_id: "=rule_id"}
        """
    )
    rule = result.ruleset.rules[0]
    assert rule.triggers[0].market is Market.FUTURES and rule.triggers[0].symbol == "PF_XBTUSD"
    order, cancel = rule.actions
    assert isinstance(order, FuturesSendOrderAction) and order.symbol == "PF_ETHUSD" and order.trigger_signal == "mark"
    assert cancel.cli_ord_id.source == "rule_id"


def test_defaults_merge_into_rules_and_rules_override(load):
    result = load(
        """
        version: 1
        defaults:
          market: futures
          field: bid
          timezone: Asia/Tokyo
          cooldown: 10m
          max_fires: {count: 5, window: 1h}
          mode: queued
          priority: 7
        rules:
          - id: inherits
            triggers:
              - {type: price, symbol: PF_XBTUSD, crosses_above: 5}
              - {type: timer, cron: "0 9 * * 1-5"}
            actions: [{type: cancel_all}]
          - id: overrides
            priority: 1
            cooldown: 1s
            mode: single
            max_fires: {count: 1, window: 1m}
            triggers:
              - {type: price, symbol: XBTUSD, market: spot, field: last, crosses_above: 5}
              - {type: timer, cron: "0 9 * * *", timezone: UTC}
              - {type: timer, every: 10s}
            actions: [{type: cancel_all}]
        """
    )
    inherits, overrides = result.ruleset.rules
    assert (inherits.cooldown, inherits.max_fires, inherits.mode, inherits.priority) == (600.0, MaxFires(5, 3600.0), "queued", 7)
    assert (inherits.triggers[0].market, inherits.triggers[0].field) == (Market.FUTURES, "bid")
    assert inherits.triggers[1] == TimerTrigger(cron="0 9 * * 1-5", timezone="Asia/Tokyo")
    assert (overrides.cooldown, overrides.max_fires, overrides.mode, overrides.priority) == (1.0, MaxFires(1, 60.0), "single", 1)
    assert (overrides.triggers[0].market, overrides.triggers[0].field) == (Market.SPOT, "last")
    assert overrides.triggers[1].timezone == "UTC" and overrides.triggers[2] == TimerTrigger(every=10.0)


def test_guard_forms(load):
    result = load(
        """
        version: 1
        rules:
          - id: g
            triggers: [{type: signal, source: tv, where: "signal.side == 'buy'"}]
            when:
              any:
                - "signal.qty > 1"
                - all: ["1 < 2", {not: "signal.qty > 100"}]
            actions: [{type: notify, channel: ops, message: "qty {signal.qty}"}]
        """
    )
    rule = result.ruleset.rules[0]
    assert rule.triggers[0] == SignalTrigger("tv", Expr("signal.side == 'buy'", None))
    guard = rule.when
    assert guard.kind == "any" and [c.kind for c in guard.children] == ["expr", "all"]
    inner = guard.children[1]
    assert [c.kind for c in inner.children] == ["expr", "not"]
    assert inner.children[1].children[0].expr.source == "signal.qty > 100"
    assert rule.actions[0].message.compiled.render({"signal": {"qty": 3}}) == "qty 3"


@pytest.mark.parametrize(
    ("snippet", "line", "column"),
    [
        ('when: "price >"', 5, 18),  # quoted: the expression starts after the quote; the ">" lacks its right side
        ("when: price > > 5", 5, 19),  # the second ">"
        ("when: bogus_name > 5", 5, 11),
    ],
)
def test_expression_errors_point_into_the_file(load, snippet, line, column):
    result = load(
        f"""
        version: 1
        rules:
          - id: x
            triggers: [{{type: price, symbol: XBTUSD, crosses_above: 5}}]
            {snippet}
            actions: [{{type: cancel_all}}]
        """
    )
    [error] = result.errors
    assert error.code == "expression" and error.rule_id == "x"
    assert (error.line, error.column) == (line, column)
    assert error.message.startswith("invalid expression:")


def test_expression_column_is_exact_for_values_and_blocks(load):
    result = load(
        """
        version: 1
        rules:
          - id: x
            cooldown: 1m
            triggers: [{type: price, symbol: XBTUSD, crosses_above: 5}]
            when: |
              (price > 1 and
                bogus > 2)
            actions:
              - type: place_order
                pair: XBTUSD
                side: buy
                ordertype: market
                volume: "=price * nope"
        """
    )
    block, value = result.errors
    text = result.files[0]
    lines = open(text).read().split("\n")
    assert lines[block.line - 1][block.column - 1 :].startswith("bogus")
    assert lines[value.line - 1][value.column - 1 :].startswith("nope")


def test_names_are_limited_to_what_every_trigger_provides(load):
    result = load(
        """
        version: 1
        rules:
          - id: x
            triggers:
              - {type: price, symbol: XBTUSD, crosses_above: 5}
              - {type: timer, every: 1m}
            when: "price > 5"
            actions: [{type: cancel_all}]
        """
    )
    [error] = result.errors
    assert error.code == "expression" and "price" in error.message


def test_template_errors_are_reported(load):
    result = load(
        """
        version: 1
        rules:
          - id: x
            triggers: [{type: timer, every: 1m}]
            actions: [{type: log, message: "at {price}"}]
        """
    )
    [error] = result.errors
    assert error.code == "expression" and error.message.startswith("invalid message template:")
    assert error.line == 5


@pytest.mark.parametrize(
    ("trigger", "code", "hint"),
    [
        ('{type: timer, cron: "61 * * * *"}', "invalid-cron", None),
        ('{type: timer, cron: "* * * * * *"}', "invalid-cron", None),
        ('{type: timer, cron: "* * * * *", timezone: Europe/Berln}', "unknown-timezone", 'did you mean "Europe/Berlin"?'),
        ("{type: timer, every: 0s}", "invalid-value", None),
        ("{type: price, symbol: XBTUSD, crosses_above: 5, rearm: 100%}", "invalid-value", None),
        ("{type: price, symbol: XBTUSD, crosses_above: 5, market: futures}", "unknown-symbol",
         "XBTUSD is a spot pair: for its price, leave out market: futures (and defaults.market)"),
        ("{type: price, symbol: NOPE, crosses_above: 5, market: futures}", "unknown-symbol", None),
    ],
)
def test_trigger_values_checked_by_the_builder(load, trigger, code, hint):
    result = load(
        f"""
        version: 1
        rules:
          - id: t
            triggers: [{trigger}]
            actions: [{{type: cancel_all}}]
        """
    )
    assert [(d.code, d.hint) for d in result.errors] == [(code, hint)]


@pytest.mark.parametrize("timeout", ["1d", "1500ms", "25h"])
def test_dead_man_switch_timeout_limits(load, timeout):
    result = load(
        f"""
        version: 1
        rules:
          - id: d
            triggers: [{{type: timer, every: 20s}}]
            actions: [{{type: dead_man_switch, timeout: {timeout}}}]
        """
    )
    assert [d.code for d in result.errors] == ["invalid-value"]


def test_dead_man_switch_zero_disables(load):
    result = load(
        """
        version: 1
        rules:
          - id: d
            triggers: [{type: timer, every: 20s}]
            actions: [{type: dead_man_switch, timeout: 0s}, {type: cancel_order, userref: 7}, {type: cancel_order, txid: "OABC-1"}]
        """
    )
    switch, by_ref, by_txid = result.ruleset.rules[0].actions
    assert switch.timeout == 0.0 and by_ref == CancelOrderAction(userref=7) and by_txid.txid == "OABC-1"


def test_rules_are_ordered_by_priority_then_file_path_then_position(write):
    write("b.yaml", """
        version: 1
        rules:
          - {id: b1, triggers: [{type: timer, every: 1m}], actions: [{type: cancel_all}]}
          - {id: b2, priority: 5, triggers: [{type: timer, every: 1m}], actions: [{type: cancel_all}]}
        """)
    a = write("a.yaml", """
        version: 1
        rules:
          - {id: a1, triggers: [{type: timer, every: 1m}], actions: [{type: cancel_all}]}
          - {id: a2, priority: 5, triggers: [{type: timer, every: 1m}], actions: [{type: cancel_all}]}
        """)
    result = load_rules([a.parent / "b.yaml", a])
    assert [r.id for r in result.ruleset.rules] == ["a2", "b2", "a1", "b1"]
    assert [f.rsplit("/", 1)[-1] for f in result.ruleset.files] == ["a.yaml", "b.yaml"]


def test_loading_twice_gives_equal_rulesets(write):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: r
            cooldown: 1m
            triggers: [{type: price, symbol: XBTUSD, crosses_above: 5}]
            when: "price > 1"
            actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=price"}]
        """)
    assert load_rules([path]).ruleset == load_rules([path]).ruleset


def test_one_invalid_rule_does_not_hide_errors_in_others(load):
    result = load(
        """
        version: 1
        rules:
          - {id: a, triggers: [{type: timr, every: 1m}], actions: [{type: cancel_all}]}
          - {id: b, triggers: [{type: timer, every: 1m}], when: "1 +", actions: [{type: cancel_all}]}
        """
    )
    assert [(d.rule_id, d.code) for d in result.errors] == [("a", "unknown-type"), ("b", "expression")]
    assert result.ruleset is None


def test_missing_path_is_an_error_diagnostic(tmp_path):
    result = load_rules([tmp_path / "nope.yaml"])
    [error] = result.errors
    assert error.code == "not-found" and result.ruleset is None


def test_sandbox_rejects_are_load_errors(load):
    result = load(
        """
        version: 1
        rules:
          - id: x
            triggers: [{type: timer, every: 1m}]
            when: "__import__('os').system('true')"
            actions: [{type: cancel_all}]
        """
    )
    [error] = result.errors
    assert error.code == "expression" and error.line == 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("ordertype: iceberg, volume: 1.5, price: 5, displayvol: 0.09", "displayvol must be at least 1/15 of volume (Kraken's iceberg rule)"),
        ("ordertype: market, volume: 1, expire_after: 0s", "expire_after must be longer than 0s"),
    ],
)
def test_order_values_checked_by_the_builder(load, fields, message):
    result = load(
        f"""
        version: 1
        rules:
          - id: o
            cooldown: 1m
            triggers: [{{type: timer, every: 1m}}]
            actions: [{{type: place_order, pair: XBTUSD, side: buy, {fields}}}]
        """
    )
    assert [(d.code, d.message) for d in result.errors] == [("invalid-value", message)]


def test_iceberg_at_exactly_one_fifteenth_is_fine(load):
    result = load(
        """
        version: 1
        rules:
          - id: o
            cooldown: 1m
            triggers: [{type: timer, every: 1m}]
            actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: iceberg, volume: 1.5, price: 5, displayvol: 0.1}]
        """
    )
    assert result.errors == [] and result.ruleset.rules[0].actions[0].displayvol == Decimal("0.1")


def test_userref_on_place_order_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: u\n"
        "    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]\n"
        "    cooldown: 1h\n"
        "    actions:\n"
        "      - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01, userref: 7}\n"
    )
    result = load_rules([path])
    assert result.ruleset is None
    [error] = result.errors
    assert error.code == "userref-not-allowed" and error.line == 7
    assert "cl_ord_id" in error.message and "own: true" in (error.hint or "")
