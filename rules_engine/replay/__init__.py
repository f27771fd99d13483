"""Offline runs of the engine core: rule tests and replays share one loop.

    from rules_engine.replay import OfflineRunner, open_data, run_replay

- `runner.OfflineRunner`: the loop (timers, deadlines, inputs, paper fills fed back);
- `outcomes`: what each rule did, read from the core's trace (fires, blocks and why);
- `data`: recorded market data (Kraken OHLCVT/OHLC CSV, REST OHLC JSON, WebSocket JSONL) as ticks;
- `replay.run_replay` with `backtest` (the accounts), `report` (text, Markdown, JSON) and
  `chart` (PNG, the `chart` extra).
"""

from rules_engine.replay.data import DataError, DataFile, candle_path, candle_ticks, merged_ticks, open_data
from rules_engine.replay.outcomes import Block, FillRecord, OrderEnd, Outcome
from rules_engine.replay.replay import ReplayResult, run_replay
from rules_engine.replay.runner import OfflineRunner

__all__ = [
    "Block",
    "DataError",
    "DataFile",
    "FillRecord",
    "OrderEnd",
    "OfflineRunner",
    "Outcome",
    "ReplayResult",
    "candle_path",
    "candle_ticks",
    "merged_ticks",
    "open_data",
    "run_replay",
]
