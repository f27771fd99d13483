import dataclasses
import json
import os
from decimal import Decimal
from urllib.parse import quote_plus

import pytest

from rules_engine.audit import (
    GENESIS,
    AuditCorruptError,
    AuditError,
    AuditLockedError,
    AuditLog,
    head_path,
    read_head,
    record_hash,
    verify,
)
from rules_engine.audit import log as log_module
from rules_engine.audit.head import HEAD_BYTES
from rules_engine.redact import Redactor


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_canonical_chained_and_typed(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = FakeClock()
    with AuditLog(path, mode="live", clock=clock) as log:
        first = log.append("trigger", rule_id="buy-dip", rule_file_hash="ab" * 32, data={"price": Decimal("61000.5")})
        clock.now += 1
        second = log.append("decision", rule_id="buy-dip", data={"volume": Decimal("0.01"), "sides": ("buy",)}, sync=True)
    raw = path.read_text().splitlines()
    assert len(raw) == 2
    assert raw[0] == json.dumps(first, sort_keys=True, separators=(",", ":"))
    records = lines(path)
    assert records[0]["seq"] == 1 and records[0]["prev"] == GENESIS
    assert records[1]["seq"] == 2 and records[1]["prev"] == records[0]["hash"]
    assert records[0]["data"] == {"price": "61000.5"}
    assert records[1]["data"] == {"volume": "0.01", "sides": ["buy"]}
    assert records[0]["rule_hash"] == "ab" * 32 and records[1]["rule_hash"] is None
    assert records[1]["time"] == 1_700_000_001.0 and records[1]["mode"] == "live"
    assert all(r["hash"] == record_hash(r) for r in records)
    assert second == records[1]


def test_reopening_continues_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="dry-run") as log:
        log.append("startup")
        head = log.append("shutdown")
    with AuditLog(path, mode="dry-run") as log:
        assert log.head == (2, head["hash"])
        record = log.append("startup")
    assert record["seq"] == 3 and record["prev"] == head["hash"]
    assert verify(path).ok


