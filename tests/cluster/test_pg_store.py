"""The PostgreSQL store against a real server: leases and epoch fencing, one audit chain per
key, `rules-engine audit verify|show|export --store`, and the password kept out of the config."""

from __future__ import annotations

import json
import threading
import time

import pytest

from rules_engine.audit import AuditError, verify
from rules_engine.cli import main
from rules_engine.config import ConfigError, parse_config
from rules_engine.pgstore import (
    FencedError,
    PgAuditLog,
    PgStateStore,
    StoreSettings,
    acquire_lease,
    export_jsonl,
    read_leases,
)
from rules_engine.pgstore.lease import LeaseHeldError

pytestmark = pytest.mark.cluster


@pytest.fixture
def settings(pg_server, pg_dsn) -> StoreSettings:
    return StoreSettings(pg_dsn, "key-a", pg_server.password)


def test_a_write_from_a_stale_epoch_is_refused_with_a_clear_error(settings):
    old = acquire_lease(settings, "worker-1")
    with PgStateStore(settings, epoch=old.epoch) as first, PgAuditLog(settings, epoch=old.epoch, mode="live") as log:
        first.record_decision("c1", "r1", "d1", {})
        log.append("startup", data={"epoch": old.epoch})
        new = acquire_lease(settings, "worker-2")
        assert new.epoch == old.epoch + 1
        with pytest.raises(FencedError, match=rf"fenced: this engine holds epoch {old.epoch}, but the key is now "
                                              rf"held by epoch {new.epoch} \(worker-2\)"):
            first.record_decision("c2", "r1", "d2", {})
        with pytest.raises(FencedError):
            first.save("fingerprint", 10**18)  # no nonce reservation for a stale epoch
        with pytest.raises(AuditError, match="fenced"):
            log.append("decision", data={"cl_ord_id": "c2"}, sync=True)
        assert first.failure is not None and "fenced" in first.failure[0]
        assert not first.probe()  # a fenced cell stays fenced
        with PgStateStore(settings, epoch=new.epoch) as second:
            assert second.get_decision("c1") is not None and second.get_decision("c2") is None
            assert second.load("fingerprint") == 0
            second.record_decision("c2", "r1", "d2", {})
    leases = read_leases(settings)
    assert [(lease.key_id, lease.holder, lease.epoch) for lease in leases] == [("key-a", "worker-2", new.epoch)]


def test_a_takeover_waits_for_the_write_in_flight_and_fences_what_follows(settings):
    epoch = acquire_lease(settings, "worker-1").epoch
    taken: list[int] = []
    with PgStateStore(settings, epoch=epoch) as store:
        with store.transaction():
            store.record_decision("c1", "r1", "d1", {})
            thread = threading.Thread(target=lambda: taken.append(acquire_lease(settings, "worker-2").epoch))
            thread.start()
            thread.join(0.5)
            assert thread.is_alive() and taken == []  # the epoch cannot move under a write in flight
        thread.join(10)
        assert taken == [epoch + 1]
        assert store.get_decision("c1") is not None  # committed before the takeover
        with pytest.raises(FencedError):
            store.mark_sent("c1")


def test_a_lease_held_by_another_is_taken_only_as_a_takeover(settings):
    acquire_lease(settings, "worker-1", ttl=60)
    with pytest.raises(LeaseHeldError, match="held by worker-1"):
        acquire_lease(settings, "worker-2", takeover=False)
    assert acquire_lease(settings, "worker-1", takeover=False).epoch == 2  # its own holder may renew
    acquire_lease(settings, "worker-1", ttl=0.05)
    time.sleep(0.1)  # the database's clock judges expiry
    assert acquire_lease(settings, "worker-2", takeover=False).holder == "worker-2"


