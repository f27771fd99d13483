"""Parity for rules that read the account or the market in guards and action fields
(`balance()`, `price_of()`, `open_orders()`), including the README's own examples, taken from
the README itself: each test must pass as a rule test, and the running service must audit the
same records one for one. Here the first release failed: a `balance()` guard passed its rule
test and never fired in the service."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from parity_harness import comparable, offline_records, service_records

from rules_engine.testing.spec import load_test_file

README = Path(__file__).resolve().parents[2] / "README.md"

OWN_RULES = """
version: 1
rules:
  - id: btc-if-eth-strong
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    when: "price_of('ETHUSD') > 2000"
    actions:
      - {type: log, message: "ETH at {price}"}
  - id: sweep-when-orders-rest
    triggers: [{type: timer, every: 1m}]
    when: "open_orders('XBTUSD') > 0"
    actions:
      - {type: cancel_all}
      - {type: log, message: "swept"}
"""

TESTS = """
rules: [eth-dip-buy.yaml, five-percent-of-usd.yaml, guarded.yaml, with-if.yaml, own.yaml]
strict: false   # every rule runs in every test; each test checks the rules it is about
tests:
  - name: README eth-dip-buy fires when balance('ZUSD') > 100 holds through the one-minute hold
    wallet: {ZUSD: 1000}
    inputs:
      - prices: {symbol: ETH/USD, series: "2600 2490 2480 2470 every 30s", spread: 1}
    expect:
      - {at: 1m30s, rule: eth-dip-buy, intents: [{type: place_order, pair: ETHUSD, volume: 0.05, price: "2469.5"}]}

  - name: README eth-dip-buy is held back by its balance guard on a small wallet
    wallet: {ZUSD: 50}
    inputs:
      - prices: {symbol: ETH/USD, series: "2600 2490 2480 every 30s", spread: 1}
    expect:
      - {at: 30s, rule: eth-dip-buy, blocked: guard}

  - name: README five-percent-of-usd sizes its order from balance('ZUSD')
    wallet: {ZUSD: 10000}
    inputs:
      - prices: {symbol: XBTUSD, series: "61000 59000 every 1m", spread: 2}
    expect:
      - {at: 1m, rule: five-percent-of-usd, intents: [{type: place_order, volume: "0.008475", price: 59900}]}

  - name: README guarded passes on the USDT balance when USD is short
    wallet: {ZUSD: 400, USDT: 1000}
    inputs:
      - prices: {symbol: ETH/USD, series: "2600 2490 every 1m", spread: 1}
    expect:
      - {at: 1m, rule: guarded, intents: [{type: place_order, ordertype: market, volume: 0.05}]}

  - name: README with-if notifies every minute while USD is low
    wallet: {ZUSD: 50}
    until: 3m
    expect:
      - {rule: with-if, count: 3, intents: [{type: notify, message: "USD balance is low"}, {type: log}]}

  - name: a price_of() guard reads another symbol's feed
    inputs:
      - prices: {symbol: ETHUSD, series: "2500"}
      - prices: {symbol: XBTUSD, series: "69000 70500 every 1m"}
    expect:
      - {at: 1m, rule: btc-if-eth-strong, intents: [{type: log, message: "ETH at 70500"}]}

  - name: an open_orders() guard sees the orders resting on the account at start
    wallet: {ZUSD: 1000}
    open_orders:
      - {pair: XBTUSD, side: buy, ordertype: limit, volume: 0.001, price: 50000}
    until: 1m
    expect:
      - {at: 1m, rule: sweep-when-orders-rest, intents: [{type: cancel_all}, {type: log, message: swept}]}
"""


def readme_rule(rule_id: str) -> str:
    """The README's YAML example that defines `rule_id`, as written there."""
    for block in re.findall(r"```yaml[^\n]*\n(.*?)```", README.read_text(), re.S):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and any(r.get("id") == rule_id for r in data.get("rules", [])):
            return block
    raise AssertionError(f"the README has no example rule {rule_id!r}")


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("state-reads")
    for rule_id in ("eth-dip-buy", "five-percent-of-usd", "guarded", "with-if"):
        (folder / f"{rule_id}.yaml").write_text(readme_rule(rule_id))
    (folder / "own.yaml").write_text(textwrap.dedent(OWN_RULES).lstrip())
    (folder / "state-reads.test.yaml").write_text(textwrap.dedent(TESTS).lstrip())
    loaded = load_test_file(folder / "state-reads.test.yaml")
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return {case.name: case for case in loaded.tests}


NAMES = [m.group(1) for m in re.finditer(r"- name: (.+)", TESTS)]


def test_the_readme_examples_read_balances() -> None:
    for rule_id in ("eth-dip-buy", "five-percent-of-usd", "guarded", "with-if"):
        assert "balance('" in readme_rule(rule_id)


@pytest.mark.parametrize("name", NAMES)
def test_state_reading_rules_behave_the_same_in_the_service(name: str, cases: dict, tmp_path: Path) -> None:
    case = cases[name]
    offline, passed = offline_records(case, tmp_path / "offline")
    assert passed, f"the rule test itself fails: {name}"
    assert any(r["kind"] == "guard" or r["kind"] == "action" for r in offline)
    assert not [r for r in offline if r["kind"] == "error"], "a state read failed in the rule test"
    service = asyncio.run(asyncio.wait_for(service_records(case, tmp_path / "service"), 60))
    assert not [r for r in service if r["kind"] == "error"], "a state read failed in the service"
    assert comparable(service) == comparable(offline)
