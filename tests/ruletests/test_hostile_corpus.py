"""Issue 10's regression corpus through `rules-engine validate` and `rules-engine test`:
public sandbox escapes adapted to the rule language (asteval GHSA-3wwr-3g9f-9gc7 /
CVE-2025-24359, GHSA-vp47-9734-prjw, GHSA-89v8-rhwq-hf77, asteval issue 86, simpleeval's
gi_frame generator escape, format-string and dunder tricks, unicode identifiers that NFKC
folds to builtins), and finding 1 through `test`. Each asserts the exact refusal and a
"not stalled" time bound. (The service's side: tests/e2e/test_e2e_hostile.py.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Workspace

from rules_engine import cli

pytestmark = pytest.mark.timeout(60)

NOT_STALLED = 5.0
METHOD = "only named functions can be called, as in min(a, b); methods and computed callees are not allowed"

ESCAPES: list[tuple[str, str, str]] = [
    # (where it comes from, the expression, the refusal)
    ("GHSA-3wwr-3g9f-9gc7: a format spec smuggling a {__fstring__...} field into str.format",
     "f\"{dict.mro()[1]:'{__fstring__.__class__.__base__.__subclasses__()}'}\"",
     "f-strings are not allowed (a log or notify message is a template: {name})"),
    ("GHSA-3wwr-3g9f-9gc7: the same through str.format", "'{0.__class__.__base__.__subclasses__}'.format(signal)",
     METHOD),
    ("GHSA-vp47-9734-prjw: reaching the interpreter behind a builtin", "print.__self__.node_handlers",
     "names starting with '_' are not allowed: '.__self__'"),
    ("GHSA-vp47-9734-prjw: from an object to os.system",
     "signal.__class__.__init__.__globals__['sys'].modules['os'].system('id')", METHOD),
    ("GHSA-89v8-rhwq-hf77: a builtin's module and its import", "min.__self__.__import__('os')", METHOD),
    ("GHSA-89v8-rhwq-hf77: a dunder read inside a condition", "1 if signal.__class__.__subclasses__ else 0",
     "names starting with '_' are not allowed: '.__subclasses__'"),
    ("asteval issue 86: print.__reduce__() yields getattr", "print.__reduce__()[0](print, '__globals__')", METHOD),
    ("simpleeval: a generator's frame leads to the caller's globals",
     "(x for x in [1]).gi_frame.f_back.f_back.f_globals", "generator expressions are not allowed"),
    ("format-string trick through str.format", "str.format('{0.__globals__}', balance)", METHOD),
    ("getattr by name", "getattr(signal, '__class__')", "'getattr' is not available in rule expressions"),
    ("a method of the payload", "signal.keys()", METHOD),
    ("NFKC: fullwidth print", "ｐｒｉｎｔ('x')", "'print' is not available in rule expressions"),
    ("NFKC: fullwidth underscores", "_＿import＿_('os')", "names starting with '_' are not allowed: '__import__'"),
    ("NFKC: modifier letters", "ᵖʳⁱⁿᵗ.__self__", "names starting with '_' are not allowed: '.__self__'"),
    ("NFKC: script e", "ℯval('1')", "'eval' is not available in rule expressions"),
    ("NFKC: fraktur exec", "𝔢𝔵𝔢𝔠('1')", "'exec' is not available in rule expressions"),
]


def rule_file(expressions: list[str]) -> str:
    rules = "".join(
        f"  - id: r{n}\n"
        f"    triggers: [{{type: signal, source: bot}}]\n"
        f"    when: {json.dumps(expression, ensure_ascii=False)}\n"
        f"    actions: [{{type: log, message: \"fired\"}}]\n"
        for n, expression in enumerate(expressions)
    )
    return "version: 1\nrules:\n" + rules


def test_every_escape_is_refused_by_validate_with_its_own_message(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "escapes.yaml"
    path.write_text(rule_file([expression for _, expression, _ in ESCAPES]), encoding="utf-8")
    started = time.perf_counter()
    assert cli.main(["validate", str(path)]) == 1
    assert time.perf_counter() - started < NOT_STALLED
    out = capsys.readouterr().out.splitlines()
    errors = {line.split(": ", 1)[0].rsplit(":", 2)[1]: line.split(": ", 2)[2] for line in out if line.startswith(str(path))}
    expected = {str(5 + 4 * n): f'invalid expression: {message}' for n, (_, _, message) in enumerate(ESCAPES)}
    assert errors == expected
    assert out[-1] == f"invalid: 1 file, {len(ESCAPES)} rules: {len(ESCAPES)} errors, 0 warnings"


RUNTIME_RULES = """\
version: 1
rules:
  - id: dunder-key
    triggers: [{type: signal, source: bot}]
    when: "signal['__class__'] == 1"
    actions: [{type: log, message: "no"}]
  - id: percent
    triggers: [{type: signal, source: bot}]
    when: "'%s' % signal == 'x'"
    actions: [{type: log, message: "no"}]
  - id: echo
    triggers: [{type: signal, source: bot, where: "'note' in signal"}]
    actions: [{type: log, message: "note {signal.note}"}]
  - id: risky
    triggers: [{type: signal, source: bot, where: "'risk' in signal"}]
    actions: [{type: log, message: "risk {signal.risk}"}]
"""

RUNTIME_TEST = """\
rules: [hostile.yaml]
tests:
  - name: escape text in a payload is data
    inputs:
      - signal: {source: bot, payload: {note: "{0.__class__.__mro__}"}}
    expect:
      - {rule: dunder-key, blocked: {by: error, reason: "no key '__class__'"}}
      - {rule: percent, blocked: {by: error, reason: "'%' formatting of text is not allowed"}}
      - {rule: echo, intents: [{type: log, message: "note {0.__class__.__mro__}"}]}
"""


def test_escapes_that_load_fail_cleanly_when_run_and_payload_text_stays_text(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write("hostile.yaml", RUNTIME_RULES)
    path = ws.write("hostile.test.yaml", RUNTIME_TEST)
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert code == 0, out


def test_a_10000_digit_number_in_a_rule_test_is_refused_at_once(ws: Workspace,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 1: `rules-engine test` took 15 s on a 10 000-digit number."""
    ws.write("hostile.yaml", RUNTIME_RULES)
    path = ws.write("big.test.yaml", RUNTIME_TEST.replace('{note: "{0.__class__.__mro__}"}', "{risk: 1." + "1" * 10_000 + "}"))
    started = time.perf_counter()
    code, out, _ = ws.run(str(path), capsys=capsys)
    assert time.perf_counter() - started < NOT_STALLED
    assert code == 1
    assert f"{path.as_posix()}:5:47: this number is too large: the number has 10001 digits (limit 100)" in out


def test_a_named_pipe_as_a_test_file_is_refused_by_name(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    fifo = ws.root / "pipe.test.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    code, out, _ = ws.run(str(fifo), capsys=capsys)
    assert time.perf_counter() - started < NOT_STALLED
    assert code == 1
    assert f"{fifo.as_posix()}:1:1: this is a named pipe (FIFO), not a regular file; rule files must be regular " \
           "files" in out
