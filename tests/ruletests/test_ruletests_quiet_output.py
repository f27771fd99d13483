"""`rules-engine test` and `replay` print their reports only: a rule's `notify` (and a `log`
at warning level) is part of the report, not a bare line on stderr from Python's last-resort
logging handler (the output in docs/rule-tests-and-replay.md has none)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RULES = """\
version: 1
rules:
  - id: shout
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    actions:
      - {type: notify, message: "NOTIFY-LINE {price}"}
      - {type: log, level: warning, message: "LOG-LINE {price}"}
"""

TEST = """\
rules: [shout.yaml]
inputs:
  - prices: {symbol: XBTUSD, series: "69000 71000", every: 1m}
expect:
  - {at: 1m, rule: shout, intents: [{type: notify}, {type: log}]}
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rules_engine", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_rule_tests_and_replay_keep_notify_and_log_lines_off_stderr(tmp_path: Path) -> None:
    (tmp_path / "shout.yaml").write_text(RULES)
    (tmp_path / "shout.test.yaml").write_text(TEST)
    (tmp_path / "XBTUSD_1.csv").write_text("1767225600,69000,69000,69000,69000,1,1\n"
                                           "1767225660,69000,71000,69000,71000,1,1\n")
    tested = _run("test", "shout.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    replayed = _run("replay", "shout.yaml", "--data", "XBTUSD_1.csv", "--no-chart", "--out", "out", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert "shout" in replayed.stdout and "fires 1," in replayed.stdout
    for done in (tested, replayed):
        assert "NOTIFY-LINE" not in done.stderr and "LOG-LINE" not in done.stderr, done.stderr
