"""The core runs rules exactly as the YAML loader builds them."""

from decimal import Decimal

from rules_engine.core import Engine
from rules_engine.core.events import ActionResult, BalanceUpdate, Tick
from rules_engine.rules.loader import load_rules_text

RULES = """
version: 1
rules:
  - id: dip-buy
    triggers:
      - type: price
        symbol: BTC/USD
        crosses_below: 60000
        rearm: 500
    when: "ask - bid < 50"
    actions:
      - type: check_balance
        asset: USD
        minimum: "=ask * 0.01"
      - type: place_order
        pair: XBT/USD
        side: buy
        ordertype: limit
        volume: "=balance('ZUSD') * 0.001 / ask"
        price: "=round(ask * 0.999, 1)"
      - type: log
        message: "bought at {price}"
"""


def quote(t, bid, ask):
    return Tick("XBTUSD", "spot", t, last=Decimal(bid), bid=Decimal(bid), ask=Decimal(ask))


def test_a_loaded_rule_crosses_checks_balance_and_places_a_resolved_order():
    result = load_rules_text(RULES, "dip.yaml")
    assert result.ok, [str(e) for e in result.errors]
    engine = Engine(result.ruleset)
    engine.handle(BalanceUpdate({"ZUSD": "100000"}, 0.0, snapshot=True))
    engine.handle(quote(1, "60100", "60110"))
    (order,) = engine.handle(quote(2, "59990", "60000")).intents
    assert (order.pair, order.side, order.ordertype) == ("XBTUSD", "buy", "limit")
    assert order.volume == Decimal("100000") * Decimal("0.001") / Decimal("60000")
    assert order.price == Decimal("59940.0")
    (log,) = engine.handle(ActionResult(order.intent_id, True, 3, {"txid": ["O1"]})).intents
    assert log.message == "bought at 59990"
