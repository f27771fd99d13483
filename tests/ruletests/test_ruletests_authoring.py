"""What a rule author trips over in test files: commas in a series, an empty file, a folder
without tests, and problems that must all be reported in one run."""

from __future__ import annotations

PRICES = """\
rules: [dip.yaml]
wallet: {ZUSD: 10000}
inputs:
  - prices: {symbol: XBTUSD, series: "SERIES"}
expect: EXPECT
"""


def test_a_comma_in_a_series_is_an_error_with_a_hint(ws, capsys):
    path = ws.write("commas.test.yaml", PRICES.replace("SERIES", "70,000 69,400").replace("EXPECT", "[]"))
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert (f'{path.as_posix()}:4:38: a comma in the series "70,000 69,400": prices are separated by spaces '
            'only, and thousands are written 30500 or 30_500 (e.g. "70_000 69_400")') in out
    # a comma list of prices gets the same error, with the commas as spaces
    path.write_text(PRICES.replace("SERIES", "70000, 69400").replace("EXPECT", "[]"))
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1 and '(e.g. "70000 69400")' in out


def test_thousands_written_with_underscores_are_prices(ws, capsys):
    expect = "[{at: 1m, rule: btc-dip-buy}]"
    path = ws.write("under.test.yaml", PRICES.replace("SERIES", "70_000 69_400").replace("EXPECT", expect))
    code, out, _ = ws.run(str(path), "-v", capsys=capsys)
    assert code == 0, out
    assert "+1m  btc-dip-buy  fired: place_order buy 0.01 XBTUSD market" in out
    path.write_text(PRICES.replace("SERIES", "70__000 69_400").replace("EXPECT", "[]"))
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1 and "'70__000' in the series is not a price" in out


def test_an_empty_test_file_is_told_about_test_file_keys(ws, capsys):
    path = ws.write("empty.test.yaml", "# nothing yet\n")
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert f"{path.as_posix()}:1:1: the file is empty; a test file holds `rules:`" in out
    assert "`inputs:`" in out and "`tests:`" in out
    assert "version:" not in out


def test_a_folder_without_tests_is_a_note_unless_tests_are_required(ws, capsys):
    folder = ws.root / "rules"
    folder.mkdir()
    (folder / "dip.yaml").write_text((ws.root / "dip.yaml").read_text())
    code, out, err = ws.run(str(folder), capsys=capsys)
    assert code == 0
    assert f"note: no test files (*.test.yaml) under {folder}" in err
    assert "0 tests" in out
    code, _, err = ws.run(str(folder), "--require-tests", capsys=capsys)
    assert code == 1 and "--require-tests" in err
    # with tests there, --require-tests changes nothing
    ws.write("rules/q.test.yaml", PRICES.replace("dip.yaml", "./dip.yaml").replace("SERIES", "70000 70500")
             .replace("EXPECT", "[]"))
    code, out, _ = ws.run(str(folder), "--require-tests", capsys=capsys)
    assert code == 0, out


