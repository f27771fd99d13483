"""A standby's HTTP server (`store: {standby: true}`), served from the engine's start rather
than from its takeover: a load balancer or Kubernetes sees it alive (`/healthz` 200) and not
ready (`/readyz` 503, problem `standby`), and the status page says who holds the key.

Two engines of one key on one machine may be given the same port. The first binds it; the
other cannot while the first runs, so it does not refuse to start: it logs that the port is
in use and tries again every `RETRY_EVERY` seconds, whether it still stands by or has taken the
key over (as a standby, before this change, bound its port only at takeover: once its holder
was gone). Trading never waits for the port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rules_engine.service.http import HttpServer

log = logging.getLogger("rules_engine.service")

RETRY_EVERY = 1.0
"""Seconds between attempts to bind a port in use."""


async def bind_now_or_later(http: HttpServer, on_bound: Callable[[int], None],
                            retry_every: float = RETRY_EVERY) -> asyncio.Task[None] | None:
    """Bind `http` now (None) or, if its port is in use, keep trying in a task (returned: the
    caller cancels it when it stops). `on_bound(port)` is called once it listens."""
    try:
        on_bound(await http.start())
        return None
    except OSError as exc:
        log.warning("standby: cannot listen on %s:%d (%s), perhaps the key's other engine on this machine; "
                    "trying again every %.0f s", http.host, http.requested_port, exc.strerror or exc, retry_every)
    return asyncio.create_task(_retry(http, on_bound, retry_every))


async def _retry(http: HttpServer, on_bound: Callable[[int], None], retry_every: float) -> None:
    while True:
        await asyncio.sleep(retry_every)
        try:
            port = await http.start()
        except OSError:
            continue
        on_bound(port)
        return
