"""Audit refusals of strangers in aggregate: one record per client address per interval.

Anyone who can reach the port can send requests that fail authentication; writing a record
for each would let them grow the audit log without bound. `RejectionSampler.admit` says
whether this refusal gets a record: the first of each client in each interval does, carrying
how many of that client's refusals went unrecorded since its previous record. Every refusal is
still counted in the metrics. Refusals after a sender authenticated are always recorded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class RejectionSampler:
    def __init__(self, interval: float, clock: Callable[[], float], max_clients: int = 10_000) -> None:
        self.interval = interval
        self.clock = clock
        self.max_clients = max_clients
        self._clients: OrderedDict[str, tuple[float, int]] = OrderedDict()  # client -> (last record, unrecorded)

    def admit(self, client: str) -> int | None:
        """None when this refusal is only counted; else the number of the client's refusals left
        unrecorded since its previous record (this one gets a record)."""
        now = self.clock()
        last = self._clients.get(client)
        if last is not None and now - last[0] < self.interval:
            self._clients[client] = (last[0], last[1] + 1)
            return None
        self._clients[client] = (now, 0)
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return 0 if last is None else last[1]
