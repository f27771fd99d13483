"""Fixtures for the end-to-end tests: a simulator on 127.0.0.1:0 (prices move only when a
test moves them) with one funded account, and an `E2E` world per test. `async def` tests
run in a fresh event loop each, bounded to 60 s."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from rules_engine.sim import Account, SimConfig, Simulator
from e2e_harness import E2E

START_PRICES = {"XBTUSD": "69000", "ETHUSD": "2600"}


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), 60))
    return True


@pytest.fixture
def account() -> Account:
    return Account.generate({"ZUSD": "100000", "XXBT": "2", "XETH": "10"}, futures_balances={"USD": "50000"})


@pytest.fixture
def sim(account: Account):
    simulator = Simulator(SimConfig(accounts=[account], prices=START_PRICES, tick_interval=0,
                                    heartbeat_interval=0.5))
    with simulator.running("127.0.0.1", 0):
        yield simulator


@pytest.fixture
def e2e(tmp_path, sim, account) -> E2E:
    return E2E(tmp_path, sim, account)
