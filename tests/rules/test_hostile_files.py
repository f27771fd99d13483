"""Issue 10 at rule loading (`rules-engine validate`): findings 2, 3 and 8, and the YAML attack
corpus. Each case asserts the exact refusal and that it came quickly: a generous bound that
proves "not stalled" (before the fix a FIFO hung `validate` and a big number took 18.6 s)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from rules_engine import cli
from rules_engine.expr import budget
from rules_engine.rules import load_rules

pytestmark = pytest.mark.timeout(60)

NOT_STALLED = 5.0
FIXTURES = Path(__file__).parent / "fixtures"

RULE = """version: 1
rules:
  - id: ok
    triggers: [{type: timer, every: 1m}]
    actions: [{type: cancel_all}]
"""


def validate(*paths: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run `rules-engine validate` in-process: (exit code, output lines), within NOT_STALLED."""
    started = time.perf_counter()
    code = cli.main(["validate", *map(str, paths)])
    assert time.perf_counter() - started < NOT_STALLED
    return code, capsys.readouterr().out.strip().splitlines()


def test_a_named_pipe_is_refused_by_name_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 3: `validate fifo.yaml` used to hang on the pipe."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    code, out = validate(fifo, capsys=capsys)
    assert code == 1
    assert out[0] == f"{fifo.as_posix()}:1:1: this is a named pipe (FIFO), not a regular file; rule files must be " \
                     "regular files"


def test_a_pipe_or_socket_in_a_rules_folder_is_refused_by_name(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.yaml").write_text(RULE)
    os.mkfifo(tmp_path / "pipe.yaml")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "sock.yml"))
        code, out = validate(tmp_path, capsys=capsys)
    finally:
        server.close()
    assert code == 1
    assert [line.split(": ", 1)[1] for line in out[:2]] == [
        "this is a named pipe (FIFO), not a regular file; rule files must be regular files",
        "this is a socket, not a regular file; rule files must be regular files",
    ]


def test_a_device_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate("/dev/zero", capsys=capsys)
    assert code == 1
    assert out[0] == "/dev/zero:1:1: this is a character device, not a regular file; rule files must be regular files"


def test_symlinks_leaving_the_rules_tree_are_reported_and_never_quoted(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 8: validate followed the link and quoted the target's contents in its errors."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("password: hunter2-do-not-leak\npassword: again\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yaml").write_text(RULE)
    (rules / "other.yaml").write_text(RULE.replace("id: ok", "id: other"))
    (rules / "inside").mkdir()
    (rules / "inside" / "link.yaml").symlink_to(rules / "other.yaml")  # a link within the tree is read
    (rules / "leak.yaml").symlink_to(outside / "secret.yaml")
    (rules / "sub").symlink_to(outside, target_is_directory=True)
    code, out = validate(rules, capsys=capsys)
    assert code == 1
    text = "\n".join(out)
    assert "hunter2" not in text and "password" not in text
    message = (f"this is a symbolic link that leads outside the rules folder {rules.as_posix()}; it is not read "
               "(put the rule file itself in the folder)")
    assert [line for line in out if "symbolic link" in line] == [f"{(rules / 'leak.yaml').as_posix()}:1:1: {message}",
                                                                 f"{(rules / 'sub').as_posix()}:1:1: {message}"]
    assert out[-1] == "invalid: 5 files, 3 rules: 3 errors, 0 warnings"
    assert any('duplicate rule id "other"' in line for line in out)  # the link within the tree was read


def test_a_nul_byte_is_reported_at_its_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 8: a NUL on line 11 was reported at 1:1 with a character offset."""
    lines = RULE.splitlines() + ["# padding"] * 5 + ["# the next line holds a NUL", "x: ab\x00c"]
    path = tmp_path / "nul.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, out = validate(path, capsys=capsys)
    assert code == 1
    assert out[0] == (f"{path.as_posix()}:12:6: the file holds the control character U+0000, which YAML does not "
                      "allow (rule files are text; was a binary file saved as .yaml?)")


def test_other_control_characters_are_reported_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "bell.yaml"
    path.write_text(RULE.replace("id: ok", "id: o\x07k"))
    [error] = load_rules([path]).errors
    assert (error.line, error.column, error.code) == (3, 10, "control-character")
    assert "U+0007" in error.message


def test_a_repeated_merge_key_is_a_duplicate_key(tmp_path: Path) -> None:
    """Finding 8: two `<<` in one mapping were accepted silently."""
    path = tmp_path / "merge.yaml"
    path.write_text("version: 1\n"
                    "x-a: &a {triggers: [{type: timer, every: 1m}]}\n"
                    "x-b: &b {actions: [{type: cancel_all}]}\n"
                    "rules:\n"
                    "  - id: m\n"
                    "    <<: *a\n"
                    "    <<: *b\n")
    errors = load_rules([path]).errors
    assert [(e.line, e.column, e.message) for e in errors if e.code == "yaml-duplicate-key"] == [
        (7, 5, 'duplicate key "<<" (first written on line 6); merge several mappings with one key: <<: [*a, *b]')]
    path.write_text(path.read_text().replace("    <<: *a\n    <<: *b\n", "    <<: [*a, *b]\n"))
    assert [e for e in load_rules([path]).errors if e.code == "yaml-duplicate-key"] == []


def test_a_big_number_in_an_expression_fails_validate_at_once(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 2: this guard made `validate` take 18.6 s."""
    path = tmp_path / "slow.yaml"
    path.write_text(RULE.replace("    actions:",
                                 "    when: \"scheduled_time > 0 and decimal('1.' + '1'*9990) ** 1.5 > 0\"\n"
                                 "    actions:"))
    code, out = validate(path, capsys=capsys)
    assert code == 1
    assert out[0] == (f'{path.as_posix()}:5:35: rule "ok": invalid expression: decimal() of a number too large: '
                      "the number has 9991 digits (limit 100) in `decimal('1.' + '1'*9990)`")


def test_a_file_over_its_load_budget_is_refused_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 4.0  # every look at the clock: 4 s later
        return now[0]

    monkeypatch.setattr(budget, "clock", clock)
    path = tmp_path / "heavy.yaml"
    path.write_text(RULE.replace("    actions:", "    when: \"scheduled_time > 0\"\n    actions:"))
    result = load_rules([path])
    assert result.ruleset is None
    assert [(e.line, e.code, e.message) for e in result.errors] == [
        (1, "load-budget", "loading this file took longer than 10 s, its budget; none of its rules are loaded "
                           "(split it, or simplify what its expressions compute)")]


# ---------------------------------------------------------------- the YAML attack corpus

def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_billion_laughs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(FIXTURES / "billion_laughs.yaml", capsys=capsys)
    assert code == 1
    assert out[0].endswith(":8:4: aliases expand this file to more than 200000 values (a 'billion laughs' file?); "
                           "rule files are limited to keep loading safe")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system",
                                 "!!python/object/new:subprocess.Popen", "!!binary"])
