"""T2, T4 and the dead man's switch of the scale-out design note, with engines as child
processes on one key (TTL 2 s) against the simulator of the test's process:

- T2: the leader is frozen (SIGSTOP) with a signed AddOrder in hand for 2 x TTL, then
  resumed: the standby took the key and fenced it meanwhile, so Kraken refuses that request
  (`EAPI:Invalid nonce`), the old leader sends nothing more and stops (exit code 3), the new
  leader proves the order never placed (not found after its deadline) and sends it, once, under
  the same client order id (`execution.resend`), and the audit chain verifies across epochs;
- T4: leaders whose clocks are an hour ahead and an hour behind: no nonce refused, orders
  accepted (deadlines on Kraken's clock), the lease's expiry judged by the database alone;
- the dead man's switch: while a holder exists Kraken's CancelAllOrdersAfter stays armed and
  resting orders stay; with no holder for its timeout the simulator cancels them."""

from __future__ import annotations

import re
import signal
import time
from decimal import Decimal
from collections.abc import Iterator

import pytest
import requests
from ha_harness import RULE, HaWorld, kill_leftovers, wait

from rules_engine.cli import main
from rules_engine.pgstore import PgStateStore
from rules_engine.service.ha import SKEW_ENV
from rules_engine.sim import Account

pytestmark = pytest.mark.cluster


@pytest.fixture
def account() -> Account:
    return Account.generate({"ZUSD": "100000", "XXBT": "2"}, tier="pro")


@pytest.fixture
def world(e2e, pg_server, pg_dsn) -> Iterator[HaWorld]:
    try:
        yield HaWorld(e2e, pg_server, pg_dsn)
    finally:
        kill_leftovers()


def accepted_orders(world: HaWorld) -> set[str]:
    return {e.cl_ord_id for e in world.journal() if e.method == "AddOrder" and e.accepted}


def test_a_leader_frozen_mid_send_is_fenced_by_the_nonce_and_halts(world, tmp_path, monkeypatch, capsys) -> None:
    zombie = world.engine("order.signed:stop").leading()
    standby = world.engine().standing_by()
    served = standby.serves_while_standing_by(zombie)  # HTTP from its start, not from its takeover
    world.cross(zombie)
    wait(zombie.stopped_state, what="the leader frozen with its AddOrder signed")
    frozen_at = time.monotonic()
    decided = world.decisions()
    assert [d["status"] for d in decided.values()] == ["pending"]  # its decision audited: its "sent" mark
    cl_ord_id = next(iter(decided))
    # No crash fast path: the frozen leader's session is alive; the standby waits for expiry.
    assert requests.get(f"{served}/readyz", timeout=5).status_code == 503  # answers while its holder is frozen
    standby.leading()
    took_over = time.monotonic() - frozen_at
    assert standby.url == served  # the port it stood by on
    wait(lambda: time.monotonic() - frozen_at >= 4.0, timeout=10, what="2 x TTL")  # the pause itself
    zombie.process.send_signal(signal.SIGCONT)
    assert zombie.process.wait(30) == 3, zombie.text()  # stopped: another engine holds the key
    entries = world.journal()
    refused = [e for e in entries if e.error and "nonce" in e.error.lower()]
    assert [(e.method, e.cl_ord_id, e.error) for e in refused] == [("AddOrder", cl_ord_id, "EAPI:Invalid nonce")], \
        (entries[-12:], zombie.text()[-4000:])
    started = world.audit_records("epoch_started")[-1]["data"]
    fence = int(started["fence"]["nonce"])
    assert int(refused[0].nonce) < fence  # below the new epoch's fence: Kraken's own check refused it
    after = [e for e in entries if e.seq > refused[0].seq and int(e.nonce or 0) < fence]
    assert after == []  # nothing more from the old leader: it halted after that one refusal
    # whichever it noticed first on waking: its renewal found a newer epoch, or Kraken refused its nonce
    assert re.search(r'msg="lease: (fenced|Kraken refused this engine\'s nonce)', zombie.text()), zombie.text()
    wait(lambda: world.decisions()[cl_ord_id]["status"] == "accepted", what="the new leader's reconcile")
    assert world.audit_records("epoch_started")[-1]["data"]["reconcile"]["summary"] == {"resent, accepted": 1}
    (resent,) = world.audit_records("resent_after_proven_absent")
    assert resent["data"]["cl_ord_id"] == cl_ord_id and resent["data"]["previous"] == "pending"  # audited: looked up
    assert resent["data"]["proof"] == "not found by cl_ord_id after its deadline"
    accepted = [e for e in entries if e.method == "AddOrder" and e.accepted]
    assert [(e.cl_ord_id, int(e.nonce) > fence) for e in accepted] == [(cl_ord_id, True)]  # the new leader's
    world.check_history()
    print(f"T2: the standby took over {took_over:.2f} s after the leader froze (TTL 2 s, no fast path)")
    # the new leader trades; the chain verifies across the epochs, through the CLI
    before = accepted_orders(world)
    world.cross(standby)
    wait(lambda: accepted_orders(world) - before, what="the new leader's order")
    assert standby.stop() == 0
    monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", world.server.password)
    assert main(["audit", "verify", "--store", world.dsn, "--key", "main"]) == 0
    assert "OK" in capsys.readouterr().out
    epochs = {r["data"]["epoch"] for r in world.audit_records("epoch_started")}
    assert len(epochs) == 2


