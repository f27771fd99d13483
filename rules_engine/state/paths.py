"""Where the engine keeps its state: one state directory per engine.

    --state-dir DIR  >  $RULES_ENGINE_STATE_DIR  >  ./state

Inside it: `audit.jsonl` (the audit log) with `audit.jsonl.head`, and `engine.sqlite`
(the state store, with SQLite's `-wal` and `-shm` files). One engine per directory: the
audit log's write lock refuses a second one.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "RULES_ENGINE_STATE_DIR"
DEFAULT_STATE_DIR = "state"
AUDIT_FILE = "audit.jsonl"
DATABASE_FILE = "engine.sqlite"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$RULES_ENGINE_STATE_DIR` if set and non-empty, else `./state`."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return Path(value or DEFAULT_STATE_DIR)


def resolve_state_dir(given: str | os.PathLike[str] | None) -> Path:
    """The `--state-dir` value if given, else `default_state_dir()`."""
    return Path(given) if given else default_state_dir()


def audit_log_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / AUDIT_FILE


def database_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / DATABASE_FILE


def ensure_state_dir(state_dir: str | os.PathLike[str]) -> Path:
    """Create the state directory (owner-only permissions) if needed and return it."""
    path = Path(state_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def add_state_dir_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--state-dir DIR` (default: resolved at run time by `resolve_state_dir`)."""
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help=f"state directory (default: ${ENV_VAR} or ./{DEFAULT_STATE_DIR})",
    )
