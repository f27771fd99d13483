"""HTTP transport of the Spot REST API: `/0/public/<Method>` and `/0/private/<Method>`.

Private calls: the body (form or JSON, signed over its exact text) is authenticated,
charged to the key's REST call counter (AddOrder/CancelOrder use the trading counter
instead) and handed to `SpotApi`. Every answer is HTTP 200 with Kraken's envelope:
`{"error": [], "result": ...}`, or `{"error": ["<Kraken error>"]}` alone on failure.
Injected faults can delay a call, answer with another HTTP status, fail it with an error
string, run it and then never answer (or answer after the client gave up), or take it and
run it only later, whatever the client does meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from rules_engine.kraken.ratelimit import rest_cost
from rules_engine.paper.errors import ExchangeError

if TYPE_CHECKING:
    from rules_engine.sim.server import Simulator


def parse_body(raw: str, content_type: str) -> dict[str, Any] | None:
    """Parameters of a form or JSON body (JSON numbers kept exact); None if unreadable."""
    if "json" in content_type or raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw, parse_float=Decimal) if raw.strip() else {}
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return dict(parse_qsl(raw, keep_blank_values=True))


def nonce_text(params: dict[str, Any] | None) -> str | None:
    """The nonce as the client wrote it (JSON integers and strings; nothing else)."""
    if params is None:
        return None
    value = params.get("nonce")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return str(value)


def envelope(result: Any = None, error: str | None = None) -> web.Response:
    body = {"error": [error]} if error is not None else {"error": [], "result": result}
    return web.json_response(body)


def html_status(status: int) -> web.Response:
    """A bare proxy-style error page, as a CDN in front of Kraken would send."""
    reason = web.Response(status=status).reason
    return web.Response(status=status, text=f"<html><body><h1>{status} {reason}</h1></body></html>",
                        content_type="text/html")


async def injected_faults(sim: Simulator, method: str) -> web.Response | None:
    """Apply a delay fault; return the response of an HTTP status fault, if any."""
    delay = sim.faults.take_delay(method)
    if delay:
        await asyncio.sleep(delay)
    status = sim.faults.take_http_status(method)
    return html_status(status) if status else None


async def withhold_answer(sim: Simulator, request: web.Request, method: str) -> bool:
    """If a timeout-after-accept fault is set, hold the answer, then drop the connection."""
    fault = sim.faults.take_timeout(method)
    if fault is None:
        return False
    await sim.wait_stopping(fault.delay)
    if request.transport is not None:
        request.transport.abort()
    return True


async def _run_later(sim: Simulator, method: str, key: str, params: dict[str, Any], delay: float) -> Any:
    await sim.wait_stopping(delay)
    with sim.lock:
        return sim.spot_api.private(method, key, params, sim.clock())


class SpotRest:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/0/public/{method}", self.public),
            web.post("/0/private/{method}", self.private),
        ]

    async def public(self, request: web.Request) -> web.StreamResponse:
        sim, method = self.sim, request.match_info["method"]
        early = await injected_faults(sim, method)
        if early is not None:
            return early
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            params.update(parse_body(await request.text(), request.content_type) or {})
        try:
            failure = sim.faults.take_failure(method)
            if failure:
                raise ExchangeError(failure)
            with sim.lock:
                result = sim.spot_api.public(method, params, sim.clock())
        except ExchangeError as exc:
            return envelope(error=exc.error)
        return envelope(result)

    async def private(self, request: web.Request) -> web.StreamResponse:
        sim, method = self.sim, request.match_info["method"]
        early = await injected_faults(sim, method)
        if early is not None:
            return early
        raw = await request.text()
        params = parse_body(raw, request.content_type)
        try:
            if method not in sim.spot_api.private_methods:
                raise ExchangeError("EGeneral:Unknown method")
            with sim.lock:
                now = sim.clock()
                key = sim.spot_auth.authenticate(
                    api_key=request.headers.get("API-Key"),
                    api_sign=request.headers.get("API-Sign"),
                    uri_path=request.path,
                    nonce=nonce_text(params),
                    raw_body=raw,
                    client=request.remote or "",
                    now=now,
                )
                cost = rest_cost(method)
                if sim.faults.take_rate_limit(key, trading_call=cost == 0):
                    raise ExchangeError("EOrder:Rate limit exceeded" if cost == 0 else "EAPI:Rate limit exceeded")
                counter = sim.rest_counter(key)
                if cost and not counter.add(cost, now):
                    counter.force_add(cost, now)  # Kraken counts refused calls too
                    raise ExchangeError("EAPI:Rate limit exceeded")
                failure = sim.faults.take_failure(method)
                if failure:
                    raise ExchangeError(failure)
                if params is None:
                    raise ExchangeError("EGeneral:Invalid arguments")
                late = sim.faults.take_late_accept(method)
                if late is None:
                    result = sim.spot_api.private(method, key, params, now)
            if late is not None:  # taken now, run later: shielded, so a client leaving changes nothing
                result = await asyncio.shield(asyncio.ensure_future(_run_later(sim, method, key, params, late.delay)))
        except ExchangeError as exc:
            return envelope(error=exc.error)
        sim.notify_private()  # executions and balances subscribers hear of it now
        if await withhold_answer(sim, request, method):
            return web.Response(status=504)
        answer_late = sim.faults.take_late_answer(method)
        if answer_late is not None:
            await sim.wait_stopping(answer_late.delay)
        return envelope(result)
