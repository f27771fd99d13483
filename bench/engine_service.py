"""The whole engine service: `python -m bench.engine_service [--rounds N]`.

(a) Ticks per second through the service in dry-run (WebSocket frame -> TickerFeed parse ->
    queue -> Engine.handle -> audit of the trace -> dispatch of the fires), with 1,000 price
    rules over 50 symbols, against a bare `websockets` receive-and-`json.loads` loop reading
    the same frames from the same local server in the same run. Each round runs the bare
    loop, then the service with no level crossed and with levels crossed; the median ratio
    of the rounds is reported (this machine's figures vary by several points run to run).
(b) Latency from a tick arriving to its signed AddOrder request leaving, live mode against
    the simulator on loopback: the tick's receive time (`Tick.time`) to the moment the
    signed request is handed to the HTTP transport. Before the send every decision's rows
    and state are committed to SQLite (without waiting for the disk), and its audit record
    is fsynced (its "sent" mark): one fsync, so the state dir is measured on disk
    and on tmpfs (/dev/shm), with the cost of one fsync of a small append on the same disk
    measured in the same run, back to back and 10 ms apart as the orders come (the machine may
    be shared). The record's fsync runs while the order is signed (`kraken.send_gate`). Target: p99 < 1 ms on disk.
    Medians of the rounds' p50 and p99 are reported. Each location is measured with the
    engine pinned to one CPU (its `cpu` setting, `--cpu N`, default the last CPU allowed;
    the whole process is pinned, the simulator in it too) and not pinned, in the same run.
    `--stages` runs (b) once per location and pinning with the time of each step after the
    tick (`bench._stages`: where the time goes).
    The simulator runs in this process: between a tick's receipt and its order it has nothing
    left to do, and running it in a child process instead (so that none of its Python work
    holds the engine's interpreter lock, as with Kraken remote) was measured and gained nothing
    (docs/modes-and-execution.md, "The simulator in the bench"). The engine logs as
    `rules-engine run` does by default (text lines at INFO, the decision log's included; written
    to /dev/null): formatting the lines of the records written on the way is part of the path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.server import serve

from bench._stages import Marks, report
from rules_engine.config import parse_config
from rules_engine.core import client_order_id
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.http import RequestsTransport
from rules_engine.pairs import default_registry
from rules_engine.service.affinity import set_process_affinity
from rules_engine.service.app import EngineService
from rules_engine.service.logs import setup_logging
from rules_engine.sim import Account, SimConfig, Simulator

FRAMES = 60_000
SYMBOLS = 50
RULES = 1_000
TARGET_P99_MS = 1.0  # tick -> signed AddOrder, state dir on disk (one fsync on the way)
LATENCY_SAMPLES = 100  # Kraken's pro tier allows ~180 orders before it throttles


# ----------------------------------------------------------------------------- (a) throughput


def _pairs() -> list[Any]:
    """50 spot pairs from the bundled AssetPairs snapshot, USD-quoted ones first."""
    pairs = sorted(default_registry(), key=lambda p: (p.quote not in ("ZUSD", "USD"), p.altname))[:SYMBOLS]
    if len(pairs) < SYMBOLS:
        raise SystemExit(f"the AssetPairs snapshot has {len(pairs)} spot pairs; this benchmark needs {SYMBOLS}")
    return pairs


def _frames(pairs: list[Any], rng: random.Random) -> tuple[list[str], dict[str, Decimal]]:
    """A random walk per symbol from 100 (steps up to 0.1%), rendered as v2 ticker updates."""
    prices = {p.altname: Decimal(100) for p in pairs}
    frames = []
    for n in range(FRAMES):
        pair = pairs[n % len(pairs)]
        price = prices[pair.altname] * (Decimal(1) + Decimal(rng.randint(-10, 10)) / Decimal(10_000))
        price = price.quantize(Decimal("0.0001"))
        prices[pair.altname] = price
        entry = {"symbol": pair.v2_symbol, "bid": str(price - Decimal("0.01")), "bid_qty": "1.0",
                 "ask": str(price + Decimal("0.01")), "ask_qty": "1.0", "last": str(price), "volume": "10.0",
                 "vwap": str(price), "low": "90", "high": "110", "change": "0", "change_pct": "0"}
        frames.append(json.dumps({"channel": "ticker", "type": "update", "data": [entry]}))
    return frames, prices


def _rules_yaml(pairs: list[Any], rng: random.Random, offset: int = 0) -> str:
    """1,000 rules with levels in 80-120 (the walk crosses some), or `offset` higher (none)."""
    lines = ["version: 1", "rules:"]
    for n in range(RULES):
        pair = pairs[n % len(pairs)]
        direction = "crosses_above" if n % 2 else "crosses_below"
        level = Decimal(100 + offset) + Decimal(rng.randint(-2000, 2000)) / Decimal(100)
        lines += [f"  - id: r{n}", "    cooldown: 1h",
                  f"    triggers: [{{type: price, symbol: {pair.altname}, {direction}: {level}}}]",
                  "    actions: [{type: log, level: debug, message: \"crossed {price}\"}]"]
    return "\n".join(lines) + "\n"


class FrameServer:
    """A local WebSocket server that, once a client subscribes, sends every frame as fast
    as it can, then keeps the connection open."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.port = 0
        self.sent = asyncio.Event()

    async def handler(self, ws: Any) -> None:
        await ws.recv()  # the subscribe request (acks are optional for the feed)
        for frame in self.frames:
            await ws.send(frame)
        self.sent.set()
        await ws.wait_closed()

    async def __aenter__(self) -> FrameServer:
        self._server = await serve(self.handler, "127.0.0.1", 0, max_queue=None, compression=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


async def bare_loop(frames: list[str]) -> float:
    """Frames per second through a plain websockets receive + json.loads loop."""
    async with FrameServer(frames) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}", compression=None, max_queue=None) as ws:
            await ws.send("{}")
            started = time.perf_counter()
            for _ in range(len(frames)):
                json.loads(await ws.recv())
            return len(frames) / (time.perf_counter() - started)


