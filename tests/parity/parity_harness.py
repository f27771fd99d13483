"""Run one rule test twice, through `rules-engine test` and through the running service, and
read back what each audited.

The offline side is `testing.suite.run_case` with its state kept. The service side is an
`EngineService` in dry-run against a `Simulator` on 127.0.0.1, both on one injected clock
that the harness moves as a real engine's clock would move: to each moment the driver asked
to be woken (timer slots, holds, cooldowns) and to each input's time, where the input is
played for real: prices go out on the simulator's WebSocket feeds (with the test's bid and
ask), signals are POSTed, HMAC-signed, to the webhook.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from rules_engine.config import parse_config
from rules_engine.core.events import Signal, Tick
from rules_engine.paper.exchange import PaperExchange
from rules_engine.service.app import EngineService
from rules_engine.sim import SimConfig, Simulator
from rules_engine.state import StateStore, database_path
from rules_engine.testing.spec import TestCase, WalletChange
from rules_engine.testing.suite import run_case

SECRET = "parity-signal-secret-0123456789"
FAST_FEED = {"heartbeat_timeout": 5.0, "backoff_base": 0.05, "backoff_max": 0.2}
COMPARED = ("trigger", "decision", "guard", "blocked", "risk", "dropped", "error", "action")
"""Trace kinds compared one for one (with the dispatcher's order `decision` records). A
feed's first observation of a symbol is not: the service sees it at subscription."""
IGNORED_KEYS = ("seq", "time", "hash", "prev")
_NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?![\w.-])")  # a number in text (not a group of a UUID)


class Clock:
    """The one clock of the simulator and the service in a parity run."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def unsupported(case: TestCase) -> str | None:
    """Why a test cannot be played against a running service, or None."""
    if not case.timers:
        return "timers: false hands timer beats to the test; a running service keeps its own schedule"
    for item in case.inputs:
        if isinstance(item, WalletChange):
            return "a wallet edit in the middle of a test has no counterpart on a running engine"
        if isinstance(item, Tick) and item.last is None:
            return "a tick without a last price cannot be published by the simulator"
    return None


def offline_records(case: TestCase, state_dir: Path) -> tuple[list[dict[str, Any]], bool]:
    """The audit records of the rule test (and whether its expectations passed)."""
    result = run_case(case, state_dir=state_dir)
    return read_audit(state_dir / "audit.jsonl"), result.passed


def read_audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records parity is judged on, without what legitimately differs (sequence numbers,
    write times, hash chain), numbers compared by value."""
    kept = []
    for record in records:
        kind = record["kind"]
        data = record["data"]
        if kind not in COMPARED or (kind == "trigger" and record["rule_id"] is None):
            continue
        if kind == "decision" and "intent" in data and "event_time" not in data:
            kind = "order_decision"  # the dispatcher's record, written before the order leaves
        if kind == "dropped" and data.get("reason") == "result for an intent not awaited":
            continue
        kept.append({"kind": kind, "rule_id": record["rule_id"], "rule_hash": record["rule_hash"],
                     "data": _numbers(data)})
    client_ids: dict[str, str] = {}
    return [{**r, "data": _client_ids(r["data"], client_ids)} for r in _fills_after_their_decision(kept)]


