"""Backtest sweeps (`rules-engine replay --sweep`): each row is the replay of the rules with
its values written in, the tables are identical on the process pool and on Dask, rows are
ranked by the chosen metric, and sweep-file errors point at file:line:column."""

import csv
import io
import json
import sys
from decimal import Decimal
from pathlib import Path

import distributed  # the dask extra, installed by make
import jsonschema
import pytest

from rules_engine.cli import main
from rules_engine.replay.sweep import DataSpec, Grid, ReplaySettings
from rules_engine.replay.sweep_executors import DaskSweep, ProcessPoolSweep
from rules_engine.replay.sweep_file import load_sweep

REPO = Path(__file__).resolve().parents[2]
T0 = 1767225600
WAVE = [100, 96, 93, 91, 94, 97, 101, 104, 106, 108, 103, 99, 95, 92, 90, 93, 98, 103, 107, 109, 105, 100]
RULES = """\
version: 1
rules:
  - id: buy-dip
    triggers:
      - type: price
        symbol: XBTUSD
        crosses_below: {buy}
    actions:
      - type: place_order
        pair: XBTUSD
        side: buy
        ordertype: market
        volume: {volume}
  - id: take-profit
    triggers:
      - {{type: price, symbol: XBTUSD, crosses_above: {sell}}}
    actions:
      - {{type: place_order, pair: XBTUSD, side: sell, ordertype: market, volume: 0.5}}
"""
SWEEP = """\
version: 1
parameters:
  - rule: buy-dip
    field: triggers[0].crosses_below
    name: buy
    values: [92, 95, 97]
  - rule: take-profit
    field: triggers[0].crosses_above
    name: sell
    range: {start: 103, stop: 107, step: 2}
  - rule: buy-dip
    field: actions[0].volume
    values: [0.5, 1]
"""


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES.format(buy=95, sell=105, volume=1))
    (tmp_path / "XBTUSD_1.csv").write_text(
        "".join(f"{T0 + 60 * n},{c},{c},{c},{c},1,1\n" for n, c in enumerate(WAVE * 2)))
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    return tmp_path