def test_python_tags_are_refused(tmp_path: Path, tag: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "tag.yaml", f'version: 1\nrules:\n  - id: {tag} ["touch /tmp/pwned"]\n'.encode())
    code, out = validate(path, capsys=capsys)
    assert code == 1
    assert f'the tag "{tag}" is not allowed; rule files hold plain data only' in out[0]
    assert not Path("/tmp/pwned").exists()


def test_a_50_mb_file_is_refused_by_its_size_before_reading(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: no disk, same size
    code, out = validate(path, capsys=capsys)
    assert code == 1
    assert out[0] == f"{path.as_posix()}:1:1: the file is 52428800 bytes; rule files are limited to 1048576 bytes"


@pytest.mark.parametrize(("data", "message"), [
    (b"rules: " + b"[" * 10_000 + b"]" * 10_000,
     "invalid YAML: while increasing flow level exceeded maximum nesting depth"),
    (b"rules:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 200)), "nested more than 64 levels deep"),
])
def test_deep_nesting(tmp_path: Path, data: bytes, message: str) -> None:
    started = time.perf_counter()
    [error] = load_rules([_write(tmp_path, "deep.yaml", data)]).errors
    assert time.perf_counter() - started < NOT_STALLED
    assert message in error.message


def test_duplicate_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "dup.yaml", RULE.replace("    actions:", "    id: again\n    actions:").encode())
    [error] = load_rules([path]).errors
    assert (error.line, error.message) == (5, 'duplicate key "id" (first written on line 3)')


def test_non_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin1.yaml", RULE.replace("id: ok", "id: caf\xe9").encode("latin-1"))
    [error] = load_rules([path]).errors
    # line 3 is `  - id: caf\xe9`: the column is that of the bad byte, counted in characters
    assert (error.line, error.column, error.message) == (3, 12, "the file is not UTF-8 text (bad byte 0xE9 at offset 29)")
    assert error.hint is not None and error.hint.startswith("save it as UTF-8")


def test_huge_numbers_in_rule_files_are_refused_not_a_crash(tmp_path: Path) -> None:
    """A 5000-digit integer made `validate` crash (Python refuses to convert it)."""
    path = _write(tmp_path, "num.yaml", RULE.replace("id: ok", "id: ok\n    priority: " + "7" * 5000).encode())
    [error] = load_rules([path]).errors
    assert (error.line, error.column, error.message) == (4, 15, "this number is too large: the number has 5000 "
                                                                "digits (limit 100)")


def test_the_collector_is_paused_while_loading_and_restored_after(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Full collections over a large file's objects held the interpreter lock for up to half a
    second, stalling the service's event loop while a reload ran on its worker thread."""
    import gc

    from rules_engine.rules import loader

    seen: list[bool] = []
    real = loader._load_file

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "_load_file", spy)
    (tmp_path / "a.yaml").write_text(RULE)
    assert gc.isenabled()
    assert load_rules([tmp_path]).ok
    assert seen == [False] and gc.isenabled()
