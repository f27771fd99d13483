"""A full disk: the engine refuses to act and says so (health body, metrics, log), then the
audit log and the state store recover by themselves once space returns, without a restart."""

from __future__ import annotations

import logging

from e2e_harness import E2E, get, move, wait_for
from rules_engine.audit import AuditLog, verify
from rules_engine.audit import log as audit_log_module
from rules_engine.state import StateStore
from tiny_disk import tiny_disk

RULES = """
- id: buy
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


def _orders(seen):
    return [report.result for intent, report in seen.reports if intent is not None and intent.kind == "place_order"]


async def _refuse_then_recover(e2e: E2E, break_disk, mend_disk, caplog) -> None:
    e2e.write_rules(RULES)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: len(_orders(seen)) == 1)
        assert _orders(seen)[0].ok
        break_disk()
        with caplog.at_level(logging.WARNING, logger="rules_engine"):
            await move(e2e, service, "XBTUSD", "69900", "70100")
            await wait_for(lambda: len(_orders(seen)) == 2)
            refused = _orders(seen)[1]
            assert not refused.ok and ("audit log" in refused.error or "state could not be saved" in refused.error)
            await wait_for(lambda: not service.visibility.readyz()["ready"])
            status, ready = await get(url + "/readyz")
            assert status == 503
            assert any(p["name"] == "storage_unwritable" and "audit log cannot be written" in p["reason"]
                       for p in ready["problems"])
            status, health = await get(url + "/healthz")
            assert status == 200  # alive: liveness stays up, readiness is what says it cannot trade
            assert health["storage"]["audit"]["writable"] is False and health["storage"]["audit"]["problem"]
            assert any("audit log cannot be written" in p for p in health["problems"])
            _, metrics = await get(url + "/metrics")
            assert 'rules_engine_storage_writable{part="audit"} 0.0' in metrics
            assert 'rules_engine_storage_failures_total{part="audit"} 1.0' in metrics
            assert any("orders are refused until it recovers" in r.getMessage() for r in caplog.records)
            mend_disk()
            await wait_for(lambda: not any(p["name"] == "storage_unwritable"  # housekeeping, no restart
                                           for p in service.visibility.readyz()["problems"]))
            assert any("can be written again" in r.getMessage() for r in caplog.records)
            # the disk's trouble is said, not a traceback per refused record (walked: one per event)
            assert any("audit log write failed: " in r.getMessage() for r in caplog.records)
            assert not [r.getMessage() for r in caplog.records if r.exc_info]
        _, metrics = await get(url + "/metrics")
        assert 'rules_engine_storage_writable{part="audit"} 1.0' in metrics
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: len(_orders(seen)) == 3)
        assert _orders(seen)[2].ok, _orders(seen)[2].error
    records = e2e.audit_records()
    recovered = [r for r in records if r["kind"] == "storage_recovered"]
    assert recovered and recovered[0]["data"]["part"] == "audit" and recovered[0]["data"]["refused_records"] > 0
    assert e2e.audit_ok()


async def test_a_full_disk_refuses_orders_and_recovers_when_space_returns(e2e: E2E, caplog) -> None:
    with tiny_disk(e2e.state_dir) as disk:
        await _refuse_then_recover(e2e, disk.fill, disk.free, caplog)


async def test_failing_disk_writes_refuse_orders_and_recover(e2e: E2E, caplog, monkeypatch) -> None:
    """The same with the failure injected at the OS-call boundary (runs without root)."""
    real_write, real_fsync = audit_log_module.os.write, audit_log_module.os.fsync
    broken = [False]

    def write(fd, data):
        if broken[0]:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    def fsync(fd):
        if broken[0]:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(audit_log_module.os, "write", write)
    monkeypatch.setattr(audit_log_module.os, "fsync", fsync)

    def set_broken(value):
        return lambda: broken.__setitem__(0, value)

    await _refuse_then_recover(e2e, set_broken(True), set_broken(False), caplog)


def test_the_audit_log_and_the_store_recover_on_a_real_full_disk(tmp_path) -> None:
    with tiny_disk(tmp_path / "disk", size="512k") as disk:
        log = AuditLog(disk.path / "audit.jsonl", mode="live")
        store = StateStore(disk.path / "engine.sqlite")
        log.append("startup", sync=True)
        disk.fill()
        failed_audit = failed_store = False
        for n in range(200):
            try:
                log.append("trigger", data={"n": n, "pad": "x" * 200}, sync=n % 10 == 0)
            except Exception:
                failed_audit = True
            try:
                with store.transaction():
                    store.record_decision(f"c{n}", "r", f"d{n}", {"pad": "y" * 2000})
            except Exception:
                failed_store = True
            if failed_audit and failed_store:
                break
        assert log.failure is not None and "No space left" in log.failure[0]
        assert store.failure is not None and "full" in store.failure[0]
        assert not store.probe()
        disk.free()
        assert store.probe() and store.failure is None
        log.sync()
        assert log.failure is None
        log.append("trigger", data={"after": True}, sync=True)
        log.close()
        store.close()
        assert verify(disk.path / "audit.jsonl").ok


async def test_an_audit_log_replaced_under_the_running_engine_refuses_orders_and_says_so(e2e: E2E) -> None:
    """An editor's save or `sed -i` replaces audit.jsonl with a new file. The engine went on
    writing to the old one, gone from the folder (walked: /readyz ready, the log on disk frozen,
    and a second engine could start on the state dir, the lock being on the old file). Now the
    housekeeping's check (about once a second) refuses every record and order from then on, and
    /readyz says why and what to do; the new file is left as it is."""
    e2e.write_rules(RULES)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: len(_orders(seen)) == 1)
        log = e2e.state_dir / "audit.jsonl"
        copy = log.with_name("edited.jsonl")
        copy.write_bytes(log.read_bytes())
        copy.replace(log)  # what `sed -i` does
        await wait_for(lambda: not service.visibility.readyz()["ready"])
        status, ready = await get(url + "/readyz")
        assert status == 503
        [problem] = [p for p in ready["problems"] if p["name"] == "storage_unwritable"]
        assert "audit.jsonl was replaced or removed while the engine writes it" in problem["reason"]
        assert "start it again" in problem["reason"]
        kept = log.read_bytes()
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: len(_orders(seen)) == 2)
        refused = _orders(seen)[1]
        assert not refused.ok and "audit log" in refused.error
        await wait_for(lambda: not service.visibility.readyz()["ready"])
        assert log.read_bytes() == kept
