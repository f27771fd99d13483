"""Kraken's real pair universe (the shipped AssetPairs snapshot, 1,434 pairs): every spelling
resolves in triggers, actions, `price_of()` and recorded data; validate checks literal
`price_of()`/`balance()` arguments; replays skip pairs no rule watches; `--pairs FILE`."""

import json
import textwrap

import pytest

from rules_engine.cli import main
from rules_engine.pairs import default_registry, snapshot_path, use_snapshot
from rules_engine.rules import load_rules_text


@pytest.fixture(autouse=True)
def shipped_snapshot():
    yield
    use_snapshot(None)


def test_the_snapshot_is_kraken_s_complete_list():
    registry = default_registry()
    assert len(registry) == 1434
    assert sum(1 for p in registry if p.status != "online") == 69
    for name in ("BTC/USD", "XBT/USD", "XBTUSD", "XXBTZUSD", "btc/usd"):
        assert registry.resolve(name).altname == "XBTUSD"
    for name in ("XMR/USD", "XXMRZUSD", "XMRUSD"):
        assert registry.resolve(name).altname == "XMRUSD"
    eth_usdt = registry.resolve("ETH/USDT")
    assert (eth_usdt.pair_id, eth_usdt.pair_decimals, eth_usdt.lot_decimals, eth_usdt.cost_decimals) == \
        ("ETHUSDT", 2, 8, 5)


def test_suggestions_compare_names_without_slashes_and_keep_the_user_s_style():
    registry = default_registry()
    assert registry.suggest("BTCUSDX") == "BTC/USD"
    assert registry.suggest("XBTUSDD") == "XBTUSD"
    assert registry.suggest("ETH/USDTT") in ("ETH/USDT",)


def rules(text):
    return load_rules_text(textwrap.dedent(text), filename="r.yaml")


def test_every_spelling_works_in_triggers_and_actions():
    result = rules("""\
        version: 1
        rules:
          - id: a
            triggers: [{type: price, symbol: ETH/USDT, crosses_above: 4000}]
            cooldown: 1m
            actions: [{type: place_order, pair: XXBTZUSD, side: buy, ordertype: market, volume: 0.001}]
        """)
    assert result.errors == []
    rule = result.ruleset.rules[0]
    assert rule.triggers[0].symbol == "ETHUSDT"
    assert rule.actions[0].pair == "XBTUSD"


def test_validate_checks_literal_price_of_and_balance_arguments():
    result = rules("""\
        version: 1
        rules:
          - id: a
            triggers: [{type: timer, every: 1m}]
            when: "price_of('NOPE/USD') > 1 and balance('USDXX') > 0 and price_of('AGLD/USD') > 0"
            actions: [{type: log, message: hi}]
        """)
    messages = [(d.severity, d.message, d.hint) for d in result.errors + result.warnings]
    assert ("error", "price_of('NOPE/USD'): unknown Kraken pair", 'did you mean "OPEN/USD"?') in messages
    assert ("error", "balance('USDXX'): unknown Kraken asset", 'did you mean "USD"?') in messages
    assert ("warning", "price_of('AGLD/USD'): Kraken lists AGLDUSD as \"cancel_only\"", None) in messages
    assert result.ruleset is None


def test_a_pair_that_is_not_online_gets_a_warning_naming_its_status():
    result = rules("""\
        version: 1
        rules:
          - id: a
            triggers: [{type: price, symbol: AIO/EUR, crosses_above: 1}]
            actions: [{type: log, message: hi}]
        """)
    assert result.errors == []
    assert [w.message for w in result.warnings] == ['Kraken lists AIOEUR as "post_only"; orders may be refused']


def frame(symbol, last, time):
    return json.dumps({"time": time, "frame": [42, {"c": [last, "0.1"], "b": [last, 1, "1"], "a": [last, 1, "1"]},
                                               "ticker", symbol]})


