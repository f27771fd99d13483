"""The expression sandbox: rule guards and values (`price > 100 and balance("ZUSD") > 50`)
and log/notify message templates (`"bought {volume} {symbol} at {price}"`).

Expressions are parsed once at load time, checked against a whitelist of syntax and the
names their rule's triggers provide, and evaluated by asteval's Interpreter under size
limits (see `limits`). See docs/expressions.md for the language.
"""

from .errors import ExpressionError
from .expression import Expression, compile_expression
from .functions import BUILTIN_NAMES
from .names import CONTEXT_NAMES, RUNTIME_NAMES, names_for_triggers
from .template import MessageTemplate, compile_template

__all__ = [
    "BUILTIN_NAMES",
    "CONTEXT_NAMES",
    "RUNTIME_NAMES",
    "Expression",
    "ExpressionError",
    "MessageTemplate",
    "compile_expression",
    "compile_template",
    "names_for_triggers",
]
