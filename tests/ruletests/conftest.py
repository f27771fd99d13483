"""Write a rule file and a test file into a temporary folder and run `rules-engine test`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules_engine.cli import main

DIP_RULES = """\
version: 1
rules:
  - id: btc-dip-buy
    triggers:
      - type: price
        symbol: XBTUSD
        crosses_below: 69500
    when: "balance('ZUSD') > 100"
    cooldown: 10m
    actions:
      - type: place_order
        pair: XBTUSD
        side: buy
        ordertype: market
        volume: 0.01
      - type: log
        message: "dip at {price}"
  - id: btc-take-profit
    triggers:
      - type: price
        symbol: XBTUSD
        crosses_above: 71000
    when: "balance('XXBT') > 0"
    actions:
      - type: place_order
        pair: XBTUSD
        side: sell
        ordertype: limit
        volume: 0.01
        price: "=price"
  - id: tv-buy
    triggers:
      - type: signal
        source: tradingview
        where: "signal.action == 'buy'"
    actions:
      - type: place_order
        pair: XBTUSD
        side: buy
        ordertype: limit
        volume: 0.1
        price: 60000
"""


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        (root / "dip.yaml").write_text(DIP_RULES)

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        code = main(["test", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)
