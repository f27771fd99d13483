import json

import pytest

from rules_engine.audit import AuditLog, verify
from rules_engine.cli import main


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    state = tmp_path / "state"
    now = [0.0]
    with AuditLog(state / "audit.jsonl", mode="live", clock=lambda: now[0]) as log:
        for time, kind, rule, data in [
            (100.0, "trigger", "btc-dip", {"price": "60000"}),
            (200.0, "decision", "btc-dip", {"cl_ord_id": "c1"}),
            (300.0, "trigger", "eth-top", {"price": "3000"}),
            (400.0, "risk", "eth-top", {"ok": False}),
        ]:
            now[0] = time
            log.append(kind, rule_id=rule, data=data, sync=kind != "trigger")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RULES_ENGINE_STATE_DIR", raising=False)
    return state


def test_verify_default_path_is_the_state_dir(state_dir, capsys):
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("OK: state/audit.jsonl: 4 records")


def test_verify_env_and_flag_and_directory_paths(state_dir, tmp_path, monkeypatch, capsys):
    moved = tmp_path / "elsewhere"
    state_dir.rename(moved)
    assert main(["audit", "verify"]) == 2
    assert "no audit log" in capsys.readouterr().err
    assert main(["audit", "verify", "--state-dir", str(moved)]) == 0
    assert main(["audit", "verify", str(moved)]) == 0
    assert main(["audit", "verify", str(moved / "audit.jsonl")]) == 0
    monkeypatch.setenv("RULES_ENGINE_STATE_DIR", str(moved))
    assert main(["audit", "verify"]) == 0


def test_verify_exit_1_on_tampering(state_dir, capsys):
    path = state_dir / "audit.jsonl"
    path.write_text(path.read_text().replace('"price":"60000"', '"price":"1"'))
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "TAMPERED" in err and "line 1" in err


def test_verify_exit_1_on_truncation_and_expect_head(state_dir, capsys):
    path = state_dir / "audit.jsonl"
    head = verify(path)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    (state_dir / "audit.jsonl.head").unlink()
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "verify", "--expect-head", f"{head.head_seq}:{head.head_hash}"]) == 1
    assert "TRUNCATED" in capsys.readouterr().err


def test_usage_errors_exit_2(state_dir, capsys):
    for argv in (["audit"], ["audit", "verify", "--expect-head", "xyz"], ["audit", "show", "--since", "soon"],
                 ["audit", "show", "--format", "xml"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2


def test_torn_tail_warns_strict_fails_and_repair_seals(state_dir, capsys):
    path = state_dir / "audit.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"data":{')
    assert main(["audit", "verify"]) == 0
    assert "WARNING: line 5: torn final line" in capsys.readouterr().out
    assert main(["audit", "verify", "--strict"]) == 1
    assert main(["audit", "verify", "--repair"]) == 0
    assert "repaired" in capsys.readouterr().out
    assert main(["audit", "verify", "--strict"]) == 0
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["kind"] == "torn_tail" and last["mode"] == "repair"


def test_repair_refuses_a_tampered_log(state_dir, capsys):
    path = state_dir / "audit.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[1], lines[0]] + lines[2:]))
    before = path.read_bytes()
    assert main(["audit", "verify", "--repair"]) == 1
    assert "not repaired" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_repair_refuses_while_the_engine_holds_the_log(state_dir, capsys):
    path = state_dir / "audit.jsonl"
    with AuditLog(path, mode="live"):
        with open(path, "ab") as handle:
            handle.write(b'{"torn')
        assert main(["audit", "verify", "--repair"]) == 1
    assert "open for writing in another process" in capsys.readouterr().err


def test_show_filters_and_formats(state_dir, capsys):
    assert main(["audit", "show", "--kind", "trigger"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and " trigger rule=btc-dip " in out[0] and " trigger rule=eth-top " in out[1]
    assert main(["audit", "show", "--rule", "btc-*", "--kind", "decision,risk", "--format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["seq"], r["kind"]) for r in records] == [(2, "decision")]
    assert main(["audit", "show", "--since", "150", "--until", "1970-01-01T00:07:00Z", "--format", "json"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [2, 3, 4]
    assert main(["audit", "show", "--kind", "trigger", "--kind", "risk", "--rule", "eth-top"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_show_exit_1_when_lines_are_damaged(state_dir, capsys):
    path = state_dir / "audit.jsonl"
    path.write_text(path.read_text().replace('"price":"3000"', '"price":"1"'))
    assert main(["audit", "show"]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3 and "line 3: hash mismatch" in captured.err


def test_show_names_a_kind_the_log_has_no_record_of(tmp_path, capsys):
    """`--kind decisions` (a typo) printed nothing and exited 0 without a word."""
    log = AuditLog(tmp_path / "audit.jsonl", mode="dry-run")
    log.append("decision", rule_id="r", data={"n": 1})
    log.append("request", rule_id="r", data={"n": 2})
    log.close()
    assert main(["audit", "show", str(tmp_path), "--kind", "decisions,request"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[2] for line in out.splitlines()] == ["request"]
    assert err == (f"note: {tmp_path / 'audit.jsonl'} has no record of kind 'decisions' (did you mean 'decision'?); "
                   "its kinds: decision, request\n")
    assert main(["audit", "show", str(tmp_path), "--kind", "decision", "--rule", "other"]) == 0
    assert capsys.readouterr() == ("", "")  # a kind the log has, filtered out by --rule: nothing to say


def test_a_state_dirs_other_files_are_named_not_called_tampered(tmp_path, capsys):
    """`audit verify state/audit.jsonl.head` (a slip of the tab key) said TAMPERED, exit 1."""
    log = AuditLog(tmp_path / "audit.jsonl", mode="dry-run")
    log.append("startup", data={})
    log.close()
    from rules_engine.state import StateStore

    StateStore(tmp_path / "engine.sqlite").close()
    assert main(["audit", "verify", str(tmp_path / "audit.jsonl.head")]) == 2
    assert capsys.readouterr().err == (f"rules-engine audit: {tmp_path / 'audit.jsonl.head'} is a head file, not an "
                                       "audit log: give the state dir or its audit.jsonl\n")
    assert main(["audit", "show", str(tmp_path / "engine.sqlite")]) == 2
    assert "is an SQLite database (the state store), not an audit log" in capsys.readouterr().err
    assert main(["audit", "verify", "--state-dir", str(tmp_path), str(tmp_path)]) == 2
    assert "give the log (PATH) or --state-dir, not both" in capsys.readouterr().err
    assert main(["audit", "verify", str(tmp_path)]) == 0
