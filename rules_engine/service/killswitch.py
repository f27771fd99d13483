"""The kill switch and Kraken's dead man's switch.

Kill switch
    One state, engaged or clear, kept in a file so it survives restarts: the file
    `<state_dir>/KILL` present means engaged, whatever it holds (a bare `touch` works; the
    engine writes JSON with the reason, who and when). Four ways to engage it, one state:
    the file itself (`rules-engine kill` writes it), `POST /kill` with a bearer token,
    SIGUSR1, and `KillSwitchFile.engage` in process. Every change, however it came, reaches
    the one `on_change(KillFileState)` callback, where the engine stops actions, cancels all
    open orders if asked, and audits. The engine calls `poll()` (or runs `watch()`) to
    notice changes made by other processes; it fails closed: a kill file it cannot read,
    or one it could not write, still counts as engaged.

Dead man's switch
    `DeadMansSwitchKeeper` calls Kraken's CancelAllOrdersAfter through an injected
    `refresh(timeout=...)` every `interval` (default 20 s, timeout 60 s, as Kraken
    recommends), so the orders of a crashed or hung engine are cancelled by Kraken. On a
    clean shutdown `stop()` disarms it with timeout 0, after the last refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from rules_engine.sleeping import interruptible_sleep

log = logging.getLogger(__name__)

KILL_FILE_NAME = "KILL"
STATE_DIR_ENV = "RULES_ENGINE_STATE_DIR"
MAX_REASON_LENGTH = 500
MIN_TOKEN_LENGTH = 16
_MAX_FILE_BYTES = 65536


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$RULES_ENGINE_STATE_DIR`, else `./state`."""
    return Path((os.environ if environ is None else environ).get(STATE_DIR_ENV, "state"))


def kill_file(state_dir: str | Path) -> Path:
    return Path(state_dir) / KILL_FILE_NAME


class KillSwitchError(Exception):
    """The kill switch could not be cleared (its file could not be removed)."""


@dataclass(frozen=True)
class KillFileState:
    """Engaged (with why, by whom, when, and whether to cancel every open order) or clear
    (with who cleared it and when)."""

    engaged: bool
    reason: str = ""
    cancel_all: bool = False
    source: str = ""
    time: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.time is not None:
            data["time_utc"] = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds")
        return data

    def describe(self) -> str:
        """One line for people: `ENGAGED since ... by ... (reason)` or `clear`."""
        when = f" since {self.to_json()['time_utc']}" if self.time is not None else ""
        if not self.engaged:
            return "clear" + (f" (cleared by {self.source}{when.replace(' since', ' at')})" if self.source else "")
        extra = ", cancel all open orders" if self.cancel_all else ""
        return f"ENGAGED{when} by {self.source or 'unknown'}: {self.reason or 'no reason given'}{extra}"


