"""The replay chart, looked at through its structure: panels, level lines, fire markers,
resting-order segments with their ends, the equity panel, a grouped legend outside the
plots; it renders without warnings, for a few rule sets (4 rules, 100 rules)."""

import sys
import warnings
from decimal import Decimal

import matplotlib.image as mpimg
from matplotlib.collections import LineCollection

from rules_engine.cli import main
from rules_engine.replay.chart import MAX_RULE_LEGEND, build_chart, write_chart
from rules_engine.replay.data import open_data
from rules_engine.replay.replay import run_replay
from rules_engine.rules import load_rules_text

T0 = 1767225600
FOUR = """\
  - id: buy-dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 95}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 1}]
  - id: bid-rests
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 97}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: "=price - 4",
               expire_after: 3m}]
  - id: ask-fills
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 103}]
    actions: [{type: place_order, pair: XBTUSD, side: sell, ordertype: limit, volume: 1, price: "=price + 2"}]
  - id: broken
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 101}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=1 / (price - price)"}]
"""
PATH = [100, 96, 94, 99, 102, 104, 107, 101, 96, 95.5, 96, 97, 99, 104, 108, 100]


def replay(tmp_path, rules_text, closes=PATH, wallet=None):
    path = tmp_path / "XBTUSD_1.csv"
    path.write_text("".join(f"{T0 + 60 * n},{c},{c},{c},{c},1,1\n" for n, c in enumerate(closes)))
    loaded = load_rules_text("version: 1\nrules:\n" + rules_text)
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    return run_replay(loaded.ruleset, [open_data(path)], wallet=wallet or {"ZUSD": Decimal(100000)})


def by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_four_rules_price_levels_fires_orders_and_equity(tmp_path):
    result = replay(tmp_path, FOUR)
    figure = build_chart(result)
    price_ax, equity_ax = figure.axes
    assert price_ax.get_ylabel() == "XBTUSD" and equity_ax.get_ylabel().startswith("equity")
    levels = sorted(line.get_ydata()[0] for line in by_gid(price_ax, "level"))
    assert levels == [95, 97, 101, 103]
    assert len(by_gid(price_ax, "price")) == 1 and len(by_gid(equity_ax, "equity")) == 1
    fires = by_gid(price_ax, "fire")
    assert sum(len(s.get_offsets()) for s in fires) == sum(
        b.fires - sum(b.stopped.values()) for b in result.ledger.books.values())
    stopped = by_gid(price_ax, "fire-stopped")
    assert sum(len(s.get_offsets()) for s in stopped) == sum(sum(b.stopped.values()) for b in result.ledger.books.values())
    assert result.ledger.books["broken"].fires > 0
    (segments,) = [c for c in price_ax.collections if isinstance(c, LineCollection)]
    rows = list(result.ledger.orders.rows())
    assert len(segments.get_segments()) == len(rows) >= 2
    statuses = {row["status"] for row in rows}
    assert {"expired", "filled"} <= statuses
    assert len(by_gid(price_ax, "order-expired")[0].get_offsets()) == sum(r["status"] == "expired" for r in rows)
    assert len(by_gid(price_ax, "order-filled")[0].get_offsets()) == sum(r["status"] == "filled" for r in rows)
    # a legend entry per rule, outside the plots, not covering the price line
    (legend,) = figure.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert [label for label in labels if label.endswith(": level, fire")] == [
        f"{rule}: level, fire" for rule in ("buy-dip", "bid-rests", "ask-fills", "broken")]
    figure.draw_without_rendering()
    box = legend.get_window_extent()
    assert all(box.x0 >= ax.get_window_extent().x1 for ax in figure.axes)


def test_a_hundred_rules_get_a_legend_by_kind(tmp_path):
    rules = "".join(
        f"""\
  - id: r{n}
    triggers: [{{type: price, symbol: XBTUSD, crosses_{'below' if n % 2 else 'above'}: {95 + n * 0.1:.1f}}}]
    cooldown: 1m
    actions: [{{type: place_order, pair: XBTUSD, side: {'buy' if n % 2 else 'sell'}, ordertype: limit, volume: 0.01,
               price: "=price {'-' if n % 2 else '+'} 1", expire_after: 2m}}]
""" for n in range(100))
    result = replay(tmp_path, rules, wallet={"ZUSD": Decimal(10**6), "XXBT": Decimal(100)})
    assert sum(1 for b in result.ledger.books.values() if b.fires) > MAX_RULE_LEGEND
    figure = build_chart(result)
    (legend,) = figure.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) <= 10 and not any(label.startswith("r1") for label in labels)
    assert {"price", "price trigger level", "fired", "resting order (buy)", "resting order (sell)"} <= set(labels)
    assert len(by_gid(figure.axes[0], "level")) == 100


def test_the_chart_renders_without_warnings_and_at_a_readable_size(tmp_path):
    result = replay(tmp_path, FOUR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_chart(result, tmp_path / "chart.png")
    image = mpimg.imread(path)
    assert image.shape[1] == 1300 and image.std() > 0.05


def test_without_matplotlib_replay_writes_the_reports_and_says_how_to_get_the_chart(tmp_path, capsys, monkeypatch):
    replay(tmp_path, FOUR)  # writes the data file
    (tmp_path / "rules.yaml").write_text("version: 1\nrules:\n" + FOUR)
    monkeypatch.delitem(sys.modules, "rules_engine.replay.chart", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    code = main(["replay", str(tmp_path / "rules.yaml"), "--data", str(tmp_path / "XBTUSD_1.csv"),
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]
    assert "pip install 'rules-engine[chart]'" in captured.err
    assert "chart.png" not in (tmp_path / "out" / "report.md").read_text()



def test_a_fill_is_marked_where_it_filled_not_at_the_limit(tmp_path):
    """A limit buy above the market fills at once at the book's better price: its ● was drawn at
    its limit price, 50 above where it filled. The orders rows carry the fill price."""
    rules = """\
  - id: eager-bid
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 97}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: "=price + 50"}]
"""
    result = replay(tmp_path, rules)
    rows = [r for r in result.ledger.orders.rows() if r["status"] == "filled"]
    assert rows and all(Decimal(str(r["fill_price"])) < Decimal(str(r["price"])) - 40 for r in rows), rows
    (filled,) = by_gid(build_chart(result).axes[0], "order-filled")
    assert sorted(y for _, y in filled.get_offsets()) == sorted(float(r["fill_price"]) for r in rows)
