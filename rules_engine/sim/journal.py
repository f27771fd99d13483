"""The simulator's journal of private Spot REST calls, for tests that check histories.

One entry per `POST /0/private/<Method>`, in arrival order: the `API-Key` as sent, the
nonce, the method, the `cl_ord_id`, whether Kraken's side accepted the call and, if not,
the error it answered; an accepted AddOrder also records its txid. "Accepted" means the call
ran: an answer withheld by a fault (the client saw a timeout) is still accepted, a call
refused before it reached the exchange (an injected HTTP status) is rejected with
`HTTP <status>`.

    sim.journal.entries(key="k1")          # in-process, a list of `JournalEntry`
    GET /_sim/journal?key=k1&since=12      # the same over HTTP (the simulator's admin path)

`/_sim/` is the simulator's own path, not Kraken's. The journal keeps the latest
`MAX_ENTRIES` calls.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from rules_engine.sim.spot_rest import nonce_text, parse_body

if TYPE_CHECKING:
    from rules_engine.sim.server import Simulator

MAX_ENTRIES = 100_000
PATH = "/_sim/journal"
_PRIVATE = "/0/private/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    time: float
    key: str | None
    nonce: str | None
    method: str
    cl_ord_id: str | None
    accepted: bool
    error: str | None = None
    txid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Journal:
    """Thread-safe and bounded; `entries` filters by key and by sequence number."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self._entries: deque[JournalEntry] = deque(maxlen=max_entries)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, time: float, key: str | None, nonce: str | None, method: str, cl_ord_id: str | None,
               error: str | None = None, txid: str | None = None) -> JournalEntry:
        with self._lock:
            entry = JournalEntry(next(self._seq), time, key, nonce, method, cl_ord_id, error is None, error, txid)
            self._entries.append(entry)
        return entry

    def entries(self, key: str | None = None, since: int = 0) -> list[JournalEntry]:
        """Entries with a sequence number above `since`, of one key or all."""
        with self._lock:
            return [e for e in self._entries if e.seq > since and (key is None or e.key == key)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    # ------------------------------------------------------------------ HTTP

    def middleware(self, sim: Simulator) -> Middleware:
        """An aiohttp middleware recording every private Spot REST call and its answer."""

        @web.middleware
        async def journal(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method != "POST" or not request.path.startswith(_PRIVATE):
                return await handler(request)
            try:
                body = await request.text()  # cached for the handler
            except ConnectionResetError:  # the client went away mid-body: nothing reached the exchange
                return web.Response(status=400, text="incomplete request")
            params = parse_body(body, request.content_type) or {}
            now = sim.clock()
            response = await handler(request)
            key, nonce = request.headers.get("API-Key"), nonce_text(params)
            cl_ord_id = params.get("cl_ord_id")
            error, txid = _outcome(response)
            if error is _UNREAD:  # no Kraken answer: withheld after running, or refused before
                taken = key is not None and nonce is not None and nonce.isdigit() and \
                    sim.spot_auth.nonces.was_accepted(key, int(nonce))
                error = None if taken else f"HTTP {response.status}"
            self.record(now, key, nonce, request.path.removeprefix(_PRIVATE),
                        cl_ord_id if isinstance(cl_ord_id, str) else None, error, txid)
            return response

        return journal

    def routes(self) -> list[web.RouteDef]:
        async def show(request: web.Request) -> web.Response:
            try:
                since = int(request.query.get("since", "0"))
            except ValueError:
                return web.json_response({"error": "since must be a whole number"}, status=400)
            entries = self.entries(request.query.get("key"), since)
            return web.json_response({"entries": [e.to_dict() for e in entries],
                                      "last": entries[-1].seq if entries else since})

        return [web.get(PATH, show)]


_UNREAD: Any = object()


def _outcome(response: web.StreamResponse) -> tuple[Any, str | None]:
    """(error or None, txid) from Kraken's envelope; `_UNREAD` when there is no envelope."""
    body = response.body if isinstance(response, web.Response) else None
    if response.status != 200 or not isinstance(body, bytes):
        return _UNREAD, None
    try:
        document = json.loads(body)
    except ValueError:
        return _UNREAD, None
    errors = document.get("error") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return _UNREAD, None
    if errors:
        return str(errors[0]), None
    txids = (document.get("result") or {}).get("txid") if isinstance(document.get("result"), dict) else None
    return None, txids[0] if isinstance(txids, list) and txids else None
