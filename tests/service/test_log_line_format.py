"""The text formatter's lines as they always were, written with less work on the tick-to-order
path: the time without a datetime per line, the quoting of a field by one pattern search."""

import logging
import sys

from rules_engine.service.logs import JsonFormatter, KeyValueFormatter, _text_value


def test_log_lines_carry_the_time_as_before():
    record = logging.LogRecord("rules_engine.decisions", logging.INFO, __file__, 1, "rule fired", None, None)
    record.created = 1796451891.9269938
    assert '"time": "2026-12-05T06:24:51.926+00:00"' in JsonFormatter().format(record)
    assert KeyValueFormatter().format(record).startswith("time=2026-12-05T06:24:51.926+00:00 level=info ")


def test_a_text_field_is_quoted_exactly_when_it_holds_a_space_a_quote_or_an_equals_sign():
    def quoted_before(value: str) -> bool:  # the rule as it was written before the pattern
        return not (value and not any(ch.isspace() or ch in '"=' for ch in value))

    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    for ch in chars:
        text = f"a{ch}b"
        assert (_text_value(text) != text) == quoted_before(text), hex(ord(ch))
    assert _text_value("") == '""' and _text_value("XBTUSD") == "XBTUSD"
