import json

import pytest

from rules_engine.audit import AuditLog, head_path, parse_anchor, record_hash, verify


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, mode="live", clock=lambda: 1_700_000_000.0) as log:
        for n in range(1, 7):
            log.append("decision" if n % 2 else "trigger", rule_id=f"r{n}", data={"n": n}, sync=True)
    return path


def rewrite(path, mutate):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(mutate(lines)))


def test_an_untouched_log_verifies(log_path):
    report = verify(log_path)
    assert report.ok and report.records == 6 and report.head_seq == 6
    assert report.head_hash == json.loads(log_path.read_text().splitlines()[-1])["hash"]
    assert "OK" in report.summary() and "audit.jsonl.head" in report.summary()


def test_an_empty_log_verifies(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    assert verify(path).ok and verify(path).records == 0


def test_an_edited_field_is_found(log_path):
    rewrite(log_path, lambda ls: ls[:2] + [ls[2].replace('"n":3', '"n":30')] + ls[3:])
    report = verify(log_path)
    assert not report.ok and report.problem.line == 3 and report.problem.kind == "edited"
    assert "record edited" in report.problem.reason and "hash mismatch" in report.problem.reason and "TAMPERED" in report.summary()


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(log_path):
    def forge(lines):
        record = json.loads(lines[2])
        record["data"]["n"] = 30
        record["hash"] = record_hash(record)
        return lines[:2] + [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"] + lines[3:]

    rewrite(log_path, forge)
    report = verify(log_path)
    assert report.problem.line == 4 and "prev does not match" in report.problem.reason
    assert report.problem.kind == "edited" and "hash recomputed" in report.problem.reason


def test_a_deleted_line_is_found(log_path):
    rewrite(log_path, lambda ls: ls[:3] + ls[4:])
    report = verify(log_path)
    assert report.problem.line == 4 and "seq 5 where 4 was expected" in report.problem.reason
    assert report.problem.kind == "missing" and "records missing (seq 4)" in report.problem.reason


def test_several_deleted_lines_are_named(log_path):
    rewrite(log_path, lambda ls: ls[:1] + ls[4:])
    report = verify(log_path)
    assert report.problem.kind == "missing" and "seqs 2 to 4" in report.problem.reason


def test_swapped_lines_are_found(log_path):
    rewrite(log_path, lambda ls: ls[:1] + [ls[2], ls[1]] + ls[3:])
    report = verify(log_path)
    assert report.problem.line == 2 and report.problem.kind == "reordered"
    assert "records out of order (seq 2 is on line 3)" in report.problem.reason
    assert "missing" not in report.problem.reason


def test_a_line_moved_back_is_reordered_not_missing(log_path):
    rewrite(log_path, lambda ls: ls[:1] + ls[2:5] + [ls[1]] + ls[5:])
    report = verify(log_path)
    assert report.problem.line == 2 and report.problem.kind == "reordered"
    assert "seq 2 is on line 5" in report.problem.reason


def test_a_duplicated_line_is_found(log_path):
    rewrite(log_path, lambda ls: ls[:3] + [ls[2]] + ls[3:])
    report = verify(log_path)
    assert report.problem.line == 4 and report.problem.kind == "duplicated"
    assert "a duplicate of an earlier record" in report.problem.reason


def test_a_garbage_line_is_found(log_path):
    rewrite(log_path, lambda ls: ls[:2] + ["not json\n"] + ls[2:])
    report = verify(log_path)
    assert report.problem.line == 3 and "not valid JSON" in report.problem.reason
    assert report.problem.kind == "damaged"


def test_a_torn_final_line_is_told_apart(log_path):
    with open(log_path, "ab") as handle:
        handle.write(b'{"data":{"n":7')
    report = verify(log_path)
    assert report.ok and report.torn_tail is not None and report.torn_tail.kind == "torn_tail"
    assert report.torn_tail.line == 7 and "torn final line" in report.torn_tail.reason


def test_removing_trailing_records_is_caught_by_the_head_file(log_path):
    rewrite(log_path, lambda ls: ls[:4])
    report = verify(log_path)
    assert not report.ok and report.problem.kind == "truncated" and report.problem.line == 5
    assert "says seq 6" in report.problem.reason and report.summary().startswith("TRUNCATED")


def test_removing_trailing_records_is_caught_by_an_external_anchor(log_path):
    full = verify(log_path)
    anchor = f"{full.head_seq}:{full.head_hash}"
    head_path(log_path).unlink()
    rewrite(log_path, lambda ls: ls[:4])
    assert verify(log_path).ok  # without any anchor, whole-record truncation is invisible
    report = verify(log_path, expect_head=anchor)
    assert report.problem.kind == "truncated"
    assert not verify(log_path, expect_head=full.head_hash).ok
    earlier = json.loads(log_path.read_text().splitlines()[1])["hash"]
    assert verify(log_path, expect_head=earlier).ok
    rewritten = verify(log_path, expect_head=f"3:{earlier}")
    assert rewritten.problem.kind == "anchor"  # named without a line: it said "line 5", past the log's end
    assert str(rewritten.problem) == f"no record has seq 3 with hash {earlier}: the log was truncated or rewritten"


def test_a_rewritten_head_record_is_found(log_path):
    def forge(lines):
        record = json.loads(lines[5])
        record["data"]["n"] = 60
        record["hash"] = record_hash(record)
        return lines[:5] + [json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"]

    rewrite(log_path, forge)
    report = verify(log_path)
    assert report.problem.kind == "head" and report.problem.line == 6


def test_cutting_into_the_last_record_is_a_torn_tail_only_when_it_was_never_synced(log_path):
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-20])
    report = verify(log_path)
    assert report.problem.kind == "truncated", "the head file says record 6 was synced"
    head_path(log_path).unlink()
    report = verify(log_path)
    assert report.ok and report.torn_tail.line == 6 and "WARNING" in report.summary()


def test_an_unreadable_head_file_is_reported(log_path):
    head_path(log_path).write_text("{")
    report = verify(log_path)
    assert report.problem.kind == "head" and "unreadable" in str(report.problem)


@pytest.mark.parametrize("text", ["abc", "1:" + "g" * 64, "x:" + "a" * 64, ""])
def test_bad_anchors_are_refused(text):
    with pytest.raises(ValueError):
        parse_anchor(text)


def test_anchor_forms():
    assert parse_anchor("A" * 64) == (None, "a" * 64)
    assert parse_anchor("12:" + "b" * 64) == (12, "b" * 64)
