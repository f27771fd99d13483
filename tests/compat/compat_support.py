"""Shared pieces of the compatibility suite (a module of its own, not conftest, so test
modules import it by a unique name)."""

import base64
from decimal import Decimal

from rules_engine.sim import Account, SimConfig, Simulator

KEY = "compat-key"
SECRET = base64.b64encode(bytes(range(7, 71))).decode()
BALANCES = {"ZUSD": "100000", "XXBT": "2", "XETH": "10"}


def make_sim() -> Simulator:
    sim = Simulator(SimConfig(accounts=[Account(KEY, SECRET, dict(BALANCES))], seed=11, tick_interval=0,
                              heartbeat_interval=0.2))
    sim.set_price("XBTUSD", Decimal("60000"), volume=Decimal("0.25"))
    sim.set_price("XBTUSD", Decimal("60010"), volume=Decimal("0.1"))
    return sim
