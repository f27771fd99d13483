"""The expression sandbox: rule guards and values (`price > 100 and balance("ZUSD") > 50`)
and log/notify message templates (`"bought {volume} {symbol} at {price}"`).

Expressions are parsed once at load time, checked against a whitelist of syntax and the
names their rule's triggers provide (`rules_engine.registry.names_for_triggers`), and
evaluated by asteval's Interpreter under size limits (see `limits`). See docs/expressions.md for the language.
"""

from .errors import ExpressionError
from .expression import Expression, compile_expression
from .functions import BUILTIN_NAMES
from .template import MessageTemplate, compile_template

__all__ = [
    "BUILTIN_NAMES",
    "Expression",
    "ExpressionError",
    "MessageTemplate",
    "compile_expression",
    "compile_template",
]
