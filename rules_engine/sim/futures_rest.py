"""HTTP transport of the Futures REST API: `/derivatives/api/v3/<endpoint>`.

Private endpoints check `APIKey`/`Authent`/`Nonce` (see `auth.FuturesAuth`), charge the
key's futures budget (500 per 10 s; sendorder 10, cancelallorders 25, accounts 2, ...)
and answer `{"result": "success", ..., "serverTime": ...}` or
`{"result": "error", "error": "<name>", "serverTime": ...}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from aiohttp import web

from rules_engine.paper.errors import FuturesError
from rules_engine.sim.futures_api import COSTS, iso_ms
from rules_engine.sim.futures_instruments import instruments
from rules_engine.sim.spot_rest import injected_faults, withhold_answer

if TYPE_CHECKING:
    from rules_engine.sim.server import Simulator


def signed_renderings(query: str, body: str) -> list[str]:
    """The parameter strings a client may have signed: as sent, and url-decoded (the
    form Kraken required before its February 2024 change)."""
    joined = query + body
    both = "&".join(p for p in (query, body) if p)
    return [joined, both, unquote_plus(joined), unquote(joined)]


class FuturesRest:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/derivatives/api/v3/{method:[a-z]+(?:/[a-z]+)?}", self.handle)]

    def _answer(self, payload: dict[str, Any] | None = None, error: str | None = None) -> web.Response:
        now = iso_ms(self.sim.clock())
        if error is not None:
            return web.json_response({"result": "error", "error": error, "serverTime": now})
        return web.json_response({"result": "success", **(payload or {}), "serverTime": now})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sim, method = self.sim, request.match_info["method"]
        early = await injected_faults(sim, method)
        if early is not None:
            return early
        body = await request.text()
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        try:
            if method in ("tickers", "instruments"):  # public
                failure = sim.faults.take_failure(method)
                if failure:
                    raise FuturesError(failure)
                with sim.lock:
                    payload = (sim.futures_api.tickers(sim.clock()) if method == "tickers"
                               else instruments(sim.futures))
                return self._answer(payload)
            if method not in sim.futures_api.methods:
                raise FuturesError("notFound")
            with sim.lock:
                now = sim.clock()
                key = sim.futures_auth.authenticate(
                    api_key=request.headers.get("APIKey"),
                    authent=request.headers.get("Authent"),
                    nonce=request.headers.get("Nonce"),
                    endpoint_path=request.path,
                    post_data=signed_renderings(request.query_string, body),
                )
                counter = sim.futures_counter(key)
                if sim.faults.take_rate_limit(key) or not counter.add(COSTS.get(method, 1), now):
                    raise FuturesError("apiLimitExceeded")
                failure = sim.faults.take_failure(method)
                if failure:
                    raise FuturesError(failure)
                payload = sim.futures_api.call(method, key, params, now)
        except FuturesError as exc:
            return self._answer(error=exc.error)
        if await withhold_answer(sim, request, method):
            return web.Response(status=504)
        return self._answer(payload)
