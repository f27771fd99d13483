"""What a test expectation matches: partial intents, times and tolerance, counts, blocks,
negative and non-strict expectations, fills and the wallet at the end."""

from rules_engine.testing import run_file

PRICES = '  - prices: {symbol: XBTUSD, series: "70000 70500 69000 70000 69400 every 1m"}\n'


def run(ws, body, *, wallet="{ZUSD: 10000}", inputs=PRICES, extra=""):
    text = f"rules: [dip.yaml]\nwallet: {wallet}\n{extra}inputs:\n{inputs}expect:\n{body}"
    path = ws.write("case.test.yaml", text)
    result = run_file(path)
    assert not result.errors, result.errors
    return result.cases[0]


def problems(case):
    return [(p.rule, p.expected.split("\n")[0], p.got) for p in case.problems]


def test_intents_match_on_the_fields_written_with_values_compared_as_numbers_and_pairs(ws):
    case = run(ws, """\
  - at: 2m
    rule: btc-dip-buy
    intents:
      - {type: place_order, pair: XBT/USD, volume: 0.0100, ordertype: market}
      - {type: log}
""")
    assert case.passed, problems(case)


def test_a_wrong_intent_field_and_an_unknown_field_are_both_reported(ws):
    case = run(ws, """\
  - at: 2m
    rule: btc-dip-buy
    intents:
      - {type: place_order, side: sell, volum: 0.01}
""")
    assert not case.passed
    (rule, expected, got), = problems(case)
    assert rule == "btc-dip-buy" and expected == "fires at +2m (2026-01-01T00:02:00Z)"
    assert "expected 1 intent, got 2: place_order buy 0.01 XBTUSD market; log info \"dip at 69000\"" in got
    assert "intent 1 side: expected sell, got buy" in got
    assert any("has no field 'volum' (did you mean \"volume\"?); its fields: " in line for line in got)


def test_time_must_match_exactly_unless_a_tolerance_is_given(ws):
    exact = run(ws, "  - {at: 2m30s, rule: btc-dip-buy}\n")
    assert not exact.passed
    missing = [p for p in problems(exact) if p[1] == "fires at +2m30s (2026-01-01T00:02:30Z)"]
    assert len(missing) == 1 and "at +2m (2026-01-01T00:02:00Z): fired" in missing[0][2][0]
    tolerant = run(ws, "  - {at: 2m30s, tolerance: 30s, rule: btc-dip-buy}\n")
    assert tolerant.passed, problems(tolerant)
    file_wide = run(ws, "  - {at: 2m30s, rule: btc-dip-buy}\n", extra="tolerance: 1m\n")
    assert file_wide.passed
    absolute = run(ws, "  - {at: 2026-01-01T00:02:00Z, rule: btc-dip-buy}\n")
    assert absolute.passed


def test_blocked_by_guard_balance_risk_and_cooldown(ws):
    poor = run(ws, "  - {at: 2m, rule: btc-dip-buy, blocked: {by: guard, reason: \"balance('ZUSD') > 100 = False\"}}\n",
               wallet="{ZUSD: 50}")
    assert poor.passed, problems(poor)
    limited = run(ws, """\
  - at: 2m
    rule: btc-dip-buy
    fires: true
    blocked: {by: risk, limit: max_order_notional}
""", extra="limits: {max_order_notional: {default: 500}}\n")
    assert limited.passed, problems(limited)
    wrong_limit = run(ws, "  - {at: 2m, rule: btc-dip-buy, blocked: {by: risk, limit: max_open_orders}}\n",
                      extra="limits: {max_order_notional: {default: 500}}\n")
    assert not wrong_limit.passed
    cooled = run(ws, "  - {at: 2m, rule: btc-dip-buy}\n  - {at: 4m, rule: btc-dip-buy, blocked: cooldown}\n")
    assert cooled.passed, problems(cooled)


def test_a_clean_fire_is_not_a_stopped_one(ws):
    case = run(ws, "  - {at: 2m, rule: btc-dip-buy}\n", extra="limits: {max_order_notional: {default: 500}}\n")
    assert not case.passed
    assert "stopped by risk: risk limit: max_order_notional" in problems(case)[0][2][0]


