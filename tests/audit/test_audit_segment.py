"""A damaged audit log is never continued: opening it for the engine names the first bad line,
and only an explicit new chain segment (which records the break) lets the engine go on."""

import hashlib
import json

import pytest

from rules_engine.audit import AuditDamagedError, AuditLog, open_checked, verify
from rules_engine.cli import main


def _log(path, n=6):
    with AuditLog(path, mode="live", clock=lambda: 1_700_000_000.0) as log:
        for i in range(1, n + 1):
            log.append("trigger", rule_id=f"r{i}", data={"n": i})
    return path


def _edit_byte_mid_file(path):
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"n":3', '"n":4')
    path.write_text("".join(lines))


def test_a_byte_edited_mid_file_stops_the_open_with_its_line(tmp_path):
    path = _log(tmp_path / "audit.jsonl")
    _edit_byte_mid_file(path)
    with pytest.raises(AuditDamagedError) as raised:
        open_checked(path, mode="live")
    message = str(raised.value)
    assert "damaged at line 3 (edited)" in message and "hash mismatch" in message
    assert "--accept-damaged-audit" in message and "audit new-segment" in message
    assert path.read_text().count("\n") == 6, "nothing was appended to the broken chain"


def test_swapped_lines_stop_the_open_as_reordered(tmp_path):
    path = _log(tmp_path / "audit.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3] + [lines[4], lines[3]] + lines[5:]))
    with pytest.raises(AuditDamagedError, match=r"line 4 \(reordered\)"):
        open_checked(path, mode="live")


def test_accepting_the_damage_starts_a_new_segment_that_records_the_break(tmp_path):
    path = _log(tmp_path / "audit.jsonl")
    _edit_byte_mid_file(path)
    damaged = path.read_bytes()
    with open_checked(path, mode="live", accept_damaged="--accept-damaged-audit") as log:
        log.append("startup", data={})
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("audit.jsonl.damaged-") and not p.name.endswith("head")]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged, "the damaged log is kept unchanged as evidence"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    first = records[0]
    assert first["kind"] == "chain_break" and first["seq"] == 1
    assert first["data"]["previous_log"] == kept[0].name
    assert first["data"]["sha256"] == hashlib.sha256(damaged).hexdigest() and first["data"]["size"] == len(damaged)
    assert first["data"]["problem"]["line"] == 3 and first["data"]["problem"]["kind"] == "edited"
    assert first["data"]["last_good"]["seq"] == 2 and first["data"]["accepted_by"] == "--accept-damaged-audit"
    assert records[1]["kind"] == "startup"
    assert verify(path).ok


def test_an_intact_log_opens_as_it_is(tmp_path):
    path = _log(tmp_path / "audit.jsonl")
    with open_checked(path, mode="live", accept_damaged="--accept-damaged-audit") as log:
        assert log.head[0] == 6
    assert not [p for p in tmp_path.iterdir() if "damaged" in p.name]


def test_the_new_segment_command(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    path = _log(state / "audit.jsonl")
    assert main(["audit", "new-segment", str(state)]) == 1 and "intact" in capsys.readouterr().err
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]))  # a record deleted
    assert main(["audit", "verify", str(state)]) == 1
    assert "records missing (seq 3)" in capsys.readouterr().err
    assert main(["audit", "new-segment", str(state)]) == 0
    assert "new chain segment" in capsys.readouterr().out
    assert main(["audit", "verify", str(state)]) == 0
    first = json.loads(path.read_text().splitlines()[0])
    assert first["kind"] == "chain_break" and first["data"]["problem"]["kind"] == "missing"
    assert first["data"]["accepted_by"] == "rules-engine audit new-segment"


def test_a_new_segment_is_refused_while_an_engine_writes_the_log(tmp_path, capsys):
    path = _log(tmp_path / "audit.jsonl")
    with AuditLog(path, mode="live"):
        _edit_byte_mid_file(path)
        assert main(["audit", "new-segment", str(path)]) == 1
        assert "open for writing in another process" in capsys.readouterr().err
