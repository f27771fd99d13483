"""Structured logging for the service: JSON lines or `key=value` text on stderr, with
secrets masked by `RedactingFilter` before anything is formatted.

A record may carry structured fields (`log.info("rule fired", extra={"fields": {...}})`, as the
decision log's lines do): JSON puts them at the top level of the object, text appends them as
`key=value` pairs after the message (strings quoted when they hold spaces or quotes)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from rules_engine.redact import RedactingFilter

LOG_FORMATS = ("json", "text")
_HANDLER_NAME = "rules-engine"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, msg, and exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        return json.dumps(entry, ensure_ascii=False, default=str)


class KeyValueFormatter(logging.Formatter):
    """`time=... level=info logger=... msg="..."` with the message quoted."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = (f"time={stamp} level={record.levelname.lower()} logger={record.name} "
                f"msg={json.dumps(record.getMessage())}")
        for key, value in _fields(record).items():
            line += f" {key}={_text_value(value)}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += f" exc={json.dumps(record.exc_text)}"
        return line


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


_QUOTED = re.compile(r'[\s"=]')
"""A character that makes a text value quoted: whitespace (as `str.isspace` says), a quote, `=`."""


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        plain = value and not _QUOTED.search(value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def setup_logging(fmt: str = "text", level: int = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger to `stream` (stderr) in `fmt`; replaces an earlier call's handler."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp.access", "websockets", "apprise"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
