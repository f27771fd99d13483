"""WebSocket ticks parsed per second: TickerFeed's full path vs a bare `websockets` loop.

A separate process serves N pre-encoded Kraken v2 ticker frames on 127.0.0.1, written to
the socket in one go as soon as a client connects (so the server is never the bottleneck).
In the same run we time, from the first frame to the last:

- bare: `async for msg in ws: json.loads(msg)`;
- feed: `TickerFeed(protocol="v2")` -> validated `Tick` objects with Decimal prices and
  both timestamps, delivered to `on_tick`.

Also prints the per-frame cost of JSON decoding strategies for Decimal prices
(float then Decimal, `parse_float=Decimal`, number text kept as str then `Decimal(text)`).

Run: `python -m bench.ws_parse [--frames N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.frames import Frame, Opcode

from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.ws_feed import TickerFeed
from rules_engine.kraken.ws_frames import V2Dialect

TARGET_RATIO = 0.70


def make_frames(count: int, seed: int = 7) -> list[str]:
    """Kraken v2 ticker updates for BTC/USD with a random-walk price."""
    rng = random.Random(seed)
    price = 60000.0
    frames = []
    for i in range(count):
        price = round(price + rng.uniform(-5, 5), 1)
        bid, ask = round(price - 0.1, 1), price
        frames.append(
            '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD",'
            f'"bid":{bid},"bid_qty":{rng.uniform(0, 3):.8f},"ask":{ask},"ask_qty":{rng.uniform(0, 3):.8f},'
            f'"last":{price},"volume":{2000 + i * 0.001:.8f},"vwap":60012.3,"low":59000.1,"high":61000.9,'
            f'"change":-12.4,"change_pct":-0.02,"timestamp":"2026-01-02T03:04:{i % 60:02d}.{i % 1000000:06d}Z"}}]}}'
        )
    return frames


def _serve(count: int, port_queue) -> None:
    """Server process: blast the pre-framed frames at every client that connects."""
    blob = b"".join(Frame(Opcode.TEXT, f.encode()).serialize(mask=False) for f in make_frames(count))

    async def handler(ws) -> None:
        ws.transport.write(blob)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_queue=None) as server:
            port_queue.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


async def bare_rate(url: str, count: int) -> float:
    received = 0
    started = 0.0
    async with connect(url) as ws:
        async for message in ws:
            json.loads(message)
            received += 1
            if received == 1:
                started = time.perf_counter()
            elif received == count:
                return (count - 1) / (time.perf_counter() - started)
    raise RuntimeError("server closed early")


async def feed_rate(endpoints: KrakenEndpoints, count: int) -> float:
    received = 0
    started = 0.0
    ended = 0.0

    def on_tick(tick) -> None:
        nonlocal received, started, ended
        received += 1
        if received == 1:
            started = time.perf_counter()
        elif received == count:
            ended = time.perf_counter()
            feed.stop()

    feed = TickerFeed(endpoints, "v2", ["XBTUSD"], on_tick)
    await feed.run()
    if received != count or feed.stats.malformed:
        raise RuntimeError(f"feed delivered {received}/{count} ticks, {feed.stats.malformed} malformed")
    return (count - 1) / (ended - started)


def _per_frame_us(fn: Callable[[str], object], frames: list[str]) -> float:
    started = time.perf_counter()
    for frame in frames:
        fn(frame)
    return (time.perf_counter() - started) / len(frames) * 1e6


def decode_costs(frames: list[str]) -> dict[str, float]:
    """µs per frame: decoding plus the three Decimal prices, by strategy (best of 3)."""

    def float_then_decimal(text: str) -> object:
        entry = json.loads(text)["data"][0]
        return Decimal(repr(entry["bid"])), Decimal(repr(entry["ask"])), Decimal(repr(entry["last"]))

    as_decimal = json.JSONDecoder(parse_float=Decimal).decode

    def parse_float_decimal(text: str) -> object:
        entry = as_decimal(text)["data"][0]
        return entry["bid"], entry["ask"], entry["last"]

    as_text = json.JSONDecoder(parse_float=str).decode

    def text_then_decimal(text: str) -> object:
        entry = as_text(text)["data"][0]
        return Decimal(entry["bid"]), Decimal(entry["ask"]), Decimal(entry["last"])

    dialect = V2Dialect()
    strategies: dict[str, Callable[[str], object]] = {
        "json.loads only": json.loads,
        "json.loads + Decimal(repr(float))": float_then_decimal,
        "json.loads(parse_float=Decimal) per call": lambda t: json.loads(t, parse_float=Decimal),
        "prebuilt decoder parse_float=Decimal": parse_float_decimal,
        "prebuilt decoder parse_float=str + Decimal(text) [used]": text_then_decimal,
        "V2Dialect.parse (validated Tick)": lambda t: dialect.parse(t, 0.0),
    }
    return {name: min(_per_frame_us(fn, frames) for _ in range(3)) for name, fn in strategies.items()}


async def _measure(port: int, count: int, rounds: int) -> tuple[list[float], list[float]]:
    endpoints = KrakenEndpoints.local("127.0.0.1", port)
    bare, feed = [], []
    for _ in range(rounds):  # interleaved, so drift in machine load hits both alike
        bare.append(await bare_rate(endpoints.ws_v2, count))
        feed.append(await feed_rate(endpoints, count))
    return bare, feed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_parse", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv or [])

    frames = make_frames(20_000)
    print("decode + 3 Decimal prices, µs per frame:")
    for name, micros in decode_costs(frames).items():
        print(f"  {name:<58} {micros:6.2f}")

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_serve, args=(args.frames, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=60)
        bare, feed = asyncio.run(_measure(port, args.frames, args.rounds))
    finally:
        server.terminate()
        server.join()
    # Each round times the two loops back to back, so its ratio is the least disturbed by
    # other load on the machine; report the median round.
    ratios = sorted(f / b for b, f in zip(bare, feed, strict=True))
    ratio = statistics.median(ratios)
    print(f"local v2 ticker feed, {args.frames} frames x {args.rounds} rounds (median):")
    print(f"  bare websockets loop (json.loads only): {statistics.median(bare):10,.0f} frames/s")
    print(f"  TickerFeed -> Tick (validated, Decimal): {statistics.median(feed):10,.0f} ticks/s")
    verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
    spread = f"rounds {ratios[0]:.0%}..{ratios[-1]:.0%}"
    print(f"  ratio feed/bare: {ratio:.0%} ({spread}; target >= {TARGET_RATIO:.0%}) {verdict}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
