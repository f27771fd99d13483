"""A rule's paper Futures orders in a rule test: their fills show in the timeline and match
`fills:` expectations, as spot fills do; a cancelled one shows as cancelled."""

from __future__ import annotations

FUTURES_RULES = """\
version: 1
rules:
  - id: pf-short
    max_fires: {count: 2, window: 1d}
    triggers:
      - {type: price, symbol: PF_XBTUSD, market: futures, crosses_below: 60000}
      - {type: price, symbol: PF_XBTUSD, market: futures, crosses_above: 60400}
    actions:
      - {type: futures_send_order, if: "level == 60000", symbol: PF_XBTUSD, side: sell, order_type: lmt, size: 0.01,
         limit_price: 59000}
      - {type: futures_send_order, if: "level == 60000", symbol: PF_XBTUSD, side: buy, order_type: stp, size: 0.01,
         stop_price: 62000, reduce_only: true}
      - {type: futures_cancel_order, if: "level == 60400", own: true}
"""


def test_a_futures_fill_is_in_the_timeline_and_matches_fills(ws, capsys):
    ws.write("pf.yaml", FUTURES_RULES)
    path = ws.write("pf.test.yaml", """\
        rules: [pf.yaml]
        futures_wallet: {USD: 10000}
        inputs:
          - prices: {symbol: PF_XBTUSD, series: "61000 59900 62500 every 1m"}
        expect:
          - at: 1m
            rule: pf-short
            fills:
              - {pair: PF_XBTUSD, side: sell, ordertype: lmt, volume: 0.01, price: 59900, at: 1m}
              - {side: buy, ordertype: stp, price: 62500, at: 2m}
          - {at: 2m, rule: pf-short, intents: []}   # the stop has filled: no own order is left to cancel
        """)
    code, out, _ = ws.run(str(path), "-v", capsys=capsys)
    assert code == 0, out
    assert "+1m    filled sell 0.01 PF_XBTUSD @ 59900 (fee 0.2995)" in out
    assert "+2m    filled buy 0.01 PF_XBTUSD @ 62500 (fee 0.3125)" in out
    # a wrong expectation is told what filled
    path.write_text(path.read_text().replace("price: 62500", "price: 62000"))
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert "fill 2 price: expected 62000, got 62500" in out


def test_a_cancelled_futures_order_shows_as_cancelled(ws, capsys):
    ws.write("pf.yaml", FUTURES_RULES)
    path = ws.write("pf.test.yaml", """\
        rules: [pf.yaml]
        futures_wallet: {USD: 10000}
        inputs:
          - prices: {symbol: PF_XBTUSD, series: "61000 59900 60500 every 1m"}
        expect:
          - {at: 1m, rule: pf-short, fills: [{side: sell, price: 59900}]}
          - {at: 2m, rule: pf-short, intents: [{type: futures_cancel_order}]}
        """)
    code, out, _ = ws.run(str(path), "-v", capsys=capsys)
    assert code == 0, out
    assert "+2m    cancelled buy 0.01 PF_XBTUSD stp @ 62000 (placed 2026-01-01T00:01:00Z)" in out


def test_a_fixed_maturity_futures_id_is_a_futures_symbol_in_a_test(ws, capsys):
    """Its expiry follows a second underscore (FI_XBTUSD_260327): a test's prices of it were
    taken for a spot pair ("unknown Kraken pair") unless `market: futures` was written."""
    ws.write("fi.yaml", """\
        version: 1
        rules:
          - id: fi-dip
            triggers: [{type: price, symbol: FI_XBTUSD_260327, market: futures, crosses_below: 60000}]
            actions: [{type: log, message: dip}]
        """)
    path = ws.write("fi.test.yaml", """\
        rules: [fi.yaml]
        inputs:
          - prices: {symbol: FI_XBTUSD_260327, series: "61000 59900 every 1m"}
        expect:
          - {at: 1m, rule: fi-dip}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 0, out
