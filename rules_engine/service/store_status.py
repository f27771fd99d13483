"""What an engine on the PostgreSQL store adds to its status page, `/api/status` and `/readyz`:
the cluster (every key of the store, as `rules-engine cluster status` shows it), and, while a
standby (`store: {standby: true}`) waits for its key, who holds the key.

    status = StoreStatus.for_service(service)     # None on the state dir
    await status.refresh()                        # before a status document is built (cached ~1 s)
    doc = status.decorate(service.visibility.status())
    service.visibility.readiness.add_check("standby", status.standby_problem)

While standing by, the HTTP server answers from the engine's start (`standby_http`):
`/healthz` 200 (alive), `/readyz` 503 with the problem `standby` naming the key's holder, the
status page says so. The holder is read on a thread every `poll_every` seconds, so a probe never
waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from rules_engine.pgstore.connection import StoreSettings
from rules_engine.pgstore.lease import Lease, LeaseSession
from rules_engine.secret_reader import SecretError
from rules_engine.service.cluster_report import ClusterView
from rules_engine.state.store import StateStoreError

if TYPE_CHECKING:
    from rules_engine.service.app import EngineService

log = logging.getLogger("rules_engine.service")

STANDBY = "standby"
"""The readiness problem of an engine waiting for its key."""


class StoreStatus:
    """See the module."""

    def __init__(self, service: EngineService, settings: StoreSettings, *, standby: bool,
                 poll_every: float = 1.0) -> None:
        self.service = service
        self.settings = settings
        self.standby = standby
        self.poll_every = poll_every
        self.cluster = ClusterView(settings, expected={settings.key_id})
        self.holder: Lease | None = None  # the key's lease as last read while standing by
        self.holder_error: str | None = None
        self.read_once = False

    @classmethod
    def for_service(cls, service: EngineService) -> StoreStatus | None:
        store = service.config.store
        if store is None:
            return None
        try:
            settings = StoreSettings.parse(store.url, key_id=store.key, password_env=store.password_env,
                                           environ=service.environ)
        except (ValueError, SecretError):
            return None  # opening the store fails next, with the reason
        return cls(service, settings, standby=store.standby)

    def standing_by(self) -> bool:
        """A standby that does not hold its key (yet)."""
        return self.standby and self.service.cell is None and not self.service._stopping

    async def refresh(self) -> None:
        await self.cluster.refresh()

    def decorate(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The status document with `cluster` (the last report read) and, while standing by, `standby`."""
        if self.cluster.report is not None:
            doc["cluster"] = self.cluster.report
        if self.standing_by():
            doc["standby"] = self.describe()
            if doc.get("health") == "unhealthy":
                doc["health"] = STANDBY
        return doc

    def describe(self) -> dict[str, Any]:
        lease = self.holder
        out: dict[str, Any] = {"key": self.settings.key_id, "holder": None, "epoch": None}
        if lease is not None:
            out.update(holder=lease.holder, epoch=lease.epoch, expires_at=lease.expires_at.isoformat())
        if self.holder_error is not None:
            out["error"] = self.holder_error
        return out

    def standby_problem(self) -> str | None:
        """For /readyz: why a standby is not ready (None once it holds its key)."""
        if not self.standing_by():
            return None
        lease = self.holder
        if self.holder_error is not None:
            who = f"its holder cannot be read ({self.holder_error})"
        elif lease is None:
            who = "no engine has held it yet" if self.read_once else "its holder is being read"
        else:
            who = f"it is held by {lease.holder} (epoch {lease.epoch})"
        return (f"standby: this engine waits for key {self.settings.key_id}'s lease and takes the key over when "
                f"it lapses; {who}")

    async def watch_holder(self) -> None:
        """While standing by: read the key's lease every `poll_every` seconds (on a thread)."""
        session = LeaseSession(self.settings, holder="status")
        try:
            while self.standing_by():
                try:
                    self.holder = await asyncio.to_thread(session.current)
                    self.holder_error = None
                except StateStoreError as exc:
                    self.holder_error = str(exc)
                self.read_once = True
                await asyncio.sleep(self.poll_every)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(session.close)
