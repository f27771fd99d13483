"""`rules-engine replay` end to end: the fires table, the per-rule summary, the JSON report,
the PNG chart, progress and exit codes."""

import json
import random
from decimal import Decimal
from pathlib import Path

import jsonschema
import matplotlib.image as mpimg
import pytest

from rules_engine.cli import main

RULES = """\
version: 1
rules:
  - id: buy-dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69000, rearm: 200}]
    cooldown: 10m
    actions:
      - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01}
  - id: sell-rip
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 71000, rearm: 200}]
    when: "balance('XXBT') >= 0.01"
    actions:
      - {type: place_order, pair: XBTUSD, side: sell, ordertype: limit, volume: 0.01, price: "=price + 10"}
"""


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    rng = random.Random(3)
    rows, price = [], 70000.0
    for n in range(600):  # ten hours of 1-minute candles swinging around 70,000
        target = 70000 + 2500 * ((n // 60) % 2 * 2 - 1)
        close = price + (target - price) * 0.05 + rng.gauss(0, 40)
        high, low = max(price, close) + abs(rng.gauss(0, 20)), min(price, close) - abs(rng.gauss(0, 20))
        rows.append(f"{1767225600 + 60 * n},{price:.1f},{high:.1f},{low:.1f},{close:.1f},1.0,3")
        price = close
    (tmp_path / "XBTUSD_1.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def replay(workspace, capsys, *extra):
    code = main(["replay", str(workspace / "rules.yaml"), "--data", str(workspace / "XBTUSD_1.csv"),
                 "--out", str(workspace / "out"), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_report_lists_every_fire_and_a_summary_per_rule(workspace, capsys):
    code, out, _ = replay(workspace, capsys)
    assert code == 0, out
    assert "period: 2026-01-01T00:00:00Z to 2026-01-01T09:59:45Z, 2,400 ticks" in out
    assert "open, then the shorter path through the extremes" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("time"))
    assert header.split() == ["time", "rule", "price", "intents", "simulated", "fills", "balances", "after"]
    fires = [line for line in out.splitlines() if "place_order" in line]
    assert any("buy-dip" in l and "buy 0.01 XBTUSD market" in l and "XXBT 0.01" in l for l in fires)
    assert any("sell-rip" in l and "sell 0.01 XBTUSD" in l for l in fires)
    assert "Summary per rule" in out and "Report written:" in out
    assert sorted(p.name for p in (workspace / "out").iterdir()) == ["chart.png", "report.json", "report.md"]
    markdown = (workspace / "out" / "report.md").read_text()
    assert "| time | rule | price | intents | simulated fills | balances after |" in markdown
    assert "![price, levels, fires, resting orders and equity](chart.png)" in markdown


def test_json_report_for_machines(workspace, capsys):
    code, out, _ = replay(workspace, capsys, "--format", "json", "--wallet", "ZUSD=2000")
    assert code == 0
    report = json.loads(out)
    assert report["schema"] == "replay-report/1"
    assert report["ticks"] == 2400 and report["wallet"]["start"] == {"ZUSD": "2000"}
    assert report["data"] == [{"path": (workspace / "XBTUSD_1.csv").as_posix(), "format": "ohlcvt",
                               "symbol": "XBTUSD", "interval": 60.0}]
    fires = report["fires"]
    assert fires and {f["rule"] for f in fires} == {"buy-dip", "sell-rip"}
    first = fires[0]
    assert first["rule"] == "buy-dip" and first["intent_details"][0]["kind"] == "place_order"
    assert first["fills"][0]["side"] == "buy" and first["fills"][0]["volume"] == "0.01"
    assert first["balances_after"]["XXBT"] == "0.01"
    summary = {s["rule"]: s for s in report["rules_summary"]}
    assert summary["buy-dip"]["fires"] == sum(1 for f in fires if f["rule"] == "buy-dip")
    bought = sum(1 for f in fires if f["rule"] == "buy-dip" and f["fills"])
    assert summary["buy-dip"]["orders"]["placed"] == summary["buy-dip"]["orders"]["filled"] == bought
    assert json.loads((workspace / "out" / "report.json").read_text()) == report


def test_the_chart_is_a_real_png(workspace, capsys):
    code, _, _ = replay(workspace, capsys)
    assert code == 0
    chart = workspace / "out" / "chart.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 20_000
    image = mpimg.imread(chart)
    height, width = image.shape[:2]
    assert (width, height) == (1300, 660)
    assert image.std() > 0.05  # not a blank canvas
    code, _, _ = replay(workspace, capsys, "--no-chart", "--out", str(workspace / "plain"))
    assert not (workspace / "plain" / "chart.png").exists()


def test_progress_bar_on_request(workspace, capsys):
    code, _, err = replay(workspace, capsys, "--progress")
    assert code == 0 and "replay" in err and "tick" in err


def test_exit_codes(workspace, capsys):
    (workspace / "bad.yaml").write_text("version: 1\nrules:\n  - id: x\n    triggers: []\n")
    code = main(["replay", str(workspace / "bad.yaml"), "--data", str(workspace / "XBTUSD_1.csv")])
    assert code == 1 and "the rules are invalid" in capsys.readouterr().err
    code, _, err = replay(workspace, capsys, "--data", str(workspace / "nope.csv"))
    assert code == 2 and "no such data file" in err
    code, _, err = replay(workspace, capsys, "--wallet", "ZUSD")
    assert code == 2 and "ASSET=AMOUNT" in err
    code, _, err = replay(workspace, capsys, "--wallet", "FOO=1")
    assert code == 2 and "unknown asset 'FOO'" in err
    (workspace / "XBTUSD_5.csv").write_text("100,1,2,0.5,1.5,1,1\n50,1,2,0.5,1.5,1,1\n")
    code = main(["replay", str(workspace / "rules.yaml"), "--data", str(workspace / "XBTUSD_5.csv"),
                 "--out", str(workspace / "out")])
    assert code == 1 and "XBTUSD_5.csv:2: timestamp 50 is not after" in capsys.readouterr().err


def test_state_dir_keeps_the_audit_log_of_the_replay(workspace, capsys):
    state = workspace / "replay-state"
    code = main(["replay", str(workspace / "rules.yaml"), "--data", str(workspace / "XBTUSD_1.csv"),
                 "--out", str(workspace / "out"), "--no-chart", "--format", "json", "--state-dir", str(state)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    fires = len(report["fires"])
    assert fires > 0
    assert main(["audit", "verify", "--state-dir", str(state)]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    orders = [r for r in records if r["kind"] == "decision" and "intent" in r["data"]]
    assert len(orders) == fires and all(r["mode"] == "dry-run" for r in orders)
    assert all(r["data"]["action"] == "would_send" for r in orders)
    assert main(["replay", str(workspace / "rules.yaml"), "--data", str(workspace / "XBTUSD_1.csv"),
                 "--out", str(workspace / "out"), "--no-chart", "--state-dir", str(state)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_rule_errors_are_printed_with_reason_and_place_in_text_markdown_and_json(workspace, capsys):
    (workspace / "rules.yaml").write_text(RULES + """\
  - id: broken
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    actions:
      - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=1 / (price - price)"}
""")
    where = f"{(workspace / 'rules.yaml').as_posix()}:16 (actions[0].volume)"
    code, out, _ = replay(workspace, capsys)
    assert code == 0
    section = out.split("\nErrors (", 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # past the title and header
    assert section and all("broken" in line and where in line and "division by zero" in line for line in section)
    markdown = (workspace / "out" / "report.md").read_text()
    assert f"| broken | {where} | error: division by zero in `1 / (price - price)` (at column 1) |" in markdown
    report = json.loads((workspace / "out" / "report.json").read_text())
    assert report["errors"] and {(e["rule"], e["where"], e["by"]) for e in report["errors"]} == {
        ("broken", where, "error")}
    assert {s["rule"]: s["errors"] for s in report["rules_summary"]}["broken"] == len(report["errors"])


def test_the_configs_risk_limits_name_pairs_as_the_engine_reads_them(workspace, capsys):
    """`allowed_pairs: [BTC/USD]` is XBTUSD, as for `run` (it blocked every order of the replay),
    and a pair Kraken does not list is an error, not a limit that limits nothing."""
    config = workspace / "engine.yaml"
    config.write_text("version: 1\nrisk: {allowed_pairs: [BTC/USD], max_order_notional: {XBT/USD: 100}}\n")
    code, out, _ = replay(workspace, capsys, "--config", str(config), "--no-chart")
    assert code == 0, out
    fires = [line for line in out.splitlines() if "buy-dip" in line and "stopped by risk" in line]
    assert fires and all("risk limit: max_order_notional (would be " in line for line in fires)  # not allowed_pairs
    config.write_text("version: 1\nrisk: {allowed_pairs: [XBTUSDD]}\n")
    code, _, err = replay(workspace, capsys, "--config", str(config), "--no-chart")
    assert code == 1 and "risk/allowed_pairs: unknown Kraken pair 'XBTUSDD' (did you mean 'XBTUSD'?)" in err


FUTURES_RULES = """\
version: 1
rules:
  - id: fut-dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69000, rearm: 200}]
    cooldown: 10m
    actions:
      - {type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: mkt, size: 0.01}
"""


def test_the_paper_futures_account_is_funded_from_the_flag_or_the_config_and_reported(workspace, capsys):
    """A replay could not fund the paper Futures account, so every Futures order was refused
    for margin; it is funded by --futures-wallet (or the config's paper_wallet.futures_balances)
    and reported apart from the spot wallet's figures."""
    rules = workspace / "futures.yaml"
    rules.write_text(FUTURES_RULES)

    def futures_replay(*extra):
        code = main(["replay", str(rules), "--data", str(workspace / "XBTUSD_1.csv"), "--out",
                     str(workspace / "out"), "--no-chart", "--format", "json", *extra])
        out = capsys.readouterr().out
        return code, json.loads(out) if code == 0 else out

    code, unfunded = futures_replay()
    assert code == 0 and unfunded["futures"]["collateral_start"] == {} and unfunded["futures"]["orders"] == 0
    assert unfunded["errors"] and all("insufficientAvailableFunds" in e["reason"] for e in unfunded["errors"])
    code, funded = futures_replay("--futures-wallet", "usd=10000")
    fires = len(funded["fires"])
    assert code == 0 and fires > 0 and not funded["errors"]
    futures = funded["futures"]
    assert futures["collateral_start"] == {"USD": "10000"} and futures["orders"] == futures["fills"] == fires
    assert futures["positions"] == [{"symbol": "PF_XBTUSD", "size": str(Decimal("0.01") * fires),
                                     "price": futures["positions"][0]["price"]}]
    assert Decimal(futures["collateral"]["USD"]) == Decimal(10000) - Decimal(futures["fees"])  # fees settle there
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "replay-report.schema.json").read_text())
    for document in (funded, unfunded):
        jsonschema.Draft202012Validator(schema).validate(document)
    config = workspace / "engine.yaml"
    config.write_text("version: 1\npaper_wallet: {futures_balances: {USD: 10000}}\n")
    code, from_config = futures_replay("--config", str(config))
    assert code == 0 and from_config["futures"]["fills"] == fires
    main(["replay", str(rules), "--data", str(workspace / "XBTUSD_1.csv"), "--out", str(workspace / "out"),
          "--no-chart", "--futures-wallet", "USD=10000"])
    text = capsys.readouterr().out
    assert f"futures (paper account; not in the equity, PnL and order counts below): collateral USD 10000 -> " \
           f"USD {futures['collateral']['USD']}; {fires} orders, {fires} fills" in text
    assert main(["replay", str(rules), "--data", str(workspace / "XBTUSD_1.csv"), "--futures-wallet", "USD"]) == 2
    assert "--futures-wallet 'USD': write CURRENCY=AMOUNT, e.g. USD=5000" in capsys.readouterr().err
    code, spot_only, _ = replay(workspace, capsys, "--no-chart")
    assert code == 0 and "futures (paper account" not in spot_only  # nothing Futures: no line
