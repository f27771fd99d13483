"""Keep secrets out of the audit log and out of log lines.

Two mechanisms, both applied by `Redactor.redact`:

- By key: the value of any mapping key that names a credential is replaced by `***`,
  at any depth (dicts, lists, tuples). A key is sensitive when, lower-cased with every
  non-alphanumeric character removed, it contains one of `SENSITIVE_KEY_PARTS`
  (`API-Key`, `API-Sign`, `Authent`, `APIKey`, `x-api-secret`, `ws_token`, ...) or equals
  one of `SENSITIVE_KEYS` (`otp`, `sign`, ...). `None` and booleans are kept: they cannot
  carry a secret, and `"authenticated": true` stays readable.
- By value: every registered secret (`Redactor.register(value)`), and its URL-encoded
  forms, is replaced by `***` wherever it appears inside any string (keys included) or
  as the digits of an integer. Free text such as `API-Key: abc` or `token=abc` has the
  value after the name replaced too.

`default_redactor` is the process-wide instance the audit log uses; `register_secret`
adds to it. Register every secret as soon as it is loaded (API secret, webhook secrets,
passphrases, admin tokens). `RedactingFilter` applies the same rules to `logging` records.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

SENSITIVE_KEY_PARTS = (
    "apikey",
    "apisign",
    "authent",
    "authorization",
    "secret",
    "token",
    "passphrase",
    "password",
    "passwd",
    "signature",
    "privatekey",
    "cookie",
)
"""Substrings of a normalised key (lower case, alphanumerics only) that mark it sensitive."""

SENSITIVE_KEYS = frozenset({"otp", "sign", "pwd", "auth", "apisecret"})
"""Normalised keys that are sensitive only as a whole (`otp` but not `footprint`)."""

_TEXT_FIELD = re.compile(
    r"(?i)(?<![a-z0-9])(api[-_]?key|api[-_]?sign|authent|authorization|otp|password|passphrase|secret|token)"
    r"(\"?\s*[:=]\s*\"?)(?:(?:bearer|basic)\s+)?([^\s&\",;]+)"
)


_INTEGER_CHARS = frozenset("0123456789-")
"""What `str()` of an integer is made of."""

_KEY_CACHE_SIZE = 4096
_TEXT_CACHE_LENGTH = 64
"""Strings up to this length are redacted once and remembered (values repeat: sides, pairs,
levels, statuses); longer ones are redacted every time."""


def _normalise_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def is_sensitive_key(key: object) -> bool:
    """True if a mapping key names a credential whose value must never be written."""
    if not isinstance(key, str):
        return False
    norm = _normalise_key(key)
    return norm in SENSITIVE_KEYS or any(part in norm for part in SENSITIVE_KEY_PARTS)


class Redactor:
    """Replaces secrets in nested data and text. Thread-safe; secrets are never shown."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        # (pattern, {key: (redacted key, sensitive)}, {short text: redacted}, whether an integer's
        # digits can hold a secret), dropped as one whenever a secret is registered, so nothing is
        # served as redacted by an older pattern; built again at the next use (a worker registers
        # hundreds of keys' secrets at start).
        self._built: tuple[re.Pattern[str] | None, dict[str, tuple[str, bool]], dict[str, str], bool] | None = \
            (None, {}, {}, False)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def register(self, secret: str) -> None:
        """Redact `secret` (and its URL-encoded forms) wherever it appears from now on."""
        if not isinstance(secret, str) or not secret:
            raise ValueError("a secret to redact must be a non-empty string")
        forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            self._built = None

    @property
    def _keys(self) -> tuple[re.Pattern[str] | None, dict[str, tuple[str, bool]], dict[str, str], bool]:
        """The pattern of every registered secret, the caches redacted with it, and whether a
        secret is made of digits (and "-"): only such a one can show in an integer's text (the
        free-text fields, `token=...`, need letters), so without one integers are kept as they are."""
        built = self._built
        if built is None:
            with self._lock:
                built = self._built
                if built is None:
                    digits = any(set(form) <= _INTEGER_CHARS for form in self._secrets)
                    built = self._built = (secrets_pattern(self._secrets), {}, {}, digits)
        return built

    def redact_text(self, text: str) -> str:
        """`text` with registered secrets and `name: value` credential fields masked."""
        return _redact_text(self._keys[0], text)

    def redact_name(self, name: str) -> str:
        """`redact_text` for a short string that recurs (a rule id, a key), cached."""
        return self._key(name)[0]

    def _key(self, key: str) -> tuple[str, bool]:
        """A mapping key redacted, and whether it names a credential (cached: keys repeat)."""
        pattern, cache, _, _ = self._keys
        found = cache.get(key)
        if found is None:
            if len(cache) >= _KEY_CACHE_SIZE:
                cache.clear()
            found = cache[key] = (_redact_text(pattern, key), is_sensitive_key(key))
        return found

    def redact(self, value: Any) -> Any:
        """A redacted copy of `value`: mappings, lists and tuples are walked; strings,
        bytes and integers are checked for registered secrets; other objects are returned
        unchanged (convert them to text first if they may hold a secret)."""
        kind = type(value)
        if kind is str:
            return self._text(value)
        if kind is float or value is None or kind is bool:
            return value
        if kind is dict or isinstance(value, Mapping):
            _, cache, texts, _ = self._keys
            out = {}
            for key, item in value.items():
                if type(key) is str:
                    new_key, sensitive = cache.get(key) or self._key(key)
                else:
                    new_key, sensitive = key, False
                if sensitive and item is not None and item is not True and item is not False:
                    out[new_key] = MASK
                    continue
                item_kind = type(item)  # the plain values inline: one audit record per trace record
                if item_kind is str:
                    found = texts.get(item)
                    out[new_key] = found if found is not None else self._text(item)
                elif item_kind is float or item is None or item_kind is bool:
                    out[new_key] = item
                else:
                    out[new_key] = self.redact(item)
            return out
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, (bytes, bytearray)):
            return self.redact_text(bytes(value).decode("utf-8", errors="replace"))
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if not self._keys[3]:  # no secret made of digits: an integer cannot show one
                return value
            return MASK if self.redact_text(str(value)) != str(value) else value
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact(item) for item in value)
        return value


    def redact_json(self, value: Any, convert: Callable[[Any], Any]) -> Any:
        """`redact(convert(value))` in one walk, for a `convert` that leaves plain JSON (str,
        int, float, bool, None, dicts with str keys, lists) as it is, but makes tuples lists,
        non-str keys text and non-finite floats text (`audit.records.to_jsonable`): the plain
        parts are walked here, anything else is converted then redacted."""
        kind = type(value)
        if kind is str:
            return self._text(value)
        if value is None or kind is bool:
            return value
        if kind is float:
            return value if math.isfinite(value) else self.redact(convert(value))
        if kind is int:
            return self.redact(value) if self._keys[3] else value
        if kind is dict:
            _, cache, texts, digits = self._keys
            out = {}
            for key, item in value.items():
                if type(key) is not str:
                    return self.redact(convert(value))
                new_key, sensitive = cache.get(key) or self._key(key)
                if sensitive and item is not None and item is not True and item is not False:
                    out[new_key] = MASK
                    continue
                item_kind = type(item)
                if item_kind is str:
                    found = texts.get(item)
                    out[new_key] = found if found is not None else self._text(item)
                elif (item is None or item_kind is bool or (item_kind is float and math.isfinite(item))
                      or (item_kind is int and not digits)):
                    out[new_key] = item
                else:
                    out[new_key] = self.redact_json(item, convert)
            return out
        if kind is list or kind is tuple:
            return [self.redact_json(item, convert) for item in value]
        return self.redact(convert(value))

    def _text(self, text: str) -> str:
        """`redact_text`, remembered for a short string (see `_TEXT_CACHE_LENGTH`)."""
        pattern, _, texts, _ = self._keys
        found = texts.get(text)
        if found is None:
            found = _redact_text(pattern, text)
            if len(text) <= _TEXT_CACHE_LENGTH:
                if len(texts) >= _KEY_CACHE_SIZE:
                    texts.clear()
                texts[text] = found
        return found


