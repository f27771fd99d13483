"""Timer beats due before an input run at their own time: their actions' results carry that
time, not the input's (docs/rule-tests-and-replay.md, "How time passes in a test")."""

from __future__ import annotations

import json

RULES = """\
version: 1
rules:
  - id: dead-man-switch
    triggers: [{type: timer, every: 20s}]
    actions: [{type: dead_man_switch, timeout: 60s}]
  - id: weekend-flat
    triggers: [{type: timer, cron: "0 22 * * 5", timezone: Europe/Berlin}]
    actions: [{type: cancel_all}]
  - id: watch
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 1000000}]
    actions: [{type: log, message: never}]
"""

# 2026-01-02 is a Friday: 22:00 in Berlin is 21:00Z; a price every minute, as in a replay
TEST = """\
rules: [timers.yaml]
wallet: {ZUSD: 1000}
start: 2026-01-02T20:58:00Z
until: 2026-01-02T21:02:00Z
inputs:
  - prices: {symbol: XBTUSD, series: "60000 60001 60002 60003 60004", every: 1m}
expect:
  - {rule: weekend-flat, at: 2026-01-02T21:00:00Z, intents: [{type: cancel_all}]}
  - {rule: dead-man-switch, count: 12}
"""


def test_beats_between_inputs_complete_at_their_own_time(ws, capsys):
    ws.write("timers.yaml", RULES)
    ws.write("timers.test.yaml", TEST)
    code, out, _ = ws.run(str(ws.root / "timers.test.yaml"), "--format", "json", capsys=capsys)
    # before the fix, the cancel_all beat at 21:00:00 got its result stamped 21:01:00 (the next
    # price's time) and was stopped by "no result within 60s"; the beats at :20 and :40 ran late
    assert code == 0, out
    assert json.loads(out)["passed"] is True


def test_beats_between_inputs_are_at_their_slots(ws, capsys):
    ws.write("timers.yaml", RULES)
    ws.write("timers.test.yaml", TEST.replace(
        "  - {rule: dead-man-switch, count: 12}\n",
        "".join(f"  - {{rule: dead-man-switch, at: 2026-01-02T{t}Z}}\n" for t in (
            "20:58:20", "20:58:40", "20:59:00", "20:59:20", "20:59:40", "21:00:00",
            "21:00:20", "21:00:40", "21:01:00", "21:01:20", "21:01:40", "21:02:00"))))
    code, out, _ = ws.run(str(ws.root / "timers.test.yaml"), capsys=capsys)
    assert code == 0, out
