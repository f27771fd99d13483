"""Read a rule file without trusting what sits at its path.

- Only regular files are read: a named pipe would block the reader forever, a device could
  stream without end, a socket cannot be read at all. Each is refused by what it is, without
  opening it for long (the descriptor is opened non-blocking and checked again, so a file
  swapped for a pipe in between is refused too).
- Inside a rules folder, a symbolic link whose target lies outside that folder is refused
  without reading it: an error message must never quote a file from elsewhere.
- The size is bounded before reading, and reading stops at the bound.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rules_engine.rules.diagnostics import Diagnostic

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a named pipe (FIFO)", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def leaves_tree(root: Path, path: Path) -> bool:
    """Whether `path`, found under the folder `root`, resolves (through symbolic links) to a
    place outside `root`."""
    try:
        return not path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a link loop
        return True


def read_rule_file(path: Path, limit: int, root: Path | None = None) -> bytes | Diagnostic:
    """The bytes of the regular file at `path` (at most `limit` + 1 of them: the caller reports
    a larger file), or a Diagnostic saying why it was not read. `root` is the rules folder
    `path` was found in, if any."""
    name = path.as_posix()

    def refuse(message: str, code: str) -> Diagnostic:
        return Diagnostic(name, 1, 1, None, message, code=code)

    if root is not None and leaves_tree(root, path):
        return refuse(f"this is a symbolic link that leads outside the rules folder {root.as_posix()}; "
                      "it is not read (put the rule file itself in the folder)", "symlink-outside")
    try:
        kind = kind_of(os.stat(path).st_mode)
        if kind is not None:
            return refuse(f"this is {kind}, not a regular file; rule files must be regular files", "not-a-file")
        size = os.stat(path).st_size
        if size > limit:
            return refuse(f"the file is {size} bytes; rule files are limited to {limit} bytes", "file-too-large")
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as handle:
            kind = kind_of(os.fstat(handle.fileno()).st_mode)
            if kind is not None:
                return refuse(f"this is {kind}, not a regular file; rule files must be regular files", "not-a-file")
            return handle.read(limit + 1)
    except OSError as exc:
        return refuse(f"cannot read the file: {exc.strerror or exc}", "unreadable")
