"""High availability (issue 13): how long a standby takes to take a key over after `kill -9`
of its leader, with engines as child processes on a throwaway PostgreSQL (TTL 2 s, as in the
tests) against the simulator in this process.

Per kill: the time from the leader's death to the new epoch's fence (its first private call,
from the simulator's journal) and to the new leader's HTTP server answering (it acts). The
design note's target: takeover p99 < TTL + 3 s. Needs Debian's `postgresql` (`make install`).

Kills are 5 s apart: every takeover reads the account (Balance, OpenOrders) and fences, and the
key's one REST counter (shared by all its engines, as on Kraken) would otherwise fill and make
later takeovers wait for it: a real effect of takeovers in quick succession, not measured here.

Run: `python -m bench.ha_takeover [KILLS]` (default 6).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(_TESTS / "cluster"), str(_TESTS / "e2e")]

from e2e_harness import E2E  # noqa: E402
from ha_harness import HaWorld, kill_leftovers  # noqa: E402
from pg_harness import PgServer  # noqa: E402

from rules_engine.sim import Account, SimConfig, Simulator  # noqa: E402


def main(kills: int = 6) -> None:
    account = Account.generate({"ZUSD": "100000", "XXBT": "2"}, tier="pro")
    simulator = Simulator(SimConfig(accounts=[account], prices={"XBTUSD": "69000"}, tick_interval=0,
                                    heartbeat_interval=0.5))
    fenced: list[float] = []
    acting: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, PgServer.start() as server, \
            simulator.running("127.0.0.1", 0):
        world = HaWorld(E2E(Path(tmp), simulator, account), server, server.create_database("bench"))
        try:
            leader = world.engine().leading()
            for _ in range(kills):
                standby = world.engine().standing_by()
                leader.process.kill()
                leader.process.wait(10)
                dead_at = time.time()
                standby.leading()
                acting.append(time.time() - dead_at)
                fence = world.fence_time_after(dead_at)
                assert fence is not None
                fenced.append(fence - dead_at)
                leader = standby
                time.sleep(5.0)  # let the key's REST counter drain (see the module)
            leader.stop()
        finally:
            kill_leftovers()
    for name, values in (("fence accepted", fenced), ("acting", acting)):
        print(f"kill -9 -> {name}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
              f"over {len(values)} kills (TTL 2 s; target p99 < 5 s): "
              + " ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
