"""Size limits of the sandbox. Each one bounds the work or memory a single expression
can cause, so that evaluation time is bounded by the expression's length."""

# numbers written in an expression, made by decimal() or read from a signal (rules_engine.core.number_limits)
from rules_engine.core.number_limits import MAX_NUMBER_DIGITS as MAX_NUMBER_DIGITS
from rules_engine.core.number_limits import MAX_NUMBER_EXPONENT as MAX_NUMBER_EXPONENT

MAX_SOURCE_LENGTH = 2000  # characters in one expression
MAX_NODES = 500  # expression nodes after parsing
MAX_NESTING = 20  # open brackets ( [ { at any point
MAX_DEPTH = 100  # depth of the parsed tree (a + b + c + ... nests to the left)
MAX_INT_BITS = 4096  # any integer a computation produces (about 1233 decimal digits)
MAX_DECIMAL_POWER_BASE_DIGITS = MAX_NUMBER_DIGITS  # an integer raised to a Decimal power
MAX_INT_DIGITS = 1233  # a Decimal converted to an integer
MAX_TEXT_LENGTH = 10_000  # characters in text built by + or *
MAX_ITEMS = 10_000  # items in a list or tuple built by +
MAX_ROUND_DIGITS = 30  # |ndigits| of round()
MAX_TEMPLATE_LENGTH = 2000  # characters in one message template
MAX_RENDERED_VALUE = 200  # characters one placeholder may render to
MAX_PLACES = 18  # decimal places in a template's {x:.Nf}
