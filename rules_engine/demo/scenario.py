"""`rules-engine demo`: the simulator and the engine, in dry-run, on the example rules.

Offline and self-contained: the simulator serves Kraken's REST and WebSocket APIs on a
free loopback port in this process; the engine runs on the example rules in `rules/`
with the embedded config below (dry-run, paper wallet, a signal secret generated for this
run). The scenario drives prices across the rules' levels, posts a signed TradingView
signal, waits for the dead man's switch timer, then verifies the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from rules_engine.audit import verify
from rules_engine.config import parse_config
from rules_engine.demo.narrator import Narrator
from rules_engine.rules import find_rule_files
from rules_engine.service.app import EngineService
from rules_engine.sim import SimConfig, Simulator

SECRET_ENV = "RULES_ENGINE_DEMO_SIGNAL_SECRET"
START_PRICES = {"XBTUSD": "69000", "ETHUSD": "2600"}
TIMER_RULE = "dead-man-switch"


def example_rules_dir() -> Path | None:
    """The repository's `rules/` folder (a source checkout or an editable install)."""
    folder = Path(__file__).resolve().parents[2] / "rules"
    return folder if folder.is_dir() else None


def example_rule_files(folder: Path) -> list[Path]:
    """The example rule files (rule tests, `*.test.yaml`, are not rules)."""
    return [p for p in find_rule_files([folder]) if not p.name.endswith((".test.yaml", ".test.yml"))]


def demo_config(simulator_url: str, state_dir: Path) -> dict[str, Any]:
    """The embedded engine config: dry-run against the in-process simulator."""
    return {
        "version": 1,
        "mode": "dry-run",
        "state_dir": str(state_dir),
        "kraken": {"simulator": simulator_url, "feed": "v2"},
        "risk": {"max_order_notional": {"default": 10000}, "max_orders_per_minute": 20},
        "balance_cache": "0s",
        "server": {"host": "127.0.0.1", "port": 0},
        "signals": {"tradingview": {"secret_env": SECRET_ENV, "schema": "tradingview"}},
        "paper_wallet": {"balances": {"ZUSD": "100000", "XXBT": "1", "XETH": "10"},
                         "futures_balances": {"USD": "10000"}},
    }