def test_count_and_expectations_without_a_time(ws):
    inputs = PRICES + "".join(
        f"  - at: {m}m\n    signal: {{source: tradingview, payload: {{action: buy}}}}\n" for m in (6, 7, 8))
    case = run(ws, "  - {rule: btc-dip-buy}\n  - {rule: tv-buy, count: 3}\n", inputs=inputs, wallet="{ZUSD: 100000}")
    assert case.passed, problems(case)
    too_many = run(ws, "  - {rule: btc-dip-buy}\n  - {rule: tv-buy, count: 4}\n", inputs=inputs, wallet="{ZUSD: 100000}")
    assert problems(too_many) == [("tv-buy", "fires (4 times)", ("nothing from tv-buy",))]


def test_fires_false_and_non_strict_tests(ws):
    forbidden = run(ws, "  - {rule: btc-dip-buy, fires: false}\n")
    assert problems(forbidden)[0][:2] == ("btc-dip-buy", "does not fire")
    quiet = run(ws, "  - {rule: btc-take-profit, fires: false}\n", extra="strict: false\n")
    assert quiet.passed
    strict = run(ws, "  - {rule: btc-take-profit, fires: false}\n")
    assert problems(strict)[0][1] == "nothing else fires (the test is strict)"


def test_fills_and_the_wallet_at_the_end(ws):
    case = run(ws, """\
  - at: 2m
    rule: btc-dip-buy
    fills: [{side: buy, volume: 0.01, price: 69000, at: 2m}]
end:
  balances: {XBT: 0.01, USD: "9307.24"}
  open_orders: 0
""")
    assert case.passed, problems(case)
    wrong = run(ws, """\
  - {at: 2m, rule: btc-dip-buy, fills: [{price: 70000}]}
end:
  balances: {BTC: 1}
  open_orders: 2
""")
    assert [(p.expected, p.got) for p in wrong.problems] == [
        ("fires at +2m (2026-01-01T00:02:00Z)\nfill 1:  price=70000",
         ("at +2m (2026-01-01T00:02:00Z): fired: place_order buy 0.01 XBTUSD market; log info \"dip at 69000\"",
          "fill 1 price: expected 70000, got 69000")),
        ("at the end BTC balance is 1", ("BTC balance 0.01",)),
        ("at the end 2 open orders", ("0 open orders",)),
    ]


def test_several_tests_share_the_defaults_written_beside_them(ws):
    path = ws.write("multi.test.yaml", f"""\
rules: [dip.yaml]
wallet: {{ZUSD: 10000}}
start: 2026-03-01T12:00:00Z
tests:
  - name: rich
    inputs:
{PRICES.replace("  - ", "      - ")}    expect:
      - {{at: 2026-03-01T12:02:00Z, rule: btc-dip-buy}}
  - name: poor
    wallet: {{ZUSD: 10}}
    inputs:
{PRICES.replace("  - ", "      - ")}    expect: []
""")
    result = run_file(path)
    assert [(c.case.name, c.passed) for c in result.cases] == [("rich", True), ("poor", True)]
    assert [c.case.line for c in result.cases] == [5, 10]


def test_limits_name_pairs_as_the_engine_reads_them(ws):
    """A test's `limits:` read pair names as `run` and `replay` read the engine config's: BTC/USD
    is XBTUSD. Before, `allowed_pairs: [BTC/USD]` blocked the rule's XBTUSD order in the test
    (where `run` lets it through) and `max_order_notional: {BTC/USD: 500}` limited nothing."""
    allowed = run(ws, "  - {at: 2m, rule: btc-dip-buy}\n", extra="limits: {allowed_pairs: [BTC/USD]}\n")
    assert allowed.passed, problems(allowed)
    limited = run(ws, "  - {at: 2m, rule: btc-dip-buy, fires: true, blocked: {by: risk, limit: max_order_notional}}\n",
                  extra="limits: {max_order_notional: {BTC/USD: 500}}\n")
    assert limited.passed, problems(limited)
    path = ws.write("typo.test.yaml", "rules: [dip.yaml]\nwallet: {ZUSD: 10000}\n"
                    "limits: {allowed_pairs: [XBTUSDD]}\ninputs:\n" + PRICES + "expect:\n  - {rule: btc-dip-buy}\n")
    errors = [str(e) for e in run_file(path).errors]
    assert errors == [f"{path}:3:25: unknown Kraken pair 'XBTUSDD' (did you mean 'XBTUSD'?)"]
