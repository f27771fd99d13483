"""What reaches the disk before an order leaves, in order: the decision's audit record (written
and its fsync begun: the one fsync on the way to the order, and its "sent" mark), the decision's
rows and state (committed without waiting for the disk, while that fsync runs: the audit record
stands for them after a power cut, see `service.decision_restore`), then the order is signed
while the fsync runs, and the request waits for it: nothing is written to the state store in
between. A decision with no order is committed durably at once."""

from __future__ import annotations

import contextlib
from typing import Any

from e2e_harness import E2E, move, wait_for

RULES = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
- id: note
  triggers: [{type: price, symbol: ETHUSD, crosses_above: 3000}]
  actions: [{type: log, message: "eth {price}"}]
"""


def _spy(service: Any) -> list[Any]:
    steps: list[Any] = []
    store, audit, executor = service.store, service.audit, service.dispatcher.executor
    transaction, write, append, execute = store.transaction, store._write, audit.append, executor.execute
    append_durable, transport = audit.append_durable, executor.spot.transport
    request = transport.request

    @contextlib.contextmanager
    def spied_transaction(*, durable: bool = True) -> Any:
        with transaction(durable=durable):
            yield
        steps.append(("commit", durable))

    def spied_write(sql: str, params: Any, durable: bool = True) -> Any:
        result = write(sql, params, durable)
        if not store._depth and " decisions " in sql:  # an order's row written on its own (a `sent` mark)
            steps.append(("write", sql.split()[0], durable))
        return result

    def spied_append(kind: str, **kw: Any) -> Any:
        record = append(kind, **kw)
        if kw.get("sync"):
            steps.append(f"audit {kind} (fsynced)")
        return record

    def spied_append_durable(kind: str, **kw: Any) -> Any:
        record, wait = append_durable(kind, **kw)
        steps.append(f"audit {kind} (written, fsync begun)")

        def spied_wait() -> None:
            wait()
            steps.append(f"audit {kind} (fsynced)")

        return record, spied_wait

    def spied_execute(intent: Any, now: float) -> Any:
        steps.append(f"execute {intent.kind}")
        return execute(intent, now)

    def spied_request(*args: Any, **kw: Any) -> Any:
        steps.append(f"request {kw['api_method']}")
        return request(*args, **kw)

    store.transaction, store._write = spied_transaction, spied_write
    audit.append, executor.execute = spied_append, spied_execute
    audit.append_durable, transport.request = spied_append_durable, spied_request
    return steps


async def test_an_order_is_sent_after_one_fsync_the_audit_records(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        steps = _spy(service)
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
        sent = steps.index("request AddOrder")  # (periodic state commits may come before: other jobs)
        assert steps[sent - 4:sent] == ["audit decision (written, fsync begun)", ("commit", False),
                                        "execute place_order", "audit decision (fsynced)"]
        await move(e2e, service, "ETHUSD", "2900", "3100")
        await wait_for(lambda: seen.intents("log"))
        await service.settle()
        logged = steps.index("execute log")
        assert steps[logged - 1] == ("commit", True)
