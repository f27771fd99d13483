"""What docs/rule-tests-and-replay.md says of a candle's ticks: a rising candle crosses every
level of its range upward, a falling one every level downward; a `crosses_above` level between a
falling candle's close and open is only crossed downward there, so it does not fire in that
candle. The candles' ticks (replay's own `candle_ticks`) are fed to the rules as a rule test, the
same driver replay runs."""

from __future__ import annotations

from decimal import Decimal

from rules_engine.cli import main
from rules_engine.replay.data import candle_ticks

RULES = """\
version: 1
rules:
  - id: up
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 105}]
    actions: [{type: log, message: "up {price}"}]
  - id: down
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 105}]
    actions: [{type: log, message: "down {price}"}]
"""

CANDLES = [  # (start, open, high, low, close): minute candles
    (0, 110, 111, 109, 110),    # above the level: arms `down`
    (60, 108, 108.5, 102, 103),  # falling through 105: open, high, low, close -> only downward
    (120, 103, 106, 102.5, 104),  # rising: open, low, high, close -> 105 crossed upward at the high
]


def test_a_falling_candle_through_a_level_fires_crosses_below_but_not_crosses_above(tmp_path, capsys):
    ticks = [t for start, *prices in CANDLES
             for t in candle_ticks("XBTUSD", (float(start), *(Decimal(str(p)) for p in prices)), 60.0)]
    assert [float(t.last) for t in ticks[4:8]] == [108, 108.5, 102, 103]  # the falling candle's path
    inputs = "\n".join(f"  - {{at: {t.time:g}s, tick: {{symbol: XBTUSD, last: {t.last}}}}}" for t in ticks)
    (tmp_path / "levels.yaml").write_text(RULES)
    (tmp_path / "levels.test.yaml").write_text(
        "rules: [levels.yaml]\n"
        f"inputs:\n{inputs}\n"
        "expect:\n"
        "  - {at: 90s, rule: down}   # the falling candle's low (third tick)\n"
        "  - {at: 150s, rule: up}    # the next, rising candle's high: not within the falling one\n"
        "  - {at: 165s, rule: down}  # ...whose close falls back below the level\n"
    )
    code = main(["test", str(tmp_path / "levels.test.yaml")])
    assert code == 0, capsys.readouterr().out