def read_kill_file(path: Path) -> KillFileState | None:
    """The state a kill file describes, or None if there is no file. Any file counts as
    engaged: unreadable or non-JSON content becomes the reason."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return KillFileState(True, f"kill file cannot be checked ({exc.strerror}); failing closed", source="file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = f"kill file present but unreadable ({exc.strerror})"
        return KillFileState(True, reason, source="file", time=stat.st_mtime)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        stamp = data.get("time")
        return KillFileState(
            engaged=True,
            reason=str(data.get("reason") or "kill file present")[:MAX_REASON_LENGTH],
            cancel_all=data.get("cancel_all") is True,
            source=str(data.get("source") or "file")[:200],
            time=float(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else stat.st_mtime,
        )
    text = raw.decode("utf-8", "replace").strip()
    return KillFileState(True, (text or "kill file present")[:MAX_REASON_LENGTH], source="file", time=stat.st_mtime)


def kill_reason(state_dir: str | Path) -> str | None:
    """Why the kill switch of `state_dir` is engaged now (its file), None while it is clear."""
    state = read_kill_file(kill_file(state_dir))
    return state.describe() if state is not None and state.engaged else None


def write_kill_file(path: Path, state: KillFileState) -> None:
    """Write the engaged state atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".KILL.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state.to_json(), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class KillSwitchFile:
    """The engaged/clear state behind `state_file`. `on_change(state)` is called on every
    engage, on a clear that changes something, and when `poll()` finds the file changed."""

    def __init__(
        self,
        state_file: str | Path,
        on_change: Callable[[KillFileState], None] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        in_engine: bool = True,
    ) -> None:
        self.path = Path(state_file)
        self.on_change = on_change
        self.in_engine = in_engine  # False: a command that only writes the file reports `persist_error` itself
        self._clock = clock
        self._state = read_kill_file(self.path) or KillFileState(False)
        self.persist_error: str | None = None

    @property
    def state(self) -> KillFileState:
        return self._state

    @property
    def engaged(self) -> bool:
        return self._state.engaged

    def engage(self, reason: str, cancel_all: bool = False, source: str = "api") -> KillFileState:
        """Engage now (or again, e.g. to add `cancel_all`). Never raises for I/O: if the
        file cannot be written the switch stays engaged in memory, `persist_error` says
        why, and `poll()` keeps retrying the write."""
        text = (reason or "no reason given")[:MAX_REASON_LENGTH]
        state = KillFileState(True, text, cancel_all, source, self._clock())
        self._state = state
        self._persist()
        self._notify(state)
        return state

    def clear(self, source: str = "api") -> KillFileState:
        """Clear the switch (remove the file). Raises KillSwitchError, staying engaged, if
        the file cannot be removed."""
        if not self._state.engaged and not self.path.exists():
            return self._state
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise KillSwitchError(f"cannot remove kill file {self.path}: {exc.strerror}") from None
        self.persist_error = None
        state = KillFileState(False, source=source, time=self._clock())
        self._state = state
        self._notify(state)
        return state

    def poll(self) -> KillFileState | None:
        """Re-read the file; return (and report) the new state if it changed, else None."""
        observed = read_kill_file(self.path)
        if observed is None:
            if not self._state.engaged:
                return None
            if self.persist_error is not None:
                self._persist()  # engaged in memory, never written: stay engaged, retry
                return None
            observed = KillFileState(False, source="file removed", time=self._clock())
        elif observed == self._state:
            return None
        self._state = observed
        self._notify(observed)
        return observed

    async def watch(self, interval: float = 1.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Poll every `interval` seconds until cancelled."""
        while True:
            self.poll()
            await sleep(interval)

    def _persist(self) -> None:
        try:
            write_kill_file(self.path, self._state)
            self.persist_error = None
        except OSError as exc:
            self.persist_error = f"cannot write kill file {self.path}: {exc.strerror or exc}"
            if self.in_engine:
                log.error("kill switch engaged in this process only: %s", self.persist_error)

    def _notify(self, state: KillFileState) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(state)
        except Exception:
            log.exception("kill switch on_change callback failed")


def install_signal_handler(
    loop: asyncio.AbstractEventLoop,
    switch: KillSwitchFile,
    cancel_all: bool = False,
    signum: int = signal.SIGUSR1,
) -> Callable[[], None]:
    """Engage `switch` when the process receives `signum` (SIGUSR1). Returns a remover."""
    name = signal.Signals(signum).name

    def handle() -> None:
        log.warning("%s received: engaging the kill switch", name)
        switch.engage(f"{name} received", cancel_all=cancel_all, source="signal")

    loop.add_signal_handler(signum, handle)

    def remove() -> None:
        loop.remove_signal_handler(signum)

    return remove


# ----------------------------------------------------------------------------- HTTP


def bearer_matches(request: web.Request, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def unauthorized(request: web.Request) -> web.Response:
    """401 for a kill switch request without the right token (logged, never the token)."""
    log.warning("kill switch %s %s refused: missing or wrong bearer token (from %s)",
                request.method, request.path_qs, request.remote)
    return web.json_response(
        {"ok": False, "error": "unauthorized", "reason": "send Authorization: Bearer <admin token>"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="rules-engine"'},
    )


async def read_engage_request(request: web.Request) -> tuple[str, bool, str] | web.Response:
    """(reason, cancel_all, source) of an engage request (optional JSON body `{"reason": str,
    "cancel_all": bool, "source": str}`), or the error response to send."""
    raw = b""
    async for chunk in request.content.iter_chunked(4096):
        raw += chunk
        if len(raw) > 8192:
            return _error(413, "body_too_large", "kill requests take at most 8192 bytes")
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return _error(400, "invalid_json", "body must be JSON: {\"reason\": ..., \"cancel_all\": ...}")
    if not isinstance(data, dict) or not isinstance(data.get("cancel_all", False), bool) or not all(
        isinstance(data.get(k, ""), str) for k in ("reason", "source")
    ):
        return _error(400, "invalid_request", "expected {\"reason\": str, \"cancel_all\": bool, \"source\": str}")
    source = f"http {request.remote}" + (f" ({data['source'][:100]})" if data.get("source") else "")
    return data.get("reason") or "engaged over HTTP", data.get("cancel_all", False), source


def add_kill_routes(app: web.Application, switch: KillSwitchFile, token: str, prefix: str = "/kill",
                    standing_by: Callable[[], str | None] | None = None) -> None:
    """`GET {prefix}` (state), `POST {prefix}` (engage; optional JSON body
    `{"reason": str, "cancel_all": bool, "source": str}`) and `POST {prefix}/clear`, each
    requiring `Authorization: Bearer <token>`. `standing_by()` (not None: the engine stands by
    for its key) makes an engaged switch's answer warn that the key's holder trades on."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the kill switch token must be at least {MIN_TOKEN_LENGTH} characters")

    def answer(status: int = 200) -> web.Response:
        body: dict[str, Any] = {"ok": True, "kill_switch": switch.state.to_json()}
        if switch.persist_error is not None:
            body["warning"] = "engaged in memory only: the kill file could not be written"
        elif switch.state.engaged and standing_by is not None and standing_by() is not None:
            body["warning"] = ("this engine stands by: the key's holder trades on until its own kill switch is "
                               "engaged; engage it there too (`rules-engine cluster status` names the holder)")
        return web.json_response(body, status=status)

    async def get_state(request: web.Request) -> web.Response:
        if not bearer_matches(request, token):
            return unauthorized(request)
        switch.poll()
        return answer()

    async def engage(request: web.Request) -> web.Response:
        if not bearer_matches(request, token):
            return unauthorized(request)
        asked = await read_engage_request(request)
        if isinstance(asked, web.Response):
            return asked
        switch.engage(*asked)
        return answer()

    async def clear(request: web.Request) -> web.Response:
        if not bearer_matches(request, token):
            return unauthorized(request)
        try:
            switch.clear(source=f"http {request.remote}")
        except KillSwitchError as exc:
            return _error(500, "clear_failed", str(exc))
        return answer()

    app.router.add_get(prefix, get_state)
    app.router.add_post(prefix, engage)
    app.router.add_post(prefix + "/clear", clear)


