"""`python -m bench.replay` reports each scenario's own peak memory, also under `make bench`.

`make bench` runs every benchmark in one Python process, so by the time the replay's scenario
processes start, their parent holds what the earlier benchmarks left. Linux keeps a process's
peak RSS across fork and exec (getrusage's `ru_maxrss`), so a child measured that way reported
its parent's size (282 MiB for every scenario against 120 MiB alone); the README's claim that
peak memory stays flat in the fires could not be read from `make bench` then.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARENT = """
import subprocess, sys
held = bytearray(256 * 1024 * 1024)
for i in range(0, len(held), 4096):
    held[i] = 1
child = "from bench.replay import peak_rss_mib; print(peak_rss_mib())"
print(subprocess.run([sys.executable, "-c", child], check=True, capture_output=True, text=True).stdout)
"""


def test_a_scenario_process_reports_its_own_peak_not_its_parents() -> None:
    done = subprocess.run([sys.executable, "-c", PARENT], cwd=ROOT, check=True, capture_output=True, text=True,
                          timeout=60)
    child_peak = float(done.stdout.strip())
    assert 5 < child_peak < 200, f"the child's peak RSS is {child_peak:.0f} MiB: its parent's 256 MiB counted"