def test_a_recorded_capture_with_unwatched_and_unknown_pairs_replays(tmp_path, capsys):
    (tmp_path / "rules.yaml").write_text(textwrap.dedent("""\
        version: 1
        rules:
          - id: xmr
            triggers: [{type: price, symbol: XBT/USD, crosses_above: 70000}]
            when: "price_of('XXMRZUSD') > 150 and price_of('XMR/USD') == price_of('XMRUSD')"
            cooldown: 1h
            actions: [{type: log, message: "xmr {price}"}]
        """))
    lines = [frame("XMR/USD", "160.00", 1767225600), frame("WAVES/EUR", "1.0", 1767225601),
             frame("ETH/EUR", "3000.0", 1767225602), frame("XBT/USD", "69000.0", 1767225603),
             frame("WAVES/EUR", "1.1", 1767225604), frame("XBT/USD", "71000.0", 1767225605)]
    (tmp_path / "capture.jsonl").write_text("\n".join(lines) + "\n")
    code = main(["replay", str(tmp_path / "rules.yaml"), "--data", str(tmp_path / "capture.jsonl"),
                 "--out", str(tmp_path / "out"), "--no-chart", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    report = json.loads(out)
    assert report["ticks"] == 3
    assert report["skipped"] == {"ticks": 3, "by_symbol": {"ETHEUR": 1, "WAVES/EUR": 2}}
    assert [f["rule"] for f in report["fires"]] == ["xmr"]


def test_pairs_file_replaces_the_snapshot_for_one_run(tmp_path, capsys):
    shipped = json.loads(snapshot_path().read_text())["result"]
    mine = {"XXBTZUSD": shipped["XXBTZUSD"],
            "WAVESEUR": dict(shipped["XXBTZEUR"], altname="WAVESEUR", wsname="WAVES/EUR", base="WAVES")}
    (tmp_path / "pairs.json").write_text(json.dumps({"error": [], "result": mine}))
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        version: 1
        rules:
          - id: w
            triggers: [{type: price, symbol: WAVES/EUR, crosses_above: 2}]
            actions: [{type: log, message: hi}]
        """))
    assert main(["validate", str(tmp_path / "r.yaml")]) == 1
    assert 'unknown Kraken pair "WAVES/EUR"' in capsys.readouterr().out
    assert main(["--pairs", str(tmp_path / "pairs.json"), "validate", str(tmp_path / "r.yaml")]) == 0
    assert len(default_registry()) == 2
    (tmp_path / "bad.json").write_text('{"error": [], "result": []}')
    use_snapshot(None)
    assert main(["--pairs", str(tmp_path / "bad.json"), "validate", str(tmp_path / "r.yaml")]) == 2
    assert "not an AssetPairs response" in capsys.readouterr().err
    assert len(default_registry()) == 1434


def test_price_of_a_computed_name_resolves_any_spelling_at_run_time():
    from decimal import Decimal

    from rules_engine.core.events import Signal, make_tick
    from rules_engine.replay.runner import OfflineRunner

    result = rules("""\
        version: 1
        rules:
          - id: s
            triggers: [{type: signal, source: tradingview}]
            when: "price_of(signal.ticker) > 100 and price_of('XMR/USD') > 100"
            actions: [{type: log, message: "ok"}]
        """)
    assert result.errors == []
    with OfflineRunner(result.ruleset, start=1000.0) as runner:
        runner.feed(make_tick("XBTUSD", "spot", 1001.0, Decimal(70000), None, None, None))
        runner.feed(make_tick("XMRUSD", "spot", 1001.0, Decimal(160), None, None, None))
        for ticker in ("BTCUSD", "XBT/USD", "XXBTZUSD"):
            runner.feed(Signal("tradingview", {"ticker": ticker, "action": "buy"}, 1002.0))
        fired = [o for o in runner.outcomes if o.fired]
    assert len(fired) == 3


def test_the_shipped_index_matches_the_snapshot_and_a_stale_index_is_not_used(tmp_path):
    from rules_engine.pairs import INDEX_FILE, PairRegistry, _indexed_registry, write_index

    indexed = _indexed_registry(snapshot_path())
    assert indexed is not None, "run rules_engine.pairs.write_index on the shipped snapshot"
    full = PairRegistry.from_file(snapshot_path())
    assert list(indexed) == list(full)
    copy = tmp_path / "asset_pairs.json"
    copy.write_bytes(snapshot_path().read_bytes())
    write_index(copy)
    assert (tmp_path / INDEX_FILE).is_file() and _indexed_registry(copy) is not None
    copy.write_text('{"error": [], "result": {}}')
    assert _indexed_registry(copy) is None