def test_sync_updates_the_head_file_and_batches_fsync_other_records(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    clock = FakeClock()
    log = AuditLog(path, mode="live", clock=clock, fsync_every=3, fsync_interval=60)
    log.append("trigger")
    log.append("guard")
    assert read_head(path) is None and fsyncs == []
    log.append("guard")  # third record: batch full
    assert read_head(path).seq == 3 and fsyncs.count(log._fd) == 1
    log.append("trigger")
    clock.now += 61  # interval elapsed
    log.append("trigger")
    assert read_head(path).seq == 5
    decision = log.append("decision", sync=True)
    head = read_head(path)
    assert (head.seq, head.hash) == (6, decision["hash"])
    log.append("request")
    log.close()
    assert read_head(path).seq == 7


def test_a_synced_record_costs_one_fsync_and_the_head_is_fsynced_with_the_next_batch(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    clock = FakeClock()
    log = AuditLog(path, mode="live", clock=clock, fsync_every=100, fsync_interval=60)
    log.append("startup", sync=True)  # no head file yet: it is created durably
    assert len(fsyncs) == 2 and fsyncs[0] == log._fd and read_head(path).seq == 1
    log.append("trigger")
    decision = log.append("decision", sync=True)
    assert fsyncs[2:] == [log._fd]  # the log only: the head file is updated in place, not fsynced
    assert (read_head(path).seq, read_head(path).hash) == (3, decision["hash"])
    log.append("decision", sync=True)
    assert fsyncs[2:] == [log._fd, log._fd] and read_head(path).seq == 4
    assert len(head_path(path).read_bytes()) == HEAD_BYTES
    log.sync()  # nothing new to write, but the head is behind: replace it durably now
    assert len(fsyncs) == 6 and fsyncs[4] == log._fd and fsyncs[5] != log._fd
    log.sync()
    assert len(fsyncs) == 6
    log.append("request", sync=True)
    assert read_head(path).seq == 5
    clock.now += 61
    log.append("response")  # the interval elapsed: a batch sync, with the head
    assert len(fsyncs) == 9 and read_head(path).seq == 6
    log.close()
    assert len(fsyncs) == 9 and verify(path).ok


def test_a_second_writer_is_refused(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live"):
        with pytest.raises(AuditLockedError):
            AuditLog(path, mode="live")
    AuditLog(path, mode="live").close()


def test_bad_kind_is_refused_and_writes_nothing(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live") as log:
        for kind in ("", "Decision", "two words", None):
            with pytest.raises(ValueError):
                log.append(kind)
        with pytest.raises(TypeError):
            log.append("trigger", rule_id=5)
        with pytest.raises(TypeError):
            log.append("trigger", data=[1, 2])
    assert path.read_text() == ""


def test_a_torn_final_line_is_sealed_with_a_record_on_reopen(tmp_path, caplog):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live") as log:
        log.append("decision", data={"n": 1}, sync=True)
        good = log.append("request", data={"n": 2})
    fragment = b'{"data":{"n":3},"hash":"ab'
    with open(path, "ab") as handle:
        handle.write(fragment)
    report = verify(path)
    assert report.ok and report.torn_tail is not None and report.torn_tail.line == 3
    with caplog.at_level("WARNING", logger="rules_engine.audit.log"), AuditLog(path, mode="live") as log:
        assert log.head[0] == 3
    [told] = [r.getMessage() for r in caplog.records if r.name == "rules_engine.audit.log"]
    assert f"{len(fragment)} bytes at offset" in told and "torn_tail record 3" in told
    assert fragment.decode() not in told  # the bytes stay in the record (redacted), not in the log
    records = lines(path)
    torn = records[2]
    assert torn["kind"] == "torn_tail" and torn["prev"] == good["hash"]
    assert torn["data"]["length"] == len(fragment)
    assert torn["data"]["excerpt"] == fragment.decode()
    assert verify(path).ok and verify(path).torn_tail is None


def test_a_damaged_last_record_is_never_continued(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live") as log:
        log.append("decision", data={"volume": "1"})
    tampered = path.read_text().replace('"volume":"1"', '"volume":"9"')
    path.write_text(tampered)
    with pytest.raises(AuditCorruptError, match="hash mismatch"):
        AuditLog(path, mode="live")
    assert path.read_text() == tampered


def test_a_log_shorter_than_its_head_is_never_continued(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live") as log:
        log.append("decision", sync=True)
        log.append("decision", sync=True)
    first_line = path.read_text().splitlines(keepends=True)[0]
    path.write_text(first_line)
    with pytest.raises(AuditCorruptError, match="head file says seq 2"):
        AuditLog(path, mode="live")
    path.unlink()
    with pytest.raises(AuditCorruptError, match="head file says seq 2"):
        AuditLog(path, mode="live")


def test_a_failed_write_leaves_the_log_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live")
    log.append("startup")
    before = path.read_bytes()
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(log_module.os, "write", half_then_fail)
    with pytest.raises(AuditError, match="No space left"):
        log.append("decision", data={"x": 1}, sync=True)
    monkeypatch.setattr(log_module.os, "write", real_write)
    assert path.read_bytes() == before
    log.append("decision", data={"x": 1}, sync=True)
    log.close()
    assert verify(path).ok and verify(path).records == 3
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds == ["startup", "storage_recovered", "decision"], "the refused record is accounted for"


def test_a_failed_fsync_makes_the_log_refuse_further_records(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live")

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(log_module.os, "fsync", failing_fsync)
    with pytest.raises(AuditError, match="could not sync"):
        log.append("decision", sync=True)
    with pytest.raises(AuditError, match="unusable"):
        log.append("request")
    log.close()


def test_the_log_recovers_when_the_disk_does(tmp_path, monkeypatch):
    """After a failed fsync the log refuses records; once fsync works again it writes the
    records since its last good fsync again, records the outage, and takes records."""
    now = [1_700_000_000.0]
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live", clock=lambda: now[0])
    log.append("startup", sync=True)
    log.append("trigger", data={"n": 1})
    real_fsync = log_module.os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(AuditError, match="could not sync"):
        log.append("decision", data={"n": 2}, sync=True)
    assert log.failure is not None and "fsync failed (No space left)" in log.failure[0]
    with pytest.raises(AuditError, match="unusable"):
        log.append("request")
    monkeypatch.setattr(log_module.os, "fsync", real_fsync)
    with pytest.raises(AuditError, match="unusable"):
        log.append("request")  # tried again only after RETRY_INTERVAL
    now[0] += AuditLog.RETRY_INTERVAL
    log.append("request", data={"n": 3}, sync=True)
    assert log.failure is None
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["startup", "trigger", "decision", "storage_recovered", "request"]
    assert records[3]["data"]["refused_records"] == 2 and records[3]["data"]["failed_at"] == 1_700_000_000.0
    assert records[3]["data"]["rewritten_bytes"] > 0, "the lines since the last good fsync are written again"
    assert verify(path).ok


def test_a_failed_log_recovers_on_sync(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live")
    real_fsync = log_module.os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(AuditError):
        log.append("decision", sync=True)
    with pytest.raises(AuditError, match="still failing"):
        log.sync()
    monkeypatch.setattr(log_module.os, "fsync", real_fsync)
    log.sync()
    assert log.failure is None
    log.close()
    assert verify(path).ok and [json.loads(x)["kind"] for x in path.read_text().splitlines()] == [
        "decision", "storage_recovered"]


@pytest.mark.parametrize("how", ["replaced", "removed", "written"])
def test_a_log_file_replaced_removed_or_written_by_another_program_is_never_written_again(tmp_path, how):
    """`sed -i` or an editor's save replaces the file, `mv` removes it, `echo >>` writes to it:
    the next sync finds out and the log refuses every record from then on (a restart verifies
    the file and goes on from there); the file on disk is left as it is."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="live")
    log.append("startup", sync=True)
    log.sync()
    if how == "replaced":
        (tmp_path / "copy").write_bytes(path.read_bytes())
        os.replace(tmp_path / "copy", path)
    elif how == "removed":
        path.rename(tmp_path / "archived.jsonl")
    else:
        with path.open("a") as handle:
            handle.write("a note\n")
    on_disk = path.read_bytes() if path.exists() else None
    what = "was written to by another program" if how == "written" else "was replaced or removed"
    with pytest.raises(AuditError, match=what):
        log.sync()
    assert log.failure is not None and "start it again" in log.failure[0]
    with pytest.raises(AuditError):
        log.append("decision", sync=True)
    assert not log.recover()
    log.close()
    assert (path.read_bytes() if path.exists() else None) == on_disk


def test_closed_log_refuses_records(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", mode="live")
    log.close()
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append("startup")


@dataclasses.dataclass
class Intent:
    pair: str
    note: str


def test_no_registered_secret_ever_reaches_the_files(tmp_path):
    secret = "Zm9vYmFyK3NlY3JldC8vPT0+/abc=="
    passphrase = "correct horse battery"
    redactor = Redactor()
    redactor.register(secret)
    redactor.register(passphrase)
    path = tmp_path / "audit.jsonl"
    shapes = [
        {"plain": secret},
        {"inside": f"HTTP 401 body={secret};"},
        {"urlencoded": f"nonce=1&sig={quote_plus(secret)}"},
        {secret: "as a key"},
        {"list": [[{"deep": (secret, passphrase)}]]},
        {"bytes": secret.encode()},
        {"error": RuntimeError(f"auth failed for {passphrase}")},
        {"object": Intent("XBTUSD", f"note {secret}")},
        {"set": {secret, "x"}},
        {"API-Sign": "per-request-signature", "headers": {"API-Key": "public-key"}},
    ]
    with AuditLog(path, mode="live", redactor=redactor) as log:
        for data in shapes:
            log.append("request", rule_id=f"rule-{passphrase}", data=data, sync=True)
    with open(path, "ab") as handle:
        handle.write(b'{"note":"' + secret.encode() + b'"')  # a torn line holding a secret
    with AuditLog(path, mode="live", redactor=redactor) as log:
        log.append("shutdown")
    for file in (path, head_path(path)):
        content = file.read_bytes()
        for value in (secret, passphrase, quote_plus(secret), "per-request-signature", "public-key"):
            assert value.encode() not in content
    assert verify(path).ok


def test_a_head_read_while_it_is_updated_in_place_is_read_again(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live") as log:
        record = log.append("decision", sync=True)
    whole = head_path(path).read_bytes()
    reads = iter([whole[:40] + b"\0" * (len(whole) - 40), whole])  # the first read sees it half written
    monkeypatch.setattr(type(head_path(path)), "read_bytes", lambda self: next(reads))
    assert read_head(path).hash == record["hash"]


def test_append_many_chains_the_records_in_one_write_or_keeps_none(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, mode="dry-run")
    first = log.append("startup")
    writes = []
    real_write = os.write
    monkeypatch.setattr(log_module.os, "write", lambda fd, data: (writes.append(len(data)), real_write(fd, data))[1])
    records = log.append_many([("trigger", "r1", "a" * 64, {"value": Decimal("1.5")}),
                               ("decision", "r1", "a" * 64, {"fire_seq": 1}), ("state", None, None, None)])
    assert len(writes) == 1 and [r["seq"] for r in records] == [2, 3, 4]
    assert records[0]["prev"] == first["hash"] and records[2]["prev"] == records[1]["hash"]
    assert records[0]["data"] == {"value": "1.5"} and log.head == (4, records[2]["hash"])
    before = path.read_bytes()

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(log_module.os, "write", half_then_fail)
    with pytest.raises(AuditError, match="No space left"):
        log.append_many([("trigger", "r1", None, {"n": n}) for n in range(3)])
    assert path.read_bytes() == before and log.head == (4, records[2]["hash"])
    with pytest.raises(ValueError):
        log.append_many([("trigger", None, None, {}), ("Bad Kind", None, None, {})])
    monkeypatch.setattr(log_module.os, "write", real_write)
    assert path.read_bytes() == before
    log.close()
    assert verify(path).ok and verify(path).records == 5
    recovered = json.loads(path.read_text().splitlines()[-1])
    assert recovered["kind"] == "storage_recovered" and recovered["data"]["refused_records"] == 3
    assert "No space left" in recovered["data"]["error"]


def test_a_synced_decision_costs_one_fsync_even_when_a_batch_is_due(tmp_path, monkeypatch):
    """The decision's record is fsynced and the head updated in place; replacing the head file
    durably (more fsyncs) is left to the next batch or `sync()`, off the way to the order."""
    from rules_engine.audit import head as head_module

    now = [1_700_000_000.0]
    log = AuditLog(tmp_path / "audit.jsonl", mode="live", clock=lambda: now[0])
    log.append("startup", sync=True)
    log.append("trigger")
    now[0] += 5  # the 1 s batch interval has passed
    calls = []
    real = os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    monkeypatch.setattr(head_module.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    log.append("decision", data={"n": 1}, sync=True)
    assert len(calls) == 1
    log.sync()
    assert len(calls) > 1, "the head file is replaced durably by the next sync"
    log.close()
    assert verify(tmp_path / "audit.jsonl").ok


def test_the_fields_around_the_data_are_written_exactly_as_canonical_json_writes_them():
    from rules_engine.audit.log import _rest_json
    from rules_engine.audit.records import canonical_json

    cases = [
        {"seq": 1, "time": 1714557600.123, "kind": "decision", "rule_id": "buy-dip", "rule_hash": "a" * 64,
         "mode": "live", "prev": "0" * 64},
        {"seq": 2**40, "time": 1e-7, "kind": "trigger", "rule_id": None, "rule_hash": None, "mode": "dry-run",
         "prev": "f" * 64},
        {"seq": 3, "time": 0.0, "kind": "x", "rule_id": 'é"\\\n\u2028😀', "rule_hash": None, "mode": "validate",
         "prev": "1" * 64},
        {"seq": 4, "time": 1.5e300, "kind": "state", "rule_id": "r", "rule_hash": "b" * 64, "mode": "live",
         "prev": "2" * 64},
    ]
    for rest in cases:
        assert _rest_json(rest) == canonical_json(rest)
    with pytest.raises(ValueError):  # not a finite time: refused as canonical JSON refuses it
        _rest_json({**cases[0], "time": float("nan")})


def test_short_texts_are_redacted_again_once_a_new_secret_is_registered():
    from rules_engine.redact import Redactor

    redactor = Redactor()
    assert redactor.redact({"note": "pay tok-123"}) == {"note": "pay tok-123"}  # remembered as clean
    redactor.register("tok-123")
    assert redactor.redact({"note": "pay tok-123"}) == {"note": "pay ***"}
    assert redactor.redact("pay tok-123") == "pay ***"
