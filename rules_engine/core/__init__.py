"""The pure engine core: events in, intents plus a trace of why out.

No I/O, no clock reads, no asyncio: adapters feed `rules_engine.core.events` objects to
`Engine.handle` and execute the intents it returns. See docs/engine-core.md.
"""

from rules_engine.core.engine import Engine
from rules_engine.core.env import CORE_NAMES, StateNotReady
from rules_engine.core.ids import client_order_id
from rules_engine.core.intents import (
    AnyIntent,
    CancelAll,
    CancelOrder,
    DeadManSwitch,
    FuturesCancelOrder,
    FuturesSendOrder,
    Intent,
    Log,
    Notify,
    PlaceOrder,
    ReadBalance,
)
from rules_engine.core.risk import RiskLimits
from rules_engine.core.state import EngineState, RuleStatus
from rules_engine.core.trace import Decision, TraceRecord

__all__ = [
    "AnyIntent",
    "CORE_NAMES",
    "CancelAll",
    "CancelOrder",
    "DeadManSwitch",
    "Decision",
    "Engine",
    "EngineState",
    "FuturesCancelOrder",
    "FuturesSendOrder",
    "Intent",
    "Log",
    "Notify",
    "PlaceOrder",
    "ReadBalance",
    "RiskLimits",
    "RuleStatus",
    "StateNotReady",
    "TraceRecord",
    "client_order_id",
]
