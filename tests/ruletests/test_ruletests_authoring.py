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