class Demo:
    def __init__(self, state_dir: Path, out: TextIO, timer_timeout: float = 25.0, wait_timer: bool = True) -> None:
        self.state_dir = state_dir
        self.out = out
        self.narrator = Narrator(out)
        self.timer_timeout = timer_timeout
        self.wait_timer = wait_timer
        self.sim = Simulator(SimConfig(prices=START_PRICES, tick_interval=0, heartbeat_interval=1.0))
        self.service: EngineService | None = None
        self.secret = secrets.token_urlsafe(32)

    async def run(self, rule_files: list[Path]) -> bool:
        say, heading = self.narrator.say, self.narrator.heading
        endpoints = await self.sim.start("127.0.0.1", 0)
        try:
            config = parse_config(demo_config(endpoints.spot_rest, self.state_dir), "<demo config>")
            environ: Mapping[str, str] = {SECRET_ENV: self.secret}
            self.service = service = EngineService(config, rule_files, environ=environ, reload_interval=None,
                                                   kill_poll_interval=0.5)
            service.add_listener(self.narrator)
            heading("Starting")
            port = await service.start()
            say(f"Kraken simulator on {endpoints.spot_rest}; engine HTTP on http://127.0.0.1:{port} (dry-run)")
            engine = service.engine
            assert engine is not None  # set by start()
            say(f"{len(engine.ruleset.rules)} rules from: {', '.join(p.name for p in rule_files)}")
            await self._until(lambda: all(f["connected"] and f["subscribed"] == f["symbols"]
                                          for f in service.health()["feeds"].values()), 10)
            feeds = service.health()["feeds"]
            say("feeds: " + "; ".join(f"{m} {f['protocol']} subscribed to {f['subscribed']} symbols"
                                      for m, f in feeds.items()))
            await self._prices()
            await self._signal(port)
            if self.wait_timer:
                await self._timer()
        finally:
            if self.service is not None:
                await self.service.stop()
            await self.sim.stop()
        return self._summary()

    async def _move(self, symbol: str, price: str, why: str) -> None:
        service = self.service
        assert service is not None
        market = "futures" if symbol.startswith("PF_") else "spot"
        counter = service.metrics.ticks.labels(market)
        seen = counter._value.get()
        self.narrator.say(f"price {symbol} -> {price}   ({why})")
        self.sim.set_price(symbol, Decimal(price))
        await self._until(lambda: counter._value.get() > seen, 5)
        needs = service.needs
        assert needs is not None  # set by start()
        if market == "spot" and symbol == "XBTUSD" and "PF_XBTUSD" in needs.futures_symbols:
            futures = service.metrics.ticks.labels("futures")
            await self._until(lambda: futures._value.get() > 0, 5)
        await service.settle(10)

    async def _prices(self) -> None:
        heading = self.narrator.heading
        heading("BTC/USD breaks out above 70,000 (rules/btc-breakout.yaml)")
        await self._move("XBTUSD", "69800", "below the level: the crossing arms")
        await self._move("XBTUSD", "70150", "crosses above 70,000")
        heading("ETH/USD dips (rules/eth-dip.yaml)")
        await self._move("ETHUSD", "2550", "arms both ETH rules")
        await self._move("ETHUSD", "2480", "bid below 2,500: eth-dip-buy must hold for 1 minute")
        await self._move("ETHUSD", "1990", "below 2,000: eth-buy-usd-amount spends 100 USD")
        await self._move("ETHUSD", "2600", "recovers: the eth-dip-buy hold is cancelled")
        heading("The BTC perpetual falls through 60,000, then recovers (rules/futures.yaml)")
        await self._move("XBTUSD", "61000", "above 60,000: arms the short")
        await self._move("XBTUSD", "59500", "below 60,000: pf-btc-short's entry leg sells the perpetual")
        await self._move("XBTUSD", "62500", "above 62,000: the reduce-only stop buys the short back (paper Futures)")
        await self._move("XBTUSD", "63500", "above 63,000: its exit leg finds no position left; Kraken refuses a "
                                            "reduce-only close (wouldNotReducePosition), and so does the paper account")

    async def _signal(self, port: int) -> None:
        self.narrator.heading("A signed TradingView alert arrives (rules/tradingview.yaml)")
        body = json.dumps({"id": f"demo-{int(time.time())}", "ticker": "XBTUSD", "action": "buy",
                           "contracts": 0.002, "comment": "demo"}).encode()
        stamp = str(int(time.time()))
        mac = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": f"sha256={mac}"}
        url = f"http://127.0.0.1:{port}/signals/tradingview"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.json()
            self.narrator.say(f"POST /signals/tradingview (HMAC-SHA256 signed) -> {response.status} {answer}")
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.json()
            self.narrator.say(f"the same request again -> {response.status} {answer['error']}: replay refused")
        assert self.service is not None
        await self.service.settle(10)

    async def _timer(self) -> None:
        service = self.service
        assert service is not None
        self.narrator.heading("A timer rule fires (rules/housekeeping.yaml: dead-man-switch, every 20 s)")
        upcoming = [due for rule, _, due in service.timers_upcoming() if rule == TIMER_RULE]
        if upcoming:
            self.narrator.say(f"waiting {max(0.0, upcoming[0] - time.time()):.0f} s for its next slot")
        fires = service.metrics.fires.labels(TIMER_RULE)
        await self._until(lambda: fires._value.get() > 0, self.timer_timeout)
        await service.settle(10)

    async def _until(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the demo waited too long for the engine")
            await asyncio.sleep(0.01)

    def _summary(self) -> bool:
        narrator = self.narrator
        narrator.heading("Done")
        path = self.state_dir / "audit.jsonl"
        report = verify(path)
        narrator.say(f"{narrator.fires} rule fires, {narrator.orders} paper orders; nothing was sent to Kraken")
        narrator.say(f"audit log: {path}")
        if report.ok:
            narrator.say(f"verify: OK, {report.records} records, hash chain intact (head seq {report.head_seq} "
                         f"hash {report.head_hash[:16]}...)")
        else:
            narrator.say(f"verify: FAILED: {report.problem}")
        narrator.say(f"see it with: rules-engine audit show {self.state_dir} --kind decision,request")
        return report.ok


def run_demo(state_dir: Path | None = None, out: TextIO = sys.stdout, timer_timeout: float = 25.0,
             wait_timer: bool = True) -> int:
    """Run the demo; returns the exit code (0 when everything happened and the log verifies)."""
    folder = example_rules_dir()
    if folder is None:
        print("rules-engine demo: the example rules (the repository's rules/ folder) were not found; "
              "run the demo from a source checkout", file=sys.stderr)
        return 1
    state = state_dir or Path(tempfile.mkdtemp(prefix="rules-engine-demo-"))
    if state.exists() and any(state.iterdir()):
        print(f"rules-engine demo: {state} is not empty; give a new or empty --state-dir", file=sys.stderr)
        return 2
    demo = Demo(state, out, timer_timeout, wait_timer)
    return 0 if asyncio.run(demo.run(example_rule_files(folder))) else 1