def _fills_after_their_decision(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An order filled at once (a marketable Futures limit) reaches the core as an event after
    its result: a rule test handles it once the decision's next intent is dispatched, the
    service may handle it while that intent is on its way (another thread). So each fill's
    record is compared at the end of its decision (the next `decision` record that closes
    a run), not at the exact place it was written."""
    out: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for record in records:
        data = record["data"]
        if record["kind"] == "action" and "order" in data and "intent_id" not in data:
            held.append(record)
            continue
        if record["kind"] == "decision" and "outcome" in data and held:
            out.extend(sorted(held, key=lambda r: _UUID.sub("#", json.dumps(r, sort_keys=True))))
            held = []
        out.append(record)
    return out + held


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_UUID_SPLIT = re.compile(r"(\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)")


def _client_ids(value: Any, seen: dict[str, str]) -> Any:
    """Client order ids (UUIDs) as `#n` in order of appearance: the service's are made in its
    state dir's installation (`core.ids.client_order_id`), a rule test's in none."""
    if isinstance(value, dict):
        return {k: _client_ids(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [_client_ids(v, seen) for v in value]
    if isinstance(value, str):
        return _UUID.sub(lambda m: seen.setdefault(m.group(0), f"#{len(seen) + 1}"), value)
    return value


def _numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _canonical(Decimal(repr(value)))
    if isinstance(value, str):  # numbers in text by value; client order ids (UUIDs) left whole
        return "".join(part if _UUID.fullmatch(part) else _NUMBER.sub(lambda m: _canonical(Decimal(m.group(0))), part)
                       for part in _UUID_SPLIT.split(value))
    return value


def _canonical(number: Decimal) -> str:
    if not number.is_finite():
        return str(number)
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


async def service_records(case: TestCase, folder: Path) -> list[dict[str, Any]]:
    """Play the test against a running service and a simulator; the service's audit records."""
    clock = Clock(case.start)
    first_quotes = _first_quotes(case)
    sim = Simulator(SimConfig(tick_interval=0, heartbeat_interval=0.5), clock=clock)
    with sim.running("127.0.0.1", 0):
        for symbol, tick in first_quotes.items():  # what the feeds' subscription snapshot shows
            _publish(sim, symbol, tick)
        state_dir = folder / "state"
        _seed_wallet(case, state_dir)
        service = _service(case, sim, state_dir, clock)
        await service.start()
        try:
            await _wait(lambda: service.health()["ok"] and all(
                f["subscribed"] == f["symbols"] for f in service.health()["feeds"].values()))
            await service.settle()
            url = f"http://127.0.0.1:{service.port}"
            async with aiohttp.ClientSession() as session:
                for item in case.inputs:
                    assert not isinstance(item, WalletChange)
                    await _advance(service, clock, item.time, inclusive=False)
                    clock.now = max(clock.now, item.time)
                    if isinstance(item, Tick):
                        await _tick(service, sim, item)
                    elif isinstance(item, Signal):
                        await _signal(session, url, item, clock.now)
                    else:
                        service.inject(item)
                    await service.settle()
                end = case.until if case.until is not None else clock.now
                await _advance(service, clock, end, inclusive=True)
                clock.now = max(clock.now, end)
                service.poke()
                await service.settle()
        finally:
            await service.stop()
    return read_audit(state_dir / "audit.jsonl")


def _first_quotes(case: TestCase) -> dict[str, Tick]:
    quotes: dict[str, Tick] = {}
    for item in case.inputs:
        if isinstance(item, Tick) and item.symbol not in quotes:
            quotes[item.symbol] = item
    return quotes


def _publish(sim: Simulator, symbol: str, tick: Tick) -> None:
    assert tick.last is not None
    if tick.bid is not None and tick.ask is not None:
        sim.set_price(symbol, tick.last, bid=tick.bid, ask=tick.ask)
    else:
        sim.set_price(symbol, tick.last)


def _seed_wallet(case: TestCase, state_dir: Path) -> None:
    """The paper wallet the test starts with, open orders included, saved where the service
    finds it (the test runner places the same orders on its own paper wallet)."""
    exchange = PaperExchange()
    exchange.set_balances("paper", dict(case.wallet))
    for request in case.open_orders:
        exchange.place("paper", request, case.start)
    store = StateStore(database_path(state_dir))
    try:
        store.save_paper_wallet({"account": "paper", "exchange": exchange.snapshot()})
    finally:
        store.close()


def _service(case: TestCase, sim: Simulator, state_dir: Path, clock: Clock) -> EngineService:
    sources = {trigger.source for rule in case.ruleset.rules for trigger in rule.triggers
               if getattr(trigger, "type", None) == "signal"}
    data: dict[str, Any] = {
        "mode": "dry-run",
        "kraken": {"simulator": sim.endpoints.spot_rest},
        "server": {"host": "127.0.0.1", "port": 0},
        "signals": {source: {"secret_env": "PARITY_SECRET", "timestamp_window": "5m"} for source in sources},
        "paper_wallet": {"balances": {k: str(v) for k, v in case.wallet.items()},
                         "futures_balances": {k: str(v) for k, v in case.futures_wallet.items()}},
    }
    if case.limits is not None:
        data["risk"] = _risk(case)
    config = parse_config(data, "<parity config>")
    return EngineService(config, list(case.ruleset.files), state_dir=state_dir, environ={"PARITY_SECRET": SECRET},
                         clock=clock, reload_interval=None, kill_poll_interval=0.05, snapshot_interval=0.2,
                         feed_options=FAST_FEED, drain_timeout=5.0)


def _risk(case: TestCase) -> dict[str, Any]:
    limits = asdict(case.limits) if case.limits is not None else {}
    risk: dict[str, Any] = {}
    for key, value in limits.items():
        if value is None or value == {}:
            continue
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, dict):
            value = {k: str(v) for k, v in value.items()}
        elif isinstance(value, Decimal):
            value = str(value)
        risk[key] = value
    return risk


async def _advance(service: EngineService, clock: Clock, until: float, *, inclusive: bool) -> None:
    """Wake the service at each moment its driver asked for, up to `until`."""
    assert service.driver is not None
    for _ in range(10_000):
        due = service.driver.next_wakeup()
        if due is None or due > until or (due == until and not inclusive):
            return
        clock.now = max(clock.now, due)
        service.poke()
        await service.settle()
    raise AssertionError("the driver keeps asking to be woken")


async def _tick(service: EngineService, sim: Simulator, tick: Tick) -> None:
    market = tick.market
    before = service.metrics.ticks.labels(market)._value.get()
    _publish(sim, tick.symbol, tick)
    await _wait(lambda: service.metrics.ticks.labels(market)._value.get() > before)


async def _signal(session: aiohttp.ClientSession, url: str, signal: Signal, now: float) -> None:
    raw = json.dumps(dict(signal.payload), default=float).encode()  # Decimals as JSON numbers
    stamp = str(int(now))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": f"sha256={mac}",
               "X-Signal-Id": signal.signal_id}
    async with session.post(f"{url}/signals/{signal.source}", data=raw, headers=headers) as response:
        assert response.status == 202, await response.text()


async def _wait(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)
