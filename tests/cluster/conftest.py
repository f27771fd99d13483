"""Fixtures for the tests against a real PostgreSQL (marker `cluster`): one throwaway server
per test session (`pg_harness.PgServer`), a fresh database per test, and for engine tests the
simulator and `E2E` world of tests/e2e. `async def` tests run in a fresh event loop each,
bounded to 90 s."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))

from e2e_harness import E2E  # noqa: E402
from pg_harness import PgServer  # noqa: E402

from rules_engine.sim import Account, SimConfig, Simulator  # noqa: E402

_names = itertools.count(1)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), 90))
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A new empty database on the session's server (its password: `pg_server.password`)."""
    return pg_server.create_database(f"t{next(_names)}")


@pytest.fixture
def account() -> Account:
    return Account.generate({"ZUSD": "100000", "XXBT": "2", "XETH": "10"}, futures_balances={"USD": "50000"})


@pytest.fixture
def sim(account: Account) -> Iterator[Simulator]:
    simulator = Simulator(SimConfig(accounts=[account], prices={"XBTUSD": "69000", "ETHUSD": "2600"},
                                    tick_interval=0, heartbeat_interval=0.5))
    with simulator.running("127.0.0.1", 0):
        yield simulator


@pytest.fixture
def e2e(tmp_path, sim, account) -> E2E:
    return E2E(tmp_path, sim, account)