def _error(status: int, code: str, reason: str) -> web.Response:
    return web.json_response({"ok": False, "error": code, "reason": reason}, status=status)


# ----------------------------------------------------------------------------- dead man's switch


class DeadMansSwitchKeeper:
    """Keep Kraken's CancelAllOrdersAfter armed while the engine runs.

    `refresh(timeout=<int seconds>)` (async or sync) sends CancelAllOrdersAfter. It is
    called every `interval` seconds with `timeout`; after a failure, `on_failure(exc,
    consecutive_failures)` is told and the call is retried after `retry_interval`.
    `stop()` ends the loop and then, if anything was ever sent, sends `timeout=0`.
    """

    def __init__(
        self,
        refresh: Callable[..., Any],
        interval: float = 20.0,
        timeout: float = 60.0,
        retry_interval: float = 5.0,
        on_failure: Callable[[BaseException, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= timeout < 86400:
            raise ValueError("the dead man's switch timeout must be at least 1 s and under 86400 s (Kraken's limit)")
        if not 0 < interval < timeout or not 0 < retry_interval <= interval:
            raise ValueError("need 0 < retry_interval <= interval < timeout for the dead man's switch")
        self._refresh = refresh
        self.interval = interval
        self.timeout = int(timeout)
        self.retry_interval = retry_interval
        self._on_failure = on_failure
        self._clock = clock
        self._sleep = sleep
        self.last_success: float | None = None
        self.failures = 0
        self._armed = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._done: asyncio.Event | None = None

    @property
    def expires_at(self) -> float | None:
        """When Kraken would cancel everything if no refresh succeeds (on `clock`'s scale)."""
        return None if self.last_success is None else self.last_success + self.timeout

    async def run(self) -> None:
        """Refresh until `stop()`."""
        self._done = asyncio.Event()
        try:
            while not self._stopping:
                started = self._clock()
                delay = self.interval
                try:
                    self._armed = True
                    await self._call(self.timeout)
                    self.last_success, self.failures = started, 0
                    delay = self.interval - (self._clock() - started)
                except Exception as exc:
                    self.failures += 1
                    delay = self.retry_interval
                    self._report(exc)
                if self._stopping:
                    break
                await interruptible_sleep(delay, self._wake, sleep=self._sleep)
        finally:
            self._done.set()

    async def stop(self, disarm: bool = True) -> None:
        """Stop refreshing; with `disarm`, then send timeout 0 (a clean shutdown)."""
        self._stopping = True
        self._wake.set()
        if self._done is not None:
            await self._done.wait()
        if disarm and self._armed:
            try:
                await self._call(0)
                self._armed = False
            except Exception as exc:
                self.failures += 1
                self._report(exc)

    async def _call(self, timeout: int) -> None:
        outcome = self._refresh(timeout=timeout)
        if inspect.isawaitable(outcome):
            await asyncio.wait_for(outcome, self.interval)

    def _report(self, exc: BaseException) -> None:
        log.warning("dead man's switch refresh failed (%d in a row): %s", self.failures, type(exc).__name__)
        if self._on_failure is not None:
            try:
                self._on_failure(exc, self.failures)
            except Exception:
                log.exception("dead man's switch on_failure callback failed")
