"""`POST /signals/{source}`: the aiohttp front end of `signals.verify_signal`.

Before the body is read, the client address must have a token in its bucket and the source
one in its own (`WebhookLimits`: 429 with Retry-After otherwise; the source's token is taken
only when a signal is accepted, so strangers cannot spend a sender's allowance). The body is
read in chunks within `body_timeout` seconds (408 after) and abandoned as soon as it passes
the source's `max_body_bytes` (a larger Content-Length is refused before reading anything),
so a large or slow upload costs at most that many bytes and seconds. A client that
disconnects mid-body is refused as `incomplete_body`. Answers are JSON:

    202 {"ok": true, "signal_id": "..."}
    4xx {"ok": false, "error": "<code>", "reason": "..."}

(`accepted_status` replaces the 202, a mapping `on_signal` returns is added to the answer, and
`unqueued` is the 500's reason: the fan-out intake answers 200 with `duplicate` and `deliveries`.)

Every refusal (and a failure to hand an accepted signal on, answered 500) goes to
`on_reject(source, rejected, meta)`: that is where the engine counts and audits them. `meta`
holds the peer address and the number of body bytes read, never the body.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from rules_engine.core.events import Signal
from rules_engine.redact import default_redactor
from rules_engine.service.signals import (
    Accepted,
    Rejected,
    SeenFn,
    SignalSourceConfig,
    body_too_large,
    unknown_source,
    verify_signal,
)
from rules_engine.service.webhook_limits import TokenBuckets, WebhookLimits, retry_after

log = logging.getLogger(__name__)

OnSignal = Callable[[Signal], "Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None"]
OnReject = Callable[[str, Rejected, Mapping[str, Any]], None]

_CHUNK = 8192


class SignalRefused(Exception):
    """Raised by `on_signal` to refuse an authenticated signal with `rejected` (not a 500)."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(rejected.reason)
        self.rejected = rejected


def add_signal_routes(
    app: web.Application,
    sources: Mapping[str, SignalSourceConfig],
    on_signal: OnSignal,
    on_reject: OnReject,
    seen: SeenFn,
    clock: Callable[[], float] = time.time,
    prefix: str = "/signals",
    limits: WebhookLimits | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    accepted_status: int = 202,
    unqueued: str = "the signal was authenticated but could not be queued; retry with a new id",
) -> None:
    """Add `POST {prefix}/{source}` to `app`. `sources` is read on every request, so a
    mutable mapping can be updated on reload."""
    limits = limits or WebhookLimits()
    clients = TokenBuckets(limits.client_rate, limits.client_burst, monotonic)
    per_source = TokenBuckets(limits.source_rate, limits.source_burst, monotonic)

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["source"]
        client = request.remote or "(unknown)"
        meta: dict[str, Any] = {"remote": request.remote, "bytes": 0}
        wait = clients.take(client)
        if wait:
            return _refuse(name, _rate_limited("this client address", wait), meta, on_reject, wait)
        config = sources.get(name)
        if config is None:
            return _refuse(name, unknown_source(name), meta, on_reject)
        wait = per_source.wait(name)
        if wait:
            return _refuse(name, _rate_limited("this source", wait), meta, on_reject, wait)
        try:
            async with asyncio.timeout(limits.body_timeout):
                body, meta["bytes"] = await _read_bounded(request, config.max_body_bytes, meta)
        except TimeoutError:
            response = _refuse(name, Rejected(408, "body_timeout", f"the body did not arrive within "
                                              f"{limits.body_timeout:g} s"), meta, on_reject)
            response.force_close()
            return response
        except (ConnectionError, ClientPayloadError, HttpProcessingError, asyncio.IncompleteReadError):
            response = _refuse(name, Rejected(400, "incomplete_body", "the connection ended before the whole body "
                                              "arrived"), meta, on_reject)
            response.force_close()
            return response
        if body is None:
            response = _refuse(name, body_too_large(config.max_body_bytes), meta, on_reject)
            response.force_close()
            return response
        result = verify_signal(config, request.headers, body, clock(), seen)
        if isinstance(result, Rejected):
            return _refuse(name, result, meta, on_reject)
        per_source.take(name)
        return await _deliver(name, result, meta, on_signal, on_reject, accepted_status, unqueued)

    app.router.add_post(prefix + "/{source}", handle)


def _rate_limited(who: str, wait: float) -> Rejected:
    return Rejected(429, "rate_limited", f"too many requests from {who}; retry after {retry_after(wait)} s")


async def _read_bounded(request: web.Request, limit: int, meta: dict[str, Any]) -> tuple[bytes | None, int]:
    """(the whole body, its size), or (None, bytes declared or read) as soon as the body is
    known to exceed `limit` bytes. `meta["bytes"]` follows the bytes read (for a refusal
    when reading fails or times out)."""
    if request.content_length is not None and request.content_length > limit:
        return None, request.content_length
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        meta["bytes"] = len(body)
        if len(body) > limit:
            return None, len(body)
    return bytes(body), len(body)


async def _deliver(
    name: str, accepted: Accepted, meta: dict[str, Any], on_signal: OnSignal, on_reject: OnReject, status: int,
    unqueued: str,
) -> web.Response:
    try:
        outcome = on_signal(accepted.signal)
        if inspect.isawaitable(outcome):
            outcome = await outcome
    except SignalRefused as refused:
        return _refuse(name, refused.rejected, meta, on_reject)
    except Exception:
        log.exception("signal %s from %s could not be handed to the engine", accepted.signal.signal_id, name)
        failure = Rejected(500, "internal_error", unqueued, accepted.signal.signal_id)
        return _refuse(name, failure, meta, on_reject)
    return web.json_response({"ok": True, "signal_id": accepted.signal.signal_id, **(outcome or {})}, status=status)


def _refuse(name: str, rejected: Rejected, meta: Mapping[str, Any], on_reject: OnReject,
            wait: float | None = None) -> web.Response:
    try:
        on_reject(name, rejected, meta)
    except Exception:
        log.exception("on_reject failed for a %s rejection from source %r", rejected.code, name[:64])
    headers = {"Retry-After": retry_after(wait)} if wait is not None else None
    reason = default_redactor.redact_text(rejected.reason)  # as the audit log's copy is redacted
    return web.json_response({"ok": False, "error": rejected.code, "reason": reason},
                             status=rejected.status, headers=headers)