async def engine_loop(frames: list[str], rules: str, state: Path) -> tuple[float, int]:
    """Ticks per second through the whole service (dry-run); and the number of fires."""
    rules_file = state / "rules.yaml"
    rules_file.write_text(rules)
    async with FrameServer(frames) as server:
        url = f"ws://127.0.0.1:{server.port}"
        config = parse_config({"mode": "dry-run", "kraken": {"ws_v2": url, "spot_rest": "http://127.0.0.1:9"},
                               "server": {"port": 0}, "paper_wallet": {"balances": {"ZUSD": "1000000"}}})
        service = EngineService(config, [rules_file], state_dir=state / "state", environ={}, reload_interval=None,
                                feed_options={"heartbeat_timeout": 60.0})
        await service.start()
        ticks = service.metrics.ticks.labels("spot")
        try:
            while ticks._value.get() < 1:
                await asyncio.sleep(0.0005)
            started, first = time.perf_counter(), ticks._value.get()
            while ticks._value.get() < len(frames):
                await asyncio.sleep(0.001)
            rate = (ticks._value.get() - first) / (time.perf_counter() - started)
            fires = int(sum(s.value for m in service.metrics.fires.collect() for s in m.samples
                            if s.name.endswith("_total")))
        finally:
            await service.stop()
    return rate, fires


# ----------------------------------------------------------------------------- (b) latency


class TimedTransport(RequestsTransport):
    """Records when each signed AddOrder is handed to the HTTP layer, by cl_ord_id, and
    wakes the bench's loop (which waits on `sent_event` rather than polling, so that it
    does not compete with the engine for the GIL while an order is on its way)."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: Marks | None = None  # --stages
        self.sent: dict[str, float] = {}
        self.sent_event = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def request(self, http_method: str, url: str, *, api_method: str, params: Any = None, body: str | None = None,
                headers: Any = None) -> Any:
        if api_method == "AddOrder" and body:
            for part in body.split("&"):
                if part.startswith("cl_ord_id="):
                    self.sent[part.split("=", 1)[1]] = time.time()
                    if self.marks is not None:
                        self.marks.mark("sent")
                    if self.loop is not None:
                        self.loop.call_soon_threadsafe(self.sent_event.set)
        return super().request(http_method, url, api_method=api_method, params=params, body=body, headers=headers)


LATENCY_RULES = """version: 1
rules:
  - id: flip
    triggers:
      - {type: price, symbol: XBTUSD, crosses_above: 70000}
      - {type: price, symbol: XBTUSD, crosses_below: 69000}
    actions:
      - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.0001, price: 1000}
