"""`rules-engine pairs`: the Kraken asset-pair snapshot that `validate` checks pairs against.

- `pairs list [--pairs FILE]`: print the pairs and every name they go by.
- `pairs refresh [--url BASE] [--output FILE]`: GET {BASE}/0/public/AssetPairs and replace the
  snapshot atomically (a temporary file in the same folder, then a rename), so an interrupted or
  failed refresh leaves the old snapshot untouched. Exit 1 when the exchange cannot be reached or
  answers with anything but a usable pair list.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

import requests

from rules_engine import __version__
from rules_engine.pairs import SNAPSHOT_FILE, PairRegistry, default_registry, snapshot_path, use_snapshot, write_index
from rules_engine.resources import data_path

DEFAULT_BASE_URL = "https://api.kraken.com"
ASSET_PAIRS_PATH = "/0/public/AssetPairs"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pairs", help="list or refresh Kraken's asset-pair snapshot",
                                   description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="pairs_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="print every pair and its names (altname, wsname, v2 symbol)")
    listing.add_argument("--pairs", metavar="FILE", type=Path,
                         help="an AssetPairs JSON snapshot (default: the one shipped)")
    listing.set_defaults(func=run_list)

    refresh = actions.add_parser("refresh", help="download AssetPairs from Kraken and replace the snapshot")
    refresh.add_argument("--url", default=DEFAULT_BASE_URL, metavar="BASE",
                         help=f"REST base URL (default: {DEFAULT_BASE_URL})")
    refresh.add_argument("--output", type=Path, metavar="FILE",
                         help="where to write (default: the snapshot shipped with the package)")
    refresh.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="HTTP timeout (default: 30)")
    refresh.set_defaults(func=run_refresh)


def run_list(args: argparse.Namespace) -> int:
    try:
        registry = PairRegistry.from_file(args.pairs).check() if args.pairs else default_registry()
    except (OSError, ValueError, KeyError) as exc:
        print(f"rules-engine pairs list: cannot read {args.pairs}: {exc}", file=sys.stderr)
        return 2
    rows = [("ALTNAME", "WSNAME", "V2 SYMBOL", "PAIR ID", "ORDERMIN", "STATUS")]
    rows += [(p.altname, p.wsname, p.v2_symbol, p.pair_id, str(p.ordermin), p.status) for p in registry]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


class RefreshError(Exception):
    """The exchange could not be reached or did not answer with a usable pair list."""


def fetch_asset_pairs(base_url: str, timeout: float = 30.0) -> dict[str, Any]:
    """GET {base_url}/0/public/AssetPairs and return the checked response body."""
    url = base_url.rstrip("/") + ASSET_PAIRS_PATH
    try:
        response = requests.get(url, timeout=timeout, headers={"User-Agent": f"rules-engine/{__version__}"})
    except requests.RequestException as exc:
        raise RefreshError(f"cannot reach {url}: {exc.__class__.__name__}") from None
    if response.status_code != 200:
        raise RefreshError(f"{url} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise RefreshError(f"{url} did not answer with JSON") from None
    if not isinstance(body, dict):
        raise RefreshError(f"{url} answered with something other than a JSON object")
    if body.get("error"):
        raise RefreshError(f"Kraken answered with errors: {', '.join(map(str, body['error']))}")
    result = body.get("result")
    if not isinstance(result, dict) or not result:
        raise RefreshError(f"{url} answered without any pairs")
    try:
        PairRegistry.from_asset_pairs(body).check()
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        raise RefreshError(f"the pair list from {url} is not in Kraken's AssetPairs format "
                           f"({exc.__class__.__name__}: {exc})") from None
    return {"error": [], "result": result}


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers see either the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_refresh(args: argparse.Namespace) -> int:
    output: Path = args.output or data_path(SNAPSHOT_FILE)
    try:
        body = fetch_asset_pairs(args.url, args.timeout)
    except RefreshError as exc:
        print(f"rules-engine pairs refresh: {exc}; the snapshot was not changed", file=sys.stderr)
        return 1
    try:
        write_atomically(output, json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n")
        write_index(output)
    except OSError as exc:
        print(f"rules-engine pairs refresh: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if output == snapshot_path():
        use_snapshot(None if output == data_path(SNAPSHOT_FILE) else output)
    print(f"wrote {len(body['result'])} pairs to {output}")
    return 0
