"""What a worker (`rules-engine worker`) shows of itself over HTTP, and its kill switch.

    GET  /                      the status page (`worker_page`): every cell, the shared feeds, the cluster
    GET  /api/status            the same as JSON
    GET  /kill[?key=K]          the kill switch of every cell, or of cell K      (bearer token)
    POST /kill[?key=K]          engage it: every cell, or cell K                (bearer token)
    POST /kill/clear[?key=K]    clear it                                         (bearer token)

The kill routes answer `{"ok": true, "cells": {KEY: state}}` (with `?key=K` also
`"kill_switch": state`, the shape of the engine's `/kill`).

Per cell: its key and the API key's fingerprint (never the key or its secret), its state
(holding its key, standby, starting, failed), epoch, lease age and holder (the database's
clock), last decision, open orders and actions in flight, signal deliveries and their lag,
its kill switch, and why it is not ready. Worker-wide: the shared feeds, uptime, readiness,
and the cluster of each store its cells use (`cluster_report`: every key, degraded ones
marked), read at most once a second on a thread.

The kill switch is each cell's own (the `KILL` file in its state dir, as `rules-engine run`'s,
so it survives restarts and an engine that takes the key later obeys it from its first
moment). `POST /kill` engages every cell's; `?key=K` one cell's. The token is the worker's
(`kill_switch.token_env` / `token_file` in the worker config: every cell), or a cell's own
engine config token (that cell only). A cell holding its key engages at once and records the
change in its key's audit chain (`kill_switch`); a cell standing by cannot write its key's chain
(the key's holder owns it): its kill file is written, and the cell obeys it from the moment it
takes the key, recording it there then (`blocked`, kill switch engaged, with the reason).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rules_engine import __version__
from rules_engine.kraken.credentials import key_fingerprint
from rules_engine.pgstore.connection import StoreSettings
from rules_engine.secret_reader import SecretError
from rules_engine.service.backend import holder_name
from rules_engine.service.cluster_report import ClusterView
from rules_engine.service.killswitch import (
    KillFileState,
    KillSwitchError,
    KillSwitchFile,
    bearer_matches,
    kill_file,
    read_engage_request,
    read_kill_file,
    unauthorized,
    write_kill_file,
)
from rules_engine.service.startup import admin_token, kill_token
from rules_engine.service.status_report import overall_health
from rules_engine.service.worker_page import render_worker_live, render_worker_page

if TYPE_CHECKING:
    from rules_engine.service.worker import Cell, Worker

log = logging.getLogger("rules_engine.worker")

_NO_STORE = {"Cache-Control": "no-store"}


class WorkerStatus:
    """See the module. Made by the worker at its start (StartupError: a token file cannot be read)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.environ: Mapping[str, str] = os.environ if worker.environ is None else worker.environ
        self.started_at = time.time()
        self.token = self._worker_token()
        self.cell_tokens = {key: kill_token(cell.spec.config, self.environ) for key, cell in worker.cells.items()}
        self.fingerprints = {key: self._fingerprint(cell) for key, cell in worker.cells.items()}
        self.views: dict[str, ClusterView] = {}  # by store shown: one per store the cells use
        self._store_of: dict[str, str] = {}  # cell key -> store shown
        for key, cell in worker.cells.items():
            store = cell.spec.config.store
            assert store is not None  # the worker config requires it
            try:
                settings = StoreSettings.parse(store.url, password_env=store.password_env, environ=self.environ)
            except (ValueError, SecretError):
                continue  # the cell's engine reports it when it starts
            shown = settings.shown.rsplit(" (key", 1)[0]
            keys = [k for k, c in worker.cells.items() if c.spec.config.store is not None
                    and (c.spec.config.store.url, c.spec.config.store.password_env) == (store.url, store.password_env)]
            self.views.setdefault(shown, ClusterView(settings, expected=keys))
            self._store_of[key] = shown

    @property
    def kill_enabled(self) -> bool:
        return self.token is not None or any(t is not None for t in self.cell_tokens.values())

    def _worker_token(self) -> str | None:
        config = self.worker.config
        return admin_token(config.kill_token_env, config.kill_token_file, self.environ,
                           "no worker admin token (%s); POST /kill takes the cells' own tokens only")

    def _fingerprint(self, cell: Cell) -> str | None:
        api_key = self.environ.get(cell.spec.config.api_key_env)
        return key_fingerprint(api_key) if api_key else None

    # ------------------------------------------------------------------ the document

    async def refresh(self) -> None:
        await asyncio.gather(*(view.refresh() for view in self.views.values()))

    def document(self) -> dict[str, Any]:
        """The status document of the worker (what `/api/status` returns)."""
        worker = self.worker
        now = time.time()
        by_store = {shown: {row["key"]: row for row in (view.report or {}).get("keys", [])}
                    for shown, view in self.views.items()}
        rows = {key: by_store[shown][key] for key, shown in self._store_of.items() if key in by_store[shown]}
        readiness = worker.readyz()
        cells = [self.cell_document(cell, rows.get(key), now) for key, cell in worker.cells.items()]
        return {
            "kind": "worker",
            "running": True,
            "health": overall_health(not worker._stopping, readiness),
            "version": __version__,
            "worker": holder_name(),
            "config": worker.config.file,
            "time": now,
            "uptime": round(now - self.started_at, 3),
            "readiness": {"status": readiness["status"], "ready": readiness["ready"]},
            "holding": worker.holding(),
            "cells": cells,
            "feeds": worker.feeds.feeds.health(now),
            "clusters": [view.report for view in self.views.values() if view.report is not None],
        }

    def cell_document(self, cell: Cell, row: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
        service = cell.service
        holding = cell.state == "holding" and service is not None
        lease = (row or {}).get("lease") or {}
        out: dict[str, Any] = {
            "key": cell.spec.key,
            "fingerprint": self.fingerprints.get(cell.spec.key),
            "state": cell.state,
            "mode": cell.spec.config.mode,
            "takeovers": cell.takeovers,
            "epoch": service.backend.get("epoch") if holding and service is not None else None,
            "holder": (row or {}).get("holder"),
            "holder_epoch": (row or {}).get("epoch"),
            "lease_age": lease.get("age"),
            "lease_expires_in": lease.get("expires_in"),
            "deliveries": (row or {}).get("deliveries"),
            "oldest_waiting": (row or {}).get("oldest_waiting"),
            "lag": (row or {}).get("lag"),
            "kill_switch": self._switch_state(cell).to_json(),
            "last_decision": None,
            "open_orders": None,
            "in_flight": None,
            "readiness": None,
        }
        if holding and service is not None:
            out["last_decision"] = _last_decision(service)
            out["open_orders"] = len(service.engine.snapshot().get("orders") or []) if service.engine else 0
            out["in_flight"] = service._lane.jobs if service._lane is not None else 0
            out["readiness"] = service.visibility.readyz()
        out["why_not_ready"] = self._why_not_ready(cell, out)
        return out

    def _why_not_ready(self, cell: Cell, out: Mapping[str, Any]) -> str | None:
        if cell.state == "standby":
            holder = out.get("holder")
            return ("standby: waiting for the key's lease" +
                    (f" (held by {holder}, epoch {out.get('holder_epoch')})" if holder else ""))
        if cell.state in ("failed", "starting", "stopped"):
            return cell.problem or cell.state
        readiness = out.get("readiness") or {}
        problems = [f"{p['name']}: {p['reason']}" for p in readiness.get("problems", [])]
        return "; ".join(problems) or None

    def _switch_state(self, cell: Cell) -> KillFileState:
        switch = cell.service.kill_switch if cell.service is not None else None
        if switch is not None:
            return switch.state
        return read_kill_file(kill_file(cell.spec.state_dir)) or KillFileState(False)

    # ------------------------------------------------------------------ the kill switch

    def engage(self, keys: Iterable[str], reason: str, cancel_all: bool, source: str) -> dict[str, Any]:
        states = {}
        for key in keys:
            cell = self.worker.cells[key]
            switch = cell.service.kill_switch if cell.service is not None else None
            if switch is not None:  # its engine runs: engaged now, audited in its key's chain
                states[key] = switch.engage(reason, cancel_all, source).to_json()
            else:  # standing by: its kill file, obeyed (and audited) from the moment it takes the key
                state = KillFileState(True, reason, cancel_all, source, time.time())
                write_kill_file(kill_file(cell.spec.state_dir), state)
                states[key] = state.to_json()
            log.warning("kill switch of cell %s engaged over HTTP (%s): %s", key, source, reason)
        return states

    def clear(self, keys: Iterable[str], source: str) -> dict[str, Any]:
        states = {}
        for key in keys:
            cell = self.worker.cells[key]
            switch = cell.service.kill_switch if cell.service is not None else None
            if switch is None:
                switch = KillSwitchFile(kill_file(cell.spec.state_dir))
            states[key] = switch.clear(source).to_json()
            log.warning("kill switch of cell %s cleared over HTTP (%s)", key, source)
        return states


def add_worker_routes(app: web.Application, status: WorkerStatus) -> None:
    """The status page, `/api/status` and the kill switch routes (see the module)."""

    async def page(request: web.Request) -> web.Response:
        await status.refresh()
        doc = status.document()
        body = render_worker_live(doc) if request.query.get("part") == "live" else \
            render_worker_page(doc, kill_enabled=status.kill_enabled)
        return web.Response(text=body, content_type="text/html", headers=_NO_STORE)

    async def api_status(request: web.Request) -> web.Response:
        await status.refresh()
        return web.json_response(status.document(), headers=_NO_STORE, dumps=_dumps)

    def allowed(request: web.Request) -> list[str] | web.Response:
        """The cells the request names (every cell without ?key=) if its token may act on them."""
        key = request.query.get("key")
        cells = status.worker.cells
        if key is not None and key not in cells:
            return web.json_response({"ok": False, "error": "unknown_key", "reason": f"no cell with key {key!r}"},
                                     status=404)
        if not status.kill_enabled:
            return web.json_response(
                {"ok": False, "error": "disabled",
                 "reason": "no admin token is configured (kill_switch.token_env / token_file in the worker config "
                           "or a cell's engine config); use `rules-engine kill --state-dir` on a cell's state dir"},
                status=503)
        if status.token is not None and bearer_matches(request, status.token):
            return [key] if key is not None else list(cells)
        cell_token = status.cell_tokens.get(key) if key is not None else None
        if key is not None and cell_token is not None and bearer_matches(request, cell_token):
            return [key]  # a cell's own token: that cell only
        return unauthorized(request)

    def answer(request: web.Request, keys: list[str], states: Mapping[str, Any] | None = None,
               warning: str | None = None) -> web.Response:
        cells = status.worker.cells
        shown = dict(states or {})
        for key in keys:
            shown.setdefault(key, status._switch_state(cells[key]).to_json())
        body: dict[str, Any] = {"ok": True, "cells": {key: shown[key] for key in keys}}
        if request.query.get("key") is not None:  # one cell: also in the engine's shape (`rules-engine kill --url`)
            body["kill_switch"] = shown[keys[0]]
        if warning is not None:  # printed by `rules-engine kill --url`
            body["warning"] = warning
        return web.json_response(body, headers=_NO_STORE)

    async def get_state(request: web.Request) -> web.Response:
        keys = allowed(request)
        return keys if isinstance(keys, web.Response) else answer(request, keys)

    async def engage(request: web.Request) -> web.Response:
        keys = allowed(request)
        if isinstance(keys, web.Response):
            return keys
        asked = await read_engage_request(request)
        if isinstance(asked, web.Response):
            return asked
        try:
            states = status.engage(keys, *asked)
        except OSError as exc:
            return web.json_response({"ok": False, "error": "engage_failed", "reason": str(exc)}, status=500)
        elsewhere = [key for key in keys if status.worker.cells[key].state != "holding"]
        warning = None if not elsewhere else (  # each switch is its process's: the key's holder trades on
            f"cell {', '.join(elsewhere)} does not hold its key here: its holder trades on until its own kill switch "
            "is engaged; engage it there too (`rules-engine cluster status` names the holder)")
        return answer(request, keys, states, warning)

    async def clear(request: web.Request) -> web.Response:
        keys = allowed(request)
        if isinstance(keys, web.Response):
            return keys
        try:
            return answer(request, keys, status.clear(keys, f"http {request.remote}"))
        except KillSwitchError as exc:
            return web.json_response({"ok": False, "error": "clear_failed", "reason": str(exc)}, status=500)

    app.router.add_get("/", page)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/kill", get_state)
    app.router.add_post("/kill", engage)
    app.router.add_post("/kill/clear", clear)


def _last_decision(service: Any) -> dict[str, Any] | None:
    """The latest fire of any of the cell's rules (time, decision id, outcome)."""
    engine = service.engine
    if engine is None:
        return None
    fires = [f for f in (service.visibility.book.rule(rule.id)["last_fire"] for rule in engine.ruleset.rules) if f]
    return max(fires, key=lambda f: float(f.get("time") or 0), default=None)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
