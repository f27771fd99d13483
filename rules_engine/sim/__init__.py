"""A Kraken-compatible exchange simulator (see docs/simulator.md).

    from rules_engine.sim import Simulator, SimConfig, Account
    sim = Simulator(SimConfig(accounts=[Account("k1", secret_b64, {"ZUSD": "10000"})]))
    with sim.running() as endpoints:
        ...

`PaperExchange` (`rules_engine.paper`) is the pure spot matcher and wallet underneath; the
engine's dry-run paper wallet uses the same package. Nothing in the engine imports `sim`.
"""

from rules_engine.paper.errors import ExchangeError, FuturesError
from rules_engine.paper.exchange import Fill, PaperExchange
from rules_engine.paper.fees import FeeRate, FeeSchedule
from rules_engine.paper.orders import CloseSpec, Offset, Order, OrderRequest
from rules_engine.sim.config import Account, SimConfig, load_config
from rules_engine.sim.server import Simulator
from rules_engine.sim.spot_api import SpotApi

__all__ = [
    "Account",
    "CloseSpec",
    "FeeRate",
    "FeeSchedule",
    "Fill",
    "FuturesError",
    "ExchangeError",
    "Offset",
    "Order",
    "OrderRequest",
    "PaperExchange",
    "SimConfig",
    "Simulator",
    "SpotApi",
    "load_config",
]
