"""Signal fan-out worlds for tests: a subscriptions file, intake replicas (in-process on free
ports), one engine per account key on the PostgreSQL store against the simulator, and the
store's rows.

    world = FanoutWorld(tmp_path, pg_server, dsn, sim, accounts)   # accounts: {key: sim Account}
    async with world.intakes(2) as urls, world.engines() as engines:
        status, answer = await post(urls[0] + "/signals/signalco", *signed({"action": "buy", "qty": 0.01}, ...))
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from e2e_harness import ADMIN_TOKEN, FAST_FEED
from pg_harness import PgServer

from rules_engine.config import parse_config
from rules_engine.pgstore import StoreSettings
from rules_engine.service.app import EngineService
from rules_engine.service.intake import Intake
from rules_engine.service.subscriptions import load_subscriptions
from rules_engine.sim import Account, Simulator

PROVIDER = "signalco"
PROVIDER_SECRET = "provider-secret-for-fanout-tests"
RULES = """\
version: 1
rules:
  - id: follow
    triggers: [{type: signal, source: signalco, where: "signal.action == 'buy'"}]
    actions:
      - type: place_order
        pair: XBTUSD
        side: buy
        ordertype: market
        volume: "=signal.qty * signal.account.scale"
"""


class FanoutWorld:
    def __init__(self, tmp: Path, server: PgServer, dsn: str, sim: Simulator, accounts: Mapping[str, Account],
                 sizing: Mapping[str, Mapping[str, Any]] | None = None, max_age: str = "30s") -> None:
        self.tmp = tmp
        self.server = server
        self.dsn = dsn
        self.sim = sim
        self.accounts = dict(accounts)
        self.rules_dir = tmp / "rules"
        self.rules_dir.mkdir(exist_ok=True)
        (self.rules_dir / "follow.yaml").write_text(RULES)
        self.subscriptions_file = tmp / "subscriptions.yaml"
        spec = {"version": 1, "providers": {PROVIDER: {
            "secret_env": "PROVIDER_SECRET", "max_age": max_age,
            "accounts": {key: dict((sizing or {}).get(key, {"scale": 1})) for key in self.accounts}}}}
        self.subscriptions_file.write_text(yaml.safe_dump(spec))
        self.environ = {"PROVIDER_SECRET": PROVIDER_SECRET, "RULES_ENGINE_STORE_PASSWORD": server.password,
                        "ADMIN_TOKEN": ADMIN_TOKEN}

    def settings(self, key: str = "default") -> StoreSettings:
        return StoreSettings(self.dsn, key, self.server.password)

    def connect(self) -> Any:
        return self.server.connect(self.dsn.rsplit("/", 1)[1])

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return list(conn.execute(sql, params).fetchall())

    def intake(self, name: str = "intake") -> Intake:
        return Intake(load_subscriptions(self.subscriptions_file), self.settings(), port=0, environ=self.environ,
                      name=name)

    @contextlib.asynccontextmanager
    async def intakes(self, count: int = 1) -> AsyncIterator[list[str]]:
        started: list[Intake] = []
        try:
            for index in range(count):
                intake = self.intake(f"intake-{index + 1}")
                started.append(intake)
                await intake.start()
            yield [f"http://127.0.0.1:{intake.port}" for intake in started]
        finally:
            for intake in started:
                await intake.stop()

    def engine(self, key: str) -> EngineService:
        account = self.accounts[key]
        data = {"mode": "live", "kraken": {"simulator": self.sim.endpoints.spot_rest},
                "server": {"host": "127.0.0.1", "port": 0}, "kill_switch": {"token_env": "ADMIN_TOKEN"},
                "dead_man_switch": {"enabled": False}, "balance_cache": "0s", "store": {"url": self.dsn, "key": key}}
        environ = {**self.environ, "KRAKEN_API_KEY": account.api_key, "KRAKEN_API_SECRET": account.secret}
        return EngineService(parse_config(data, f"<{key} config>"), [self.rules_dir], cli_live=True,
                             state_dir=self.tmp / "state" / key, environ=environ, reload_interval=None,
                             kill_poll_interval=0.2, snapshot_interval=0.2, feed_options=FAST_FEED, drain_timeout=5.0)

    @contextlib.asynccontextmanager
    async def engines(self, keys: list[str] | None = None) -> AsyncIterator[dict[str, EngineService]]:
        running: dict[str, EngineService] = {}
        try:
            for key in keys or sorted(self.accounts):
                service = self.engine(key)
                running[key] = service
                await service.start()
            yield running
        finally:
            for service in running.values():
                await service.stop()

    def orders(self, key: str) -> list[Any]:
        """The simulator's accepted AddOrder calls of `key`'s account."""
        return [e for e in self.sim.journal.entries(key=self.accounts[key].api_key)
                if e.method == "AddOrder" and e.accepted]


def subscriptions_text(body: str) -> str:
    return textwrap.dedent(body).lstrip()