def sweep(workspace, capsys, *extra, sweep_file="sweep.yaml"):
    out = workspace / "out"
    code = main(["replay", str(workspace / "rules.yaml"), "--data", str(workspace / "XBTUSD_1.csv"),
                 "--sweep", str(workspace / sweep_file), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_each_row_is_the_replay_of_the_rules_with_its_values_written_in(workspace, capsys):
    code, out, _ = sweep(workspace, capsys, "--workers", "1", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report == json.loads((workspace / "out" / "sweep.json").read_text())
    schema = json.loads((REPO / "schemas" / "replay-sweep-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    rows = report["rows"]
    assert len(rows) == report["combinations"] == 18
    assert {(r["buy"], r["sell"], r["volume"]) for r in rows} == {
        (b, s, v) for b in ("92", "95", "97") for s in ("103", "105", "107") for v in ("0.5", "1")}
    assert sum(r["trades"] for r in rows) > 0 and len({r["return"] for r in rows}) > 3  # the values matter
    for row in rows:
        edited = workspace / f"edited-{row['combination']}.yaml"
        edited.write_text(RULES.format(buy=row["buy"], sell=row["sell"], volume=row["volume"]))
        assert main(["replay", str(edited), "--data", str(workspace / "XBTUSD_1.csv"), "--format", "json",
                     "--no-chart", "--out", str(workspace / "single")]) == 0
        totals = json.loads(capsys.readouterr().out)["totals"]
        assert (row["fires"], row["placed"], row["filled"], row["fills"], row["trades"], row["wins"]) == (
            totals["fires"], totals["orders"]["placed"], totals["orders"]["filled"], totals["fills"],
            totals["trades"], totals["wins"])
        assert (row["fees"], row["pnl"], row["realised_pnl"]) == (
            totals["fees"].get("ZUSD", "0"), totals["pnl"].get("ZUSD", "0"), totals["realised_pnl"].get("ZUSD", "0"))
        assert (row["equity_end"], row["return"], row["max_drawdown"], row["max_drawdown_pct"], row["exposure"]) == (
            totals["equity_end"], totals["return"], totals["max_drawdown"], totals["max_drawdown_pct"],
            totals["exposure"])


def test_rows_are_ranked_by_the_chosen_metric_with_ties_in_grid_order(workspace, capsys):
    code, out, _ = sweep(workspace, capsys, "--workers", "1")
    assert code == 0
    by_return = json.loads((workspace / "out" / "sweep.json").read_text())
    returns = [Decimal(str(r["return"])) for r in by_return["rows"]]
    assert returns == sorted(returns, reverse=True) and by_return["rank_by"] == "return"
    best = by_return["best"]
    assert best == by_return["rows"][0] and best["rank"] == 1
    assert f"Best by return (higher is better): combination {best['combination']} " \
           f"(buy={best['buy']}, sell={best['sell']}, volume={best['volume']}): return {best['return'] * 100:+.2f}%" \
           in out  # people read percents, as in the replay's report; the CSV and JSON keep the fraction
    header, first = out.splitlines()[:2]
    assert first.split()[header.split().index("max_drawdown_pct")] == f"{best['max_drawdown_pct'] * 100:.2f}%"
    assert f" {best['return'] * 100:+.2f}% " in (workspace / "out" / "sweep.md").read_text().splitlines()[9]
    assert sweep(workspace, capsys, "--workers", "1", "--rank-by", "max_drawdown_pct")[0] == 0
    rows = json.loads((workspace / "out" / "sweep.json").read_text())["rows"]
    keys = [(Decimal(str(r["max_drawdown_pct"])), r["combination"]) for r in rows]
    assert keys == sorted(keys)  # lower is better; equal drawdowns in grid order
    with open(workspace / "out" / "sweep.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["combination"]) for r in table] == [r["combination"] for r in rows]
    assert (workspace / "out" / "sweep.md").read_text().startswith("# Sweep report\n")


def test_the_process_pool_and_dask_give_identical_tables(workspace, capsys):
    assert sweep(workspace, capsys, "--workers", "2")[0] == 0
    pooled = {name: (workspace / "out" / name).read_bytes() for name in ("sweep.csv", "sweep.json", "sweep.md")}
    code, _, err = sweep(workspace, capsys, "--dask", "local", "--workers", "2")
    assert code == 0, err
    dasked = {name: (workspace / "out" / name).read_bytes() for name in ("sweep.csv", "sweep.json", "sweep.md")}
    assert dasked == pooled
    assert len(list(csv.reader(io.StringIO(pooled["sweep.csv"].decode())))) == 19


def test_a_dask_scheduler_address_runs_the_jobs_as_the_pool_does(workspace):
    rules = workspace / "rules.yaml"
    grid = Grid.build(load_sweep(workspace / "sweep.yaml"), [(rules.as_posix(), rules.read_bytes())])
    jobs = grid.jobs(ReplaySettings(data=(DataSpec((workspace / "XBTUSD_1.csv").as_posix()),),
                                    wallet={"ZUSD": Decimal(10000)}))[::5]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        rows = DaskSweep(cluster.scheduler_address).run(jobs)
    assert rows == ProcessPoolSweep(1).run(jobs)
    assert [r["combination"] for r in rows] == [1, 6, 11, 16]


def test_without_the_dask_extra_the_sweep_says_how_to_get_it(workspace, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code, out, err = sweep(workspace, capsys, "--dask", "local")
    assert code == 1 and out == ""
    assert err == "rules-engine replay: Dask is not installed: pip install 'rules-engine[dask]'\n"


@pytest.mark.parametrize(("text", "expected"), [
    (SWEEP.replace("    name: buy\n", "    nmae: buy\n"),
     ['bad.yaml:5:5: unknown key "nmae" in parameter (did you mean "name"?)']),
    (SWEEP.replace("values: [92, 95, 97]", "values: [92, 95, 97]\n    range: {start: 1, stop: 2, step: 1}"),
     ["bad.yaml:3:5: a parameter has exactly one of values: [...] or range: {start, stop, step}"]),
    (SWEEP.replace("    values: [92, 95, 97]\n", ""),  # neither: the message said "not both"
     ["bad.yaml:3:5: a parameter has exactly one of values: [...] or range: {start, stop, step}"]),
    (SWEEP.replace("step: 2}", "step: 0}"),
     ["bad.yaml:10:42: step must be a number above 0"]),
    (SWEEP.replace("start: 103, stop: 107", "start: 107, stop: 103"),
     ["bad.yaml:10:12: range: stop 103 is below start 107"]),
    (SWEEP.replace("rule: take-profit", "rule: take-proft"),
     ['bad.yaml:7:5: no rule "take-proft" in the rule files (did you mean "take-profit"?)']),
    (SWEEP.replace("actions[0].volume", "actions[0].price"),
     ['bad.yaml:11:5: rule "buy-dip" ({rules}:3) has no actions[0].price written in it; a sweep changes a value '
      "written in the rule (write a starting value there)"]),
    (SWEEP.replace("values: [0.5, 1]", "values: [0.5, -1]"),
     ["bad.yaml:13:19: volume=-1 makes the rules invalid: {rules}:13:17: "]),
    # a bad first value is blamed on itself alone, not on every value of the other parameters
    (SWEEP.replace("values: [0.5, 1]", "values: [-1, 0.5]"),
     ["bad.yaml:13:14: volume=-1 makes the rules invalid: {rules}:13:17: "]),
    (SWEEP.replace("field: triggers[0].crosses_below", "field: triggers[0].crosses_belwo"),
     ['bad.yaml:3:5: rule "buy-dip" ({rules}:3) has no triggers[0].crosses_belwo written in it; a sweep changes a '
      'value written in the rule (write a starting value there) (did you mean "crosses_below"?)']),
    (SWEEP.replace("field: actions[0].volume", "field: actions.0.volume"),
     ["bad.yaml:12:12: field is a path into the rule such as triggers[0].crosses_above or actions[1].volume"]),
    ("version: 1\nrank_by: profit\nparameters: []\n",
     ['bad.yaml:2:10: unknown metric "profit" (one of ', "bad.yaml:3:13: parameters lists 1 to 16 parameters"]),
    ("version: 1\nparameters:\n  - rule: x\n    field: [a\n",
     ["bad.yaml:5:1: "]),
])
def test_sweep_file_errors_are_reported_at_line_and_column(workspace, capsys, text, expected):
    (workspace / "bad.yaml").write_text(text)
    code, out, err = sweep(workspace, capsys, "--workers", "1", sweep_file="bad.yaml")
    assert code == 1 and out == ""
    lines = [line.replace(str(workspace) + "/", "") for line in err.splitlines()]
    rules = (workspace / "rules.yaml").as_posix().replace(str(workspace) + "/", "")
    for line, wanted in zip(lines, expected, strict=False):
        assert line.startswith(wanted.replace("{rules}", rules)), (line, wanted)
    count = f"{len(expected)} error{'' if len(expected) == 1 else 's'}"
    assert len(lines) == len(expected) + 1 and lines[-1] == f"rules-engine replay: the sweep file is invalid ({count})"
    assert not (workspace / "out").exists()


def test_sweep_options_need_a_sweep(workspace, capsys):
    code = main(["replay", str(workspace / "rules.yaml"), "--data", str(workspace / "XBTUSD_1.csv"), "--workers", "2"])
    assert code == 2 and "--workers only apply to --sweep" in capsys.readouterr().err
    assert sweep(workspace, capsys, "--state-dir", str(workspace / "state"))[0] == 2
    assert sweep(workspace, capsys, sweep_file="missing.yaml")[2].endswith("no such sweep file: "
                                                                          f"{workspace / 'missing.yaml'}\n")


def test_the_example_sweep_fits_the_example_rules():
    repo = REPO
    spec = load_sweep(repo / "examples" / "sweep" / "btc-breakout.sweep.yaml")
    rules = repo / "rules" / "btc-breakout.yaml"
    grid = Grid.build(spec, [("rules/btc-breakout.yaml", rules.read_bytes())])
    assert spec.size == 9 and spec.rank_by == "return"
    assert [p.values for p in spec.parameters] == [(68000, 70000, 72000),
                                                   (Decimal("0.01"), Decimal("0.02"), Decimal("0.03"))]
    (name, text), = grid.sources((72000, Decimal("0.03")))
    edited = text.decode()
    assert "crosses_above: 72000\n" in edited and "volume: 0.03\n" in edited
    assert edited.replace("72000", "70000", 1).replace("volume: 0.03", "volume: 0.01", 1) == rules.read_text()
