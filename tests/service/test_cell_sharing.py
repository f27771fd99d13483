"""The parts of a worker that need no database: the order in which a signal's accounts are
served (rotated from signal to signal, fair over many signals) and the rule cache its cells
share (one load per distinct rule set, again when a file changes)."""

from __future__ import annotations

import os
from collections import Counter

from rules_engine.pgstore.fanout import serving_order
from rules_engine.service.cell_shared import RuleCache

KEYS = [f"acct-{n:03d}" for n in range(1, 11)]

RULES = """\
version: 1
rules:
  - id: follow
    triggers: [{type: signal, source: signalco}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "0.001"}]
"""


def test_each_signal_serves_every_account_once_in_a_rotation_of_the_sorted_keys() -> None:
    shuffled = KEYS[3:] + KEYS[:3]
    order = serving_order(shuffled, "signalco", "sig-1")
    assert sorted(order) == KEYS
    start = KEYS.index(order[0])
    assert order == KEYS[start:] + KEYS[:start]  # a rotation: neighbours stay neighbours
    assert serving_order(KEYS, "signalco", "sig-1") == order  # every intake replica picks the same
    assert serving_order([], "signalco", "sig-1") == []


def test_over_many_signals_every_account_is_first_about_equally_often() -> None:
    firsts = Counter(serving_order(KEYS, "signalco", f"sig-{n}")[0] for n in range(2000))
    assert set(firsts) == set(KEYS)
    assert max(firsts.values()) < 2 * min(firsts.values())  # 200 each on average; a fixed order gives 2000 to one
    lasts = Counter(serving_order(KEYS, "signalco", f"sig-{n}")[-1] for n in range(2000))
    assert set(lasts) == set(KEYS)


def test_cells_with_the_same_rules_share_one_load_until_a_file_changes(tmp_path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / "follow.yaml"
    path.write_text(RULES)
    cache = RuleCache()
    first = cache.load([folder])
    assert first.ruleset is not None and not first.errors
    assert cache.load([str(folder)]) is first  # the same files however they are named
    assert cache.loads == 1
    path.write_text(RULES.replace("0.001", "0.002"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    second = cache.load([folder])
    assert second is not first and cache.loads == 2
    assert "0.002" in repr(second.ruleset.rules[0].actions[0])
