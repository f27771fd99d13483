"""The cluster as `rules-engine cluster status` and the status pages show it: every key of a
PostgreSQL store (lease holder, epoch, lease age and expiry by the database's clock,
deliveries and their lag; `pgstore.fanout.cluster_overview`), which engine holds which keys,
and the problems that make the cluster degraded.

    report = status_report(store_name(settings), cluster_overview(settings), max_wait=5.0)
    view = ClusterView(settings, expected={"acct-1", "acct-2"})   # for a status page
    await view.refresh()              # at most once per `max_age` seconds, off the event loop
    view.report                       # the last report (or {"error": ...} if the store could not be read)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from rules_engine.pgstore.connection import StoreSettings
from rules_engine.pgstore.fanout import KeyOverview, cluster_overview
from rules_engine.state.store import StateStoreError

MAX_WAIT = 5.0
"""Seconds a delivery may wait before the cluster counts as degraded (`cluster status --max-wait`)."""
MAX_AGE = 1.0
"""A status page reads the cluster at most this often, however often it is asked."""


def store_name(settings: StoreSettings) -> str:
    """The store as shown (no password, no key)."""
    return settings.shown.rsplit(" (key", 1)[0]


def status_report(store: str, keys: list[KeyOverview], max_wait: float,
                  expected: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The status as JSON: per key, totals, which engine (worker) holds which keys, and the
    problems that make it degraded. `expected`: keys configured in a worker (must be held)."""
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    holders: dict[str, list[str]] = {}
    seen = {key.key_id for key in keys}
    keys = keys + [KeyOverview(key, None, None, None, None, None, 0, 0, 0, 0, None, None, None)
                   for key in sorted(expected - seen)]
    for key in sorted(keys, key=lambda k: k.key_id):
        found = len(problems)
        waiting = key.pending + key.taken
        has_deliveries = waiting + key.done + key.expired > 0
        expired = key.expires_in is not None and key.expires_in < 0
        if key.holder is not None and not expired:
            holders.setdefault(key.holder, []).append(key.key_id)
        why = "has deliveries" if has_deliveries else "is configured in a worker"
        if key.holder is None and (waiting or key.key_id in expected):
            problems.append(f"key {key.key_id}: {f'{waiting} deliveries' if waiting else why} but no engine has "
                            "ever held the key")
        elif expired and (has_deliveries or key.key_id in expected):
            problems.append(f"key {key.key_id}: {why} but its lease expired {-(key.expires_in or 0):.1f} s ago "
                            f"(last held by {key.holder}, epoch {key.epoch}): no engine trades it")
        elif key.oldest_waiting is not None and key.oldest_waiting > max_wait:
            problems.append(f"key {key.key_id}: a delivery has waited {key.oldest_waiting:.1f} s (more than "
                            f"{max_wait:g} s)")
        rows.append({
            "key": key.key_id, "holder": key.holder, "epoch": key.epoch,
            "lease": None if key.holder is None else {
                "acquired_at": key.acquired_at.isoformat() if key.acquired_at else None, "age": key.lease_age,
                "expires_in": key.expires_in, "expired": key.expires_in is not None and key.expires_in < 0},
            "deliveries": {"pending": key.pending, "taken": key.taken, "done": key.done, "expired": key.expired},
            "oldest_waiting": key.oldest_waiting, "lag": {"p50": key.lag_p50, "max": key.lag_max},
            "problem": problems[found] if len(problems) > found else None,
        })
    totals = {name: sum(row["deliveries"][name] for row in rows) for name in ("pending", "taken", "done", "expired")}
    return {"ok": not problems, "store": store, "keys": rows, "totals": totals,
            "held": sum(len(held) for held in holders.values()), "holders": holders, "problems": problems}


class ClusterView:
    """The cluster report of one store for a status page: read on demand, at most once per
    `max_age` seconds, on a thread (a store out of reach never holds up the event loop)."""

    def __init__(self, settings: StoreSettings, *, expected: Iterable[str] = (), max_wait: float = MAX_WAIT,
                 max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.expected = frozenset(expected)
        self.max_wait = max_wait
        self.max_age = max_age
        self._clock = clock
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self.report: dict[str, Any] | None = None

    async def refresh(self) -> dict[str, Any]:
        async with self._lock:
            now = self._clock()
            if self.report is None or self._read_at is None or now - self._read_at >= self.max_age:
                self.report = await asyncio.to_thread(self.read)
                self._read_at = self._clock()
            return self.report

    def read(self) -> dict[str, Any]:
        """The report now (blocking); `{"ok": False, "error": ...}` when the store cannot be read."""
        name = store_name(self.settings)
        try:
            keys = cluster_overview(self.settings)
        except StateStoreError as exc:
            return {"ok": False, "store": name, "error": str(exc), "keys": [], "problems": [str(exc)]}
        return status_report(name, keys, self.max_wait, self.expected)
