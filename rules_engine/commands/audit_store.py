"""`rules-engine audit verify|show|export --store URL --key KEY`: the audit chain of one key in
the PostgreSQL store, read as today's JSONL log (exported to a temporary file that `verify` and
`show` read exactly as they read a state dir's `audit.jsonl`). The password comes from
$RULES_ENGINE_STORE_PASSWORD (or `--password-env NAME`; `NAME_FILE` names a file holding it)."""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rules_engine.audit import verify
from rules_engine.pgstore import StoreSettings, export_jsonl
from rules_engine.pgstore.connection import PASSWORD_ENV
from rules_engine.secret_reader import SecretError
from rules_engine.state.store import StateStoreError

Command = Callable[[argparse.Namespace], int]


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL",
                        help="read the chain in a PostgreSQL store (postgresql://user@host:port/db) instead of a file")
    parser.add_argument("--key", metavar="KEY_ID", default="default", help="the API key's cell in --store")
    parser.add_argument("--password-env", metavar="NAME", default=PASSWORD_ENV,
                        help=f"the variable holding the store's password (NAME_FILE: a file); default {PASSWORD_ENV}")


def _settings(args: argparse.Namespace) -> StoreSettings:
    return StoreSettings.parse(args.store, key_id=args.key, password_env=args.password_env)


def _export(args: argparse.Namespace, path: Path) -> str | None:
    """Export the key's chain to `path`; the store's label, or None after printing why not."""
    try:
        settings = _settings(args)
        count = export_jsonl(settings, path)
    except (ValueError, SecretError, StateStoreError) as exc:
        print(f"rules-engine audit: {exc}", file=sys.stderr)
        return None
    if count == 0:
        print(f"rules-engine audit: no audit records for key {settings.key_id} in {settings.shown}", file=sys.stderr)
        return None
    return settings.shown


def with_store(command: Command) -> Command:
    """Run `command` on the exported chain when `--store` is given (exit 2 if it cannot be read)."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        if not getattr(args, "store", None):
            return command(args)
        if args.path:
            print("rules-engine audit: give PATH or --store, not both", file=sys.stderr)
            return 2
        if getattr(args, "repair", False):
            print("rules-engine audit: --repair applies to a file; a store's chain has no torn lines", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="rules-engine-audit-") as folder:
            path = Path(folder) / "audit.jsonl"
            label = _export(args, path)
            if label is None:
                return 2
            args.path, args.shown_as = str(path), (str(path), label)
            return command(args)
    return run


def register_export(actions: argparse._SubParsersAction) -> None:
    export = actions.add_parser(
        "export",
        help="write a PostgreSQL store's chain of one key as a JSONL log (today's format)",
        description="Write the audit chain of --key in --store to --out, in the JSONL log's format, and verify "
        "it (`rules-engine audit verify FILE` accepts it). Exit 0 written and intact, 1 the chain is damaged, 2 usage.",
    )
    add_store_arguments(export)
    export.add_argument("--out", metavar="FILE", required=True, help="the JSONL file to write (replaced)")
    export.set_defaults(func=_export_command)


def _export_command(args: argparse.Namespace) -> int:
    if not args.store:
        print("rules-engine audit export: --store is required", file=sys.stderr)
        return 2
    out = Path(args.out)
    if _export(args, out) is None:
        return 2
    report = verify(out)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
