"""End-to-end harness: the simulator in a background thread on 127.0.0.1:0 and an
`EngineService` in the test's own event loop (HTTP on port 0), with helpers to wait on
conditions instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping

import aiohttp

from rules_engine.audit import verify
from rules_engine.config import parse_config
from rules_engine.service.app import EngineService
from rules_engine.sim import Account, Simulator

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SIGNAL_SECRET = "signal-secret-for-tests-abcdef"
FAST_FEED = {"heartbeat_timeout": 5.0, "backoff_base": 0.05, "backoff_max": 0.2}


def rules_text(body: str) -> str:
    return "version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"


@dataclass
class Seen:
    """What the service told its listener."""

    trace: list[Any] = field(default_factory=list)
    reports: list[tuple[Any, Any]] = field(default_factory=list)
    reloads: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "trace":
            self.trace.append(payload)
        elif kind == "report":
            self.reports.append(payload)
        elif kind == "reload":
            self.reloads.append(payload)
        elif kind == "signal_rejected":
            self.rejected.append(payload)

    def fires(self, rule_id: str | None = None) -> list[Any]:
        return [r for r in self.trace if r.kind == "decision" and "fire_seq" in r.detail
                and (rule_id is None or r.rule_id == rule_id)]

    def intents(self, kind: str | None = None) -> list[Any]:
        return [i for i, _ in self.reports if i is not None and (kind is None or i.kind == kind)]


class E2E:
    """One test's world: simulator, rule dir, state dir, engine config."""

    def __init__(self, tmp: Path, sim: Simulator, account: Account | None = None) -> None:
        self.tmp = tmp
        self.sim = sim
        self.account = account
        self.rules_dir = tmp / "rules"
        self.rules_dir.mkdir(exist_ok=True)
        self.state_dir = tmp / "state"
        self.environ = {"ADMIN_TOKEN": ADMIN_TOKEN, "SIG_SECRET": SIGNAL_SECRET, "TV_PASS": "tv-passphrase-123"}
        if account is not None:
            self.environ.update({"KRAKEN_API_KEY": account.api_key, "KRAKEN_API_SECRET": account.secret,
                                 "KRAKEN_FUTURES_API_KEY": account.api_key,
                                 "KRAKEN_FUTURES_API_SECRET": account.secret})

    @property
    def endpoints(self) -> Any:
        return self.sim.endpoints

    def write_rules(self, body: str, name: str = "rules.yaml") -> Path:
        path = self.rules_dir / name
        path.write_text(rules_text(body))
        return path

    def config_data(self, **overrides: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mode": "dry-run",
            "kraken": {"simulator": self.endpoints.spot_rest},
            "server": {"host": "127.0.0.1", "port": 0},
            "kill_switch": {"token_env": "ADMIN_TOKEN", "cancel_open_orders": True},
            "signals": {
                "mybot": {"secret_env": "SIG_SECRET", "timestamp_window": "5m", "max_body_bytes": 512},
                "tradingview": {"passphrase_env": "TV_PASS", "schema": "tradingview"},
            },
            "paper_wallet": {"balances": {"ZUSD": "100000", "XXBT": "2"}},
            "balance_cache": "0s",
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return data

    def service(self, cli_live: bool = False, **config: Any) -> EngineService:
        engine_config = parse_config(self.config_data(**config), "<test config>")
        return EngineService(engine_config, [self.rules_dir], cli_live=cli_live, state_dir=self.state_dir,
                             environ=self.environ, reload_interval=0.1, kill_poll_interval=0.05,
                             snapshot_interval=0.2, feed_options=FAST_FEED, drain_timeout=5.0)

    @contextlib.asynccontextmanager
    async def running(self, cli_live: bool = False, wait_feeds: bool = True,
                      **config: Any) -> AsyncIterator[tuple[EngineService, Seen, str]]:
        service = self.service(cli_live, **config)
        seen = Seen()
        service.add_listener(seen)
        port = await service.start()
        try:
            if wait_feeds:
                await wait_for(lambda: service.health()["ok"] and all(
                    f["subscribed"] == f["symbols"] for f in service.health()["feeds"].values()))
            yield service, seen, f"http://127.0.0.1:{port}"
        finally:
            await service.stop()

    def audit_records(self, kind: str | None = None) -> list[dict[str, Any]]:
        path = self.state_dir / "audit.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in records if kind is None or r["kind"] == kind]

    def audit_ok(self) -> bool:
        return verify(self.state_dir / "audit.jsonl").ok

    def spot_orders(self) -> list[Any]:
        with self.sim.lock:
            return list(self.sim.exchange.orders.values())

    def futures_orders(self) -> list[Any]:
        with self.sim.lock:
            return list(self.sim.futures.orders.values())


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def move(e2e: E2E, service: EngineService, symbol: str, *prices: str, market: str = "spot") -> None:
    """Set each price on the simulator and wait until the engine has handled its tick."""
    from decimal import Decimal

    for price in prices:
        before = service.metrics.ticks.labels(market)._value.get()
        e2e.sim.set_price(symbol, Decimal(price))
        await wait_for(lambda: service.metrics.ticks.labels(market)._value.get() > before)
        await service.settle()


def signed(body: Mapping[str, Any] | bytes, secret: str = SIGNAL_SECRET, timestamp: float | None = None,
           signal_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time() if timestamp is None else timestamp))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": f"sha256={mac}"}
    if signal_id is not None:
        headers["X-Signal-Id"] = signal_id
    return raw, headers


async def post(url: str, body: bytes, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=dict(headers or {})) as response:
            return response.status, await response.json()


async def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=dict(headers or {})) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()
