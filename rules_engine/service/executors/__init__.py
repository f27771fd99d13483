"""Executors: the core's intents turned into Kraken requests (or paper fills), and their
results back into events. See docs/modes-and-execution.md."""

from rules_engine.service.executors.paper import PaperExecutor
from rules_engine.service.executors.report import ExecutionReport

__all__ = ["ExecutionReport", "PaperExecutor"]
