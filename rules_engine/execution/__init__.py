"""Executors: the core's intents turned into Kraken requests (or paper fills), and their
results back into events. See docs/modes-and-execution.md.

    executor = build_executor(config, cli_live=args.live, store=store)   # mode gate first
    dispatcher = Dispatcher(executor, store, audit, mode=config.mode, rule_hashes=hashes)
    for report in dispatcher.recover(): feed(report.result, *report.events)
    report = dispatcher.dispatch(intent)                                   # worker thread
    feed(report.result, *report.events)
"""

from rules_engine.execution.balance_cache import BalanceCache
from rules_engine.execution.base import Executor
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.dry_run import DryRunExecutor
from rules_engine.execution.factory import build_executor, check_key_free_here, load_credentials
from rules_engine.execution.live import LiveExecutor
from rules_engine.execution.modes import LiveModeRefused, check_live_allowed
from rules_engine.execution.paper import PaperExecutor
from rules_engine.execution.report import ExecutionReport
from rules_engine.execution.validate import ValidateExecutor

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
    "check_key_free_here",
    "check_live_allowed",
    "load_credentials",
]
