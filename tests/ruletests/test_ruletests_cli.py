"""`rules-engine test` end to end: pass, fail with a diff, JUnit XML, schema errors, exit codes."""

import json
import xml.etree.ElementTree as ET

PASSING = """\
rules: [dip.yaml]
wallet: {ZUSD: 10000}
inputs:
  - prices: {symbol: XBT/USD, series: "70000 70500 69000 every 1m"}
  - at: 5m
    signal: {source: tradingview, payload: {action: buy}}
expect:
  - at: 2m
    rule: btc-dip-buy
    intents:
      - {type: place_order, pair: BTC/USD, side: buy, volume: "0.01"}
      - {type: log, message: "dip at 69000"}
  - at: 5m
    rule: tv-buy
    intents: [{type: place_order, price: 60000}]
"""


def test_passing_file_exits_0_and_says_pass(ws, capsys):
    path = ws.write("dip.test.yaml", PASSING)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 0, out
    assert "PASS  dip" in out
    assert "1 test: 1 passed, 0 failed, 0 invalid files (of 1 file)" in out


def test_failure_prints_expected_versus_got_with_times_and_exits_1(ws, capsys):
    path = ws.write("dip.test.yaml", PASSING.replace('volume: "0.01"', 'volume: "0.02"').replace("at: 5m\n    rule", "at: 6m\n    rule"))
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert "FAIL  dip" in out
    assert f"{path.as_posix()}:8: btc-dip-buy" in out
    assert "expected: fires at +2m (2026-01-01T00:02:00Z)" in out
    assert "intent 1 volume: expected 0.02, got 0.01" in out
    # the signal fired at 5m, the expectation said 6m: missing at 6m, unexpected at 5m
    assert "expected: fires at +6m (2026-01-01T00:06:00Z)" in out
    assert "got: at +5m (2026-01-01T00:05:00Z): fired: place_order buy 0.1 XBTUSD limit @ 60000" in out
    assert "unexpected: tv-buy" in out
    assert "what happened" in out and "+2m  btc-dip-buy  fired" in out


