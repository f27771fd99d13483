"""An order that expires (`expire_after`) shows as expired in a rule test's timeline."""

RULES = """\
version: 1
rules:
  - id: bid
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69500}]
    actions:
      - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000, expire_after: 2m}
"""

TEST = """\
rules: [bid.yaml]
wallet: {ZUSD: 10000}
inputs:
  - prices: {symbol: XBTUSD, series: "70000 69000 69100 69200 69300 every 1m"}
expect:
  - at: 1m
    rule: bid
    intents: [{type: place_order, price: 60000}]
"""


def test_the_timeline_shows_the_order_expiring(ws, capsys):
    ws.write("bid.yaml", RULES)
    path = ws.write("bid.test.yaml", TEST)
    code, out, _ = ws.run("--verbose", str(path), capsys=capsys)
    assert code == 0, out
    lines = [line.strip() for line in out.splitlines()]
    assert "+1m  bid  fired: place_order buy 0.01 XBTUSD limit @ 60000" in lines
    assert "+3m    expired buy 0.01 XBTUSD limit @ 60000 (placed 2026-01-01T00:01:00Z)" in lines