def test_one_audit_chain_per_key_continues_after_a_reopen_and_exports_to_jsonl(settings, tmp_path):
    other = StoreSettings(settings.url, "key-b", settings.password)
    epochs = {s.key_id: acquire_lease(s, "w").epoch for s in (settings, other)}
    with PgAuditLog(settings, epoch=epochs["key-a"], mode="live") as a, \
            PgAuditLog(other, epoch=epochs["key-b"], mode="live") as b:
        a.append("startup", data={"n": 1})
        b.append("startup", data={"n": 1})
        a.append_many([("trigger", "r1", "h", {"price": "1"}), ("decision", "r1", "h", {"cl_ord_id": "c1"})])
        assert a.head[0] == 3 and b.head[0] == 1
    with PgAuditLog(settings, epoch=epochs["key-a"], mode="live") as again:
        assert again.head[0] == 3
        again.append("shutdown", data={})
    assert export_jsonl(settings, tmp_path / "a.jsonl") == 4
    assert export_jsonl(other, tmp_path / "b.jsonl") == 1
    report = verify(tmp_path / "a.jsonl")
    assert report.ok and report.records == 4, report.summary()
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert kinds == ["startup", "trigger", "decision", "shutdown"]


def test_audit_cli_verifies_shows_and_exports_a_store_chain(settings, tmp_path, monkeypatch, capsys, pg_server):
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live") as log:
        log.append("decision", rule_id="btc-dip", data={"cl_ord_id": "c1"}, sync=True)
        log.append("risk", rule_id="eth-top", data={"ok": False})
    monkeypatch.setenv("RULES_ENGINE_STORE_PASSWORD", pg_server.password)
    args = ["--store", settings.url, "--key", "key-a"]
    assert main(["audit", "verify", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {settings.url} (key key-a): 2 records"), out
    assert main(["audit", "show", *args, "--rule", "btc-*", "--format", "json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["data"]) for r in shown] == [("decision", {"cl_ord_id": "c1"})]
    assert main(["audit", "export", *args, "--out", str(tmp_path / "x.jsonl")]) == 0
    assert main(["audit", "verify", str(tmp_path / "x.jsonl")]) == 0
    assert main(["audit", "verify", "--store", settings.url, "--key", "nobody"]) == 2
    assert "no audit records for key nobody" in capsys.readouterr().err
    with pg_server.connect(settings.url.rsplit("/", 1)[1]) as conn:  # an altered record
        conn.execute("UPDATE audit SET line = replace(line, '\"ok\":false', '\"ok\":true') WHERE seq = 2")
    assert main(["audit", "verify", *args]) == 1
    assert capsys.readouterr().err.startswith(f"TAMPERED: {settings.url} (key key-a): ")
    monkeypatch.delenv("RULES_ENGINE_STORE_PASSWORD")
    assert main(["audit", "verify", *args]) == 2  # no password: a clear error, not a traceback
    assert "cannot connect" in capsys.readouterr().err


def test_the_password_never_goes_in_the_config_nor_in_messages(pg_server, pg_dsn):
    with_password = pg_dsn.replace("engine@", f"engine:{pg_server.password}@")
    with pytest.raises(ConfigError) as refused:
        parse_config({"store": with_password})
    assert pg_server.password not in str(refused.value) and "RULES_ENGINE_STORE_PASSWORD" in str(refused.value)
    config = parse_config({"store": {"url": pg_dsn, "key": "main", "password_env": "PG_PASS"}})
    assert (config.store.url, config.store.key, config.store.password_env) == (pg_dsn, "main", "PG_PASS")
    with pytest.raises(ValueError) as parsed:
        StoreSettings.parse(with_password)
    assert pg_server.password not in str(parsed.value) and "***" in str(parsed.value)
    settings = StoreSettings.parse(pg_dsn, key_id="main", environ={"PG_PASS": pg_server.password},
                                   password_env="PG_PASS")
    assert settings.password == pg_server.password
    assert pg_server.password not in repr(PgStateStore(settings, epoch=None))


def test_the_first_write_after_a_server_restart_goes_through_on_a_new_connection(settings, pg_server):
    epoch = acquire_lease(settings, "w").epoch
    with PgStateStore(settings, epoch=epoch) as store, PgAuditLog(settings, epoch=epoch, mode="live") as log:
        store.record_decision("c1", "r", "d1", {})
        log.append("startup", data={})
        log.flush()  # the queued record committed
        pg_server.restart_immediate()  # every connection is cut; nothing was in flight
        store.record_decision("c2", "r", "d2", {})  # the dead connection is found at BEGIN and replaced
        log.append("decision", data={"cl_ord_id": "c2"}, sync=True)
        assert store.failure is None and log.failure is None
        assert [d.cl_ord_id for d in store.unresolved_decisions()] == ["c1", "c2"]
        assert log.head[0] == 2
    export_jsonl(settings, pg_server.root / "chain.jsonl")
    assert verify(pg_server.root / "chain.jsonl").records == 2


def test_an_orders_audited_answer_is_found_in_the_chain_as_in_the_file(settings, tmp_path):
    from rules_engine.audit import AuditLog
    from rules_engine.audit.tail import audited_answer

    now = [1000.0]
    records = [
        ("request", {"cl_ord_id": "c1", "request": {"cliOrdId": "c1"}}),
        ("response", {"cl_ord_id": "c10", "result": {"ok": True, "data": {"order_id": "other"}}}),
        ("response", {"cl_ord_id": "c1", "result": {"ok": True, "data": {"order_id": "F-1"}}}),
        ("response", {"cl_ord_id": "c2", "result": {"ok": False, "error": "EOrder:Insufficient funds", "data": {}}}),
    ]
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live", clock=lambda: now[0]) as chain, \
            AuditLog(tmp_path / "audit.jsonl", mode="live", clock=lambda: now[0]) as file:
        for kind, data in records:
            now[0] += 1
            chain.append(kind, data=data)
            file.append(kind, data=data)
        for cl_ord_id, since in [("c1", 1000.0), ("c2", 1000.0), ("c3", 1000.0), ("c1", 1010.0)]:
            expected = audited_answer(tmp_path / "audit.jsonl", cl_ord_id, since)
            assert chain.find_answer(cl_ord_id, since) == expected, (cl_ord_id, since)
        assert chain.find_answer("c1", 1000.0) == {"ok": True, "data": {"order_id": "F-1"}}
        assert chain.find_answer("c1", 1010.0) is None  # answered before the decision's time (less 5 s)


def test_an_orders_audited_decision_is_found_in_the_chain_as_in_the_file(settings, tmp_path):
    from rules_engine.audit import AuditLog
    from rules_engine.audit.tail import audited_decision

    now = [1000.0]
    records = [
        ("decision", {"decision_id": "r#1", "fire_seq": 1}),  # the core's decision: no order in it
        ("decision", {"cl_ord_id": "c10", "intent": {"kind": "place_order"}}),
        ("decision", {"cl_ord_id": "c1", "intent": {"kind": "place_order"}}),
        ("request", {"cl_ord_id": "c2", "request": {}}),
    ]
    epoch = acquire_lease(settings, "w").epoch
    with PgAuditLog(settings, epoch=epoch, mode="live", clock=lambda: now[0]) as chain, \
            AuditLog(tmp_path / "audit.jsonl", mode="live", clock=lambda: now[0]) as file:
        for kind, data in records:
            now[0] += 1
            chain.append(kind, data=data)
            file.append(kind, data=data)
        cases = [("c1", 1000.0, True), ("c10", 1000.0, True), ("c2", 1000.0, False), ("c3", 1000.0, False),
                 ("c1", 1010.0, False)]  # c1's decision was audited before that time (less 5 s)
        for cl_ord_id, since, expected in cases:
            assert audited_decision(tmp_path / "audit.jsonl", cl_ord_id, since) is expected, (cl_ord_id, since)
            assert chain.find_decision(cl_ord_id, since) is expected, (cl_ord_id, since)
