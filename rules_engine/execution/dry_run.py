"""Dry-run: every intent is decided and audited as "would send", against a paper wallet
that survives restarts.

The wallet is a `PaperExecutor` (the simulator's matcher): limit orders rest until the
price reaches them. Futures orders go to its paper Futures account (`PaperFutures`, the
simulator's Futures matcher), whose collateral starts from `paper_wallet.futures_balances`.
Its snapshot is saved to the state store (`save_paper_wallet`) after
every intent and after every tick that changed an order, in the same SQLite file as the
decisions; a restart continues with the same balances and resting orders. The first
start creates it from the engine config's `paper_wallet.balances`.

With `balance_reader` (a function returning Kraken's Balance result, e.g. a read-only
`SpotClient(...).balance`), `check_balance` reads the real account instead of the paper
wallet; orders still go to the paper wallet only. Nothing but Balance is ever sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.events import Event, OrderUpdate, Tick
from rules_engine.execution.account import SYNC_ID, account_report
from rules_engine.execution.base import run_local
from rules_engine.execution.paper import PaperExecutor
from rules_engine.execution.paper_futures import PaperFutures
from rules_engine.execution.report import ExecutionReport, failure, ok
from rules_engine.kraken.order_codec import intent_request
from rules_engine.pairs import PairRegistry
from rules_engine.paper.exchange import PaperExchange
from rules_engine.state.protocol import EngineStore

log = logging.getLogger(__name__)

KEEP_CLOSED_ORDERS = 1000
"""Closed paper orders kept in the wallet (older ones are dropped with their trades)."""


class DryRunExecutor:
    """Paper trading with a persisted wallet; thread-safe (one lock around the wallet)."""

    mode = "dry-run"

    def __init__(
        self,
        paper: PaperExecutor,
        store: EngineStore,
        *,
        balance_reader: Callable[[], Mapping[str, Any]] | None = None,
        keep_closed: int = KEEP_CLOSED_ORDERS,
    ):
        self.paper = paper
        self.store = store
        self.balance_reader = balance_reader
        self.keep_closed = keep_closed
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        store: EngineStore,
        balances: Mapping[str, Decimal | str],
        *,
        pairs: PairRegistry | None = None,
        balance_reader: Callable[[], Mapping[str, Any]] | None = None,
        futures_balances: Mapping[str, Decimal | str] | None = None,
    ) -> DryRunExecutor:
        """The wallet saved in `store`, or a new one holding `balances` and, on its paper
        Futures account, the collateral `futures_balances` (saved at once)."""
        saved = store.load_paper_wallet()
        if saved is not None:
            paper = PaperExecutor.from_snapshot(saved, pairs)
            if balances:  # an edited paper_wallet would otherwise be ignored without a word
                held = ", ".join(f"{asset} {amount}" for asset, amount in paper.balances().items()) or "empty"
                log.info("the paper wallet saved in the state dir carries on (%s); paper_wallet in the engine "
                         "config only fills a new one: to start again from it, stop the engine and remove "
                         "engine.sqlite (with its -wal and -shm) from the state dir", held)
        else:
            exchange = PaperExchange(pairs)
            exchange.set_balances("paper", balances)
            paper = PaperExecutor(exchange)
            if not any(Decimal(str(amount)) for amount in balances.values()):
                log.warning("the dry run's new paper wallet is empty (no paper_wallet.balances in the engine "
                            "config): its orders will be refused with EOrder:Insufficient funds")
        if paper.futures is None:  # a new wallet, or one saved before Futures were simulated
            paper.futures = PaperFutures.create(futures_balances or {}, pairs)
        executor = cls(paper, store, balance_reader=balance_reader)
        if saved is None or "futures" not in saved:
            executor._save()
        return executor

    def execute(self, intent: it.Intent, now: float) -> ExecutionReport:
        if isinstance(intent, (it.Log, it.Notify)):
            return run_local(intent, now)
        if isinstance(intent, it.ReadBalance) and intent.market == "spot" and self.balance_reader is not None:
            return self._real_balance(intent, now, self.balance_reader)
        with self._lock:
            report = self.paper.execute(intent, now)
            if not isinstance(intent, it.ReadBalance):
                self._save()
        return report

    def observe(self, tick: Tick) -> list[Event]:
        with self._lock:
            events = self.paper.observe(tick)
            if events:
                self._save()
        return events

    def advance(self, now: float) -> list[Event]:
        with self._lock:
            events = self.paper.advance(now)
            if events:
                self._save()
        return events

    def read_account(self, now: float) -> ExecutionReport:
        """The paper wallet (balances from the real account with `balance_reader`)."""
        with self._lock:
            report = self.paper.read_account(now)
        if self.balance_reader is None or not report.result.ok:
            return report
        return _with_real_balances(report, self.balance_reader, now)

    def reconcile(self, decision: Any, now: float | None = None) -> ExecutionReport:
        with self._lock:
            return self.paper.reconcile(decision, now)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.paper.snapshot()

    def close(self) -> None:
        with self._lock:
            self._save(final=True)

    def _save(self, final: bool = False) -> None:
        """Persist the wallet; a failure is logged (the next change saves it again). With a
        store that is not durable (replay, rule tests) only the final save is written."""
        if not final and not self.store.durable:
            return
        self.paper.prune(self.keep_closed)
        try:
            self.store.save_paper_wallet(self.paper.snapshot(self.keep_closed))
        except Exception as exc:
            log.error("cannot save the paper wallet: %s", exc)

    def _real_balance(self, intent: it.ReadBalance, now: float,
                      reader: Callable[[], Mapping[str, Any]]) -> ExecutionReport:
        """A read-only Balance call on the real account (really sent: not "would send")."""
        encoded = intent_request(intent)
        request = encoded.record() if encoded is not None else None
        try:
            balances = dict(reader())
        except Exception as exc:  # never raise: the error is the result
            result = failure(intent, now, exc)
            return ExecutionReport(result, request, {"error": [result.error]})
        return ExecutionReport(ok(intent, now, {"balances": balances}), request, {"result": balances, "real": True})


def _with_real_balances(report: ExecutionReport, reader: Callable[[], Mapping[str, Any]],
                        now: float) -> ExecutionReport:
    """The paper wallet's open orders with the real account's balances."""
    orders = [e for e in report.events if isinstance(e, OrderUpdate)]
    try:
        balances = dict(reader())
    except Exception as exc:  # never raise: the error is the result
        return ExecutionReport(failure(SYNC_ID, now, exc), report.request, {"error": [str(exc)]})
    return account_report(now, balances, orders, {"api": "spot", "method": "Balance", "params": {}},
                          {"result": {"balances": balances, "paper_open": [o.txid for o in orders]}, "real": True})