"""


async def latency(state_root: Path, marks: Marks | None = None, cpu: int | None = None,
                  keep_gc: bool = False) -> list[float]:
    """Milliseconds from tick receipt to the signed AddOrder leaving, one per fire
    (`marks`: also mark each tick and send, for `--stages`; `cpu`: the engine's `cpu` setting,
    which pins this whole process, the simulator in it too, until the run ends). The engine
    sets the garbage collector up as `rules-engine run` does (`service.gc_tuning`), unless
    `keep_gc` (as before 2026-12-05 09:45 UTC)."""
    allowed = os.sched_getaffinity(0)
    account = Account.generate({"ZUSD": "100000000"}, tier="pro")
    sim = Simulator(SimConfig(accounts=[account], prices={"XBTUSD": "69500"}, tick_interval=0,
                              lockout_after=1000))
    endpoints: KrakenEndpoints = await sim.start("127.0.0.1", 0)
    rules_file = state_root / "latency.yaml"
    rules_file.write_text(LATENCY_RULES)
    transport = TimedTransport()
    transport.loop = asyncio.get_running_loop()
    transport.marks = marks
    fire_times: dict[tuple[str, int], float] = {}

    def listen(kind: str, payload: Any) -> None:  # on the path (before the hand-off): no more than a note
        if kind == "trace" and payload.kind == "decision" and "fire_seq" in payload.detail:
            fire_times[(payload.rule_id, payload.detail["fire_seq"])] = payload.time

    config = parse_config({"mode": "live", "kraken": {"simulator": endpoints.spot_rest, "tier": "pro"},
                           "server": {"port": 0}, "dead_man_switch": {"enabled": False},
                           **({} if cpu is None else {"cpu": cpu})})
    environ = {"KRAKEN_API_KEY": account.api_key, "KRAKEN_API_SECRET": account.secret}
    service = EngineService(config, [rules_file], cli_live=True, state_dir=state_root / "state", environ=environ,
                            reload_interval=None, executor_options={"client_options": {"transport": transport}},
                            freeze_gc=not keep_gc)
    service.add_listener(listen)
    if marks is not None:
        on_tick = service._on_tick

        def marked(tick: Any) -> None:
            marks.mark("tick", tick.time)
            on_tick(tick)

        service._on_tick = marked  # type: ignore[method-assign]
    try:
        await service.start()
        while not service.health()["ok"] or not service.health()["feeds"]["spot"]["subscribed"]:
            await asyncio.sleep(0.01)
        prices = ["70100", "68900"]
        for n in range(LATENCY_SAMPLES + 1):
            transport.sent_event.clear()
            sim.set_price("XBTUSD", Decimal(prices[n % 2]))
            await asyncio.wait_for(transport.sent_event.wait(), 5)
            await service.settle(10)
    finally:
        await service.stop()
        await sim.stop()
        set_process_affinity(allowed)
    tick_times = {client_order_id(rule_id, fire_seq, 0, service.installation_id or ""): at
                  for (rule_id, fire_seq), at in fire_times.items()}
    return [(transport.sent[c] - t) * 1000 for c, t in tick_times.items() if c in transport.sent][1:]


def fsync_cost(directory: Path, samples: int = 200, pause: float = 0.0) -> list[float]:
    """Milliseconds per fsync of a file a few hundred bytes are appended to each time (as the
    audit log is), in `directory`; `pause` seconds between them (the orders of (b) come about
    10 ms apart, and on this machine's disk an fsync after a pause costs about twice one
    right after another)."""
    fd, name = tempfile.mkstemp(prefix="bench-fsync-", dir=directory)
    try:
        times = []
        for _ in range(samples):
            if pause:
                time.sleep(pause)
            os.write(fd, b"x" * 400)
            started = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        os.close(fd)
        os.unlink(name)


def stages(cpu: int, quiet: bool = False) -> None:
    """(b) on disk and on tmpfs, pinned to `cpu` and not, with each step's time after the tick
    (`bench._stages`)."""
    _log_as_run(quiet)
    for label, base in (("disk (/tmp)", Path(tempfile.gettempdir())), ("tmpfs (/dev/shm)", Path("/dev/shm"))):
        for pinned in (cpu, None):
            marks = Marks()
            where = Path(tempfile.mkdtemp(prefix="bench-stages-", dir=base))
            try:
                with marks.installed():
                    asyncio.run(latency(where, marks, pinned))
            finally:
                shutil.rmtree(where, ignore_errors=True)
            samples = marks.samples()[1:]  # as `latency`: the first order is not counted
            print(f"(b) steps from the tick's receipt, ms, state dir on {label}, {_pinning(pinned)}, n={len(samples)}, "
                  f"load average {os.getloadavg()[0]:.1f} (markers add a few µs per step):")
            print(report(samples))


def _log_as_run(quiet: bool = False) -> None:
    """Log as `rules-engine run` does by default (text at INFO) from here on, to /dev/null
    (`quiet`: no lines at all, as the figures before 2026-12-05 07:00 UTC were taken)."""
    if quiet:
        return
    logging.disable(logging.NOTSET)
    setup_logging("text", logging.INFO, open(os.devnull, "w"))  # noqa: SIM115 (open while the bench runs)


def _pinning(cpu: int | None) -> str:
    return "not pinned" if cpu is None else f"pinned to CPU {cpu} (cpu: {cpu})"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_service", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a) and of (b) per location (default 3)")
    parser.add_argument("--stages", action="store_true",
                        help="only (b), once per location and pinning, with the time of each step along the path")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                        help="the CPU (b) pins the engine to (its `cpu` setting; default: the last one allowed)")
    parser.add_argument("--quiet-log", action="store_true",
                        help="(b) without any log line (the engine's default is INFO: its decision log's lines)")
    args = parser.parse_args(argv or [])
    logging.disable(logging.ERROR)  # (a): no lines (b) logs as `rules-engine run` does (`_log_as_run`)
    if args.stages:
        stages(args.cpu, args.quiet_log)
        return
    rng = random.Random(7)
    pairs = _pairs()
    frames, _ = _frames(pairs, rng)
    crossing, quiet = _rules_yaml(pairs, rng), _rules_yaml(pairs, rng, offset=1000)
    cases = (("no level crossed", quiet), ("levels crossed", crossing))
    root = Path(tempfile.mkdtemp(prefix="bench-engine-service-"))
    try:
        print(f"(a) {RULES} price rules over {len(pairs)} symbols, {FRAMES:,} v2 ticker frames from a local server "
              f"(in this process, as for the bare loop), {args.rounds} rounds")
        bares: list[float] = []
        ratios: dict[str, list[float]] = {label: [] for label, _ in cases}
        rates: dict[str, list[float]] = {label: [] for label, _ in cases}
        fires: dict[str, int] = {}
        for n in range(args.rounds):
            bare = asyncio.run(bare_loop(frames))
            bares.append(bare)
            for label, rules in cases:
                state = root / f"{label.replace(' ', '-')}-{n}"
                state.mkdir()
                rate, fires[label] = asyncio.run(engine_loop(frames, rules, state))
                rates[label].append(rate)
                ratios[label].append(rate / bare)
        print(f"    bare websockets recv + json.loads:   {statistics.median(bares):9,.0f} frames/s (median)")
        for label, _ in cases:
            spread = ", ".join(f"{r:.0%}" for r in ratios[label])
            print(f"    engine service, dry-run, {label + ':':17} {statistics.median(rates[label]):9,.0f} ticks/s = "
                  f"{statistics.median(ratios[label]):4.0%} of the bare loop (median; rounds {spread}; "
                  f"{fires[label]} fires, each persisted and audited)")
        _log_as_run(args.quiet_log)
        for label, base in (("disk (/tmp)", root), ("tmpfs (/dev/shm)", Path("/dev/shm"))):
            for pinned in (args.cpu, None):
                p50s, p99s, worst, count = [], [], 0.0, 0
                fsyncs: list[float] = []
                paused: list[float] = []
                for _ in range(args.rounds):
                    where = Path(tempfile.mkdtemp(prefix="bench-latency-", dir=base))
                    try:
                        fsyncs += fsync_cost(where)
                        samples = asyncio.run(latency(where, cpu=pinned))
                        paused += fsync_cost(where, pause=0.01)
                    finally:
                        shutil.rmtree(where, ignore_errors=True)
                    p50s.append(statistics.median(samples))
                    p99s.append(_percentile(samples, 0.99))
                    worst, count = max(worst, max(samples)), count + len(samples)
                print(f"(b) tick -> signed AddOrder leaving, live mode against the simulator, state dir on {label}, "
                      f"engine {_pinning(pinned)}: {args.rounds} rounds, n={count}: "
                      f"p50 {statistics.median(p50s):.2f} ms, p99 {statistics.median(p99s):.2f} ms (medians of the "
                      f"rounds; p99 per round {', '.join(f'{v:.2f}' for v in p99s)}), max {worst:.2f} ms; "
                      f"one fsync there, same run: p50 {statistics.median(fsyncs):.3f} ms, "
                      f"p99 {_percentile(fsyncs, 0.99):.3f} ms back to back, p50 {statistics.median(paused):.3f} ms, "
                      f"p99 {_percentile(paused, 0.99):.3f} ms 10 ms apart; load average {os.getloadavg()[0]:.1f}")
                if base == root:
                    verdict = "met" if statistics.median(p99s) < TARGET_P99_MS else "NOT met"
                    print(f"    target on disk: p99 < {TARGET_P99_MS:g} ms: {verdict}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