def test_empty_expectation_means_nothing_fires(ws, capsys):
    path = ws.write("quiet.test.yaml", """\
        rules: [dip.yaml]
        wallet: {ZUSD: 10000}
        inputs:
          - prices: {symbol: XBTUSD, series: "70000 69000"}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert "unexpected: btc-dip-buy" in out and "nothing else fires (the test is strict)" in out


def test_junit_xml_is_valid_and_carries_the_diff(ws, capsys):
    good = ws.write("good.test.yaml", PASSING)
    bad = ws.write("bad.test.yaml", PASSING.replace('"0.01"', '"0.03"'))
    broken = ws.write("broken.test.yaml", "rules: [dip.yaml]\nexpcet: []\n")
    report = ws.root / "out" / "junit.xml"
    report.parent.mkdir()
    code, _, _ = ws.run(str(good), str(bad), str(broken), "--junit", str(report), capsys=capsys)
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {good.as_posix(), bad.as_posix(), broken.as_posix()}
    assert suites[good.as_posix()].find("testcase").find("failure") is None
    failure = suites[bad.as_posix()].find("testcase/failure")
    assert failure.get("type") == "ExpectationFailed"
    assert "intent 1 volume: expected 0.03, got 0.01" in failure.text
    error = suites[broken.as_posix()].find("testcase/error")
    assert 'unknown key "expcet"' in error.text and ":2:1:" in error.text


def test_schema_errors_point_at_file_line_column(ws, capsys):
    path = ws.write("typo.test.yaml", """\
        rules: [dip.yaml]
        inputs:
          - prices: {symbol: XBTUSD, series: "70000 69000"}
          - at: 5 minutes
            signal: {source: tv, payload: {}}
          - tick: {symbol: XBTUSD}
        expect:
          - rule: btc-dip-buy
            blocked: {by: gaurd}
            fires: maybe
        expcet: []
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    name = path.as_posix()
    assert f"ERROR {name}:4:9: expected a time: a duration after the start (5m)" in out
    assert f"ERROR {name}:6:11: a tick has a symbol and at least one of last, bid or ask" in out
    assert f'ERROR {name}:9:19: unknown block kind "gaurd" (did you mean "guard"?)' in out
    assert f'ERROR {name}:10:12: "fires" must be of type boolean' in out
    assert "0 tests: 0 passed, 0 failed, 1 invalid file (of 1 file)" in out
    assert f'ERROR {name}:11:1: unknown key "expcet" in rule test file (did you mean "expect"?)' in out


def test_meaning_errors_point_at_file_line(ws, capsys):
    path = ws.write("meaning.test.yaml", """\
        rules: [dip.yaml]
        wallet: {ZUSDD: 1}
        inputs:
          - prices: {symbol: NOPEUSD, series: "70000 abc"}
          - timer: {rule: btc-dip-buy}
        expect:
          - rule: btc-dip-bye
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    name = path.as_posix()
    assert f"""{name}:2:17: unknown asset 'ZUSDD' (did you mean "ZUSD"?)""" in out
    assert f"{name}:4:22: unknown Kraken pair 'NOPEUSD'" in out
    assert f"{name}:4:39: 'abc' in the series is not a price" in out
    assert f"{name}:5:19: rule 'btc-dip-buy' has no timer trigger" in out
    assert f"""{name}:7:11: no rule 'btc-dip-bye' in the rule files under test (did you mean "btc-dip-buy"?)""" in out


def test_rule_file_errors_are_reported_from_the_rule_file(ws, capsys):
    ws.write("broken.yaml", "version: 1\nrules:\n  - id: x\n    triggers: []\n    actions: []\n")
    path = ws.write("b.test.yaml", "rules: [broken.yaml, missing.yaml]\n")
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert f"{path.as_posix()}:1:22: rule file missing.yaml not found" in out


def test_usage_errors_exit_2(ws, capsys):
    code, _, err = ws.run(str(ws.root / "nope.test.yaml"), capsys=capsys)
    assert code == 2 and "no such file or folder" in err
    path = ws.write("dip.test.yaml", PASSING)
    code, _, err = ws.run(str(path), "--junit", str(ws.root / "no-dir" / "j.xml"), capsys=capsys)
    assert code == 2 and "cannot write" in err


def test_folders_are_searched_for_test_files_and_json_output(ws, capsys):
    ws.write("dip.test.yaml", PASSING)
    ws.write("notes.yaml", "not: a test\n")
    code, out, _ = ws.run(str(ws.root), "--format", "json", capsys=capsys)
    assert code == 0
    document = json.loads(out)
    assert document["passed"] is True
    assert document["counts"] == {"tests": 1, "passed": 1, "failed": 0, "errors": 0}
    assert [f["path"].rsplit("/", 1)[-1] for f in document["files"]] == ["dip.test.yaml"]


WAITING_RULES = """\
version: 1
rules:
  - id: eth-strong
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    when: "price_of('ETHUSD') > 2000"
    actions: [{type: log, message: "ok"}]
"""

WAITING_TESTS = """\
rules: [waiting.yaml]
tests:
  - name: the guard waits for the ETH price, then fires when it comes
    inputs:
      - prices: {symbol: XBTUSD, series: "69000 70500 every 1m"}
      - {at: 1m30s, prices: {symbol: ETHUSD, series: "2500"}}
    expect:
      - {at: 1m, rule: eth-strong, blocked: {by: waiting, reason: "waiting for price of ETHUSD"}}
      - {at: 1m30s, rule: eth-strong, intents: [{type: log, message: ok}]}
  - name: a guard that never can be evaluated does not fire
    until: 5m
    inputs:
      - prices: {symbol: XBTUSD, series: "69000 70500 every 1m"}
    expect:
      - {at: 1m, rule: eth-strong, blocked: waiting}
"""


def test_a_guard_waiting_for_a_value_is_blocked_by_waiting_and_fires_once_it_is_known(ws, capsys):
    ws.write("waiting.yaml", WAITING_RULES)
    path = ws.write("waiting.test.yaml", WAITING_TESTS)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 0, out
    assert "2 tests: 2 passed" in out
    wrong = ws.write("wrong.test.yaml", WAITING_TESTS.replace("blocked: {by: waiting,", "blocked: {by: guard,"))
    code, out, _ = ws.run(str(wrong), capsys=capsys)
    assert code == 1 and "waiting for price of ETHUSD" in out


def test_an_order_kraken_refuses_for_its_rounding_says_what_to_change(ws, capsys):
    ws.write("unrounded.yaml", """\
        version: 1
        rules:
          - id: unrounded
            cooldown: 1h
            triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
            actions:
              - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: "=price * 0.99"}
        """)
    path = ws.write("unrounded.test.yaml", """\
        rules: [unrounded.yaml]
        wallet: {ZUSD: 10000}
        inputs:
          - prices: {symbol: XBTUSD, series: "69000 70123 every 1m"}
        expect:
          - {at: 1m, rule: unrounded, fires: true, blocked: {by: exchange, reason: "Tick size check failed"}}
        """)
    code, out, _ = ws.run(str(path), "-v", capsys=capsys)
    assert code == 0, out
    # 70123 * 0.99 = 69421.77, and XBTUSD's tick is 0.1: Kraken's words, then what to change
    assert ("stopped by exchange: place_order failed: EOrder:Tick size check failed (a price is not a multiple "
            "of the pair's tick size (tick_size in Kraken's AssetPairs): round computed prices, as in "
            "round(ask * 1.001, 1))") in out
