"""A power cut after an order left: the SQLite commits made without waiting for the disk are
lost (modelled by putting back the database as it was on disk before the decision), but the
decision's fsynced audit record is not. The restart records the order as sent, looks it up
(never sends it again), and the rule's next decision gets a new client order id."""

from __future__ import annotations

import sqlite3

from e2e_harness import E2E, move, wait_for

RULES = """
- id: up
  cooldown: 1s
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


def _disk_copy(db, to):
    """The database as it is on disk now (a consistent copy, as after a power cut)."""
    source, target = sqlite3.connect(db), sqlite3.connect(to)
    with target:
        source.backup(target)
    source.close()
    target.close()


def _power_cut(state_dir, copy) -> None:
    """The database as it was on disk, and a machine that booted again since."""
    for suffix in ("-wal", "-shm"):
        (state_dir / f"engine.sqlite{suffix}").unlink(missing_ok=True)
    (state_dir / "engine.sqlite").write_bytes(copy.read_bytes())
    with sqlite3.connect(state_dir / "engine.sqlite") as db:
        db.execute("UPDATE meta SET value = 'the boot before the power cut' WHERE key = 'boot_id'")


async def test_a_power_cut_loses_no_sent_order(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    live = {"cli_live": True, "mode": "live", "dead_man_switch": {"enabled": False}}
    copy = e2e.tmp / "on-disk.sqlite"
    async with e2e.running(**live) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900")
        await service.settle()
        _disk_copy(e2e.state_dir / "engine.sqlite", copy)  # the last durable state before the decision
        await move(e2e, service, "XBTUSD", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
    first = e2e.spot_orders()
    assert len(first) == 1
    _power_cut(e2e.state_dir, copy)
    async with e2e.running(**live) as (service, seen, url):
        restored = e2e.audit_records("restored")
        assert [r["data"]["cl_ord_id"] for r in restored] == [first[0].cl_ord_id]
        decision = service.store.get_decision(first[0].cl_ord_id)
        assert decision is not None and decision.status == "accepted", "looked up on the exchange, found"
        assert len(e2e.spot_orders()) == 1, "never sent again"
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
    orders = e2e.spot_orders()
    assert len(orders) == 2 and len({o.cl_ord_id for o in orders}) == 2, "the next decision has a new id"
    assert e2e.audit_ok()
