"""Signal fan-out: `python -m bench.fanout [--rounds N] [--keys N] [--intake-keys N]`.

Against a throwaway PostgreSQL (`tests/cluster/pg_harness.py`, Debian's `postgresql`; skipped
when it is not installed) and the simulator:

(a) the intake: POST -> 200 for one signal to `--intake-keys` accounts (verification, one
    transaction holding the signal and a delivery row per account, the commit), no engine;
(b) end to end: one signal to `--keys` accounts, one `rules-engine run` engine per key in this
    process (today's one cell per process, here one event loop), two intake replicas: from the
    POST to the last account's AddOrder accepted by the simulator (its journal's time).

Medians and the worst of the rounds are reported; the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def _harness() -> None:
    for folder in (TESTS / "cluster", TESTS / "e2e"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


async def _round(server, keys: int, intake_keys: int, round_no: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from e2e_harness import post, signed, wait_for
    from fanout_harness import PROVIDER, PROVIDER_SECRET, FanoutWorld

    from rules_engine.sim import Account, SimConfig, Simulator

    accounts = {f"acct-{n:03d}": Account.generate({"ZUSD": "100000"}) for n in range(1, keys + 1)}
    wide = {f"wide-{n:04d}": Account.generate() for n in range(1, intake_keys + 1)}
    sim = Simulator(SimConfig(accounts=list(accounts.values()), prices={"XBTUSD": "69000"}, tick_interval=0,
                              heartbeat_interval=0.5))
    with sim.running("127.0.0.1", 0), tempfile.TemporaryDirectory(prefix="bench-fanout-") as folder:
        root = Path(folder)
        (root / "wide").mkdir()
        (root / "run").mkdir()
        dsn = server.create_database(f"bench{round_no}")
        w = FanoutWorld(root / "wide", server, dsn, sim, wide)
        async with w.intakes(1) as (url,):
            body, headers = signed({"action": "hold", "qty": 0.001, "id": f"w{round_no}"}, PROVIDER_SECRET)
            start = time.perf_counter()
            status, answer = await post(f"{url}/signals/{PROVIDER}", body, headers)
            intake = time.perf_counter() - start
            assert status == 200 and answer["deliveries"] == intake_keys, answer
        dsn = server.create_database(f"benchrun{round_no}")
        w = FanoutWorld(root / "run", server, dsn, sim, accounts)
        async with w.intakes(2) as urls, w.engines():
            body, headers = signed({"action": "buy", "qty": 0.001, "id": f"r{round_no}"}, PROVIDER_SECRET)
            sent = time.time()
            assert (await post(f"{urls[0]}/signals/{PROVIDER}", body, headers))[0] == 200
            await wait_for(lambda: all(w.orders(k) for k in accounts), timeout=60)
            last = max(w.orders(k)[0].time for k in accounts) - sent
    return intake, last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", type=int, default=20, help="engines (one per key) in (b)")
    parser.add_argument("--intake-keys", type=int, default=300, help="subscribed accounts in (a)")
    args = parser.parse_args(argv if argv is not None else [])
    _harness()
    from pg_harness import PgServer, pg_bin_dir

    if pg_bin_dir() is None:
        print("fan-out: skipped (PostgreSQL is not installed: make install)")
        return
    import logging

    logging.disable(logging.WARNING)
    intake, last = [], []
    with PgServer.start() as server:
        for round_no in range(args.rounds):
            a, b = asyncio.run(_round(server, args.keys, args.intake_keys, round_no))
            intake.append(a)
            last.append(b)
    print(f"(a) intake: POST -> 200 for one signal to {args.intake_keys} accounts: median "
          f"{statistics.median(intake) * 1000:.1f} ms, worst {max(intake) * 1000:.1f} ms ({args.rounds} rounds)")
    print(f"(b) one signal to {args.keys} keys (one engine each): POST -> last AddOrder accepted: median "
          f"{statistics.median(last):.3f} s, worst {max(last):.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
