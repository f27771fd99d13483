"""Regression tests for publicly known escapes from asteval, simpleeval and Jinja
sandboxes. Each must be refused at load time or end in a plain ExpressionError."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from expr_fixtures import ALL_NAMES

from rules_engine.expr import ExpressionError, compile_expression

pytestmark = pytest.mark.timeout(10)

UNDERSCORE = "names starting with '_' are not allowed"
METHOD = "only named functions can be called"
UNAVAILABLE = "is not available in rule expressions"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # the classic subclass walk, from a tuple, a text or a mapping
        ("().__class__.__bases__[0].__subclasses__()", METHOD),
        ("().__class__.__bases__[0]", UNDERSCORE),
        ("''.__class__.__mro__[1].__subclasses__", UNDERSCORE),
        ("signal.__class__", UNDERSCORE),
        ("[].__class__.__base__", UNDERSCORE),
        # format-string attribute access (asteval GHSA, simpleeval, Jinja's str.format)
        ("'{0.__class__}'.format(signal)", METHOD),
        ("'{0.__class__}'.format_map(signal)", METHOD),
        ("'{x.__init__.__globals__}'.format(x=signal)", METHOD),
        ("format(signal, '')", UNAVAILABLE),
        ("f'{signal.__class__}'", "f-strings are not allowed"),
        ("'%(a)s' % signal", None),  # refused at evaluation: see test_percent_formatting_is_refused
        # function globals and frames
        ("(lambda: 0).__globals__", UNDERSCORE),
        ("(lambda: 0)()", METHOD),
        ("balance.__globals__", UNDERSCORE),
        ("balance.__code__.co_consts", UNDERSCORE),
        ("[x for x in ()]", "comprehensions are not allowed"),
        ("(x for x in ()).gi_frame.f_back.f_globals", "generator expressions are not allowed"),
        ("(_ for _ in ()).throw(SystemExit)", METHOD),
        # pickling hooks (asteval issue 86: print.__reduce__() yields getattr)
        ("print.__reduce__()", METHOD),
        ("signal.__reduce__", UNDERSCORE),
        ("signal.__reduce_ex__", UNDERSCORE),
        ("str.__mro__[1]", UNDERSCORE),  # asteval issue 32 started from str.__mro__
        # the dangerous builtins by name
        ("__import__('os')", UNDERSCORE),
        ("__builtins__", UNDERSCORE),
        ("open('/etc/passwd')", UNAVAILABLE),
        ("getattr(signal, 'get')", UNAVAILABLE),
        ("setattr(signal, 'x', 1)", UNAVAILABLE),
        ("exec('1')", UNAVAILABLE),
        ("eval('1')", UNAVAILABLE),
        ("compile('1', '', 'eval')", UNAVAILABLE),
        ("type(signal)", UNAVAILABLE),
        ("type('X', (), {})", UNAVAILABLE),
        ("vars()", UNAVAILABLE),
        ("globals()", UNAVAILABLE),
        ("locals()", UNAVAILABLE),
        ("dir()", UNAVAILABLE),
        ("print(1)", UNAVAILABLE),
        ("breakpoint()", UNAVAILABLE),
        ("input()", UNAVAILABLE),
        ("object", UNAVAILABLE),
        ("memoryview(b'')", UNAVAILABLE),
        ("iter([1])", UNAVAILABLE),
        # raising the exceptions that stop interpreters
        ("raise SystemExit", "raise is not allowed"),
        ("raise BaseException()", "raise is not allowed"),
        ("SystemExit()", UNAVAILABLE),
        ("BaseException", UNAVAILABLE),
        ("KeyboardInterrupt()", UNAVAILABLE),
        # numpy is not there
        ("numpy.ones(10**9)", METHOD),
        ("numpy", "unknown name 'numpy'"),
        ("np", "unknown name 'np'"),
        # Jinja sandbox escapes
        ("cycler.__init__.__globals__.os.popen('id').read()", METHOD),
        ("lipsum.__globals__", UNDERSCORE),
        ("self._TemplateReference__context", UNDERSCORE),
        ("config.items()", METHOD),
    ],
)
def test_escape_is_refused_at_load(source: str, message: str | None) -> None:
    if message is None:
        compile_expression(source, ALL_NAMES)
        return
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, ALL_NAMES)
    assert message in caught.value.message


def test_exit_and_quit_are_not_names() -> None:
    for source in ("exit()", "quit()"):
        with pytest.raises(ExpressionError, match="exit|quit"):
            compile_expression(source, ALL_NAMES)


def run(source: str, env: dict[str, Any]) -> Any:
    return compile_expression(source, ALL_NAMES).evaluate(env)


def test_percent_formatting_is_refused(env: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError, match="'%' formatting of text is not allowed"):
        run("'%(a)s' % signal", env)


def test_subscripts_are_item_lookups_never_attributes(env: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError, match="no key '__class__'"):
        run("signal['__class__']", env)


def test_dotted_access_reads_mapping_fields_not_methods(env: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError, match="no field 'keys'"):
        run("signal.keys", env)
    env["signal"] = {"keys": "a field called keys"}
    assert run("signal.keys", env) == "a field called keys"


@pytest.mark.parametrize("source", ["symbol.format", "symbol.upper", "price.as_tuple", "balance.func_globals"])
def test_no_attribute_of_a_non_mapping_is_reachable(source: str, env: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError, match="has no fields"):
        run(source, env)


def test_generator_frames_of_supplied_functions_are_unreachable(env: dict[str, Any]) -> None:
    # simpleeval issue 138: a supplied function returning a generator exposed gi_frame
    def open_orders(pair: str) -> Iterator[int]:
        yield 1

    env["open_orders"] = open_orders
    with pytest.raises(ExpressionError, match="a generator has no fields"):
        run("open_orders('X').gi_frame.f_back.f_globals", env)


@pytest.mark.parametrize("exception", [SystemExit(1), GeneratorExit(), BaseException("boom")])
def test_runtime_function_raising_interpreter_exits_becomes_an_expression_error(
    exception: BaseException, env: dict[str, Any]
) -> None:
    def balance(asset: str) -> None:
        raise exception

    env["balance"] = balance
    with pytest.raises(ExpressionError, match=rf"balance\(\) failed: {type(exception).__name__}"):
        run("balance('ZUSD') > 1", env)


def test_keyboard_interrupt_still_stops_the_process(env: dict[str, Any]) -> None:
    def balance(asset: str) -> None:
        raise KeyboardInterrupt

    env["balance"] = balance
    with pytest.raises(KeyboardInterrupt):
        run("balance('ZUSD') > 1", env)


def test_asteval_symbol_table_is_not_reachable(env: dict[str, Any]) -> None:
    # asteval puts `print` and its own helpers in its symbol table; the sandbox never uses it
    for name in ("print", "Interpreter", "symtable", "_printer"):
        with pytest.raises(ExpressionError):
            compile_expression(name, ALL_NAMES).evaluate(env)
