"""`validate` reports every problem of a file in one run: a semantic problem (an unknown pair)
beside a schema problem (a misspelled key) in the same trigger is reported at once, not after
the key is fixed. Only an unknown key that may be the `market` the symbol depends on holds the
symbol check back (checking it against the wrong market would blame a valid symbol)."""

from __future__ import annotations

import pytest

from rules_engine.cli import main


def located(result) -> list[str]:
    return [f"{d.line}:{d.column}: {d.code}: {d.message}" for d in result.errors]


def test_a_bad_pair_beside_a_misspelled_key_is_reported_in_the_same_run(load):
    result = load("""
        version: 1
        rules:
          - id: r1
            triggers:
              - type: price
                symbol: XBTUSDD
                crosess_above: 30000
              - {type: spread, symbol: ETHUSDX, abov: 5}
            actions: [{type: log, message: hi}]
        """)
    assert located(result) == [
        '6:17: unknown-pair: unknown Kraken pair "XBTUSDD"',
        '7:9: unknown-key: unknown key "crosess_above" in price trigger',
        "8:9: schema: a spread trigger needs exactly one of crosses_above or crosses_below",
        '8:32: unknown-pair: unknown Kraken pair "ETHUSDX"',
        '8:41: unknown-key: unknown key "abov" in spread trigger',
    ]
    assert result.errors[0].hint == 'did you mean "XBTUSD"?'


@pytest.mark.parametrize("unknown", ["markt: futures", "mrket: spot", "venue: futures"])
def test_an_unknown_key_that_may_be_the_market_holds_the_symbol_check_back(load, unknown):
    result = load(f"""
        version: 1
        rules:
          - id: r1
            triggers: [{{type: price, {unknown}, symbol: PF_XBTUSD, crosses_above: 5}}]
            actions: [{{type: log, message: hi}}]
        """)
    assert [d.code for d in result.errors] == ["unknown-key"]


def test_the_files_defaults_may_hold_the_market_misspelled(load):
    result = load("""
        version: 1
        defaults: {markets: futures}
        rules:
          - id: r1
            triggers: [{type: price, symbol: PF_XBTUSD, crosses_above: 5}]
            actions: [{type: log, message: hi}]
        """)
    assert [d.code for d in result.errors] == ["unknown-key"]
    result = load("""
        version: 1
        defaults: {cooldwn: 5m}
        rules:
          - id: r1
            triggers: [{type: price, symbol: XBTUSDD, crosses_above: 5}]
            actions: [{type: log, message: hi}]
        """)
    assert [d.code for d in result.errors] == ["unknown-key", "unknown-pair"]


def test_validate_prints_both_in_one_run(write, capsys):
    path = write("r.yaml", """
        version: 1
        rules:
          - id: r1
            triggers: [{type: price, symbol: XBTUSDD, crosess_above: 30000}]
            actions: [{type: log, message: hi}]
        """)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert 'unknown Kraken pair "XBTUSDD"' in out and 'unknown key "crosess_above"' in out
    assert "2 errors" in out
