"""Errors of the expression sandbox.

    Exception
     ├── ExpressionError   public: a load-time or evaluation error, with its column
     └── EvaluationFault   internal: raised by operators and sandbox functions; the
                           evaluator turns it into an ExpressionError at the failing node

An exception a runtime function raises whose class sets `passes_through = True` leaves the
evaluation unchanged instead (the engine core's StateNotReady: "that balance is not known
yet", which its caller handles differently from a failing expression).
"""

from __future__ import annotations

_MAX_MESSAGE = 300


class ExpressionError(Exception):
    """An expression or template that cannot be loaded, or an evaluation that failed.

    `message` says what is wrong; `column` is the 1-based offset in the expression (or
    template) source where it went wrong, or None when no single place is to blame.
    Messages never carry the values of context variables, only source text and types.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f"{self.message} (at column {self.column})"


class EvaluationFault(Exception):
    """Raised inside an evaluation with a readable `detail`; located by the evaluator."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def passes_through(exc: BaseException) -> bool:
    """Whether `exc`, raised by a runtime function, leaves the evaluation as it is."""
    return getattr(type(exc), "passes_through", False) is True


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    """A one-line description of an exception raised during an evaluation."""
    text = str(exc)
    name = type(exc).__name__
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, RecursionError):
        return "recursion too deep"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if type(exc).__module__ == "decimal":  # decimal signals print as "[<class 'decimal.Overflow'>]"
        if name == "Overflow":
            return "number too large (decimal overflow)"
        return f"invalid decimal operation ({name})"
    return shorten(f"{name}: {text}" if text else name, _MAX_MESSAGE)