def test_every_problem_of_a_test_file_in_one_run(ws, capsys):
    """Schema errors (a misspelled key, a wrong type) do not hide meaning errors (an unknown
    asset, pair or rule id, a comma in a series) elsewhere in the file, nor in the same test;
    a misspelled key is not also reported as a missing one; each problem once, in file order."""
    path = ws.write("typos.test.yaml", """\
        rules: [dip.yaml]
        wallet: {ZUSDD: 10000}
        tests:
          - name: one
            inputs:
              - prices: {symbol: XBTUSDD, series: "70000 69000"}
              - {at: 5m, signal: {source: tradingview, paylod: {action: buy}}}
              - {at: 6m, timer: {rule: btc-dip-bye}}
            expect:
              - {at: 1m, rule: btc-dip-bye}
              - {at: 2m, rule: tv-buyy, fires: maybe}
          - name: two
            inputs:
              - prices: {symbol: XBTUSD, series: "70,000 69,000"}
            expcet: []
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    name = path.as_posix()
    errors = [line.strip().removeprefix(f"ERROR {name}:") for line in out.splitlines() if "ERROR" in line]
    assert errors == [
        """2:17: unknown asset 'ZUSDD' (did you mean "ZUSD"?)""",
        """6:26: unknown Kraken pair 'XBTUSDD' (did you mean "XBTUSD"?)""",
        '7:48: unknown key "paylod" in signal (did you mean "payload"?)',
        """8:32: no rule 'btc-dip-bye' in the rule files under test (did you mean "btc-dip-buy"?)""",
        """10:24: no rule 'btc-dip-bye' in the rule files under test (did you mean "btc-dip-buy"?)""",
        """11:24: no rule 'tv-buyy' in the rule files under test (did you mean "tv-buy"?)""",
        '11:40: "fires" must be of type boolean',
        '14:42: a comma in the series "70,000 69,000": prices are separated by spaces only, and thousands are '
        'written 30500 or 30_500 (e.g. "70_000 69_000")',
        '15:5: unknown key "expcet" in test (did you mean "expect"?)',
    ]


def test_a_broken_rule_file_does_not_hide_the_test_files_own_problems(ws, capsys):
    ws.write("broken.yaml", "version: 1\nrules:\n  - id: x\n    triggers: []\n    actions: []\n")
    path = ws.write("b.test.yaml", """\
        rules: [broken.yaml]
        wallet: {ZUSDD: 1}
        inputs:
          - prices: {symbol: XBTUSD, series: "1,5"}
        expect:
          - {at: 1m, rule: anything}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert f"{(ws.root / 'broken.yaml').as_posix()}:4:15:" in out  # the rule file's own error
    assert f"{path.as_posix()}:2:17: unknown asset 'ZUSDD'" in out
    assert f'{path.as_posix()}:4:38: a comma in the series "1,5"' in out
    assert "no rule 'anything'" not in out  # which rules there are is unknown until the rule file loads


def test_a_rule_file_named_as_a_test_file_is_told_so(ws, capsys):
    path = ws.write("dip2.test.yaml", (ws.root / "dip.yaml").read_text())
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    [error] = [line for line in out.splitlines() if "ERROR" in line]
    assert f"{path.as_posix()}:1:1: this is a rule file (`version:` and rules with ids), not a test file" in error


def test_a_misspelled_pair_gets_the_suggestion_a_rule_file_gets(ws, capsys):
    """BTCUSD (TradingView's spelling) and BTC-USD suggest BTC/USD, as `validate` does for a
    rule, not the nearest altname by letters (WBTCUSD, a different coin); an asset alone is
    told that a pair names two."""
    path = ws.write("pairs.test.yaml", """\
        rules: [dip.yaml]
        inputs:
          - prices: {symbol: BTCUSD, series: "70000 69000"}
          - prices: {symbol: BTC-USD, series: "70000"}
          - prices: {symbol: ETH, series: "2500"}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    errors = [line.strip().removeprefix(f"ERROR {path.as_posix()}:") for line in out.splitlines() if "ERROR" in line]
    assert errors == [
        """3:22: unknown Kraken pair 'BTCUSD' (did you mean "BTC/USD"?)""",
        """4:22: unknown Kraken pair 'BTC-USD' (did you mean "BTC/USD"?)""",
        """5:22: unknown Kraken pair 'ETH' (ETH is an asset; a pair names two, e.g. "ETH/USD" or "ETH/EUR")""",
    ]


def test_a_signal_to_a_source_no_rule_listens_to_is_an_error(ws, capsys):
    """A misspelled source made the signal do nothing, and a test expecting nothing passed."""
    path = ws.write("source.test.yaml", """\
        rules: [dip.yaml]
        inputs:
          - signal: {source: tradingveiw, payload: {action: buy}}
          - signal: {source: ops, payload: {}}
        expect:
          - {rule: tv-buy, fires: false}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    errors = [line.strip().removeprefix(f"ERROR {path.as_posix()}:") for line in out.splitlines() if "ERROR" in line]
    assert errors == [
        "3:22: no rule under test listens to signal source 'tradingveiw': the signal would do nothing "
        '(did you mean "tradingview"?)',
        "4:22: no rule under test listens to signal source 'ops': the signal would do nothing "
        "(the rules listen to tradingview)",
    ]


def test_durations_and_numbers_written_the_human_way_get_the_rule_files_hints(ws, capsys):
    path = ws.write("human.test.yaml", """\
        rules: [dip.yaml]
        wallet: {ZUSD: "10,000"}
        tolerance: 5
        inputs:
          - prices: {symbol: XBTUSD, series: "70000 69000", every: 1 minute}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    errors = [line.strip().removeprefix(f"ERROR {path.as_posix()}:") for line in out.splitlines() if "ERROR" in line]
    assert errors == [
        '2:16: expected an amount such as 10000 or "0.5" (write 10000: a number takes no thousands separator)',
        '3:12: expected a duration such as 500ms, 30s, 5m, 1h or 1d (a duration needs its unit: write "5s" for '
        'seconds or "5m" for minutes)',
        '5:60: expected a duration such as 500ms, 30s, 5m, 1h or 1d (did you mean "1m"?)',
    ]


def test_until_before_the_last_input_is_an_error(ws, capsys):
    """`until: 30s` read as 'stop the test at 30s' was silently ignored: the inputs after it ran."""
    path = ws.write("until.test.yaml", """\
        rules: [dip.yaml]
        wallet: {ZUSD: 10000}
        until: 30s
        inputs:
          - prices: {symbol: XBTUSD, series: "70000 69000"}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert (f"ERROR {path.as_posix()}:3:8: until (+30s) is before the last input (+1m): it only keeps time running "
            "after the inputs (move until past them, or leave out the inputs after it)") in out


def test_at_inside_an_input_is_told_where_it_goes(ws, capsys):
    """`tick: {symbol: X, last: 1, at: 1m}` was told 'did you mean "last"?'."""
    path = ws.write("at.test.yaml", """\
        rules: [dip.yaml]
        inputs:
          - tick: {symbol: XBTUSD, last: 70000, at: 1m}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert (f'ERROR {path.as_posix()}:3:41: unknown key "at" in tick (at goes beside tick: in the input, as in '
            "- {at: 1m, tick: {...}})") in out


def test_price_of_a_name_kraken_does_not_list_is_an_error_not_a_wait(ws, capsys):
    """A computed name that is no pair (a TradingView ticker such as BTCUSD.P) waited for a
    price that could never come, and the wait lapsed a minute later without saying why."""
    ws.write("po.yaml", """\
        version: 1
        rules:
          - id: po
            cooldown: 1m
            triggers: [{type: signal, source: tradingview}]
            when: "price_of(signal.ticker) > 0"
            actions: [{type: log, message: ok}]
        """)
    path = ws.write("po.test.yaml", """\
        rules: [po.yaml]
        inputs:
          - tick: {symbol: XBTUSD, last: 50000}
          - signal: {source: tradingview, payload: {ticker: BTCUSD.P, action: buy}}
          - {at: 5m, signal: {source: tradingview, payload: {ticker: BTCUSD, action: buy}}}
        expect:
          - {at: 5m, rule: po}
        """)
    code, out, _ = ws.run(str(path), "-v", capsys=capsys)
    assert code == 0, out
    assert ("+0s  po  blocked by error: price_of() failed: UnknownSymbol: 'BTCUSD.P' is no Kraken pair (or Futures "
            "product id), so it has no price in `price_of(signal.ticker)` (at column 1)") in out
    assert "+5m  po  fired: log info \"ok\"" in out  # TradingView's BTCUSD is XBTUSD


def test_an_expected_pair_in_any_spelling_matches_and_a_wrong_one_is_an_error(ws, capsys):
    """`pair: BTCUSD` (TradingView's spelling, which price_of reads as XBTUSD) failed as 'expected
    BTCUSD, got XBTUSD'; `pair: BTC-USD` could never match and ran the test anyway."""
    path = ws.write("pair.test.yaml", """\
        rules: [dip.yaml]
        wallet: {ZUSD: 10000}
        inputs:
          - prices: {symbol: XBTUSD, series: "70000 69000"}
        expect:
          - {at: 1m, rule: btc-dip-buy, intents: [{type: place_order, pair: BTCUSD}, {type: log}],
             fills: [{pair: btc/usd}]}
        """)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 0, out
    path.write_text(path.read_text().replace("pair: btc/usd", "pair: BTC-USD"))
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 1
    assert f"""ERROR {path.as_posix()}:7:21: unknown Kraken pair 'BTC-USD' (did you mean "BTC/USD"?)""" in out
