"""Key cells in workers: `python -m bench.worker_fanout [--rounds N] [--keys N] [--no-kill]`.

Issue 13's T5 as a figure: against a throwaway PostgreSQL (`tests/cluster/pg_harness.py`, with
`max_connections` sized for the keys; skipped when PostgreSQL is not installed) and the
simulator in this process, two `rules-engine worker` processes each configured with every key
(they split the keys, each standing by for the other's), two intake replicas in this process.
One signal to every key, POSTed 3 times; unless --no-kill, the worker holding more keys is
killed with SIGKILL as the first order is accepted. The POST comes once every cell is in its
steady state (its key held, its private feed subscribed: the simulator's count). Reported: time
until every key is held after the workers start, and from the POST to the last AddOrder accepted by the simulator
(its journal's time), with the orders placed and those the kill left unplaced, the
workers' PostgreSQL connections once every key is held, and (without a kill) the CPU time the
two workers used from the POST until every decision was final, per key (Linux: /proc).

With the kill, the keys whose previous holder may have sent an order just before it died are
counted apart: their takeover must wait out that order's AddOrder deadline (5 s, plus a 1.1 s
margin for the clocks, from the fence) before a lookup can prove it absent and it is sent again
(the design note's reconcile rule, `execution.deadlines`), so their last order comes at least
6.1 s after the fence whatever the CPU. The last order of the other keys is reported beside it.

Medians and the worst of the rounds are reported; the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
CONNECTIONS_PER_KEY = 3
"""PostgreSQL connections allowed per key over two workers: generous (measured with every key held:
about 36-41 for 300 keys, the cells' transactions sharing each worker's pool; a takeover may open
more for a moment, `pgstore.connection.TAKE_WAIT`)."""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One round's figures (seconds unless named otherwise)."""

    held: float  # workers started -> every key held
    last: float  # POST -> last AddOrder accepted
    placed: int
    connections: int
    killed_at: float = float("nan")
    cpu: float = float("nan")  # the workers' CPU from the POST until every decision was final (no kill)
    waited: int = 0  # keys whose takeover waited out an in-flight order's deadline (kill)
    last_waited: float = float("nan")  # their last order
    last_others: float = float("nan")  # the other keys' last order


def _waited_for_deadlines(w, since: float) -> set[str]:  # type: ignore[no-untyped-def]
    """Keys whose takeover after `since` waited out an AddOrder deadline (a second or more:
    finding the order at once takes milliseconds)."""
    rows = w.rows("SELECT key_id, line FROM audit WHERE kind = 'epoch_started' AND time >= %s", since)
    return {key for key, line in rows if json.loads(line)["data"].get("waited_for_deadlines_s", 0) >= 1.0}