def test_clock_skew_of_an_hour_either_way_changes_nothing(world) -> None:
    ahead = world.engine(env={SKEW_ENV: "3600"}).leading()
    behind = world.engine(env={SKEW_ENV: "-3600"}).standing_by()
    world.cross(ahead)
    wait(lambda: len(accepted_orders(world)) == 1, what="the order of the leader an hour ahead")

    def lease_left() -> float:
        with PgStateStore(world.settings, epoch=None) as store, store._db.reading() as conn:
            return float(conn.execute("SELECT EXTRACT(EPOCH FROM expires_at - now()) FROM key_lease "
                                      "WHERE key_id = 'main'").fetchone()[0])

    assert 0 < lease_left() <= 2.0  # judged by the database's clock: the skew does not move it
    ahead.process.kill()
    ahead.process.wait(10)
    behind.leading()
    assert 0 < lease_left() <= 2.0
    world.cross(behind)
    wait(lambda: len(accepted_orders(world)) == 2, what="the order of the leader an hour behind")
    nonces = [int(e.nonce) for e in world.journal()]
    assert nonces == sorted(nonces)  # one increasing sequence whatever the clocks said
    assert all(e.accepted for e in world.journal()), [e for e in world.journal() if not e.accepted]
    assert world.check_history()["refused_nonces"] == 0
    assert behind.stop() == 0


def test_the_dead_mans_switch_stays_armed_while_a_holder_exists_and_fires_without_one(e2e, pg_server,
                                                                                     pg_dsn) -> None:
    world = HaWorld(e2e, pg_server, pg_dsn, dead_man_switch={"enabled": True, "interval": "1s", "timeout": "3s"})
    try:
        leader = world.engine().leading()
        standby = world.engine().standing_by()
        world.cross(leader)
        wait(lambda: len(accepted_orders(world)) == 1, what="a resting order")
        (order,) = e2e.spot_orders()
        assert order.status == "open"
        leader.process.kill()
        killed_at = time.time()
        standby.leading()
        # the new holder's fence re-arms the switch and its keeper refreshes it: past the
        # timeout counted from the old holder's death, the order still rests
        wait(lambda: [e for e in world.journal() if e.method == "CancelAllOrdersAfter" and e.accepted
                      and e.time > killed_at + 3.5], what="a refresh by the new holder after the old one's timeout")
        assert order.status == "open"
        standby.process.kill()  # now nobody holds the key
        last_refresh = max(e.time for e in world.journal() if e.method == "CancelAllOrdersAfter" and e.accepted)
        wait(lambda: order.status != "open", timeout=15, what="the simulator's dead man's switch")
        assert order.status in ("canceled", "cancelled")
        assert time.time() >= last_refresh + 3.0  # not before the timeout of the last refresh
    finally:
        kill_leftovers()


def test_rules_edited_while_standing_by_are_the_ones_the_new_leader_runs(world) -> None:
    leader = world.engine().leading()
    standby = world.engine().standing_by()
    world.e2e.write_rules(RULE.replace("crosses_above: 70000", "crosses_above: 71000"))
    leader.process.kill()
    leader.process.wait(10)
    standby.leading()
    wait(lambda: [r for r in world.audit_records("reload") if r["data"].get("ok")], what="the reload at takeover")
    (reload,) = world.audit_records("reload")
    assert reload["data"]["reason"] == "rule files changed while standing by"
    world.price("70900", standby)
    world.e2e.sim.set_price("XBTUSD", Decimal("71100"))  # crosses 71000 only: the edited rule fires
    wait(lambda: len(accepted_orders(world)) == 1, what="the edited rule's order")
    assert standby.stop() == 0
