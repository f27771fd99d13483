"""A Kraken-compatible exchange simulator (see docs/simulator.md).

    from rules_engine.sim import Simulator, SimConfig, Account
    sim = Simulator(SimConfig(accounts=[Account("k1", secret_b64, {"ZUSD": "10000"})]))
    with sim.running() as endpoints:
        ...

`PaperExchange` (in `matching`) is the pure spot matcher and wallet underneath, reusable
on its own (the engine's dry-run paper wallet).
"""

from rules_engine.sim.config import Account, SimConfig, load_config
from rules_engine.sim.errors import FuturesError, KrakenError
from rules_engine.sim.fees import FeeRate, FeeSchedule
from rules_engine.sim.matching import Fill, PaperExchange
from rules_engine.sim.orders import CloseSpec, Offset, Order, OrderRequest
from rules_engine.sim.server import Simulator
from rules_engine.sim.spot_api import SpotApi

__all__ = [
    "Account",
    "CloseSpec",
    "FeeRate",
    "FeeSchedule",
    "Fill",
    "FuturesError",
    "KrakenError",
    "Offset",
    "Order",
    "OrderRequest",
    "PaperExchange",
    "SimConfig",
    "Simulator",
    "SpotApi",
    "load_config",
]