def _harness() -> None:
    for folder in (TESTS / "cluster", TESTS / "e2e"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


async def _round(server, keys: int, kill: bool, round_no: int) -> Round:  # type: ignore[no-untyped-def]
    from e2e_harness import post, signed, wait_for
    from fanout_harness import PROVIDER, PROVIDER_SECRET, FanoutWorld
    from worker_harness import WorkerProcess, write_worker_config

    from rules_engine.sim import Account, SimConfig, Simulator

    accounts = {f"acct-{n:03d}": Account.generate({"ZUSD": "100000"}) for n in range(1, keys + 1)}
    sim = Simulator(SimConfig(accounts=list(accounts.values()), prices={"XBTUSD": "69000"}, tick_interval=0,
                              heartbeat_interval=0.5))
    with sim.running("127.0.0.1", 0), tempfile.TemporaryDirectory(prefix="bench-worker-") as folder:
        root = Path(folder)
        w = FanoutWorld(root, server, server.create_database(f"workers{round_no}"), sim, accounts)
        config, env = write_worker_config(w, accounts)
        env["RULES_ENGINE_STORE_PASSWORD"] = server.password
        began = time.perf_counter()
        workers = [WorkerProcess(name, config, env, root / name) for name in ("worker-a", "worker-b")]
        try:
            for worker in workers:
                await wait_for(worker.listening, timeout=120)
            await wait_for(lambda: sum(len(worker.holding()) for worker in workers) == keys, timeout=300,
                           interval=0.5)
            held = time.perf_counter() - began
            await wait_for(lambda: sim.private_subscribers() >= keys, timeout=120, interval=0.2)  # steady state
            (connections,), = w.rows("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                     "AND datname = current_database() AND pid <> pg_backend_pid()")
            victim = max(workers, key=lambda worker: len(worker.holding()))
            killed_at = float("nan")
            async with w.intakes(2) as urls:
                body, headers = signed({"action": "buy", "qty": 0.001, "id": f"t5-{round_no}"}, PROVIDER_SECRET)
                mark = max((e.seq for e in sim.journal.entries()), default=0)
                cpu_before = sum(_cpu_seconds(worker.process.pid) for worker in workers)
                sent = time.time()
                for i in range(3):
                    assert (await post(f"{urls[i % 2]}/signals/{PROVIDER}", body, headers))[0] == 200
                if kill:  # one look at the new journal entries (a look per key stalled the simulator's loop)
                    await wait_for(lambda: any(e.method == "AddOrder" and e.accepted
                                               for e in sim.journal.entries(since=mark)), timeout=60)
                    victim.process.send_signal(signal.SIGKILL)
                    killed_at = time.time() - sent
                    victim.process.wait(30)
                done = "SELECT count(*) FROM fanout_deliveries WHERE status = 'done'"
                await wait_for(lambda: w.rows(done) == [(keys,)], timeout=120, interval=0.2)
                final = "SELECT count(*) FROM decisions WHERE status NOT IN ('pending', 'sent', 'unknown')"
                await wait_for(lambda: w.rows(final) == [(keys,)], timeout=60, interval=0.2)
                cpu = float("nan") if kill else sum(_cpu_seconds(worker.process.pid) for worker in workers) - cpu_before
                placed = [w.orders(k) for k in accounts]
                assert all(len(p) <= 1 for p in placed)  # never two orders for one key
                times = sorted(p[0].time - sent for p in placed if p)
                last = times[-1]
                print(f"  round {round_no}: AddOrder accepted after the POST: first {times[0]:.3f} s, "
                      f"median {statistics.median(times):.3f} s, last {last:.3f} s", flush=True)
                result = Round(held, last, sum(1 for p in placed if p), connections, killed_at, cpu)
                if kill:
                    waited = _waited_for_deadlines(w, sent)
                    split: dict[bool, list[float]] = {True: [], False: []}
                    for key, p in zip(accounts, placed, strict=True):
                        if p:
                            split[key in waited].append(p[0].time - sent)
                    result.waited = len(waited)
                    result.last_waited = max(split[True], default=float("nan"))
                    result.last_others = max(split[False], default=float("nan"))
                    print(f"    {len(waited)} key(s) waited out the deadline of an order the kill left in flight "
                          f"(last order {result.last_waited:.3f} s); the other keys' last order "
                          f"{result.last_others:.3f} s", flush=True)
        finally:
            for worker in workers:
                worker.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_fanout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keys", type=int, default=60, help="keys (cells), each configured in both workers")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a worker mid-fan-out")
    args = parser.parse_args(argv if argv is not None else [])
    _harness()
    from pg_harness import PgServer, pg_bin_dir

    if pg_bin_dir() is None:
        print("worker fan-out: skipped (PostgreSQL is not installed: make install)")
        return
    import logging

    logging.disable(logging.WARNING)
    with PgServer.start(max_connections=CONNECTIONS_PER_KEY * args.keys + 50) as server:
        rounds = [asyncio.run(_round(server, args.keys, not args.no_kill, round_no)) for round_no in range(args.rounds)]
    held, last = [r.held for r in rounds], [r.last for r in rounds]
    kill = "no worker killed" if args.no_kill else "the worker holding more keys killed at the first order"
    print(f"{args.keys} keys over 2 worker processes ({kill}):")
    print(f"  workers started -> every key held: median {statistics.median(held):.2f} s, worst {max(held):.2f} s")
    print(f"  POST (x3) -> last AddOrder accepted: median {statistics.median(last):.3f} s, worst {max(last):.3f} s")
    print(f"  orders placed per round: {[r.placed for r in rounds]}; left unplaced by the kill (committed, not sent): "
          f"{[args.keys - r.placed for r in rounds]}")
    if not args.no_kill:
        print(f"  the kill, seconds after the POST: {[round(r.killed_at, 2) for r in rounds]}")
        print(f"  keys that waited out an in-flight order's deadline: {[r.waited for r in rounds]}; their last order: "
              f"{[round(r.last_waited, 2) for r in rounds]}; the other keys' last order: "
              f"{[round(r.last_others, 2) for r in rounds]}")
    else:
        print("  the workers' CPU from the POST until every decision was final: "
              + ", ".join(f"{r.cpu:.2f} s ({1000 * r.cpu / args.keys:.1f} ms a key)" for r in rounds))
    print(f"  PostgreSQL connections of the two workers with every key held: {[r.connections for r in rounds]}")


if __name__ == "__main__":
    main(sys.argv[1:])
