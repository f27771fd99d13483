"""Executors: the core's intents turned into Kraken requests (or paper fills), and their
results back into events. See docs/modes-and-execution.md.

    executor = build_executor(config, cli_live=args.live, store=store)   # mode gate first
    dispatcher = Dispatcher(executor, store, audit, mode=config.mode, rule_hashes=hashes)
    for report in dispatcher.recover(): feed(report.result, *report.events)
    report = dispatcher.dispatch(intent)                                   # worker thread
    feed(report.result, *report.events)
"""

from rules_engine.service.executors.balance_cache import BalanceCache
from rules_engine.service.executors.base import Executor
from rules_engine.service.executors.dispatcher import Dispatcher
from rules_engine.service.executors.dry_run import DryRunExecutor
from rules_engine.service.executors.factory import build_executor, load_credentials
from rules_engine.service.executors.live import LiveExecutor
from rules_engine.service.executors.modes import LiveModeRefused, check_live_allowed
from rules_engine.service.executors.paper import PaperExecutor
from rules_engine.service.executors.report import ExecutionReport
from rules_engine.service.executors.validate import ValidateExecutor

__all__ = [
    "BalanceCache",
    "Dispatcher",
    "DryRunExecutor",
    "ExecutionReport",
    "Executor",
    "LiveExecutor",
    "LiveModeRefused",
    "PaperExecutor",
    "ValidateExecutor",
    "build_executor",
    "check_live_allowed",
    "load_credentials",
]
