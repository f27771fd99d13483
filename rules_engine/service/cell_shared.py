"""What a worker's key cells share besides the event loop and the public feed: the rules
compiled once per distinct rule set, the leases of every cell on a store (one thread, two
connections: `service.worker_leases`), the wake-ups for their signal deliveries (one
listening connection: `service.delivery_hub`), the store's connections (`pgstore.ConnectionPool`:
a cell holds one for a transaction only), Kraken's clock offset measured at a takeover
(`service.kraken_clock`), the gate their private feeds wait at (`service.quiet_gate`) and
those feeds' budget of connection attempts (`service.connect_budget`).
`EngineService(shared=...)` uses them; an engine of its own (`rules-engine run`) has none and
does everything itself."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rules_engine.config import EngineConfig
from rules_engine.execution.factory import load_credentials
from rules_engine.kraken.credentials import CredentialsError
from rules_engine.pgstore import ConnectionPool
from rules_engine.rules import LoadResult, load_rules
from rules_engine.service.connect_budget import ConnectBudget
from rules_engine.service.delivery_hub import DeliveryHub
from rules_engine.service.kraken_clock import SharedKrakenClock
from rules_engine.service.quiet_gate import QuietGate
from rules_engine.service.rule_watch import SharedSignatures, rule_files_signature
from rules_engine.service.worker_leases import WorkerLeases


class RuleCache:
    """`load_rules` once per distinct list of rule paths while their files are unchanged: the
    model is immutable, so every cell with the same rules shares one (the engines' state is
    their own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, ...], tuple[object, LoadResult]] = {}
        self._loading: dict[tuple[str, ...], threading.Lock] = {}
        self.loads = 0  # how many times rules were actually loaded (tests)

    def load(self, paths: Sequence[str | os.PathLike[str]]) -> LoadResult:
        files = [Path(p) for p in paths]
        key = tuple(os.path.abspath(p) for p in files)
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per rule set at a time; the others wait for it and share it
            signature = rule_files_signature(files)
            cached = self._loaded.get(key)
            if cached is not None and cached[0] == signature:
                return cached[1]
            result = load_rules(files)
            self.loads += 1
            self._loaded[key] = (signature, result)
            return result


@dataclass
class CellShared:
    """A worker's parts its cells use (see the module); None parts are the cell's own."""

    rules: RuleCache | None = None
    leases: WorkerLeases | None = None
    deliveries: DeliveryHub | None = None
    kraken_clock: SharedKrakenClock | None = None  # Kraken's clock offset, measured once for all (takeovers)
    pool: ConnectionPool | None = None  # the store's idle connections, taken by the cells' transactions
    rule_signatures: SharedSignatures | None = None  # the rule watchers' reads of the rule files, once for all
    quiet: QuietGate | None = None  # the private feed connects once the worker's takeovers are done
    connect_budget: ConnectBudget | None = None  # the private feeds' connection attempts, for all cells


def register_secrets(configs: Iterable[EngineConfig], environ: Mapping[str, str] | None) -> None:
    """Register every cell's Kraken credentials with the redactor before any cell starts: the
    redactor builds its pattern of every secret again at its first use after a new one, and
    cells registering theirs one by one while others already write records built it once per
    cell (most of a 300-cell worker's start-up). A cell's own start registers them again (no
    change then) and reports what is missing or unreadable."""
    for config in configs:
        for key_env, secret_env in ((config.api_key_env, config.api_secret_env),
                                    (config.futures_api_key_env, config.futures_api_secret_env)):
            try:
                load_credentials(key_env, secret_env, environ)
            except CredentialsError:
                pass