def secrets_pattern(secrets: set[str]) -> re.Pattern[str] | None:
    """One pattern matching any of `secrets`, the longest first where one is a prefix of
    another, built as a trie (`(?:a(?:bc|d)|x...)`): matching costs about the text's length,
    not the text's length times the number of secrets as a plain alternation does."""
    if not secrets:
        return None
    trie: dict[str, Any] = {}
    for secret in secrets:
        node = trie
        for char in secret:
            node = node.setdefault(char, {})
        node[""] = {}
    return re.compile(_trie_source(trie))


def _trie_source(node: dict[str, Any]) -> str:
    """The pattern of a trie node: a run of single-child nodes is a plain literal (no
    recursion along it, so a long secret does not nest deeply); each branch point a group."""
    out = []
    while "" not in node and len(node) == 1:
        (char, node), = node.items()
        out.append(re.escape(char))
    branches = [re.escape(char) + _trie_source(child) for char, child in sorted(node.items()) if char]
    if branches:
        group = "(?:" + "|".join(branches) + ")"
        out.append(group + "?" if "" in node else group)  # greedy: the longer secret first
    return "".join(out)


def _redact_text(pattern: re.Pattern[str] | None, text: str) -> str:
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _TEXT_FIELD.sub(_mask_field, text)


def _mask_field(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + MASK


default_redactor = Redactor()


def register_secret(secret: str) -> None:
    """Register a secret with the process-wide `default_redactor`."""
    default_redactor.register(secret)


def redact(value: Any) -> Any:
    """Redact with the process-wide `default_redactor`."""
    return default_redactor.redact(value)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the formatted message and traceback.

    Attach it to handlers: `handler.addFilter(RedactingFilter())`.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or default_redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact_text(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):  # structured fields of a line (`extra={"fields": ...}`)
            record.fields = self.redactor.redact(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact_text(record.stack_info)
        return True
